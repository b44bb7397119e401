"""One spelling: ``catalogue_id`` in the stored parameters of maps, jobs and target lists.

The API and CLI took ``catalog_id`` in a few requests while every column, answer and model
said ``catalogue``. Requests now say ``catalogue_id`` (the old key is still accepted on
input); this moves the key inside the JSON parameters that earlier versions stored, so the
code reads one name. The downgrade moves it back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("maps", "jobs", "target_lists")


def _rename_key(old: str, new: str) -> None:
    json_type = sa.JSON().with_variant(JSONB(), "postgresql")
    conn = op.get_bind()
    for name in _TABLES:
        table = sa.table(name, sa.column("id", sa.Integer), sa.column("params", json_type))
        for row_id, params in conn.execute(sa.select(table.c.id, table.c.params)).all():
            if isinstance(params, dict) and old in params:
                renamed = {(new if k == old else k): v for k, v in params.items()}
                conn.execute(
                    sa.update(table).where(table.c.id == row_id).values(params=renamed)
                )


def upgrade() -> None:
    _rename_key("catalog_id", "catalogue_id")


def downgrade() -> None:
    _rename_key("catalogue_id", "catalog_id")
