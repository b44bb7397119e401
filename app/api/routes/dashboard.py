"""The web dashboard: the page at /dashboard (static HTML + JS, no build step, nothing fetched
from outside the server) and the colour maps it draws with (the figures' own, sampled from
matplotlib). The per-cell arrays it draws a map from are a map resource
(``GET /v1/maps/{id}/arrays``, :mod:`app.api.routes.maps.arrays`).

The page's scripts are plain files under ``app/static`` served at ``/static`` (see
``common.js`` for how they divide the work): the map and its cells, the catalogue counted
(row catalogue or occupation, with its sky map), the follow-up (campaigns, coverage history,
change log) and the deep/wide calibrations. Each reads only the public API."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from app.schemas import ColourMapsOut
from som.plotting import map_colormap_stops

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


@cache
def _colour_maps(n: int) -> ColourMapsOut:
    return ColourMapsOut(n=n, colormaps=map_colormap_stops(n))


@router.get(
    "/v1/plots/colormaps",
    tags=["maps"],
    summary="The colour maps of the map figures (what the dashboard draws with)",
    description="256 `#rrggbb` stops per colour map, sampled from matplotlib, so a page "
    "colouring cells by interpolating them shows the colours of the PNG figures.",
    response_model=ColourMapsOut,
)
def colour_maps() -> ColourMapsOut:
    return _colour_maps(256)
