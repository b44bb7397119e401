"""Deep/wide calibrations: a deep map, a wide map, a transfer catalogue and the spectra.

``calibrations`` ties the two maps and the photometric catalogues a deep/wide (SOMPZ)
n(z) is made of (the deep sample, the wide sample, and the two sides of the transfer
catalogue), the binning and ensemble choices, its status and job, and the last computed
n(z) (``result``: npz bytes; ``summary``: per-bin numbers). Every foreign key is
``ON DELETE SET NULL``: deleting a map or a catalogue leaves the calibration, which then
says which of its inputs is gone (the ids as given stay in ``params``).

A new table only: no existing row changes, the downgrade drops it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{table}.id"],
        name=op.f(f"fk_calibrations_{column}_{table}"),
        ondelete="SET NULL",
    )


def upgrade() -> None:
    op.create_table(
        "calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("deep_map_id", sa.Integer(), nullable=True),
        sa.Column("wide_map_id", sa.Integer(), nullable=True),
        sa.Column("deep_catalogue_id", sa.Integer(), nullable=True),
        sa.Column("wide_catalogue_id", sa.Integer(), nullable=True),
        sa.Column("transfer_deep_catalogue_id", sa.Integer(), nullable=True),
        sa.Column("transfer_wide_catalogue_id", sa.Integer(), nullable=True),
        sa.Column("binning", sa.String(length=16), nullable=False),
        sa.Column("ensemble_method", sa.String(length=32), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("summary", _json(), nullable=True),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'computing', 'ready', 'failed')",
            name=op.f("ck_calibrations_status"),
        ),
        sa.CheckConstraint(
            "binning IN ('mean', 'mode', 'photoz')", name=op.f("ck_calibrations_binning")
        ),
        sa.CheckConstraint(
            "ensemble_method IN ('bootstrap_spec', 'bootstrap_deep', 'dirichlet')",
            name=op.f("ck_calibrations_ensemble_method"),
        ),
        _fk("deep_map_id", "maps"),
        _fk("wide_map_id", "maps"),
        _fk("deep_catalogue_id", "catalogues"),
        _fk("wide_catalogue_id", "catalogues"),
        _fk("transfer_deep_catalogue_id", "catalogues"),
        _fk("transfer_wide_catalogue_id", "catalogues"),
        _fk("job_id", "jobs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibrations")),
    )
    op.create_index(op.f("ix_calibrations_deep_map_id"), "calibrations", ["deep_map_id"])
    op.create_index(op.f("ix_calibrations_wide_map_id"), "calibrations", ["wide_map_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_calibrations_wide_map_id"), table_name="calibrations")
    op.drop_index(op.f("ix_calibrations_deep_map_id"), table_name="calibrations")
    op.drop_table("calibrations")
