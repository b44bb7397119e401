"""Occupation catalogues: a survey's per-cell counts on one map, without its rows.

``catalogues.kind`` gains ``occupation``; ``occupations`` holds what the counts are of
(map, dataset and its checksum, splits, counters) and ``occupation_counts`` the long table
(axis, bin, cell, n, weight; non-empty entries only). ``catalogues.n_rows`` becomes a
64-bit integer: a survey's occupation counts 10^9 rows and more. The downgrade removes the
occupation catalogues with their tables.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = "kind IN ('photometric', 'spectroscopic')"
_NEW_KINDS = "kind IN ('photometric', 'spectroscopic', 'occupation')"
_AXES = "axis IN ('total', 'mag', 'z', 'pixel')"


def _json_type():
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _utc():
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("catalogues") as batch:
        batch.drop_constraint(op.f("ck_catalogues_kind"), type_="check")
        batch.create_check_constraint("kind", _NEW_KINDS)
        batch.alter_column("n_rows", type_=sa.BigInteger(), existing_nullable=False)
    op.create_table(
        "occupations",
        sa.Column("catalogue_id", sa.Integer(), nullable=False),
        sa.Column("map_id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=1024), nullable=False),
        sa.Column("dataset_sha256", sa.String(length=64), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("n_galaxies", sa.BigInteger(), nullable=False),
        sa.Column("n_unassigned", sa.BigInteger(), nullable=False),
        sa.Column("n_outside_training", sa.BigInteger(), nullable=False),
        sa.Column("mag_band", sa.String(length=255), nullable=True),
        sa.Column("mag_edges", _json_type(), nullable=True),
        sa.Column("z_column", sa.String(length=255), nullable=True),
        sa.Column("z_edges", _json_type(), nullable=True),
        sa.Column("healpix_order", sa.Integer(), nullable=True),
        sa.Column("weight_column", sa.String(length=255), nullable=True),
        sa.Column("provenance", _json_type(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["catalogue_id"], ["catalogues.id"], ondelete="CASCADE",
            name=op.f("fk_occupations_catalogue_id_catalogues"),
        ),
        sa.ForeignKeyConstraint(
            ["map_id"], ["maps.id"], ondelete="CASCADE", name=op.f("fk_occupations_map_id_maps")
        ),
        sa.PrimaryKeyConstraint("catalogue_id", name=op.f("pk_occupations")),
    )  # fmt: skip
    op.create_index(op.f("ix_occupations_map_id"), "occupations", ["map_id"])
    op.create_table(
        "occupation_counts",
        sa.Column("catalogue_id", sa.Integer(), nullable=False),
        sa.Column("axis", sa.String(length=8), nullable=False),
        sa.Column("bin", sa.BigInteger(), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.CheckConstraint(_AXES, name=op.f("ck_occupation_counts_axis")),
        sa.CheckConstraint("n >= 0", name=op.f("ck_occupation_counts_n")),
        sa.ForeignKeyConstraint(
            ["catalogue_id"], ["occupations.catalogue_id"], ondelete="CASCADE",
            name=op.f("fk_occupation_counts_catalogue_id_occupations"),
        ),
        sa.PrimaryKeyConstraint(
            "catalogue_id", "axis", "bin", "cell", name=op.f("pk_occupation_counts")
        ),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("occupation_counts")
    op.drop_index(op.f("ix_occupations_map_id"), table_name="occupations")
    op.drop_table("occupations")
    op.execute("DELETE FROM catalogues WHERE kind = 'occupation'")
    with op.batch_alter_table("catalogues") as batch:
        batch.drop_constraint(op.f("ck_catalogues_kind"), type_="check")
        batch.create_check_constraint("kind", _OLD_KINDS)
        batch.alter_column("n_rows", type_=sa.Integer(), existing_nullable=False)
