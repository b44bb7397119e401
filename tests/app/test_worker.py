"""Jobs out of the web process: the database queue, heartbeats, and ``somcal worker``.

Unit tests of claim / heartbeat / requeue / release run on SQLite and PostgreSQL with a
small job kind registered here. The process tests run on PostgreSQL: API processes with no
embedded workers and ``somcal worker`` processes sharing one database, one of them killed
with SIGKILL in the middle of a training.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.models import Job, Map, utcnow
from app.services import jobs as job_service
from app.services.jobs import (
    JobContext,
    JobKind,
    JobLostError,
    JobRunner,
    Worker,
    claim,
    heartbeat,
    reap_stale,
)

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def factory(clean_db):
    engine = make_engine(clean_db)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def echo_kind(monkeypatch):
    """A job kind ``echo`` that reports progress ``params["steps"]`` times, waiting on
    ``gate`` (when given) after the first report, and records what its hooks saw."""
    seen: dict[str, list] = {"failed": [], "requeued": [], "ran": []}
    gate = threading.Event()
    gate.set()

    def run(ctx: JobContext, params: dict) -> dict:
        seen["ran"].append(ctx.job_id)
        for k in range(int(params.get("steps", 3))):
            ctx.progress((k + 1) / 10, f"step {k}", force=True)
            if k == 0:
                assert gate.wait(30)
        if params.get("fail"):
            raise RuntimeError("asked to fail")
        return {"echo": params.get("value")}

    kind = JobKind(
        name="echo",
        run=run,
        on_failure=lambda s, job_id, reason: seen["failed"].append((job_id, reason)),
        on_requeue=lambda s, job_id, reason: seen["requeued"].append((job_id, reason)),
        defaults=lambda settings: {"radius": settings.match_radius_arcsec},
    )
    monkeypatch.setitem(job_service.JOB_KINDS, "echo", kind)
    return seen, gate


def _queue(factory, n: int = 1, max_attempts: int = 1, **params) -> list[int]:
    runner = JobRunner(factory, workers=0, settings=Settings(job_max_attempts=max_attempts))
    ids = []
    with factory() as s:
        for _ in range(n):
            ids.append(runner.create(s, "echo", dict(params)).id)
        s.commit()
    return ids


def _job(factory, job_id: int) -> Job:
    with factory() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def _age_heartbeat(factory, job_id: int, seconds: float) -> None:
    with factory() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )
        s.commit()


# ----------------------------------------------------------------------------- claim
def test_claims_take_each_queued_job_once_oldest_first(factory, echo_kind):
    ids = _queue(factory, 3, value=7)
    got = [claim(factory, f"w{k}", ["echo"]) for k in range(4)]
    assert [g.id for g in got[:3]] == ids and got[3] is None
    job = _job(factory, ids[0])
    assert (job.status, job.worker, job.attempts, job.max_attempts) == ("running", "w0", 1, 1)
    assert job.heartbeat_at is not None and job.claimed_at is not None
    # Everything the job needs is on the row, settings it depends on included.
    assert got[0].params == {"value": 7, "radius": Settings().match_radius_arcsec}
    # A kind this worker does not run is left for one that does.
    assert claim(factory, "w9", ["something-else"]) is None
    assert claim(factory, "w9", ["echo"], job_id=ids[1]) is None  # already running


def test_concurrent_claimers_never_share_a_job(factory, echo_kind):
    ids = _queue(factory, 24)
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def worker(k: int) -> None:
        barrier.wait(timeout=30)
        while True:
            job = claim(factory, f"w{k}", ["echo"])
            if job is None:
                return
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(claimed) == ids
    with factory() as s:
        assert set(s.scalars(select(Job.attempts).where(Job.id.in_(ids)))) == {1}


# ----------------------------------------------------------------------------- heartbeat
def test_heartbeat_belongs_to_the_claiming_worker(factory, echo_kind):
    (job_id,) = _queue(factory)
    claim(factory, "w1", ["echo"])
    _age_heartbeat(factory, job_id, 100)
    before = _job(factory, job_id).heartbeat_at
    assert heartbeat(factory, job_id, "w2") is False
    assert _job(factory, job_id).heartbeat_at == before
    assert heartbeat(factory, job_id, "w1") is True
    assert _job(factory, job_id).heartbeat_at > before


def test_a_stale_job_is_requeued_while_attempts_remain_then_failed(factory, echo_kind):
    seen, _ = echo_kind
    (job_id,) = _queue(factory, max_attempts=2)
    claim(factory, "dead-host:1:aa/0", ["echo"])
    assert reap_stale(factory, timeout=30) == []  # a fresh heartbeat is left alone
    _age_heartbeat(factory, job_id, 31)
    # A process knows its own running jobs are alive, however late their heartbeat.
    assert reap_stale(factory, timeout=30, alive={job_id}) == []
    assert reap_stale(factory, timeout=30) == [(job_id, "requeued")]
    job = _job(factory, job_id)
    assert (job.status, job.worker, job.attempts) == ("queued", None, 1)
    assert "dead-host:1:aa/0" in job.message and "interrupted" in job.message
    assert [j for j, _ in seen["requeued"]] == [job_id] and seen["failed"] == []

    assert claim(factory, "w2", ["echo"]).attempts == 2
    _age_heartbeat(factory, job_id, 31)
    assert reap_stale(factory, timeout=30) == [(job_id, "failed")]
    job = _job(factory, job_id)
    assert job.status == "failed" and job.finished_at is not None
    assert "no heartbeat" in job.error and "attempt 2 of 2" in job.error
    assert [j for j, _ in seen["failed"]] == [job_id]
    assert reap_stale(factory, timeout=30) == []  # handled once


def test_a_worker_that_lost_its_job_stops_and_records_nothing(factory, echo_kind, clean_db):
    """Declared dead during a long pause, the worker comes back: its next progress report
    stops the job, and the outcome that the reaper recorded stays."""
    seen, gate = echo_kind
    gate.clear()
    (job_id,) = _queue(factory, steps=3)
    settings = Settings(database_url=clean_db, job_heartbeat_seconds=60)
    w = Worker(factory, settings, threads=0)
    job = claim(factory, "w1", ["echo"])
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(w.run_claimed(job, "w1")))
    t.start()
    deadline = time.monotonic() + 30
    while _job(factory, job_id).progress < 0.1 and time.monotonic() < deadline:
        time.sleep(0.02)
    _age_heartbeat(factory, job_id, 120)
    assert reap_stale(factory, timeout=60) == [(job_id, "failed")]
    gate.set()
    t.join(timeout=30)
    assert outcome == ["lost"]
    job = _job(factory, job_id)
    assert job.status == "failed" and job.result is None and "no heartbeat" in job.error
    assert [j for j, _ in seen["failed"]] == [job_id]  # the reaper's, not a second one


def test_the_fence_refuses_a_job_that_is_no_longer_ours(factory, echo_kind):
    (job_id,) = _queue(factory)
    claim(factory, "w1", ["echo"])
    ctx = JobContext(job_id, factory, "w2")
    with factory() as s, pytest.raises(JobLostError):
        ctx.fence(s)
    with factory() as s:
        JobContext(job_id, factory, "w1").fence(s)  # the owner passes
        s.commit()


def test_a_stopping_worker_releases_its_job_without_spending_an_attempt(
    factory, echo_kind, clean_db
):
    seen, gate = echo_kind
    gate.clear()
    (job_id,) = _queue(factory, steps=3)
    w = Worker(factory, Settings(database_url=clean_db, job_poll_seconds=0.05), threads=1)
    w.start()
    deadline = time.monotonic() + 30
    while _job(factory, job_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    w.stopping.set()
    gate.set()
    assert w.stop(timeout=30)
    job = _job(factory, job_id)
    assert (job.status, job.attempts, job.worker) == ("queued", 0, None)
    assert "released" in job.message
    assert [j for j, _ in seen["requeued"]] == [job_id]


def test_embedded_workers_run_queued_jobs_and_record_failures(factory, echo_kind, clean_db):
    seen, _ = echo_kind
    ok, bad = _queue(factory, value=1) + _queue(factory, fail=True)
    runner = JobRunner(factory, workers=2, settings=Settings(database_url=clean_db))
    runner.serve()
    try:
        assert runner.wait(ok, timeout=60) == "succeeded"
        assert runner.wait(bad, timeout=60) == "failed"
    finally:
        runner.shutdown()
    assert _job(factory, ok).result == {"echo": 1} and _job(factory, ok).progress == 1.0
    assert "asked to fail" in _job(factory, bad).error
    assert [j for j, _ in seen["failed"]] == [bad]
    assert sorted(seen["ran"]) == [ok, bad]


def test_a_runner_that_does_not_serve_runs_the_job_it_starts(factory, echo_kind, clean_db):
    """What ``somcal train`` does: the job runs in this process, through the same claim."""
    first, second = _queue(factory, 2, value=2)
    runner = JobRunner(factory, workers=1, settings=Settings(database_url=clean_db))
    future = runner.start(second)
    assert future.result(timeout=60) == "succeeded"
    assert _job(factory, first).status == "queued"  # only the job it was asked to run
    runner.shutdown()


def test_heartbeat_settings_must_leave_room_for_a_late_beat():
    with pytest.raises(ValueError, match="at least twice"):
        Settings(job_heartbeat_seconds=10, job_heartbeat_timeout_seconds=15)
    assert Settings(job_heartbeat_seconds=10).heartbeat_timeout == 40


@pytest.mark.parametrize(
    "env",
    [
        {"SOMCAL_JOB_HEARTBEAT_SECONDS": "-1"},
        {"SOMCAL_JOB_HEARTBEAT_SECONDS": "10", "SOMCAL_JOB_HEARTBEAT_TIMEOUT_SECONDS": "11"},
        {"SOMCAL_DATABASE_URL": "nosuchdb://x"},
    ],
)
def test_somcal_worker_refuses_bad_settings(env, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    assert "bad settings" in r.stderr or "cannot use the database URL" in r.stderr


# ----------------------------------------------------------------------------- processes
PG = [pytest.param("postgresql", marks=pytest.mark.postgres)]
QUICK_BEATS = {
    "SOMCAL_JOB_HEARTBEAT_SECONDS": "0.5",
    "SOMCAL_JOB_HEARTBEAT_TIMEOUT_SECONDS": "2.5",
    "SOMCAL_JOB_POLL_SECONDS": "0.2",
}


def _catalogue(harness, client, auth, frame) -> int:
    r = harness.upload(client, auth, "photometric", frame, "train.csv")
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("db_url", PG, indirect=True)
def test_two_apis_and_two_workers_run_ten_trainings_each_exactly_once(
    clean_db, mock_catalogue, tmp_path, harness
):
    auth = {"X-API-Key": harness.create_key(clean_db, "workers")}
    env = {"SOMCAL_DATABASE_URL": clean_db, "SOMCAL_EMBEDDED_WORKERS": "0", **QUICK_BEATS}
    apis = [harness.ServerProcess(env, tmp_path / f"api{k}.log") for k in range(2)]
    workers: list = []
    try:
        bases = [api.start() for api in apis]
        workers = [harness.WorkerProcess(env, tmp_path / f"worker{k}.log") for k in range(2)]
        clients = [httpx.Client(base_url=b, timeout=60) for b in bases]
        cat = _catalogue(harness, clients[0], auth, mock_catalogue(400, seed=61))
        accepted = []
        for k in range(10):
            r = clients[k % 2].post(
                "/v1/maps",
                json={
                    "catalogue_id": cat,
                    "n_rows": 6,
                    "n_cols": 8,
                    "n_epochs": 3,
                    "name": f"m{k}",
                },
                headers=auth,
            )
            assert r.status_code == 202, r.text
            accepted.append((r.json()["job"]["id"], r.json()["map"]["id"]))
        for k, (job_id, map_id) in enumerate(accepted):
            job = harness.wait_for_job(clients[k % 2], job_id, timeout=180)
            assert job["status"] == "succeeded", job
            assert clients[(k + 1) % 2].get(f"/v1/maps/{map_id}").json()["status"] == "ready"
        for c in clients:
            c.close()
        codes = [w.stop() for w in workers]
        assert codes == [0, 0], [w.text()[-2000:] for w in workers]
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.kill()
        for api in apis:
            api.stop()

    engine = make_engine(clean_db)
    with make_session_factory(engine)() as s:
        rows = s.execute(select(Job.id, Job.attempts, Job.worker).order_by(Job.id)).all()
        maps = s.execute(select(Map.id, Map.status, Map.trained_at)).all()
    engine.dispose()
    assert [r.id for r in rows] == sorted(j for j, _ in accepted)
    assert {r.attempts for r in rows} == {1}
    # Run by the worker processes, not by the API processes.
    pids = {str(w.proc.pid) for w in workers}
    assert {r.worker.split(":")[1] for r in rows} <= pids
    assert all(status == "ready" and trained for _, status, trained in maps)
    # Each training started exactly once across both workers' logs.
    logs = "".join(w.text() for w in workers)
    for job_id, _ in accepted:
        assert logs.count(f"job {job_id} (train_map) started by") == 1, logs[-3000:]


@pytest.mark.parametrize("db_url", PG, indirect=True)
def test_a_worker_killed_mid_training_is_requeued_then_failed_never_left_running(
    clean_db, mock_catalogue, tmp_path, harness
):
    """SIGKILL the worker while the SOM is fitted: within the heartbeat timeout the job is
    queued again (attempt 1 of 2) and its map with it; a second worker takes it, is killed
    too, and the job ends failed with its map failed, no weights and no cells."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.models import Cell

    timeout = float(QUICK_BEATS["SOMCAL_JOB_HEARTBEAT_TIMEOUT_SECONDS"])
    env = {"SOMCAL_DATABASE_URL": clean_db, **QUICK_BEATS}
    auth = {"X-API-Key": harness.create_key(clean_db, "kill")}
    settings = Settings(
        database_url=clean_db,
        embedded_workers=0,
        job_heartbeat_seconds=0.5,
        job_heartbeat_timeout_seconds=timeout,
        job_max_attempts=2,
    )
    with TestClient(create_app(settings)) as client:  # an API process: its reaper watches
        cat = _catalogue(harness, client, auth, mock_catalogue(3000, seed=62))
        accepted = harness.start_training(client, auth, cat, **harness.LONG_TRAINING)
        job_id, map_id = accepted["job"]["id"], accepted["map"]["id"]
        assert accepted["job"]["params"]["match_radius_arcsec"] == settings.match_radius_arcsec

        for attempt in (1, 2):
            w = harness.WorkerProcess(env, tmp_path / f"worker{attempt}.log")
            try:
                job = harness.wait_for_job(client, job_id, harness.fitting, timeout=120)
                assert job["progress"] < 0.8, job
            finally:
                w.kill()
            limit = 4 * timeout + 10  # the timeout, a reaper interval, and slack
            job = harness.wait_for_job(client, job_id, lambda j: j["status"] != "running", limit)
            m = client.get(f"/v1/maps/{map_id}").json()
            if attempt == 1:
                assert job["status"] == "queued", job
                assert "interrupted" in job["message"] and "attempt 1 of 2" in job["message"]
                assert m["status"] == "queued", m
            else:
                assert job["status"] == "failed", job
                assert "interrupted" in job["error"] and "attempt 2 of 2" in job["error"]
                assert m["status"] == "failed", m
    engine = make_engine(clean_db)
    with make_session_factory(engine)() as s:
        assert s.get(Job, job_id).attempts == 2
        assert s.get(Map, map_id).weights is None
        assert s.scalars(select(Cell).where(Cell.map_id == map_id)).first() is None
    engine.dispose()


