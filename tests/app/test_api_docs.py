"""The API docs (Swagger UI at /docs) are served from an installed package,
never a CDN, so they work on a network with no outside access. The pages rendered in
headless Chromium with no network: tests/app/test_dashboard.py."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import fastapi_offline
import pytest

DOCS_PAGES = ["/docs", "/docs/oauth2-redirect"]
PACKAGE_STATIC = Path(fastapi_offline.__file__).resolve().parent / "static"


class _Assets(HTMLParser):
    """Every URL a page loads by itself: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href"):
            self.urls.append(a["href"])


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def dangling_refs(spec: dict) -> set[str]:
    """The ``#/components/schemas/...`` references of an OpenAPI document that name no
    schema in it."""
    names = set(spec.get("components", {}).get("schemas", {}))
    refs = set(re.findall(r'"\$ref":\s*"#/components/schemas/([^"]+)"', json.dumps(spec)))
    return refs - names


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages need no data
def test_docs_pages_load_their_assets_from_this_server_out_of_an_installed_package(client):
    served = {}
    for page in DOCS_PAGES:
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), page
        # No absolute or protocol-relative URL anywhere in the page, inline script included.
        assert not re.search(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", r.text), page
        for url in _assets(r.text):
            assert url.startswith("/") and not url.startswith("//"), (page, url)
            served[url] = client.get(url)
    assert {
        "/static-offline-docs/swagger-ui-bundle.js",
        "/static-offline-docs/swagger-ui.css",
    } <= set(served)
    kinds = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url, r in served.items():
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith(kinds[Path(url).suffix]), url
        # Byte for byte the file the installed package ships.
        assert r.content == (PACKAGE_STATIC / Path(url).name).read_bytes(), url
    # ReDoc is not offered: once it renders, it fetches its logo from Redocly's CDN.
    assert client.get("/redoc").status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_schema_reference_in_the_openapi_document_resolves(client):
    assert dangling_refs(client.get("/openapi.json").json()) == set()
