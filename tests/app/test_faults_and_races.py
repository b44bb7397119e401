"""Faults: the database dying mid-ingest, a server killed mid-training, concurrent ingests.

How the database is made to die: a private PostgreSQL cluster (``initdb`` + ``pg_ctl`` in
a temporary directory, on a free port, see ``bench/_service.py``) is stopped with
``pg_ctl -m immediate`` at a chosen point of an ingest, i.e. a crash: its backends are
killed and new connections are refused until it is started again. That is what a host
losing its database looks like, and it cannot disturb the shared cluster other test
sessions use. Losing only the ingest's *connection* (failover, an idle-connection killer,
an administrator) is covered separately with ``pg_terminate_backend`` on the shared cluster.
"""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from app.core import migrate
from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.main import create_app
from app.models import Assignment, Catalogue, Cell, Job, Map, Source


# ----------------------------------------------------------------------------- helpers
def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    out = {}
    with make_session_factory(engine)() as s:
        for model in (Catalogue, Source, Assignment):
            out[model.__tablename__] = int(s.scalar(select(func.count()).select_from(model)))
    engine.dispose()
    return out


def _key(harness, url: str) -> dict[str, str]:
    return {"X-API-Key": harness.create_key(url, "faults")}


@pytest.fixture
def dying_pg(harness):
    reason = harness.ThrowawayPostgres.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with harness.ThrowawayPostgres() as pg:
        migrate.upgrade(pg.url)
        yield pg


