"""Running jobs in this process: :class:`JobContext` (progress, fencing) handed to a job,
:class:`Worker` (claim loops, heartbeat threads, the reaper, recording outcomes) and
:class:`JobRunner`, the facade routes and the CLI use."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, get_settings
from app.models import Job, utcnow
from app.services.errors import ServiceError
from app.services.jobs.kinds import JOB_KINDS, JobKind, load_job_kinds
from app.services.jobs.queue import (
    FINISHED,
    Claimed,
    claim,
    db_clock,
    get_job,
    heartbeat,
    owned,
    reap_stale,
)

log = logging.getLogger("somcal.jobs")

#: This process among all processes on all hosts: ``host:pid:token``. The token tells a
#: restarted container (same host name, same pid 1) from the process it replaces.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
_PROGRESS_STEP = 0.01
_PROGRESS_SECONDS = 0.5
# How long a worker keeps trying to record a job's outcome while the database is away.
RECORD_RETRY_SECONDS = 600.0
# Jobs running in this process (job id -> worker): alive by definition, whatever their
# heartbeat says. On SQLite a long write (a big ingest, a map being stored) holds the
# database lock and delays every heartbeat; this process's reaper must not fail its own
# live job for that.
_RUNNING_HERE: dict[int, str] = {}


class JobLostError(Exception):
    """The job is no longer this worker's (declared dead and failed or given to another)."""


class JobReleasedError(Exception):
    """The worker is stopping: the job goes back to the queue for another worker."""


