"""``somcal worker``: a process that runs queued jobs (training) from the database.

Run any number of them, on any hosts, beside any number of API processes started with
``SOMCAL_EMBEDDED_WORKERS=0``: each claims queued jobs (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, see :mod:`app.services.jobs`), keeps their heartbeat, and requeues or fails the
jobs of workers that stopped beating, wherever those ran.

Stopping: the first SIGTERM or SIGINT stops claiming and *releases* each running job at its
next progress report (the end of a training epoch): the job goes back to ``queued`` without
spending an attempt, and another worker starts it over. The process then exits 0. A second
signal exits at once (status 130); the jobs still running are then handled by the heartbeat
timeout like those of a killed worker. Bad settings, an unreachable database or a schema
that is not current exit 1 with the reason before any job is claimed.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from pydantic import ValidationError

from app.core.config import Settings, get_settings

log = logging.getLogger("somcal.worker")

EXIT_OK, EXIT_SETTINGS, EXIT_INTERRUPTED = 0, 1, 130


def _settings(database_url: str | None) -> Settings:
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


def check_database(settings: Settings) -> str | None:
    """Why this worker cannot start on ``settings.database_url`` (None when it can)."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.core import migrate
    from app.core.db import make_engine

    try:
        engine = make_engine(settings.database_url)
    except Exception as exc:  # noqa: BLE001 - a bad URL or a missing driver, with the reason
        return f"cannot use the database URL: {exc}"
    try:
        with engine.connect() as conn:
            current, have, head = migrate.is_current(conn)
    except SQLAlchemyError as exc:
        return f"cannot connect to the database: {type(exc).__name__}"
    finally:
        engine.dispose()
    if not current:
        state = f"at revision {', '.join(have)}" if have else "empty"
        return f"the database is {state}; workers need {', '.join(head)} (somcal db upgrade)"
    return None


def run(settings: Settings, concurrency: int = 1, stop: threading.Event | None = None) -> int:
    """Run ``concurrency`` claim loops until ``stop`` is set or a signal arrives; the exit
    status. Signal handlers are installed only when called from the main thread."""
    from app.core.db import make_engine, make_session_factory
    from app.services.jobs import WORKER_ID, Worker

    if concurrency < 1:
        log.error("concurrency must be at least 1 (got %d)", concurrency)
        return EXIT_SETTINGS
    problem = check_database(settings)
    if problem:
        log.error("%s", problem)
        return EXIT_SETTINGS
    stop = stop or threading.Event()
    engine = make_engine(settings.database_url)
    worker = Worker(make_session_factory(engine), settings, threads=concurrency)
    signals = 0

    def on_signal(signum, _frame) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second %s: leaving now", signal.Signals(signum).name)
            os._exit(EXIT_INTERRUPTED)
        log.info(
            "%s: no new jobs; running jobs are released at their next progress report",
            signal.Signals(signum).name,
        )
        stop.set()

    if settings.worker_nice:
        # Training is batch work: on a host shared with an API process, requests go first.
        os.nice(settings.worker_nice)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    log.info(
        "worker %s: %d job loop(s), nice %d, heartbeat every %g s, timeout %g s, max attempts %d",
        WORKER_ID,
        concurrency,
        os.nice(0),
        settings.job_heartbeat_seconds,
        settings.heartbeat_timeout,
        settings.job_max_attempts,
    )
    worker.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        worker.stop(timeout=None)
        engine.dispose()
    log.info("worker %s stopped", WORKER_ID)
    return EXIT_OK


def main(database_url: str | None = None, concurrency: int = 1, log_level: str = "info") -> int:
    """The ``somcal worker`` command: settings from the environment, logs to stderr."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = _settings(database_url)
    except ValidationError as exc:
        log.error("bad settings: %s", exc)
        return EXIT_SETTINGS
    return run(settings, concurrency)
