"""Writes need an API key, revoked keys stop working, the CLI makes keys, and reads are open
unless configured. (That keys are stored only as hashes, compared in constant time, and
never logged, and that CORS is closed, is checked in test_access_control.py.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
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


def test_cli_db_upgrade_makes_an_empty_database_ready(empty_db_url):
    result = CliRunner().invoke(cli, ["db", "upgrade", "--database-url", empty_db_url])
    assert result.exit_code == 0, result.output
    assert "revision" in result.stdout
    with TestClient(create_app(Settings(database_url=empty_db_url))) as c:
        assert c.get("/ready").status_code == 200


def test_read_auth_closes_reads_to_callers_without_a_key_but_not_the_probes(settings):
    cfg = settings.model_copy(
        update={"read_auth": True, "api_keys": Settings(api_keys="k-one,k-two").api_keys}
    )
    with TestClient(create_app(cfg)) as c:
        assert c.get("/v1/catalogues").status_code == 401
        assert c.get("/v1/catalogues", headers={"X-API-Key": "k-two"}).status_code == 200
        assert _post(c, {"X-API-Key": "k-one"}).status_code == 201
        assert c.get("/health").status_code == 200  # probes stay open


def test_key_names_are_required(settings):
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s, pytest.raises(ValueError, match="name"):
        create_api_key(s, "  ")
    engine.dispose()