# ----------------------------------------------------------------------------- context
class JobContext:
    """Handed to the job function: report progress, read the job id, guard final writes."""

    def __init__(
        self,
        job_id: int,
        factory: sessionmaker[Session],
        worker: str = WORKER_ID,
        settings: Settings | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.job_id = job_id
        self.factory = factory
        self.worker = worker
        self.settings = settings or get_settings()
        self._stopping = stopping or threading.Event()
        self.lost = threading.Event()
        self._last_value = -1.0
        self._last_time = 0.0
        self._lock = threading.Lock()

    def progress(self, fraction: float, message: str | None = None, force: bool = False) -> None:
        """Record progress in [0, 1]; throttled so a tight loop cannot flood the database.

        Raises :class:`JobReleasedError` when the worker is stopping and :class:`JobLostError` when
        the job is no longer this worker's: the job function stops there.
        """
        if self._stopping.is_set():
            raise JobReleasedError(f"worker {self.worker} is stopping")
        if self.lost.is_set():
            raise JobLostError(f"job {self.job_id} is no longer run by {self.worker}")
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
            with self.factory() as session:
                res = session.execute(
                    update(Job).where(owned(self.job_id, self.worker)).values(**values)
                )
                session.commit()
        except OperationalError as exc:
            # Progress is advisory: a busy or briefly unreachable database must not fail
            # the job itself.
            log.warning("job %s: progress not recorded (%s)", self.job_id, type(exc).__name__)
            return
        if res.rowcount == 0:
            self.lost.set()
            raise JobLostError(f"job {self.job_id} is no longer run by {self.worker}")

    def fence(self, session: Session) -> None:
        """Inside the transaction that stores the job's work, just before its commit: make
        sure the job is still this worker's and hold its row until the commit (a reaper
        then waits, and sees the fresh heartbeat). Raises :class:`JobLostError` otherwise."""
        res = session.execute(
            update(Job)
            .where(owned(self.job_id, self.worker))
            .values(heartbeat_at=db_clock(session))
        )
        if res.rowcount == 0:
            self.lost.set()
            raise JobLostError(f"job {self.job_id} is no longer run by {self.worker}")


JobFn = Callable[[JobContext], dict[str, Any] | None]


# ----------------------------------------------------------------------------- workers
@dataclass
class Worker:
    """Claim loops (threads) of one process, and the reaper that watches every worker.

    ``threads`` loops each claim and run one job at a time; ``threads=0`` runs only the
    reaper (an API process whose jobs run in ``somcal worker`` processes).
    """

    factory: sessionmaker[Session]
    settings: Settings
    threads: int = 1
    name: str = WORKER_ID
    stopping: threading.Event = field(default_factory=threading.Event)
    record_retry_seconds: float = RECORD_RETRY_SECONDS
    _wake: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    running: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        load_job_kinds()

    # -- lifecycle
    def start(self) -> None:
        for k in range(self.threads):
            t = threading.Thread(
                target=self._loop, args=(f"{self.name}/{k}",), name=f"somcal-job-{k}", daemon=True
            )
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._reaper, name="somcal-job-reaper", daemon=True)
        t.start()
        self._threads.append(t)

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop claiming, release running jobs at their next progress report, and wait up to
        ``timeout`` seconds for the loops; True when they all ended."""
        self.stopping.set()
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        return not any(t.is_alive() for t in self._threads)

    # -- loops
    def _loop(self, worker: str) -> None:
        kinds = list(JOB_KINDS)
        backoff = self.settings.job_poll_seconds
        while not self.stopping.is_set():
            self._wake.clear()
            try:
                job = claim(self.factory, worker, kinds)
            except SQLAlchemyError as exc:
                log.warning("%s: cannot claim jobs (%s); retrying", worker, type(exc).__name__)
                self.stopping.wait(min(backoff, 30.0))
                backoff *= 2
                continue
            backoff = self.settings.job_poll_seconds
            if job is None:
                self._wake.wait(self.settings.job_poll_seconds)
                continue
            try:
                self.run_claimed(job, worker)
            except Exception:  # noqa: BLE001 - the loop outlives any one job's bookkeeping
                # The job's row is left to the heartbeat timeout (its beats have stopped).
                log.exception("%s: job %s could not be recorded", worker, job.id)

    def _reaper(self) -> None:
        interval = self.settings.job_heartbeat_seconds
        while not self.stopping.is_set():
            try:
                reap_stale(self.factory, self.settings.heartbeat_timeout, set(_RUNNING_HERE))
            except SQLAlchemyError as exc:
                log.warning("cannot look for stale jobs (%s)", type(exc).__name__)
            except Exception:  # noqa: BLE001 - a failing hook must not end the reaper
                log.exception("reaping stale jobs failed")
            self.stopping.wait(interval)

    def run_one(self, job_id: int, poll_seconds: float = 0.25) -> str:
        """Claim job ``job_id`` here and run it; if another process has it, wait until it
        ends. The job's final status."""
        try:
            reap_stale(self.factory, self.settings.heartbeat_timeout, set(_RUNNING_HERE))
        except SQLAlchemyError as exc:
            log.warning("cannot look for stale jobs (%s)", type(exc).__name__)
        job = claim(self.factory, f"{self.name}/inline", list(JOB_KINDS), job_id=job_id)
        if job is not None:
            self.run_claimed(job, f"{self.name}/inline")
        while True:
            with self.factory() as session:
                status = get_job(session, job_id).status
            if status in FINISHED or self.stopping.is_set():
                return status
            time.sleep(poll_seconds)

    # -- one job
    def run_claimed(self, job: Claimed, worker: str) -> str:
        """Run a claimed job to its end; ``succeeded``, ``failed``, ``released`` or ``lost``."""
        kind = JOB_KINDS.get(job.kind)
        ctx = JobContext(job.id, self.factory, worker, self.settings, self.stopping)
        beats = threading.Event()
        beat = threading.Thread(
            target=self._beat, args=(ctx, beats), name=f"somcal-beat-{job.id}", daemon=True
        )
        beat.start()
        self.running[job.id] = worker
        _RUNNING_HERE[job.id] = worker
        log.info("job %s (%s) started by %s, attempt %s", job.id, job.kind, worker, job.attempts)
        # The heartbeat goes on, and the job counts as running here, until its outcome is
        # recorded (which may wait for the database to come back).
        try:
            try:
                if kind is None:
                    raise ServiceError(f"this worker does not know job kind {job.kind!r}")
                result = kind.run(ctx, job.params)
            except JobReleasedError:
                self._release(job, worker, kind)
                return "released"
            except JobLostError:
                log.warning(
                    "job %s: taken from %s (declared dead); nothing recorded", job.id, worker
                )
                return "lost"
            except Exception as exc:  # noqa: BLE001 - every failure must end up on the job row
                reason = (
                    exc.detail if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
                )
                if not isinstance(exc, ServiceError):
                    log.exception("job %s failed", job.id)
                hook = kind.on_failure if kind else None
                self._record(
                    job.id, "the failure", lambda: self._fail(job.id, worker, reason, hook)
                )
                return "failed"
            self._record(job.id, "the success", lambda: self._succeed(job.id, worker, result))
            log.info("job %s succeeded", job.id)
            return "succeeded"
        finally:
            beats.set()
            self.running.pop(job.id, None)
            _RUNNING_HERE.pop(job.id, None)

    def _beat(self, ctx: JobContext, done: threading.Event) -> None:
        while not done.wait(self.settings.job_heartbeat_seconds):
            try:
                if not heartbeat(self.factory, ctx.job_id, ctx.worker):
                    ctx.lost.set()
                    return
            except SQLAlchemyError as exc:
                log.warning("job %s: heartbeat not recorded (%s)", ctx.job_id, type(exc).__name__)

    def _succeed(self, job_id: int, worker: str, result: Any) -> None:
        now = utcnow()
        with self.factory() as session:
            session.execute(
                update(Job)
                .where(owned(job_id, worker))
                .values(
                    status="succeeded",
                    progress=1.0,
                    result=result,
                    finished_at=now,
                    updated_at=now,
                    heartbeat_at=db_clock(session),
                )
            )
            session.commit()

    def _fail(self, job_id: int, worker: str, reason: str, hook) -> None:
        now = utcnow()
        with self.factory() as session:
            res = session.execute(
                update(Job)
                .where(owned(job_id, worker))
                .values(status="failed", error=reason[:4000], finished_at=now, updated_at=now)
            )
            if res.rowcount == 1 and hook is not None:
                hook(session, job_id, reason)
            session.commit()

    def _release(self, job: Claimed, worker: str, kind: JobKind | None) -> None:
        reason = f"released by worker {worker}, which was stopping; queued again"
        try:
            with self.factory() as session:
                res = session.execute(
                    update(Job)
                    .where(owned(job.id, worker))
                    .values(
                        status="queued",
                        worker=None,
                        claimed_at=None,
                        heartbeat_at=None,
                        progress=0.0,
                        message=reason,
                        attempts=Job.attempts - 1,
                        updated_at=utcnow(),
                    )
                )
                if res.rowcount == 1 and kind is not None and kind.on_requeue is not None:
                    kind.on_requeue(session, job.id, reason)
                session.commit()
            log.info("job %s released (queued again)", job.id)
        except SQLAlchemyError as exc:
            # The heartbeat timeout requeues or fails it instead.
            log.warning("job %s: could not release (%s)", job.id, type(exc).__name__)

    def _record(self, job_id: int, what: str, write: Callable[[], None]) -> None:
        """Run ``write`` (recording a job's outcome), retrying while the database is away.

        Without this, a job whose database went down near its end would wait for the
        heartbeat timeout to be failed (or worse, be run again) although its outcome is
        known here. Given up at shutdown or after ``record_retry_seconds``; the heartbeat
        timeout then handles the job.
        """
        delay = 0.5
        deadline = time.monotonic() + self.record_retry_seconds
        while True:
            try:
                write()
                return
            except OperationalError as exc:
                if self.stopping.is_set() or time.monotonic() >= deadline:
                    log.error("job %s: could not record %s (%s)", job_id, what, type(exc).__name__)
                    return
                log.warning(
                    "job %s: could not record %s (%s); retrying in %.1f s",
                    job_id,
                    what,
                    type(exc).__name__,
                    delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, 10.0)


