"""The web dashboard: the page at /dashboard (static HTML + JS, no build step, nothing fetched
from outside the server). The per-cell arrays it draws a map from are a map resource
(``GET /v1/maps/{id}/arrays``, :mod:`app.api.routes.maps.arrays`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> FileResponse:
    # no-cache: after an upgrade the page must pick up the matching script.
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )
