"""Spectroscopic coverage of a map and its gaps (the uncovered cells)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import IdPath, ReadDep, SessionDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY, ready_map
from app.schemas import Band, CoverageOut, GapsOut
from app.services import coverage as coverage_service
from app.services.errors import InvalidInputError
from app.services.map_queries import parse_bins

router = APIRouter()

CatalogueQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**31 - 1,
        description="Count one photometric catalogue's rows, or an occupation catalogue of "
        "this map (a survey's per-cell counts), instead of every photometric row of the "
        "ledger.",
    ),
]


@router.get(
    "/{map_id}/coverage",
    response_model=CoverageOut,
    summary="Spectroscopic coverage: summary and per-cell arrays",
    responses={**NOT_FOUND, **NOT_READY},
)
def coverage(
    map_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    mag_band: Annotated[
        Band | None, Query(description="Break the coverage down by this band (one of the map's).")
    ] = None,
    mag_bins: str | None = Query(None, description="Number of bins or comma-separated edges."),
    z_bins: str | None = Query(None, description="Break down by photo-z: bins or edges."),
    catalogue_id: CatalogueQuery = None,
) -> CoverageOut:
    m = ready_map(session, map_id)
    mb = parse_bins(mag_bins, "mag_bins")
    zb = parse_bins(z_bins, "z_bins")
    if mb is not None and mag_band is None:
        raise InvalidInputError("mag_bins given without mag_band")
    if catalogue_id is not None:
        # an occupation's bins are its own: only asked for, or checked against, here
        return CoverageOut.model_validate(
            coverage_service.coverage(session, m, mag_band, mb, zb, catalogue_id=catalogue_id)
        )
    return CoverageOut.model_validate(
        coverage_service.coverage(session, m, mag_band, mb if mb is not None else 10, zb)
    )


@router.get(
    "/{map_id}/gaps",
    response_model=GapsOut,
    summary="Uncovered cells ranked by the galaxies they hold",
    responses={**NOT_FOUND, **NOT_READY},
)
def gaps(
    map_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    limit: Annotated[int, Query(ge=1, le=100000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    catalogue_id: CatalogueQuery = None,
) -> GapsOut:
    m = ready_map(session, map_id)
    return GapsOut.model_validate(coverage_service.gaps(session, m, limit, offset, catalogue_id))
