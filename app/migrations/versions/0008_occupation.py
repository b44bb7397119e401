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


def _catalogues_schema(kinds_from: str, kinds_to: str, rows_from: str, rows_to: str) -> None:
    """Change the kind CHECK and the n_rows type of ``catalogues``.

    On SQLite, batch mode would rebuild the table, and dropping the original deletes every
    source, spectrum and assignment through ON DELETE CASCADE (foreign keys are on). So
    the table's stored SQL is rewritten in place instead, SQLite's documented procedure for
    a CHECK change; BIGINT and INTEGER store the same there, the type name is for the
    schema's comparison with the models."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        with op.batch_alter_table("catalogues") as batch:
            batch.drop_constraint(op.f("ck_catalogues_kind"), type_="check")
            batch.create_check_constraint("kind", kinds_to)
            batch.alter_column(
                "n_rows",
                type_=sa.BigInteger() if rows_to == "BIGINT" else sa.Integer(),
                existing_nullable=False,
            )
        return
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'catalogues'")
    ).scalar_one()
    edits = ((f"CHECK ({kinds_from})", f"CHECK ({kinds_to})"),
             (f"n_rows {rows_from} NOT NULL", f"n_rows {rows_to} NOT NULL"))  # fmt: skip
    for before, after in edits:
        if before not in sql:
            raise RuntimeError(f"catalogues: expected {before!r} in its schema: {sql}")
        sql = sql.replace(before, after)
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'catalogues'"),
        {"sql": sql},
    )
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def upgrade() -> None:
    _catalogues_schema(_OLD_KINDS, _NEW_KINDS, "INTEGER", "BIGINT")
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
    _catalogues_schema(_NEW_KINDS, _OLD_KINDS, "BIGINT", "INTEGER")
