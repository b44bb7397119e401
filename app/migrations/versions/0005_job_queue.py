"""Jobs as a database queue: who runs a job, its heartbeat and its attempts.

``jobs`` gains ``worker`` (the process running it, ``host:pid:token``), ``claimed_at``,
``heartbeat_at`` (refreshed while it runs; a stale one means the worker is gone, on any
host), ``attempts`` and ``max_attempts`` (a job whose worker vanished is queued again
while ``attempts < max_attempts``, else failed), and an index on ``status`` (workers poll
for queued rows, every process looks for stale running ones).

Existing rows: every job that was started counts one attempt. A job left ``running`` by the
old in-process pool has no heartbeat, so the first worker or API process that looks fails it
(its one attempt is spent) once its start is older than the heartbeat timeout; a ``queued``
one is run by the next worker.

On SQLite the columns are added and dropped with plain ``ALTER TABLE``
(``recreate="never"``; DROP COLUMN needs SQLite >= 3.35, as 0004's downgrade does): nullable
or defaulted columns need no copy of the table that ``maps.job_id`` refers to.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("worker", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column("max_attempts", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
    op.execute("UPDATE jobs SET attempts = 1 WHERE status <> 'queued'")
    op.create_index(op.f("ix_jobs_status"), "jobs", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_status"), table_name="jobs")
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("max_attempts")
        batch.drop_column("attempts")
        batch.drop_column("heartbeat_at")
        batch.drop_column("claimed_at")
        batch.drop_column("worker")
