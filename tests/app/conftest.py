"""Fixtures for API tests against real databases: SQLite (a temp file) and PostgreSQL.

PostgreSQL comes from ``DATABASE_URL_TEST`` (default postgresql+psycopg://postgres@127.0.0.1:
5432/test). Each test session works in a schema of its own (``search_path``), created and
dropped here, so concurrent sessions sharing the ``test`` database cannot collide. Tests
skip PostgreSQL with the reason only when the server cannot be reached.

What a client of the API does again and again (upload a catalogue, poll a job, train a map),
the schema helpers and the server processes are written once, in ``bench/_service.py``
(loaded here as ``harness``, so bench does not depend on pytest); the fixtures below bind
them to the test's client and key: ``ingest``, ``wait_job``, ``train_map``, ``trained_map``,
and unbound for tests with clients of their own: ``upload``, ``wait_for_job``, ``harness``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.core import migrate
from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.main import create_app
from app.models import metadata

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO / ".." / "shared" / "data"
ZCOSMOS = SHARED_DATA / "real" / "zcosmos_bright20k_cosmos_photometry.csv"
BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")


def load_bench_module(name: str):
    """``bench/<name>.py`` as a module, loaded once (bench is scripts, not a package)."""
    module_name = f"somcal_bench_{name.lstrip('_')}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


harness = load_bench_module("_service")

_pg_state: dict[str, str | None] = {}


def pg_unreachable_reason() -> str | None:
    if "reason" not in _pg_state:
        base = harness.pg_base_url()
        why = harness.pg_reachable(base)
        where = make_url(base).render_as_string(hide_password=True)
        _pg_state["reason"] = why and f"PostgreSQL not reachable at {where}: {why}"
    return _pg_state["reason"]


def new_pg_schema_url() -> tuple[str, str]:
    """A fresh schema on the shared cluster and a URL whose connections use it."""
    return harness.pg_schema(harness.pg_base_url(), "somcal_t")


def drop_pg_schema(schema: str) -> None:
    harness.drop_pg_schema(harness.pg_base_url(), schema)


def database(backend: str, directory: Path) -> Iterator[str]:
    """Yield the URL of an empty database of ``backend``, removed afterwards: a file in
    ``directory`` for SQLite, a schema of its own for PostgreSQL (skips if unreachable)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'somcal.db'}"
        return
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    url, schema = new_pg_schema_url()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request, tmp_path_factory) -> Iterator[str]:
    """A migrated database per backend, shared by the session (tables emptied per test)."""
    for url in database(request.param, tmp_path_factory.mktemp("db")):
        migrate.upgrade(url)
        yield url


@pytest.fixture
def clean_db(db_url: str) -> str:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()
    return db_url


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def settings(clean_db: str, data_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=clean_db,
        data_dirs=[data_dir],
        max_upload_bytes=5 * 1024 * 1024,
        max_rows=100_000,
        upload_tmp_dir=tmp_path,
    )


@pytest.fixture
def app(settings: Settings):
    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def api_key(settings: Settings) -> str:
    return harness.create_key(settings.database_url, "tests")


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"X-API-Key": api_key}