# ----------------------------------------------------------------------------- DB dies
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("kill_point", ["during_copy", "before_commit"])
def test_postgres_stopped_mid_ingest(
    dying_pg, harness, mock_catalogue, monkeypatch, tmp_path, kill_point
):
    """Crash mid-ingest → 503 + Retry-After, nothing stored; back up → same file lands whole."""
    import app.api.routes.catalogues as catalogues_route
    import app.services.bulk as bulk

    pg = dying_pg
    auth = _key(harness, pg.url)
    content = harness.csv_bytes(mock_catalogue(3000, seed=21))
    stopped = threading.Event()

    def stop_once():
        if not stopped.is_set():
            stopped.set()
            pg.stop("immediate")

    if kill_point == "during_copy":
        real_stream = bulk.pg_binary_stream

        def dying_stream(cols, n):
            chunks = real_stream(cols, n)
            for k, chunk in enumerate(chunks):
                if k == 1:  # the COPY header went out; the database dies under the rows
                    stop_once()
                yield chunk

        monkeypatch.setattr(bulk, "pg_binary_stream", dying_stream)
    else:
        real_hook = catalogues_route.after_catalogue_inserted

        def dying_hook(radius, key_name):
            inner = real_hook(radius, key_name)

            class Hook(type(inner)):
                def done(self, session, catalogue):
                    stored = session.scalar(
                        select(func.count())
                        .select_from(Source)
                        .where(Source.catalogue_id == catalogue.id)
                    )
                    assert stored == 3000  # every row is written, only the COMMIT is missing
                    out = super().done(session, catalogue)
                    stop_once()
                    return out

            return Hook(radius, key_name)

        monkeypatch.setattr(catalogues_route, "after_catalogue_inserted", dying_hook)

    settings = Settings(database_url=pg.url, upload_tmp_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        r = harness.upload(client, auth, "photometric", content, "dies.csv")
        assert stopped.is_set()
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) > 0
        assert "database unavailable" in r.json()["detail"]

        # While it is down: reads, writes and readiness all say 503 + Retry-After.
        for resp in (
            client.get("/v1/catalogues"),
            client.get("/v1/maps"),
            harness.upload(client, auth, "photometric", content, "dies.csv"),
            client.get("/ready"),
        ):
            assert resp.status_code == 503, (resp.request.url, resp.text)
            assert resp.headers.get("retry-after"), resp.request.url
        assert client.get("/health").status_code == 200  # the process itself is alive

        pg.start()
        # No restart of the service: the first request after the database is back works.
        r = client.get("/v1/catalogues")
        assert r.status_code == 200, r.text
        assert r.json()["total"] == 0
        assert _counts(pg.url) == {"catalogues": 0, "sources": 0, "assignments": 0}

        r = harness.upload(client, auth, "photometric", content, "dies.csv")
        assert r.status_code == 201, r.text  # not "duplicate": the first attempt left no trace
        assert r.json()["n_rows"] == 3000
        assert client.get("/ready").status_code == 200
    assert _counts(pg.url)["sources"] == 3000


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_ingest_connection_killed_leaves_nothing(
    clean_db, harness, mock_catalogue, monkeypatch, tmp_path
):
    """The ingest's own connection is terminated after its COPY: 503, no trace, next one lands."""
    import app.api.routes.catalogues as catalogues_route

    auth = _key(harness, clean_db)
    real_hook = catalogues_route.after_catalogue_inserted
    killed = []

    def killing_hook(radius, key_name):
        inner = real_hook(radius, key_name)

        class Hook(type(inner)):
            def done(self, session, catalogue):
                out = super().done(session, catalogue)
                pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
                admin = make_engine(clean_db)
                with admin.connect() as conn:
                    killed.append(
                        conn.execute(text(f"SELECT pg_terminate_backend({pid})")).scalar()
                    )
                admin.dispose()
                return out

        return Hook(radius, key_name)

    monkeypatch.setattr(catalogues_route, "after_catalogue_inserted", killing_hook)
    content = harness.csv_bytes(mock_catalogue(800, seed=22))
    settings = Settings(database_url=clean_db, upload_tmp_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        r = harness.upload(client, auth, "photometric", content, "cut.csv")
        assert killed == [True]
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
        assert _counts(clean_db) == {"catalogues": 0, "sources": 0, "assignments": 0}
        monkeypatch.setattr(catalogues_route, "after_catalogue_inserted", real_hook)
        r = harness.upload(client, auth, "photometric", content, "cut.csv")
        assert r.status_code == 201, r.text
    assert _counts(clean_db)["sources"] == 800


# ----------------------------------------------------------------------------- jobs
@pytest.mark.slow
def test_training_killed_mid_way_is_failed_without_a_partial_map(
    clean_db, harness, mock_catalogue, tmp_path
):
    """SIGKILL the server while a map trains; once its heartbeat is overdue the next start
    marks job and map failed."""
    import httpx

    auth = _key(harness, clean_db)
    beats = {"SOMCAL_JOB_HEARTBEAT_SECONDS": "0.5", "SOMCAL_JOB_HEARTBEAT_TIMEOUT_SECONDS": "2"}
    env = {"SOMCAL_DATABASE_URL": clean_db, "SOMCAL_UPLOAD_TMP_DIR": str(tmp_path), **beats}
    server = harness.ServerProcess(env, tmp_path / "server.log")
    base = server.start()
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            cat = harness.upload(
                client, auth, "photometric", mock_catalogue(3000, seed=23), "train.csv"
            )
            assert cat.status_code == 201, cat.text
            accepted = harness.start_training(
                client, auth, cat.json()["id"], **harness.LONG_TRAINING
            )
            job_id, map_id = accepted["job"]["id"], accepted["map"]["id"]
            # Kill once the SOM itself is being fitted (progress 0.05-0.8).
            job = harness.wait_for_job(client, job_id, harness.fitting, timeout=120)
            assert job["progress"] < 0.8, job
        server.kill()
    finally:
        server.stop()

    engine = make_engine(clean_db)
    factory = make_session_factory(engine)
    with factory() as s:
        assert s.get(Job, job_id).status == "running"  # nobody is left to say otherwise
        assert s.get(Map, map_id).status == "training"
    settings = Settings(
        database_url=clean_db,
        upload_tmp_dir=tmp_path,
        job_heartbeat_seconds=0.5,
        job_heartbeat_timeout_seconds=2,
    )
    with TestClient(create_app(settings)) as client:  # the next start of the service
        job = harness.wait_for_job(client, job_id, lambda j: j["status"] != "running", timeout=30)
        assert job["status"] == "failed" and "interrupted" in job["error"], job
        m = client.get(f"/v1/maps/{map_id}").json()
        assert m["status"] == "failed", m
        assert client.get(f"/v1/maps/{map_id}/cells").status_code == 409
    with factory() as s:
        assert s.get(Map, map_id).weights is None
        assert s.scalar(select(func.count()).select_from(Cell).where(Cell.map_id == map_id)) == 0
        n_assigned = s.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.map_id == map_id)
        )
        assert n_assigned == 0
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_training_whose_database_dies_ends_failed_when_it_is_back(
    dying_pg, harness, mock_catalogue, monkeypatch, tmp_path
):
    """The database is down when a finished training stores its map: the job must not stay
    'running' for the life of the process; it is failed once the database answers again."""
    import app.api.routes.maps.core as maps_route
    from app.services import training

    pg = dying_pg
    auth = _key(harness, pg.url)
    in_store = threading.Event()
    real_store = training._store

    def store_after_crash(*args, **kwargs):
        pg.stop("immediate")
        in_store.set()
        return real_store(*args, **kwargs)

    monkeypatch.setattr(training, "_store", store_after_crash)
    assert maps_route.training is training
    settings = Settings(database_url=pg.url, upload_tmp_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        cat = harness.upload(
            client, auth, "photometric", mock_catalogue(400, seed=24), "t.csv"
        ).json()
        accepted = harness.start_training(client, auth, cat["id"], n_rows=5, n_cols=5, n_epochs=2)
        job_id, map_id = accepted["job"]["id"], accepted["map"]["id"]
        assert in_store.wait(60)
        time.sleep(1.0)  # the store's first attempt fails against the dead server
        assert client.get(f"/v1/jobs/{job_id}").status_code == 503
        pg.start()
        job = harness.wait_for_job(client, job_id, lambda j: j["status"] != "running", timeout=60)
        assert job["status"] == "failed", job
        assert "OperationalError" in job["error"]
        m = client.get(f"/v1/maps/{map_id}").json()
        assert m["status"] == "failed", m
    engine = make_engine(pg.url)
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Cell).where(Cell.map_id == map_id)) == 0
        assert s.get(Map, map_id).weights is None
    engine.dispose()