def test_sigterm_releases_the_running_training_and_the_worker_exits_0(
    clean_db, mock_catalogue, tmp_path, harness
):
    """Stopping a worker (docker compose stop, a deploy) hands its job back: queued again
    without spending an attempt, its map queued, and the process exits 0."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    env = {"SOMCAL_DATABASE_URL": clean_db, **QUICK_BEATS}
    auth = {"X-API-Key": harness.create_key(clean_db, "term")}
    settings = Settings(database_url=clean_db, embedded_workers=0, upload_tmp_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        cat = _catalogue(harness, client, auth, mock_catalogue(3000, seed=63))
        accepted = harness.start_training(client, auth, cat, **harness.LONG_TRAINING)
        job_id, map_id = accepted["job"]["id"], accepted["map"]["id"]
        w = harness.WorkerProcess(env, tmp_path / "worker.log")
        try:
            harness.wait_for_job(client, job_id, harness.fitting, timeout=120)
            # Batch work yields the CPU to an API on the same host (SOMCAL_WORKER_NICE=10).
            assert os.getpriority(os.PRIO_PROCESS, w.proc.pid) == min(os.nice(0) + 10, 19)
            w.proc.send_signal(signal.SIGTERM)
            assert w.proc.wait(timeout=60) == 0, w.text()[-2000:]
        finally:
            w.kill()
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "queued" and "released" in job["message"], job
        assert client.get(f"/v1/maps/{map_id}").json()["status"] == "queued"
    engine = make_engine(clean_db)
    with make_session_factory(engine)() as s:
        job = s.get(Job, job_id)
        assert (job.attempts, job.worker, job.heartbeat_at) == (0, None, None)
    engine.dispose()


# ----------------------------------------------------------------------------- migration
def test_0005_keeps_jobs_and_their_maps_and_counts_started_jobs_as_one_attempt(empty_db_url):
    """Jobs written before the queue (0004) survive 0005 and its downgrade with their maps
    still linked; a job that had started counts one attempt, a queued one none."""
    from sqlalchemy import text

    from app.core import migrate

    migrate.upgrade(empty_db_url, "0004")
    engine = make_engine(empty_db_url)
    with engine.begin() as conn:
        for job_id, status in ((1, "running"), (2, "succeeded"), (3, "queued")):
            conn.execute(
                text(
                    "INSERT INTO jobs (id, kind, status, progress, created_at) "
                    "VALUES (:id, 'train_map', :status, 0, CURRENT_TIMESTAMP)"
                ),
                {"id": job_id, "status": status},
            )
            conn.execute(
                text(
                    "INSERT INTO maps (id, name, status, n_rows, n_cols, lattice, periodic, "
                    "grid, min_secure, job_id, created_at) VALUES (:id, 'm', 'queued', 2, 2, "
                    "'rect', false, '{}', 1, :id, CURRENT_TIMESTAMP)"
                ),
                {"id": job_id},
            )
    engine.dispose()

    def read():
        engine = make_engine(empty_db_url)
        with engine.connect() as conn:
            links = conn.execute(text("SELECT id, job_id FROM maps ORDER BY id")).all()
            jobs = conn.execute(text("SELECT * FROM jobs ORDER BY id")).mappings().all()
        engine.dispose()
        return [tuple(r) for r in links], [dict(j) for j in jobs]

    migrate.upgrade(empty_db_url, "0005")
    links, jobs = read()
    assert links == [(1, 1), (2, 2), (3, 3)]
    assert [(j["status"], j["attempts"], j["max_attempts"]) for j in jobs] == [
        ("running", 1, 1),
        ("succeeded", 1, 1),
        ("queued", 0, 1),
    ]
    assert all(j["worker"] is None and j["heartbeat_at"] is None for j in jobs)

    migrate.downgrade(empty_db_url, "0004")
    links, jobs = read()
    assert links == [(1, 1), (2, 2), (3, 3)]
    assert [j["status"] for j in jobs] == ["running", "succeeded", "queued"]
    assert "attempts" not in jobs[0] and "heartbeat_at" not in jobs[0]
