"""Background jobs (map training, large ingests) in a thread pool inside the API process.

The job row is the single source of truth for status and progress: the API and the CLI
read it, the worker writes it in short transactions of its own. A job whose process died
(server killed mid-training) is marked failed at the next start-up by
:func:`fail_orphaned_jobs`, so nothing stays "running" forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.models import Job, Map, utcnow
from app.services.errors import NotFoundError, ServiceError

log = logging.getLogger("somcal.jobs")

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
_PROGRESS_STEP = 0.01
_PROGRESS_SECONDS = 0.5
# How long a worker keeps trying to record a job's outcome while the database is away.
RECORD_RETRY_SECONDS = 600.0


class JobContext:
    """Handed to the job function: report progress, read the job id."""

    def __init__(self, job_id: int, factory: sessionmaker[Session]) -> None:
        self.job_id = job_id
        self._factory = factory
        self._last_value = -1.0
        self._last_time = 0.0
        self._lock = threading.Lock()

    def progress(self, fraction: float, message: str | None = None, force: bool = False) -> None:
        """Record progress in [0, 1]; throttled so a tight loop cannot flood the database."""
        try:
            value = min(max(float(fraction), 0.0), 1.0)
        except (TypeError, ValueError):
            return
        now = time.monotonic()
        with self._lock:
            if not force and (
                value - self._last_value < _PROGRESS_STEP
                and now - self._last_time < _PROGRESS_SECONDS
            ):
                return
            self._last_value, self._last_time = value, now
        values: dict[str, Any] = {"progress": value, "updated_at": utcnow()}
        if message is not None:
            values["message"] = message[:1000]
        try:
            with self._factory() as session:
                session.execute(update(Job).where(Job.id == self.job_id).values(**values))
                session.commit()
        except OperationalError as exc:
            # Progress is advisory: a busy or briefly unreachable database must not fail
            # the job itself.
            log.warning("job %s: progress not recorded (%s)", self.job_id, type(exc).__name__)


JobFn = Callable[[JobContext], dict[str, Any] | None]


class JobRunner:
    def __init__(self, factory: sessionmaker[Session], workers: int = 1) -> None:
        self.factory = factory
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="somcal-job")
        self._futures: dict[int, Future] = {}
        self._stopping = threading.Event()
        self.record_retry_seconds = RECORD_RETRY_SECONDS

    def create(self, session: Session, kind: str, params: dict[str, Any]) -> Job:
        """Add a queued job row to ``session`` (the caller commits, then calls ``start``)."""
        job = Job(kind=kind, status="queued", progress=0.0, params={**params, "worker": WORKER_ID})
        session.add(job)
        session.flush()
        return job

    def start(self, job_id: int, fn: JobFn, on_failure: Callable[[int, str], None] | None = None):
        future = self._executor.submit(self._run, job_id, fn, on_failure)
        self._futures[job_id] = future
        return future

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def _set(self, job_id: int, **values: Any) -> None:
        with self.factory() as session:
            session.execute(update(Job).where(Job.id == job_id).values(**values))
            session.commit()

    def _record(self, job_id: int, what: str, write: Callable[[], None]) -> None:
        """Run ``write`` (recording a job's outcome), retrying while the database is away.

        Without this, a job whose database went down near its end would stay "running"
        for the life of the process: the orphan check only runs at start-up and skips
        jobs of live processes. Given up only at shutdown or after
        ``record_retry_seconds``; the next start-up then fails the job.
        """
        delay = 0.5
        deadline = time.monotonic() + self.record_retry_seconds
        while True:
            try:
                write()
                return
            except OperationalError as exc:
                if self._stopping.is_set() or time.monotonic() >= deadline:
                    log.error("job %s: could not record %s (%s)", job_id, what, type(exc).__name__)
                    raise
                log.warning(
                    "job %s: could not record %s (%s); retrying in %.1f s",
                    job_id,
                    what,
                    type(exc).__name__,
                    delay,
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)

    def _run(self, job_id: int, fn: JobFn, on_failure) -> None:
        try:
            # Inside the try: a database that is down when the job starts fails the job
            # (once it is back) instead of leaving it queued.
            now = utcnow()
            self._set(job_id, status="running", started_at=now, updated_at=now)
            ctx = JobContext(job_id, self.factory)
            result = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - every failure must end up on the job row
            reason = exc.detail if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, ServiceError):
                log.exception("job %s failed", job_id)
            try:
                if on_failure is not None:
                    self._record(job_id, "the failure", lambda: on_failure(job_id, reason))
            finally:
                now = utcnow()
                self._record(
                    job_id,
                    "the failure",
                    lambda: self._set(
                        job_id,
                        status="failed",
                        error=reason[:4000],
                        finished_at=now,
                        updated_at=now,
                    ),
                )
            return
        now = utcnow()
        self._record(
            job_id,
            "the success",
            lambda: self._set(
                job_id,
                status="succeeded",
                progress=1.0,
                result=result,
                finished_at=now,
                updated_at=now,
            ),
        )

    def shutdown(self, wait: bool = False) -> None:
        self._stopping.set()
        self._executor.shutdown(wait=wait, cancel_futures=True)


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} not found")
    return job


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphaned_jobs(factory: sessionmaker[Session]) -> int:
    """Mark failed the unfinished jobs whose worker process on this host is gone."""
    host = socket.gethostname()
    failed = 0
    with factory() as session:
        jobs = session.scalars(select(Job).where(Job.status.in_(("queued", "running")))).all()
        for job in jobs:
            worker = str((job.params or {}).get("worker", ""))
            w_host, _, w_pid = worker.rpartition(":")
            if w_host != host or not w_pid.isdigit():
                continue
            if int(w_pid) == os.getpid() or _pid_alive(int(w_pid)):
                continue
            now = utcnow()
            job.status, job.error, job.finished_at, job.updated_at = (
                "failed",
                "interrupted: the server process running this job stopped",
                now,
                now,
            )
            session.execute(
                update(Map)
                .where(Map.job_id == job.id, Map.status.in_(("queued", "training")))
                .values(status="failed", error="training interrupted", weights=None)
            )
            failed += 1
        session.commit()
    return failed