def _mock_catalogue(n: int = 200, seed: int = 0, spec_fraction: float = 0.0) -> pd.DataFrame:
    """A small catalogue in somcal's mock shape with a colour-redshift relation."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.05, 2.0, n)
    base = rng.uniform(20.0, 24.0, n)
    frame = {
        "id": np.arange(1, n + 1),
        "ra": rng.uniform(149.4, 150.8, n),
        "dec": rng.uniform(1.6, 2.8, n),
        "z_true": z,
        "z_phot": np.clip(z + rng.normal(0, 0.05, n), 0, None),
    }
    frame["z_spec"] = np.where(rng.random(n) < spec_fraction, z, np.nan)
    slopes = np.array([1.2, 0.9, 0.6, 0.3, 0.0, -0.2, -0.35, -0.5])
    for k, band in enumerate(BANDS):
        frame[f"mag_{band}"] = base + slopes[k] * z + rng.normal(0, 0.03, n)
        frame[f"magerr_{band}"] = np.full(n, 0.03)
    return pd.DataFrame(frame)


@pytest.fixture
def mock_catalogue():
    """Factory: ``mock_catalogue(n, seed, spec_fraction) -> DataFrame`` in the mock shape."""
    return _mock_catalogue


@pytest.fixture
def zcosmos_path() -> Path:
    if not ZCOSMOS.is_file():
        pytest.skip(f"reference data absent: {ZCOSMOS}")
    return ZCOSMOS.resolve()


@pytest.fixture(params=BACKENDS)
def empty_db_url(request, tmp_path) -> Iterator[str]:
    """An empty (unmigrated) database per backend, for migration and readiness tests."""
    yield from database(request.param, tmp_path)


@pytest.fixture(scope="session", name="harness")
def harness_fixture():
    """``bench/_service.py``: server processes, a throwaway PostgreSQL, API keys, and the
    client helpers the fixtures below bind (``upload``, ``ingest``, ``wait_for_job``,
    ``train``, ``run_together``)."""
    return harness


@pytest.fixture(scope="session")
def bench_module():
    """``bench_module(name)``: ``bench/<name>.py`` loaded as a module, for tests that run a
    benchmark's own machinery briefly."""
    return load_bench_module


@pytest.fixture
def upload():
    """``upload(client, auth, kind, content, name, **fields) -> response``: one file to
    ``POST /v1/catalogues/{kind}`` (bytes, or a DataFrame sent as CSV), any status."""
    return harness.upload


@pytest.fixture
def ingest(client, auth):
    """``ingest(kind, content, name="cat.csv", **fields) -> body``: upload with the test's
    client and key, and require a new catalogue (201)."""

    def ingest(kind: str, content, name: str = "cat.csv", **fields) -> dict:
        r = harness.upload(client, auth, kind, content, name, **fields)
        assert r.status_code == 201, r.text
        return r.json()

    return ingest


@pytest.fixture
def wait_for_job():
    """``wait_for_job(client, job_id, until=finished, timeout=120) -> job``: poll any
    client's ``GET /v1/jobs/{id}`` until ``until(job)``; TimeoutError if it never does."""
    return functools.partial(harness.wait_for_job, timeout=120.0)


@pytest.fixture
def wait_job(client):
    """``wait_job(job_id, timeout=180) -> (job, progress seen)``: poll the test's client
    until the job ends."""

    def wait(job_id: int, timeout: float = 180.0) -> tuple[dict, list[float]]:
        seen: list[float] = []

        def finished(job: dict) -> bool:
            seen.append(job["progress"])
            return harness.job_finished(job)

        return harness.wait_for_job(client, job_id, finished, timeout=timeout), seen

    return wait


@pytest.fixture
def train_map(client, auth):
    """``train_map(catalogue_id, **options) -> map id``: POST /v1/maps (3 epochs unless
    told otherwise), wait for the job and require it to succeed."""

    def train(catalogue_id: int, **options) -> int:
        options = {"n_epochs": 3, **options}
        map_id, _ = harness.train(client, auth, catalogue_id, timeout=180.0, **options)
        return map_id

    return train


@pytest.fixture
def trained_map(ingest, train_map):
    """``trained_map(frame, name="phot.csv", **options) -> (map id, catalogue id)``: ingest
    ``frame`` as a photometric catalogue and train a map on it (``train_map``'s options)."""

    def trained(frame, name: str = "phot.csv", **options) -> tuple[int, int]:
        catalogue_id = ingest("photometric", frame, name)["id"]
        return train_map(catalogue_id, **options), catalogue_id

    return trained


def load_stored_map(url: str, map_id: int):
    """The map as the ledger stores it (its serialised weights and features)."""
    from app.models import Map
    from som import SOM

    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        blob = s.get(Map, map_id).weights
    engine.dispose()
    return SOM.from_bytes(blob)


@pytest.fixture
def stored_map():
    """``stored_map(url, map_id) -> SOM``."""
    return load_stored_map
