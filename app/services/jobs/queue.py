"""The job queue's SQL on the ``jobs`` table: claim (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), heartbeat, reaping of jobs whose worker stopped beating, and the guards every
worker's write goes through. No threads here: :mod:`app.services.jobs.runner` runs them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import get_settings
from app.models import Job, utcnow
from app.services.errors import NotFoundError
from app.services.jobs.kinds import JOB_KINDS, load_job_kinds

log = logging.getLogger("somcal.jobs")

FINISHED = ("succeeded", "failed")


# ----------------------------------------------------------------------------- clock
def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def db_clock(session: Session) -> Any:
    """Now for claim/heartbeat stamps: the database's clock on PostgreSQL (hosts' clocks
    differ), this process's on SQLite (one host)."""
    return func.now() if _is_postgres(session) else utcnow()


def _cutoff(session: Session, seconds: float) -> Any:
    if _is_postgres(session):
        return func.now() - timedelta(seconds=seconds)
    return utcnow() - timedelta(seconds=seconds)


def _last_sign() -> Any:
    return func.coalesce(Job.heartbeat_at, Job.claimed_at, Job.started_at, Job.created_at)


def owned(job_id: int, worker: str) -> Any:
    return (Job.id == job_id) & (Job.worker == worker) & (Job.status == "running")


# ----------------------------------------------------------------------------- queue ops
@dataclass
class Claimed:
    id: int
    kind: str
    params: dict[str, Any]
    attempts: int
    max_attempts: int


def claim(
    factory: sessionmaker[Session],
    worker: str,
    kinds: list[str] | tuple[str, ...],
    job_id: int | None = None,
) -> Claimed | None:
    """Take the oldest queued job of ``kinds`` (or job ``job_id``) for ``worker``."""
    with factory() as session:
        if job_id is None:
            q = Job.__table__.alias("q")
            target: Any = (
                select(q.c.id)
                .where(q.c.status == "queued", q.c.kind.in_(list(kinds)))
                .order_by(q.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
        else:
            target = job_id
        now = utcnow()
        stamp = db_clock(session)
        stmt = (
            update(Job)
            .where(Job.id == target, Job.status == "queued")
            .values(
                status="running",
                worker=worker,
                claimed_at=stamp,
                heartbeat_at=stamp,
                attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, now),
                updated_at=now,
                progress=0.0,
                error=None,
            )
            .returning(Job.id, Job.kind, Job.params, Job.attempts, Job.max_attempts)
            .execution_options(synchronize_session=False)
        )
        row = session.execute(stmt).first()
        session.commit()
    if row is None:
        return None
    return Claimed(int(row[0]), str(row[1]), dict(row[2] or {}), int(row[3]), int(row[4]))


def heartbeat(factory: sessionmaker[Session], job_id: int, worker: str) -> bool:
    """Say the job is alive; False when it is no longer this worker's."""
    with factory() as session:
        res = session.execute(
            update(Job).where(owned(job_id, worker)).values(heartbeat_at=db_clock(session))
        )
        session.commit()
    return res.rowcount == 1


def reap_stale(
    factory: sessionmaker[Session], timeout: float, alive: set[int] | frozenset[int] = frozenset()
) -> list[tuple[int, str]]:
    """Requeue or fail every running job without a heartbeat for ``timeout`` seconds,
    except the jobs in ``alive`` (known to be running in the calling process).

    Safe to run from any number of processes at once: each job is handled by the one whose
    guarded update matched it. Returns ``(job id, "requeued" | "failed")`` pairs.
    """
    done: list[tuple[int, str]] = []
    with factory() as session:
        stale = session.execute(
            select(Job.id, Job.kind, Job.worker, Job.attempts, Job.max_attempts).where(
                Job.status == "running", _last_sign() < _cutoff(session, timeout)
            )
        ).all()
    for job_id, kind_name, worker, attempts, max_attempts in stale:
        if job_id in alive:
            continue
        kind = JOB_KINDS.get(kind_name)
        reason = (
            f"interrupted: its worker {worker or '(unknown)'} sent no heartbeat for "
            f"{timeout:g} s (attempt {attempts} of {max_attempts})"
        )
        retry = attempts < max_attempts
        now = utcnow()
        if retry:
            values: dict[str, Any] = {
                "status": "queued",
                "worker": None,
                "claimed_at": None,
                "heartbeat_at": None,
                "progress": 0.0,
                "message": f"{reason}; queued again"[:1000],
                "updated_at": now,
            }
        else:
            values = {"status": "failed", "error": reason, "finished_at": now, "updated_at": now}
        with factory() as session:
            res = session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.status == "running",
                    _last_sign() < _cutoff(session, timeout),
                )
                .values(**values)
            )
            if res.rowcount != 1:
                continue  # it beat again, or another process handled it
            hook = (kind.on_requeue if retry else kind.on_failure) if kind else None
            if hook is not None:
                hook(session, job_id, reason)
            session.commit()
        outcome = "requeued" if retry else "failed"
        log.warning("job %s %s: %s", job_id, outcome, reason)
        done.append((job_id, outcome))
    return done


def fail_orphaned_jobs(factory: sessionmaker[Session], timeout: float | None = None) -> int:
    """Requeue or fail the running jobs whose worker is gone, on any host (see
    :func:`reap_stale`); the number handled. Kept for callers of the old name."""
    load_job_kinds()
    return len(reap_stale(factory, timeout or get_settings().heartbeat_timeout))


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job
