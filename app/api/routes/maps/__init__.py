"""Maps, the one resource under /v1/maps: the map itself (training, listing, deleting), and
what is read or computed from it, one module each: assignment of new photometry, cells,
coverage and gaps, coverage history, targets and saved target lists, campaigns and their
outcomes, the success model and forecasts, n(z), the dashboard's per-cell arrays
and the figures. Each module has its own router; this package's ``router`` joins them, so
the application includes maps once."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes.maps import (
    arrays,
    assign,
    campaigns,
    cells,
    core,
    coverage,
    forecast,
    history,
    nz,
    occupation,
    plots,
    targets,
)

PREFIX = "/v1/maps"

router = APIRouter()
for _module in (
    core,
    assign,
    cells,
    coverage,
    history,
    targets,
    campaigns,
    forecast,
    nz,
    arrays,
    plots,
    occupation,
):
    router.include_router(_module.router, prefix=PREFIX, tags=["maps"])

__all__ = ["router"]
