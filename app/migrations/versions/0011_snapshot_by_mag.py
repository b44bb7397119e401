"""Coverage snapshots by magnitude as well as by photo-z bin.

``cells`` gains ``mag_phot``: each cell's galaxies per magnitude bin of the coverage
history (``som.calibration.HISTORY_MAG_EDGES``), as ``pz_phot`` holds them per redshift
bin; ``coverage_snapshots`` gains ``by_mag``, the snapshot's cells and galaxies covered
per such bin. Both are plain ``ADD COLUMN`` (``recreate="never"``). Existing rows keep
NULL: SQL cannot unpack the stored photometry, so a map's ``mag_phot`` is filled the next
time its cells are recomputed, and before its next snapshot at the latest
(:func:`app.services.followup.coverage_now`); earlier snapshots have no magnitude split.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json():
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("cells", recreate="never") as batch:
        batch.add_column(sa.Column("mag_phot", _json(), nullable=True))
    with op.batch_alter_table("coverage_snapshots", recreate="never") as batch:
        batch.add_column(sa.Column("by_mag", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("coverage_snapshots", recreate="never") as batch:
        batch.drop_column("by_mag")
    with op.batch_alter_table("cells", recreate="never") as batch:
        batch.drop_column("mag_phot")
