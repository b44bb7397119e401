"""Spectroscopic targets for a map's gaps, and target lists saved as snapshots."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.api.deps import ApiKeyDep, IdPath, ReadDep, SessionDep
from app.api.routes.maps._common import (
    NOT_FOUND,
    NOT_READY,
    TABLE_DOWNLOADS,
    CatalogueIdQuery,
    OccupationIdQuery,
    ready_map,
    table_response,
)
from app.schemas import (
    Band,
    ErrorResponse,
    TargetListFull,
    TargetListOut,
    TargetsOut,
    TargetsQuery,
)
from app.services import ledger, map_store
from app.services import occupation as occupation_service
from app.services import targets as target_service
from app.services.map_queries import TargetChoice, select_targets

router = APIRouter()


@router.get(
    "/{map_id}/targets",
    response_model=TargetsOut,
    summary="Spectroscopic targets for the gaps (JSON, CSV or FITS)",
    description="C3R2-style: the most populated uncovered cells first, the source closest to "
    "each cell's weight vector first, round-robin over cells up to `per_cell`, cut at the "
    "budget (targets or hours of a simple exposure-time model).",
    responses={**NOT_FOUND, **NOT_READY, **TABLE_DOWNLOADS},
)
def targets(
    map_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    budget: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
    budget_hours: Annotated[float | None, Query(ge=0, le=1e6)] = None,
    mag_band: Annotated[
        Band | None, Query(description="Band of the magnitude limit (one of the map's).")
    ] = None,
    mag_limit: Annotated[float | None, Query(ge=-10, le=50)] = None,
    per_cell: Annotated[int, Query(ge=1, le=1000)] = 1,
    occupation_id: OccupationIdQuery = None,
    catalogue_id: CatalogueIdQuery = None,
    format: Literal["json", "csv", "fits"] = "json",
) -> Any:
    m = ready_map(session, map_id)
    choice = TargetChoice(
        budget=budget,
        budget_hours=budget_hours,
        mag_band=mag_band,
        mag_limit=mag_limit,
        per_cell=per_cell,
        occupation_id=occupation_id,
        catalogue_id=catalogue_id,
    )
    chosen = select_targets(session, m, choice)
    if format != "json":
        name = f"somcal_map{m.id}_targets"
        return table_response(chosen.frame, chosen.params, name, format, m.id)
    ref = None
    if occupation_id is not None:
        ref = occupation_service.sample_ref(occupation_service.load(session, m, occupation_id)[0])
    elif catalogue_id is not None:
        ref = occupation_service.sample_ref(
            target_service.weighting_catalogue(session, None, catalogue_id)
        )
    return TargetsOut(
        map_id=m.id,
        catalogue=ref or occupation_service.sample_ref(None),
        n_targets=len(chosen.frame),
        n_outside_training=ledger.n_outside(session, m.id, "photometric"),
        params=chosen.params,
        targets=chosen.frame.to_dict(orient="records"),
    )


@router.post(
    "/{map_id}/target-lists",
    status_code=201,
    response_model=TargetListFull,
    summary="Compute a target list and save it as a snapshot",
    responses={**NOT_FOUND, **NOT_READY, 401: {"model": ErrorResponse}},
)
def save_target_list(
    map_id: IdPath, body: TargetsQuery, session: SessionDep, _key: ApiKeyDep
) -> TargetListFull:
    m = ready_map(session, map_id)
    chosen = select_targets(session, m, TargetChoice(**body.model_dump(exclude={"name"})))
    params = {**body.model_dump(), **chosen.params}
    tl = target_service.save_target_list(session, m, chosen.frame, params)
    session.commit()
    return TargetListFull(
        **TargetListOut.model_validate(tl).model_dump(),
        targets=chosen.frame.to_dict(orient="records"),
    )


@router.get(
    "/{map_id}/target-lists",
    response_model=list[TargetListOut],
    summary="Saved target lists of a map",
    responses=NOT_FOUND,
)
def list_target_lists(map_id: IdPath, session: SessionDep, _auth: ReadDep) -> list[TargetListOut]:
    m = map_store.get_map(session, map_id)
    return [TargetListOut.model_validate(t) for t in target_service.list_target_lists(session, m)]


@router.get(
    "/{map_id}/target-lists/{list_id}",
    response_model=TargetListFull,
    summary="A saved target list (JSON, CSV or FITS)",
    responses={**NOT_FOUND, **TABLE_DOWNLOADS},
)
def read_target_list(
    map_id: IdPath,
    list_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    format: Literal["json", "csv", "fits"] = "json",
) -> Any:
    m = map_store.get_map(session, map_id)
    tl, frame = target_service.get_target_list(session, m, list_id)
    if format != "json":
        return table_response(frame, tl.params, f"somcal_map{m.id}_targetlist{tl.id}", format, m.id)
    return TargetListFull(
        **TargetListOut.model_validate(tl).model_dump(), targets=frame.to_dict(orient="records")
    )