# ----------------------------------------------------------------------------- concurrency
def test_two_ingests_of_different_catalogues_at_once_both_land(
    client, auth, settings, mock_catalogue, harness, ingest, train_map
):
    base = ingest("photometric", mock_catalogue(300, seed=30), "base.csv")
    map_id = train_map(base["id"], n_rows=6, n_cols=6)
    a = harness.csv_bytes(mock_catalogue(700, seed=31))
    b = harness.csv_bytes(mock_catalogue(500, seed=32))
    ra, rb = harness.run_together(
        lambda: harness.upload(client, auth, "photometric", a, "a.csv"),
        lambda: harness.upload(client, auth, "photometric", b, "b.csv"),
    )
    assert (ra.status_code, rb.status_code) == (201, 201), (ra.text, rb.text)
    assert ra.json()["assigned_maps"] == rb.json()["assigned_maps"] == [map_id]
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        for resp, n in ((ra, 700), (rb, 500)):
            cid = resp.json()["id"]
            assert resp.json()["n_rows"] == n
            stored = select(func.count()).select_from(Source).where(Source.catalogue_id == cid)
            assert s.scalar(stored) == n
            assigned = (
                select(func.count())
                .select_from(Assignment)
                .where(Assignment.catalogue_id == cid, Assignment.map_id == map_id)
            )
            assert s.scalar(assigned) == n
        # Both landed in the map's statistics too, not only in the row tables.
        n_phot = s.scalar(select(func.sum(Cell.n_phot)).where(Cell.map_id == map_id))
        # Sources outside what the map was trained on are counted apart, not in a cell.
        n_out = s.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.map_id == map_id, Assignment.outside)
        )
        assert n_phot + n_out == 300 + 700 + 500
    engine.dispose()


def test_the_same_file_twice_at_once_lands_once(
    client, auth, settings, mock_catalogue, monkeypatch, harness
):
    """Both uploads pass the early duplicate check together; the unique (kind, sha256)
    constraint decides, and the loser answers 'duplicate' with the winner's catalogue."""
    from app.services import ingest as ingest_service

    real_find = ingest_service.find_duplicate
    barrier = threading.Barrier(2)
    first_call = threading.local()
    calls = []

    def find_after_both_looked(session, kind, sha):
        found = real_find(session, kind, sha)
        calls.append(found)
        if not getattr(first_call, "done", False):
            first_call.done = True
            barrier.wait(timeout=30)  # neither proceeds until both saw "not there yet"
        return found

    monkeypatch.setattr(ingest_service, "find_duplicate", find_after_both_looked)
    content = harness.csv_bytes(mock_catalogue(600, seed=33))
    r1, r2 = harness.run_together(
        lambda: harness.upload(client, auth, "photometric", content, "same.csv"),
        lambda: harness.upload(client, auth, "photometric", content, "same.csv"),
    )
    assert calls[:2] == [None, None]  # the race really happened
    assert sorted([r1.status_code, r2.status_code]) == [200, 201], (r1.text, r2.text)
    assert r1.json()["id"] == r2.json()["id"]
    assert sorted([r1.json()["duplicate"], r2.json()["duplicate"]]) == [False, True]
    counts = _counts(settings.database_url)
    assert counts["catalogues"] == 1 and counts["sources"] == 600
