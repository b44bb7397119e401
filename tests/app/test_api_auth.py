"""Writes need an API key; keys are stored hashed; reads are open unless configured."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.main import create_app
from app.models import ApiKey
from app.services.apikeys import create_api_key, revoke_api_key

CSV = b"id,mag_g,mag_r\n1,22.0,21.5\n2,23.0,22.1\n"


def _post(client, headers):
    return client.post(
        "/v1/catalogues/photometric", files={"file": ("c.csv", CSV)}, headers=headers
    )


def test_writes_need_a_valid_key(client, api_key, settings):
    r = _post(client, {})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "ApiKey"
    assert "API key" in r.json()["detail"]
    assert _post(client, {"X-API-Key": "wrong"}).status_code == 403
    assert _post(client, {"X-API-Key": api_key[:-1] + "x"}).status_code == 403
    assert client.delete("/v1/catalogues/1").status_code == 401
    r = _post(client, {"Authorization": f"Bearer {api_key}"})
    assert r.status_code == 201, r.text
    assert client.get("/v1/catalogues").status_code == 200  # reads are open by default

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with factory() as s:
        assert revoke_api_key(s, "tests") == 1
        s.commit()
    engine.dispose()
    assert _post(client, {"X-API-Key": api_key}).status_code == 403


def test_only_the_hash_is_stored(api_key, settings):
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_keys")) for v in row)
    engine.dispose()
    assert api_key not in dump
    secret = api_key.split("_", 2)[2]
    assert secret not in dump


def test_cli_creates_a_key_that_works(settings):
    result = CliRunner().invoke(
        cli, ["apikey", "create", "survey-team", "--database-url", settings.database_url]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    assert key.startswith("somcal_")
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.name == "survey-team"))
    engine.dispose()
    assert row is not None and row.key_hash != key
    with TestClient(create_app(settings)) as c:
        assert _post(c, {"X-API-Key": key}).status_code == 201


def test_cli_db_upgrade(empty_db_url):
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", empty_db_url])
    assert result.exit_code == 0, result.output
    assert "revision" in result.stdout
    with TestClient(create_app(Settings(database_url=empty_db_url))) as c:
        assert c.get("/ready").status_code == 200


def test_static_key_and_read_auth(settings):
    cfg = settings.model_copy(
        update={"read_auth": True, "api_keys": Settings(api_keys="k-one,k-two").api_keys}
    )
    with TestClient(create_app(cfg)) as c:
        assert c.get("/v1/catalogues").status_code == 401
        assert c.get("/v1/catalogues", headers={"X-API-Key": "k-two"}).status_code == 200
        assert _post(c, {"X-API-Key": "k-one"}).status_code == 201
        assert c.get("/health").status_code == 200  # probes stay open


def test_cors_closed_by_default(client):
    r = client.options(
        "/v1/catalogues",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_key_names_are_required(settings):
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s, pytest.raises(ValueError, match="name"):
        create_api_key(s, "  ")
    engine.dispose()