# ----------------------------------------------------------------------------- facade
class JobRunner:
    """What routes and the CLI use: queue a job, see that it runs, wait for it.

    An API process calls :meth:`serve` (its lifespan): ``workers`` claim loops (0 = jobs run
    in ``somcal worker`` processes) and the reaper start, and :meth:`start` merely wakes the
    loops. A runner that does not serve (``somcal train``) runs the job it is asked to start
    right here, through the same claim-and-run code, in a thread of its own.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        workers: int = 1,
        settings: Settings | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings or get_settings()
        self.worker = Worker(factory, self.settings, threads=workers)
        self._serving = False
        self._closed = False
        self._inline: dict[int, Future] = {}
        self._executor: ThreadPoolExecutor | None = None

    @property
    def record_retry_seconds(self) -> float:
        return self.worker.record_retry_seconds

    @record_retry_seconds.setter
    def record_retry_seconds(self, value: float) -> None:
        self.worker.record_retry_seconds = value

    def serve(self) -> None:
        self._serving = True
        self.worker.start()

    def create(self, session: Session, kind: str, params: dict[str, Any]) -> Job:
        """Add a queued job row to ``session`` (the caller commits, then calls ``start``)."""
        spec = load_job_kinds().get(kind)
        if spec is None:
            raise ValueError(f"unknown job kind {kind!r}")
        full = {**(spec.defaults(self.settings) if spec.defaults else {}), **params}
        job = Job(
            kind=kind,
            status="queued",
            progress=0.0,
            params=full,
            attempts=0,
            max_attempts=self.settings.job_max_attempts,
        )
        session.add(job)
        session.flush()
        return job

    def start(self, job_id: int, fn: JobFn | None = None, on_failure=None) -> Future | None:
        """See that committed job ``job_id`` runs. ``fn`` and ``on_failure`` are ignored
        (accepted for the old call sites): the job's kind says what runs, wherever it runs.
        """
        if self._closed:
            return None
        if self._serving:
            self.worker.wake()
            return None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="somcal-job")
        future = self._executor.submit(self.worker.run_one, job_id)
        self._inline[job_id] = future
        return future

    def wait(self, job_id: int, timeout: float | None = None) -> str:
        """Wait until the job has ended (whoever runs it); its final status."""
        future = self._inline.get(job_id)
        if future is not None:
            return future.result(timeout=timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.factory() as session:
                status = get_job(session, job_id).status
            if status in FINISHED:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {status} after {timeout} s")
            time.sleep(0.1)

    def shutdown(self, wait: bool = False, timeout: float = 5.0) -> None:
        """Stop: running jobs are released (queued again) at their next progress report."""
        self._closed = True
        self.worker.stop(timeout=None if wait else timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
