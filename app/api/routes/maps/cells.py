"""A map's cells: the list with their statistics, and one cell in detail."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from app.api.deps import IdPath, ReadDep, SessionDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY, ready_map
from app.schemas import CellDetail, CellList
from app.services import coverage as coverage_service
from app.services import ledger

router = APIRouter()


@router.get(
    "/{map_id}/cells",
    response_model=CellList,
    summary="Cells with their statistics, filtered and paginated",
    responses={**NOT_FOUND, **NOT_READY},
)
def list_cells(
    map_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    covered: bool | None = None,
    occupied: bool | None = Query(None, description="Only cells holding photometric sources."),
    min_phot: Annotated[int, Query(ge=0)] = 0,
    order: Literal["cell", "n_phot", "n_spec_secure"] = "cell",
    limit: Annotated[int, Query(ge=1, le=10000)] = 500,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> CellList:
    m = ready_map(session, map_id)
    frame = ledger.cells_frame(session, m.id)
    keep = frame["n_phot"] >= min_phot
    if covered is not None:
        keep &= frame["covered"] == covered
    if occupied is not None:
        keep &= (frame["n_phot"] > 0) == occupied
    frame = frame[keep]
    if order != "cell":
        # The frame is in cell order and indexed by cell (so sorting by "cell" as a column
        # is ambiguous to pandas): a stable sort keeps ties in cell order.
        frame = frame.sort_values(order, ascending=False, kind="stable")
    page = frame.iloc[offset : offset + limit]
    return CellList(
        map_id=m.id,
        items=page.to_dict(orient="records"),
        total=len(frame),
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{map_id}/cells/{cell}",
    response_model=CellDetail,
    summary="One cell: weight vector as colours, statistics, p(z), neighbours, spectra",
    responses={**NOT_FOUND, **NOT_READY},
)
def read_cell(
    map_id: IdPath,
    cell: Annotated[int, PathParam(ge=0, le=2**31 - 1)],
    session: SessionDep,
    _auth: ReadDep,
) -> CellDetail:
    m = ready_map(session, map_id)
    return CellDetail.model_validate(coverage_service.cell_detail(session, m, cell))
