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

The package: :mod:`.queue` (those statements: claim, heartbeat, reaping), :mod:`.runner`
(threads: :class:`JobContext`, :class:`Worker`, :class:`JobRunner`), :mod:`.kinds` (the
registry); this module re-exports their public names.
"""

from app.services.jobs.kinds import JOB_KINDS, JobKind, load_job_kinds, register
from app.services.jobs.queue import (
    FINISHED,
    Claimed,
    claim,
    fail_orphaned_jobs,
    get_job,
    heartbeat,
    reap_stale,
)
from app.services.jobs.runner import (
    RECORD_RETRY_SECONDS,
    WORKER_ID,
    JobContext,
    JobFn,
    JobLostError,
    JobReleasedError,
    JobRunner,
    Worker,
)

__all__ = [
    "FINISHED",
    "JOB_KINDS",
    "RECORD_RETRY_SECONDS",
    "WORKER_ID",
    "Claimed",
    "JobContext",
    "JobFn",
    "JobKind",
    "JobLostError",
    "JobReleasedError",
    "JobRunner",
    "Worker",
    "claim",
    "fail_orphaned_jobs",
    "get_job",
    "heartbeat",
    "load_job_kinds",
    "reap_stale",
    "register",
]
