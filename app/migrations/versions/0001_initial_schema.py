"""Initial schema: catalogues, sources, spectra, maps, cells, assignments, targets, jobs, keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Written out by hand (not imported from app.models) so that this revision keeps meaning the
same schema however the models evolve.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BANDS = ("u", "g", "r", "i", "z", "y", "j", "h")


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _photometry() -> list[sa.Column]:
    cols: list[sa.Column] = []
    for band in BANDS:
        cols.append(sa.Column(f"mag_{band}", sa.Double(), nullable=True))
        cols.append(sa.Column(f"magerr_{band}", sa.Double(), nullable=True))
    return cols


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.Column("last_used_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    op.create_table(
        "catalogues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("file_format", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("preset", sa.String(length=32), nullable=True),
        sa.Column("column_mapping", _json(), nullable=False),
        sa.Column("secure_rule", _json(), nullable=True),
        sa.Column("bands", _json(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_skipped", sa.Integer(), nullable=False),
        sa.Column("n_secure", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('photometric', 'spectroscopic')", name=op.f("ck_catalogues_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogues")),
        sa.UniqueConstraint("kind", "sha256", name=op.f("uq_catalogues_kind_sha256")),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", _json(), nullable=True),
        sa.Column("result", _json(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')", name=op.f("ck_jobs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_table(
        "maps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_cols", sa.Integer(), nullable=False),
        sa.Column("lattice", sa.String(length=8), nullable=False),
        sa.Column("periodic", sa.Boolean(), nullable=False),
        sa.Column("grid", _json(), nullable=False),
        sa.Column("features", _json(), nullable=True),
        sa.Column("params", _json(), nullable=True),
        sa.Column("weights", sa.LargeBinary(), nullable=True),
        sa.Column("quality", _json(), nullable=True),
        sa.Column("min_secure", sa.Integer(), nullable=False),
        sa.Column("n_train", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("training_catalogue_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("trained_at", _ts(), nullable=True),
        sa.CheckConstraint("lattice IN ('rect', 'hex')", name=op.f("ck_maps_lattice")),
        sa.CheckConstraint(
            "status IN ('queued', 'training', 'ready', 'failed')", name=op.f("ck_maps_status")
        ),
        sa.CheckConstraint("n_rows > 0 AND n_cols > 0", name=op.f("ck_maps_shape")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_maps_job_id_jobs"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["training_catalogue_id"],
            ["catalogues.id"],
            name=op.f("fk_maps_training_catalogue_id_catalogues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maps")),
    )
    op.create_table(
        "sources",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("catalogue_id", sa.Integer(), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("ra", sa.Double(), nullable=True),
        sa.Column("dec", sa.Double(), nullable=True),
        sa.Column("z_phot", sa.Double(), nullable=True),
        *_photometry(),
        sa.ForeignKeyConstraint(
            ["catalogue_id"],
            ["catalogues.id"],
            name=op.f("fk_sources_catalogue_id_catalogues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint(
            "catalogue_id", "row_index", name=op.f("uq_sources_catalogue_id_row_index")
        ),
    )
    op.create_table(
        "spectra",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("catalogue_id", sa.Integer(), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("ra", sa.Double(), nullable=True),
        sa.Column("dec", sa.Double(), nullable=True),
        sa.Column("z_spec", sa.Double(), nullable=False),
        sa.Column("quality_raw", sa.String(length=32), nullable=True),
        sa.Column("quality", sa.Double(), nullable=True),
        sa.Column("secure", sa.Boolean(), nullable=False),
        sa.Column("survey", sa.String(length=64), nullable=True),
        *_photometry(),
        sa.ForeignKeyConstraint(
            ["catalogue_id"],
            ["catalogues.id"],
            name=op.f("fk_spectra_catalogue_id_catalogues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spectra")),
        sa.UniqueConstraint(
            "catalogue_id", "row_index", name=op.f("uq_spectra_catalogue_id_row_index")
        ),
    )
    op.create_table(
        "assignments",
        sa.Column("map_id", sa.Integer(), nullable=False),
        sa.Column("catalogue_id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.BigInteger(), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["catalogue_id"],
            ["catalogues.id"],
            name=op.f("fk_assignments_catalogue_id_catalogues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["map_id"], ["maps.id"], name=op.f("fk_assignments_map_id_maps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("map_id", "catalogue_id", "object_id", name=op.f("pk_assignments")),
    )
    op.create_index(
        op.f("ix_assignments_catalogue_id_map_id"), "assignments", ["catalogue_id", "map_id"]
    )
    op.create_index(op.f("ix_assignments_map_id_cell"), "assignments", ["map_id", "cell"])
    op.create_table(
        "cells",
        sa.Column("map_id", sa.Integer(), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("col", sa.Integer(), nullable=False),
        sa.Column("n_phot", sa.Integer(), nullable=False),
        sa.Column("zphot_mean", sa.Double(), nullable=True),
        sa.Column("zphot_median", sa.Double(), nullable=True),
        sa.Column("zphot_std", sa.Double(), nullable=True),
        sa.Column("zphot_nmad", sa.Double(), nullable=True),
        sa.Column("n_spec", sa.Integer(), nullable=False),
        sa.Column("n_spec_secure", sa.Integer(), nullable=False),
        sa.Column("zspec_mean", sa.Double(), nullable=True),
        sa.Column("zspec_median", sa.Double(), nullable=True),
        sa.Column("zspec_std", sa.Double(), nullable=True),
        sa.Column("covered", sa.Boolean(), nullable=False),
        sa.Column("pz_phot", _json(), nullable=True),
        sa.Column("pz_spec", _json(), nullable=True),
        sa.ForeignKeyConstraint(
            ["map_id"], ["maps.id"], name=op.f("fk_cells_map_id_maps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("map_id", "cell", name=op.f("pk_cells")),
    )
    op.create_index(op.f("ix_cells_map_id_covered"), "cells", ["map_id", "covered"])
    op.create_table(
        "target_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("map_id", sa.Integer(), nullable=False),
        sa.Column("params", _json(), nullable=False),
        sa.Column("n_targets", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["map_id"], ["maps.id"], name=op.f("fk_target_lists_map_id_maps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_lists")),
    )
    op.create_index(op.f("ix_target_lists_map_id"), "target_lists", ["map_id"])
    op.create_table(
        "targets",
        sa.Column("target_list_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("catalogue_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("ra", sa.Double(), nullable=True),
        sa.Column("dec", sa.Double(), nullable=True),
        sa.Column("mag", sa.Double(), nullable=True),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_list_id"],
            ["target_lists.id"],
            name=op.f("fk_targets_target_list_id_target_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("target_list_id", "rank", name=op.f("pk_targets")),
    )


def downgrade() -> None:
    op.drop_table("targets")
    op.drop_index(op.f("ix_target_lists_map_id"), table_name="target_lists")
    op.drop_table("target_lists")
    op.drop_index(op.f("ix_cells_map_id_covered"), table_name="cells")
    op.drop_table("cells")
    op.drop_index(op.f("ix_assignments_map_id_cell"), table_name="assignments")
    op.drop_index(op.f("ix_assignments_catalogue_id_map_id"), table_name="assignments")
    op.drop_table("assignments")
    op.drop_table("spectra")
    op.drop_table("sources")
    op.drop_table("maps")
    op.drop_table("jobs")
    op.drop_table("catalogues")
    op.drop_table("api_keys")
