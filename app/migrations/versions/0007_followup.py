"""The follow-up loop: campaigns, their targets' outcomes, a change log and coverage history.

``target_lists`` gains ``name``: a named list is a campaign. ``target_outcomes`` records per
target of a campaign secure / failed / not observed with the exposure spent;
``ledger_changes`` is the append-only log of changes to the ledger (action, the API key's
name, when, what it touched); ``coverage_snapshots`` a map's coverage after each change.

Existing lists keep ``name`` NULL (plain target lists, not campaigns). On SQLite the column
is added with plain ``ALTER TABLE`` (``recreate="never"``; DROP COLUMN on downgrade needs
SQLite >= 3.35, as 0004's does).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIONS = ("catalogue_ingested", "catalogue_deleted", "campaign_created", "outcomes_recorded")
_OUTCOMES = ("secure", "failed", "not_observed")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("target_lists", recreate="never") as batch:
        batch.add_column(sa.Column("name", sa.String(length=255), nullable=True))

    op.create_table(
        "ledger_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("key_name", sa.String(length=100), nullable=True),
        sa.Column("map_id", sa.Integer(), nullable=True),
        sa.Column("catalogue_id", sa.Integer(), nullable=True),
        sa.Column("target_list_id", sa.Integer(), nullable=True),
        sa.Column("detail", json_type, nullable=True),
        sa.CheckConstraint(f"action IN ({_in(_ACTIONS)})", name=op.f("ck_ledger_changes_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_changes")),
    )
    op.create_index(
        op.f("ix_ledger_changes_map_id_id"), "ledger_changes", ["map_id", "id"], unique=False
    )

    op.create_table(
        "coverage_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("map_id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_cells", sa.Integer(), nullable=False),
        sa.Column("n_cells_occupied", sa.Integer(), nullable=False),
        sa.Column("n_cells_covered", sa.Integer(), nullable=False),
        sa.Column("n_galaxies", sa.Integer(), nullable=False),
        sa.Column("n_galaxies_covered", sa.Integer(), nullable=False),
        sa.Column("n_spectra_secure", sa.Integer(), nullable=False),
        sa.Column("n_observed", sa.Integer(), nullable=False),
        sa.Column("n_secure_outcomes", sa.Integer(), nullable=False),
        sa.Column("hours_spent", sa.Double(), nullable=False),
        sa.Column("by_z", json_type, nullable=True),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["ledger_changes.id"],
            name=op.f("fk_coverage_snapshots_change_id_ledger_changes"),
        ),
        sa.ForeignKeyConstraint(
            ["map_id"],
            ["maps.id"],
            name=op.f("fk_coverage_snapshots_map_id_maps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coverage_snapshots")),
    )
    op.create_index(
        op.f("ix_coverage_snapshots_map_id_id"),
        "coverage_snapshots",
        ["map_id", "id"],
        unique=False,
    )

    op.create_table(
        "target_outcomes",
        sa.Column("target_list_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("exposure_hours", sa.Double(), nullable=True),
        sa.Column("z_spec", sa.Double(), nullable=True),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            f"outcome IN ({_in(_OUTCOMES)})", name=op.f("ck_target_outcomes_outcome")
        ),
        sa.CheckConstraint(
            "exposure_hours IS NULL OR exposure_hours >= 0",
            name=op.f("ck_target_outcomes_exposure"),
        ),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["ledger_changes.id"],
            name=op.f("fk_target_outcomes_change_id_ledger_changes"),
        ),
        sa.ForeignKeyConstraint(
            ["target_list_id"],
            ["target_lists.id"],
            name=op.f("fk_target_outcomes_target_list_id_target_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("target_list_id", "rank", name=op.f("pk_target_outcomes")),
    )


def downgrade() -> None:
    op.drop_table("target_outcomes")
    op.drop_index(op.f("ix_coverage_snapshots_map_id_id"), table_name="coverage_snapshots")
    op.drop_table("coverage_snapshots")
    op.drop_index(op.f("ix_ledger_changes_map_id_id"), table_name="ledger_changes")
    op.drop_table("ledger_changes")
    with op.batch_alter_table("target_lists", recreate="never") as batch:
        batch.drop_column("name")
