"""The map itself: train one (a background job), list, read, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from app.api.deps import ApiKeyDep, FactoryDep, IdPath, JobsDep, ReadDep, SessionDep, SettingsDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY
from app.models import Map
from app.schemas import (
    ErrorResponse,
    JobOut,
    MapDeleted,
    MapList,
    MapOut,
    MapStatusName,
    TrainAccepted,
    TrainMapIn,
)
from app.services import map_store, training
from app.services.errors import ConflictError
from app.services.jobs import get_job
from som.vocabulary import MapStatus

router = APIRouter()


@router.post(
    "",
    status_code=202,
    response_model=TrainAccepted,
    summary="Train a map on a photometric catalogue (a background job)",
    description="Returns at once with the queued map and its job; follow `GET /v1/jobs/{id}`. "
    "When the job succeeds the map is ready: every ingested source and spectrum is assigned "
    "to it and its cell statistics and coverage are computed.",
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
)
def train_map(
    body: TrainMapIn,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    factory: FactoryDep,
    jobs: JobsDep,
    _key: ApiKeyDep,
) -> TrainAccepted:
    m, job_id = training.create_training(session, jobs, body, settings.coverage_min_secure)
    session.commit()
    jobs.start(
        job_id,
        training.run_training(factory, m.id, settings.match_radius_arcsec),
        on_failure=training.mark_failed(factory),
    )
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    job = get_job(session, job_id)
    return TrainAccepted(map=MapOut.model_validate(m), job=JobOut.model_validate(job))


@router.get("", response_model=MapList, summary="List maps")
def list_maps(session: SessionDep, _auth: ReadDep, status: MapStatusName | None = None) -> MapList:
    query = select(Map).order_by(Map.id)
    if status:
        query = query.where(Map.status == status)
    items = session.scalars(query).all()
    return MapList(items=[MapOut.model_validate(m) for m in items], total=len(items))


@router.get("/{map_id}", response_model=MapOut, summary="One map", responses=NOT_FOUND)
def read_map(map_id: IdPath, session: SessionDep, _auth: ReadDep) -> MapOut:
    return MapOut.model_validate(map_store.get_map(session, map_id))


@router.delete(
    "/{map_id}",
    response_model=MapDeleted,
    summary="Delete a map with its cells and assignments",
    responses={**NOT_FOUND, **NOT_READY, 401: {"model": ErrorResponse}},
)
def delete_map(map_id: IdPath, session: SessionDep, _key: ApiKeyDep) -> MapDeleted:
    m = map_store.get_map(session, map_id)
    if m.status in (MapStatus.queued, MapStatus.training):
        raise ConflictError(f"map {map_id} is {m.status}; wait for its job to finish")
    session.delete(m)
    session.commit()
    return MapDeleted(deleted=map_id)
