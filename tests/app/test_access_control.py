"""Access: hashed keys compared in constant time, keyed writes, nothing secret in logs,
server-side paths confined to the data directories, CORS closed, size and row limits."""

from __future__ import annotations

import ast
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from app.core import security
from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.main import create_app
from app.models import Catalogue, metadata
from app.services.apikeys import create_api_key, revoke_api_key

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Pw-7f3a9c-never-log-me"
STATIC_KEY = "static-key-0b5e1d-never-log-me"


def _csv(n: int = 5, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    lines = ["id,mag_g,mag_r"] + [
        f"{k},{rng.uniform(20, 24):.4f},{rng.uniform(20, 24):.4f}" for k in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def _upload(client, headers, content: bytes | None = None, name: str = "c.csv"):
    return client.post(
        "/v1/catalogues/photometric",
        files={"file": (name, content if content is not None else _csv(), "text/csv")},
        headers=headers,
    )


def _dump_database(url: str) -> str:
    """Every value of every table, as text."""
    engine = make_engine(url)
    parts = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(table.select()):
                parts.extend(v.hex() if isinstance(v, bytes | memoryview) else str(v) for v in row)
    engine.dispose()
    return " ".join(parts)


# ----------------------------------------------------------------------------- keys
def test_keys_are_stored_only_as_their_sha256(client, settings, api_key):
    auth = {"X-API-Key": api_key}
    assert _upload(client, auth).status_code == 201
    assert client.post("/v1/catalogues/photometric", json={"path": "nope.csv"}, headers=auth)
    dump = _dump_database(settings.database_url)
    secret = api_key.split("_", 2)[2]
    assert api_key not in dump and secret not in dump
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        prefix, stored = conn.execute(text("SELECT prefix, key_hash FROM api_keys")).one()
    engine.dispose()
    assert stored == hashlib.sha256(api_key.encode()).hexdigest()
    assert prefix == api_key.split("_")[1] and prefix not in secret
    # Configured (bootstrap) keys are held as hashes too, and settings never print them.
    cfg = settings.model_copy(update={"api_keys": Settings(api_keys=STATIC_KEY).api_keys})
    app = create_app(cfg)
    assert app.state.static_key_hashes == (hashlib.sha256(STATIC_KEY.encode()).hexdigest(),)
    assert STATIC_KEY not in repr(cfg) and STATIC_KEY not in str(cfg.model_dump())


def test_keys_are_compared_in_constant_time(client, settings, api_key, monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    presented = hashlib.sha256(api_key.encode()).hexdigest().encode()
    assert _upload(client, {"X-API-Key": api_key}).status_code == 201
    assert calls == [(presented, presented)]  # the stored hash equals the presented one

    calls.clear()
    forged = api_key[:-4] + ("AAAA" if not api_key.endswith("AAAA") else "BBBB")
    assert _upload(client, {"X-API-Key": forged}).status_code == 403
    assert len(calls) == 1 and calls[0][0] != calls[0][1]  # same prefix: hash compared

    # Configured keys: every one is compared, with no early exit on a match.
    keys = "k-one-aaaaaaaa,k-two-bbbbbbbb,k-three-cccccccc"
    cfg = settings.model_copy(update={"api_keys": Settings(api_keys=keys).api_keys})
    with TestClient(create_app(cfg)) as c:
        calls.clear()
        assert _upload(c, {"X-API-Key": "k-one-aaaaaaaa"}, _csv(6)).status_code == 201
        assert len(calls) == 3
        calls.clear()
        assert _upload(c, {"X-API-Key": "k-nope"}).status_code == 403
        assert len(calls) == 3


def test_key_material_is_never_compared_with_equals():
    """Guards the two modules that handle keys against a plain ==/!= on hashes or keys."""
    for module in ("app/core/security.py", "app/services/apikeys.py"):
        tree = ast.parse((REPO / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
            ):
                names = {
                    n.id if isinstance(n, ast.Name) else n.attr
                    for n in ast.walk(node)
                    if isinstance(n, ast.Name | ast.Attribute)
                }
                suspicious = {n for n in names if "hash" in n.lower() or n in ("key", "presented")}
                assert not suspicious, f"{module}:{node.lineno} compares {suspicious} with =="


def _url(path: str) -> str:
    url = path.replace("{kind}", "photometric")
    for name in ("catalogue_id", "map_id", "list_id", "job_id", "cell"):
        url = url.replace("{" + name + "}", "1")
    return url


def test_every_write_needs_a_valid_key(client, settings, api_key):
    """Every non-GET operation of the OpenAPI schema answers 401 without a key, except the
    POSTs that only read (photometry in, answers out), which follow the read policy."""
    spec = client.app.openapi()
    operations = [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if method != "get"
    ]
    unkeyed = set()
    for method, path in operations:
        r = client.request(method, _url(path), json={})
        if r.status_code != 401:
            unkeyed.add((method, path))
            continue
        assert r.headers["www-authenticate"] == "ApiKey"
        assert "API key" in r.json()["detail"]
    assert unkeyed == {("POST", "/v1/maps/{map_id}/assign"), ("POST", "/v1/maps/{map_id}/nz")}
    writes = [op for op in operations if op not in unkeyed]
    assert len(writes) >= 5

    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        _, revoked = create_api_key(s, "to-revoke")
        revoke_api_key(s, "to-revoke")
        s.commit()
    engine.dispose()
    bad_keys = {
        "wrong": "not-a-somcal-key",
        "forged": api_key[:-3] + "zzz",
        "unknown prefix": "somcal_00000000_" + "x" * 43,
        "revoked": revoked,
    }
    for method, path in writes:
        url = _url(path)
        for label, key in bad_keys.items():
            for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
                r = client.request(method, url, json={}, headers=headers)
                assert r.status_code == 403, (method, url, label, r.text)
    assert client.get("/v1/catalogues").json()["total"] == 0


# ----------------------------------------------------------------------------- logs
def _requests_with_secrets(client, key: str) -> list[str]:
    bodies = []
    for headers in (
        {"X-API-Key": key},
        {"Authorization": f"Bearer {key}"},
        {"X-API-Key": STATIC_KEY},
        {"X-API-Key": key + "x"},
        {"X-API-Key": "somcal_deadbeef_" + key[-20:]},
    ):
        for r in (
            _upload(client, headers, _csv(7, seed=len(bodies))),
            client.post("/v1/catalogues/photometric", json={"path": "../x.csv"}, headers=headers),
            client.get("/v1/catalogues", headers=headers),
            client.delete("/v1/catalogues/999", headers=headers),
            client.post("/v1/maps", json={"catalogue_id": 999}, headers=headers),
        ):
            bodies.append(r.text)
    bodies.append(client.get("/ready").text)
    return bodies


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_no_key_or_password_in_logs_or_answers(clean_db, tmp_path, caplog, harness):
    """DEBUG logging of everything (SQL included) while keys and a password are in use,
    with the database up and down: neither appears in a log record or a response."""
    key = harness.create_key(clean_db, "logs")
    with_password = make_url(clean_db).set(password=PASSWORD)
    url = with_password.render_as_string(hide_password=False)
    assert PASSWORD in url  # the cluster trusts loopback, so the password is accepted
    down = with_password.set(port=1).render_as_string(hide_password=False)
    caplog.set_level(logging.DEBUG)
    bodies = []
    for database_url in (url, down):
        cfg = Settings(
            database_url=database_url,
            api_keys=Settings(api_keys=STATIC_KEY).api_keys,
            upload_tmp_dir=tmp_path,
            data_dirs=[tmp_path],
        )
        with TestClient(create_app(cfg), raise_server_exceptions=False) as c:
            bodies += _requests_with_secrets(c, key)
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "database unavailable" in logged  # the outage was logged, without secrets
    assert len(caplog.records) > 20
    for secret in (key, key.split("_", 2)[2], STATIC_KEY, PASSWORD):
        assert secret not in logged
        assert not any(secret in b for b in bodies)

    result = CliRunner().invoke(
        __import__("app.cli", fromlist=["cli"]).cli, ["db", "upgrade", "--database-url", down]
    )
    assert result.exit_code != 0 and PASSWORD not in result.output


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_no_key_or_password_in_the_server_log(clean_db, tmp_path, harness):
    """The real server at --log-level trace (every ASGI message) with its access log."""
    import httpx

    key = harness.create_key(clean_db, "server-logs")
    url = make_url(clean_db).set(password=PASSWORD).render_as_string(hide_password=False)
    env = {
        "SOMCAL_DATABASE_URL": url,
        "SOMCAL_API_KEYS": STATIC_KEY,
        "SOMCAL_UPLOAD_TMP_DIR": str(tmp_path),
    }
    log = tmp_path / "server.log"
    server = harness.ServerProcess(env, log, log_level="trace", access_log=True)
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            bodies = _requests_with_secrets(c, key)
    finally:
        server.stop()
    text_logged = log.read_text(errors="replace")
    assert "POST /v1/catalogues/photometric" in text_logged  # the access log was on
    for secret in (key, key.split("_", 2)[2], STATIC_KEY, PASSWORD):
        assert secret not in text_logged
        assert not any(secret in b for b in bodies)


# ----------------------------------------------------------------------------- paths
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_server_side_paths_stay_inside_the_data_directories(client, auth, data_dir, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes(_csv(4, seed=1))
    (data_dir / "sub").mkdir()
    for k, name in enumerate(("ok.csv", "ok2.csv", "ok3.csv", "sub/ok4.csv")):
        (data_dir / name).write_bytes(_csv(5, seed=10 + k))
    os.symlink(outside / "secret.csv", data_dir / "link.csv")
    os.symlink(outside, data_dir / "linkdir")
    os.symlink(data_dir / "ok2.csv", data_dir / "inner_link.csv")
    os.symlink("loop", data_dir / "loop")

    cases = [
        ("../outside/secret.csv", 403),
        ("sub/../../outside/secret.csv", 403),
        (str(outside / "secret.csv"), 403),
        (str(outside / "absent.csv"), 403),
        ("link.csv", 403),
        ("linkdir/secret.csv", 403),
        ("/etc/passwd", 403),
        ("~/secret.csv", 403),
        ("ok.csv\x00.txt", 403),
        ("loop", 404),
        ("a" * 300, 404),
        ("missing.csv", 404),
        ("sub", 404),
        ("sub/../ok.csv", 201),
        ("inner_link.csv", 201),
        (str(data_dir / "ok3.csv"), 201),
        ("sub/ok4.csv", 201),
    ]
    for path, status in cases:
        r = client.post("/v1/catalogues/photometric", json={"path": path}, headers=auth)
        assert r.status_code == status, (path, r.text)
        if status == 403:
            detail = r.json()["detail"]
            assert "outside the configured data directories" in detail or "NUL" in detail
    # An outside file that exists and one that does not get the same answer.
    texts = [
        client.post("/v1/catalogues/photometric", json={"path": str(outside / n)}, headers=auth)
        .json()["detail"]
        .replace(n, "")
        for n in ("secret.csv", "absent.csv")
    ]
    assert texts[0] == texts[1]
    assert client.get("/v1/catalogues").json()["total"] == 4


def test_server_side_reads_are_off_without_data_directories(settings, auth):
    cfg = settings.model_copy(update={"data_dirs": []})
    with TestClient(create_app(cfg)) as c:
        r = c.post("/v1/catalogues/photometric", json={"path": "ok.csv"}, headers=auth)
    assert r.status_code == 403 and "disabled" in r.json()["detail"]


# ----------------------------------------------------------------------------- CORS
_ROUTES_FOR_CORS = ["/v1/catalogues", "/v1/maps", "/health", "/v1/maps/1/assign"]


def test_cors_is_closed_by_default(client):
    for path in _ROUTES_FOR_CORS:
        for method in ("GET", "POST", "DELETE"):
            pre = client.options(
                path,
                headers={
                    "Origin": "https://evil.example",
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "X-API-Key",
                },
            )
            assert not any(h.startswith("access-control-") for h in pre.headers), pre.headers
        r = client.get(path, headers={"Origin": "https://evil.example"})
        assert not any(h.startswith("access-control-") for h in r.headers)


def test_cors_allows_only_configured_origins(settings):
    cfg = settings.model_copy(update={"cors_origins": ["https://survey.example"]})
    with TestClient(create_app(cfg)) as c:
        ok = c.options(
            "/v1/catalogues",
            headers={"Origin": "https://survey.example", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://survey.example"
        assert "access-control-allow-credentials" not in ok.headers
        evil = c.options(
            "/v1/catalogues",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert evil.headers.get("access-control-allow-origin") != "https://evil.example"
        r = c.get("/v1/catalogues", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


# ----------------------------------------------------------------------------- limits
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_size_and_row_limits_answer_413(settings, auth, data_dir):
    cfg = settings.model_copy(
        update={"max_upload_bytes": 50_000, "max_rows": 100, "max_assign_rows": 10}
    )
    limit_total = 50_000 + 64 * 1024  # the file limit plus the multipart allowance
    with TestClient(create_app(cfg)) as c:
        # Declared too large: refused from Content-Length alone.
        big = b"x" * (limit_total + 1)
        r = c.post("/v1/maps/1/assign", content=big, headers={"Content-Type": "text/csv"})
        assert r.status_code == 413 and "limit" in r.json()["detail"]

        # Streamed without a length (chunked): counted and cut off at the limit.
        def chunks():
            for _ in range(40):
                yield b"y" * 16384

        r = c.post(
            "/v1/catalogues/photometric",
            content=chunks(),
            headers={**auth, "Content-Type": "multipart/form-data; boundary=zzz"},
        )
        assert r.status_code == 413 and "limit" in r.json()["detail"], r.text

        # A file over the file limit inside an allowed request.
        r = _upload(c, auth, _csv(4000))
        assert r.status_code == 413 and "upload larger than the limit of 50000" in r.text

        # Rows: an upload, a server-side Parquet (refused from its metadata) and assign.
        r = _upload(c, auth, _csv(101))
        assert r.status_code == 413 and "101 rows; the limit is 100" in r.json()["detail"]
        table = pa.table({"mag_g": np.ones(150), "mag_r": np.ones(150)})
        pq.write_table(table, data_dir / "many.parquet")
        r = c.post("/v1/catalogues/photometric", json={"path": "many.parquet"}, headers=auth)
        assert r.status_code == 413 and "150 rows" in r.json()["detail"]

        cat = _upload(c, auth, _csv(60, seed=3)).json()
        accepted = c.post(
            "/v1/maps", json={"catalogue_id": cat["id"], "n_rows": 3, "n_cols": 3}, headers=auth
        ).json()
        c.app.state.jobs.wait(accepted["job"]["id"], timeout=120)
        assign = f"/v1/maps/{accepted['map']['id']}/assign"
        rows = [{"mag_g": 22.0 + k / 10, "mag_r": 21.5} for k in range(11)]
        r = c.post(assign, json={"rows": rows})
        assert r.status_code == 413 and "11 rows to assign; the limit is 10" in r.text
        assert c.post(assign, json={"rows": rows[:10]}).status_code == 200
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(Catalogue)) == 1
    engine.dispose()
