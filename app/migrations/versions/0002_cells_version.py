"""maps.cells_version: a counter bumped whenever a map's cells are rewritten.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Lets the API cache per-cell statistics and know when the cache is stale with the map row
it reads anyway.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("maps") as batch:
        batch.add_column(
            sa.Column("cells_version", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN, not a copy: on SQLite recreating maps drops the old table,
    # and with foreign keys on that deletes every map's cells and assignments (CASCADE).
    with op.batch_alter_table("maps", recreate="never") as batch:
        batch.drop_column("cells_version")
