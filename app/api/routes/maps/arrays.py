"""The per-cell arrays of a map in one compact answer (what the dashboard draws)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import IdPath, ReadDep, SessionDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY
from app.api.routes.maps.coverage import CatalogueQuery
from app.schemas import MapArraysOut
from app.services import figures, map_store

router = APIRouter()


@router.get(
    "/{map_id}/arrays",
    response_model=MapArraysOut,
    summary="Per-cell arrays of a map in one compact answer (what the dashboard draws)",
    description="Every array has one entry per cell, index = cell = row * n_cols + col (row 0 "
    "at the bottom; hexagonal maps shift odd rows right by half a cell). `null` where a "
    "statistic is undefined (no galaxy, no secure spectrum). `umatrix` is the mean "
    "feature-space distance of a cell's weights to its neighbours'. `summary` is the coverage "
    "summary of `GET /v1/maps/{id}/coverage`; with `catalogue_id` (a photometric catalogue, "
    "or an occupation catalogue) `n_phot` and the summary are that catalogue's counts.",
    responses={**NOT_FOUND, **NOT_READY},
)
def map_arrays(
    map_id: IdPath, session: SessionDep, _auth: ReadDep, catalogue_id: CatalogueQuery = None
) -> MapArraysOut:
    m = map_store.get_map(session, map_id)
    return MapArraysOut.model_validate(figures.dashboard_arrays(session, m, catalogue_id))
