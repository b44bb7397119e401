from __future__ import annotations

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app


def test_health_and_ready(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and body["revision"] == body["head"] and body["head"]


def test_ready_is_503_until_the_schema_is_migrated(empty_db_url):
    app = create_app(Settings(database_url=empty_db_url))
    with TestClient(app) as c:
        r = c.get("/ready")
        assert r.status_code == 503
        assert "somcal db upgrade" in r.json()["database"]
        assert c.get("/health").status_code == 200


def test_ready_is_503_when_the_database_is_unreachable():
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    url = "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2"
    app = create_app(Settings(database_url=url))
    with TestClient(app) as c:
        r = c.get("/ready")
    assert r.status_code == 503
    assert r.json()["database"].startswith("unreachable")
    assert r.headers.get("retry-after")


def test_openapi_documents_the_error_shape(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/catalogues/{kind}" in spec["paths"]
    post = spec["paths"]["/v1/catalogues/{kind}"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert "ErrorResponse" in spec["components"]["schemas"]
