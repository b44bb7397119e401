"""Background jobs (map training) as rows of one database queue that any process runs.

A job is a row of ``jobs``; the row is the single source of truth for status and progress
(the API and the CLI read it). Any process claims queued rows and runs them: a
``somcal worker`` (:mod:`app.worker`), the worker threads embedded in an API process
(``SOMCAL_EMBEDDED_WORKERS``, 1 by default so that the SQLite default runs everything with
one command), or ``somcal train`` running its own job.

- **Claim.** On PostgreSQL ``UPDATE jobs … WHERE id = (SELECT id … WHERE status = 'queued'
  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) AND status = 'queued' RETURNING …``: any
  number of processes on any hosts poll at once, each row goes to exactly one of them and
  nobody waits on a row another claims. On SQLite the lock clause is not rendered; the
  single statement is atomic there (SQLite runs one write at a time) and the outer
  ``status = 'queued'`` guard makes a second claimer match nothing.
- **Kinds by name.** :data:`JOB_KINDS` maps a kind (``"train_map"``) to the function that runs
  it, ``fn(ctx, params)``, and to what must happen to the kind's own rows when a job fails
  or is queued again. ``params`` holds everything the job needs (for training: the map id
  and the match radius, frozen from the settings when the job was queued), so a worker runs a
  job from its row alone.
- **Heartbeats.** While a job runs, a thread of its worker refreshes ``heartbeat_at`` every
  ``SOMCAL_JOB_HEARTBEAT_SECONDS``. Every worker process and every API process (a reaper
  thread) looks for running jobs whose heartbeat is older than the timeout
  (``SOMCAL_JOB_HEARTBEAT_TIMEOUT_SECONDS``, default 4 intervals = 60 s), whatever host ran
  them: such a job is queued again while ``attempts < max_attempts``
  (``SOMCAL_JOB_MAX_ATTEMPTS``, default 1) with the reason in ``message``, else failed with
  the reason in ``error`` and its kind's failure side effects (a training's map is marked
  failed). Timestamps compared across hosts use the database's clock on PostgreSQL.
- **Fencing.** Every write a worker makes to its job is guarded by ``worker = me AND status =
  'running'``. A worker that finds its job taken (it was declared dead during a long pause,
  and the job failed or went to another worker) stops at its next progress report and
  records nothing; training checks the same guard inside the transaction that stores the map
  (:meth:`JobContext.fence`), so a map is never stored by a worker that lost its job.
- **Stopping.** A worker asked to stop (SIGTERM/SIGINT, the API shutting down) *releases*
  its running job at the job's next progress report (a training epoch): the job goes back to
  ``queued`` without spending an attempt and another worker takes it. Training cannot be
  interrupted inside an epoch or while the map is being stored; a worker killed there is
  handled by the heartbeat timeout like any vanished worker.

Why plain SQLAlchemy and not procrastinate or pgqueuer: both keep jobs in tables of their
own (procrastinate also a schema of functions and triggers) beside our ``jobs`` rows, whose
status, progress and result the API already serves, so every job would live in two places
that must agree; both run only on PostgreSQL, while the SQLite default must keep working with
one command; and both are asyncio-first, while our jobs are CPU-bound numba work in threads.
The part we need - claim with SKIP LOCKED, heartbeat, requeue - is a few statements on the
table we have.
"""

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
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, get_settings
from app.models import Job, utcnow
from app.services.errors import NotFoundError, ServiceError

log = logging.getLogger("somcal.jobs")

#: This process among all processes on all hosts: ``host:pid:token``. The token tells a
#: restarted container (same host name, same pid 1) from the process it replaces.
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
_PROGRESS_STEP = 0.01
_PROGRESS_SECONDS = 0.5
# How long a worker keeps trying to record a job's outcome while the database is away.
RECORD_RETRY_SECONDS = 600.0
FINISHED = ("succeeded", "failed")
# Jobs running in this process (job id -> worker): alive by definition, whatever their
# heartbeat says. On SQLite a long write (a big ingest, a map being stored) holds the
# database lock and delays every heartbeat; this process's reaper must not fail its own
# live job for that.
_RUNNING_HERE: dict[int, str] = {}


class JobLostError(Exception):
    """The job is no longer this worker's (declared dead and failed or given to another)."""


class JobReleasedError(Exception):
    """The worker is stopping: the job goes back to the queue for another worker."""


@dataclass(frozen=True)
class JobKind:
    """What a job kind runs, and what happens to its own rows when the job ends badly.

    ``run(ctx, params)`` returns the job's result (JSON). ``on_failure(session, job_id,
    reason)`` and ``on_requeue(session, job_id, reason)`` run inside the transaction that
    fails or requeues the job row. ``defaults(settings)`` is merged into ``params`` when
    the job is queued, so whichever worker runs it runs the same job.
    """

    name: str
    run: Callable[[JobContext, dict[str, Any]], dict[str, Any] | None]
    on_failure: Callable[[Session, int, str], None] | None = None
    on_requeue: Callable[[Session, int, str], None] | None = None
    defaults: Callable[[Settings], dict[str, Any]] | None = None


JOB_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    JOB_KINDS[kind.name] = kind
    return kind


def load_job_kinds() -> dict[str, JobKind]:
    """Every kind this installation runs (importing the modules that register them)."""
    import app.services.training  # noqa: F401 - registers "train_map"

    return JOB_KINDS


# ----------------------------------------------------------------------------- clock
def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _clock(session: Session) -> Any:
    """Now for claim/heartbeat stamps: the database's clock on PostgreSQL (hosts' clocks
    differ), this process's on SQLite (one host)."""
    return func.now() if _is_postgres(session) else utcnow()


def _cutoff(session: Session, seconds: float) -> Any:
    if _is_postgres(session):
        return func.now() - timedelta(seconds=seconds)
    return utcnow() - timedelta(seconds=seconds)


def _last_sign() -> Any:
    return func.coalesce(Job.heartbeat_at, Job.claimed_at, Job.started_at, Job.created_at)


def _owned(job_id: int, worker: str) -> Any:
    return (Job.id == job_id) & (Job.worker == worker) & (Job.status == "running")


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
                    update(Job).where(_owned(self.job_id, self.worker)).values(**values)
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
            update(Job).where(_owned(self.job_id, self.worker)).values(heartbeat_at=_clock(session))
        )
        if res.rowcount == 0:
            self.lost.set()
            raise JobLostError(f"job {self.job_id} is no longer run by {self.worker}")


JobFn = Callable[[JobContext], dict[str, Any] | None]


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
        stamp = _clock(session)
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
            update(Job).where(_owned(job_id, worker)).values(heartbeat_at=_clock(session))
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
                .where(_owned(job_id, worker))
                .values(
                    status="succeeded",
                    progress=1.0,
                    result=result,
                    finished_at=now,
                    updated_at=now,
                    heartbeat_at=_clock(session),
                )
            )
            session.commit()

    def _fail(self, job_id: int, worker: str, reason: str, hook) -> None:
        now = utcnow()
        with self.factory() as session:
            res = session.execute(
                update(Job)
                .where(_owned(job_id, worker))
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
                    .where(_owned(job.id, worker))
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
