"""Deleting a catalogue is reversible until purged.

``catalogues`` gains ``deleted_at`` (NULL: in the ledger); the change log's actions gain
``catalogue_restored`` and ``catalogue_purged``. Existing catalogues stay in the ledger.

The log's CHECK constraint is widened in place. PostgreSQL drops and recreates it. SQLite
cannot alter a constraint, and batch mode's copy-and-rename of ``ledger_changes`` would
drop a table that ``coverage_snapshots`` and ``target_outcomes`` reference (with foreign
keys on, the DROP fails). Widening a CHECK leaves every stored row valid, which is the
case SQLite documents for editing the table's SQL text in ``sqlite_schema`` under
``writable_schema`` and bumping ``schema_version`` ("ALTER TABLE", section "Making Other
Kinds Of Table Schema Changes"). ``deleted_at`` is a plain ``ADD COLUMN``
(``recreate="never"``: copying ``catalogues`` would cascade to its rows).

The downgrade cannot hide a deleted catalogue: it purges them (their rows, assignments and
occupation counts go by the foreign keys' cascades), and removes the restore/purge log
entries with their snapshots (the older schema cannot name them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("catalogue_ingested", "catalogue_deleted", "campaign_created", "outcomes_recorded")
_NEW = (
    "catalogue_ingested",
    "catalogue_deleted",
    "catalogue_restored",
    "catalogue_purged",
    "campaign_created",
    "outcomes_recorded",
)
_CK = "ck_ledger_changes_action"


def _check(values: tuple[str, ...]) -> str:
    return "action IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _set_actions(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        # op.f: the name as stored (the metadata's naming convention would prefix it again)
        op.drop_constraint(op.f(_CK), "ledger_changes", type_="check")
        op.create_check_constraint(op.f(_CK), "ledger_changes", _check(new))
        return
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_changes'")
    ).scalar_one()
    # SQLAlchemy renders the constraint as CONSTRAINT <name> CHECK (<text>), with the text
    # as 0007 wrote it.
    before, after = f"CHECK ({_check(old)})", f"CHECK ({_check(new)})"
    if before not in sql:
        raise RuntimeError(f"ledger_changes: constraint {_CK} is not {before!r}: {sql}")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :name"),
        {"sql": sql.replace(before, after), "name": "ledger_changes"},
    )
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def upgrade() -> None:
    with op.batch_alter_table("catalogues", recreate="never") as batch:
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    _set_actions(_OLD, _NEW)


def downgrade() -> None:
    gone = "('catalogue_restored', 'catalogue_purged')"
    op.execute(
        "DELETE FROM coverage_snapshots WHERE change_id IN "
        f"(SELECT id FROM ledger_changes WHERE action IN {gone})"
    )
    op.execute(f"DELETE FROM ledger_changes WHERE action IN {gone}")
    _set_actions(_NEW, _OLD)
    op.execute("DELETE FROM catalogues WHERE deleted_at IS NOT NULL")
    with op.batch_alter_table("catalogues", recreate="never") as batch:
        batch.drop_column("deleted_at")
