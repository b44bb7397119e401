"""Occupation catalogues of a map: a survey's per-cell counts (uploaded here as the table
``somcal occupation --output`` or ``Occupation.write_parquet`` writes; computed on Dask by
``somcal occupation`` or, from a dataset on the server, by a queued job started here), and
their sky map of the uncovered share."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from app.api.deps import ApiKeyDep, IdPath, JobsDep, ReadDep, SessionDep, SettingsDep
from app.api.routes.catalogues import _spool
from app.api.routes.maps._common import NOT_FOUND, NOT_READY, ready_map
from app.schemas import (
    ErrorResponse,
    JobOut,
    OccupationComputeIn,
    OccupationJobAccepted,
    OccupationOut,
    OccupationSkyOut,
)
from app.services import map_store
from app.services import occupation as occupation_service
from app.services.jobs import get_job
from som.occupation import MAX_HEALPIX_ORDER

router = APIRouter()

_ERRORS = {
    **NOT_FOUND,
    **NOT_READY,
    401: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    422: {"model": ErrorResponse, "description": "Not an occupation table of this map"},
}


@router.post(
    "/{map_id}/occupations",
    response_model=OccupationOut,
    status_code=201,
    summary="Upload a survey's occupation of the map (per-cell counts, no rows)",
    description="A Parquet table as `Occupation.write_parquet` or `somcal occupation --output` "
    "writes it: columns axis, bin, cell, n, weight and the description in its metadata. "
    "Checked row by row against the map (cell count, cells, non-negative counts) before "
    "anything is stored; 200 with `duplicate: true` when the same file was stored already.",
    responses={200: {"model": OccupationOut, "description": "Already stored"}, **_ERRORS},
)
def upload_occupation(
    map_id: IdPath,
    session: SessionDep,
    settings: SettingsDep,
    key_name: ApiKeyDep,
    response: Response,
    file: Annotated[UploadFile, File(description="The occupation table (Parquet).")],
    name: Annotated[str | None, Form(max_length=255)] = None,
) -> OccupationOut:
    m = ready_map(session, map_id)
    filename = (file.filename or "occupation.parquet").rsplit("/", 1)[-1]
    path, _, _ = _spool(file, settings.upload_tmp_dir, settings.max_upload_bytes)
    try:
        reg = occupation_service.register_file(session, m, path, filename, name, key_name)
    finally:
        path.unlink(missing_ok=True)
    response.status_code = 200 if reg.duplicate else 201
    return OccupationOut.model_validate(
        occupation_service.describe(session, reg.catalogue, reg.duplicate)
    )


@router.post(
    "/{map_id}/occupations/compute",
    response_model=OccupationJobAccepted,
    status_code=202,
    summary="Count a survey on the map from a dataset on the server (a background job)",
    description="The dataset (Parquet file or directory, HATS catalogue, or `somcal assign "
    "--dask` output of this map) must lie in the server's data directories "
    "(SOMCAL_DATA_DIRS), every file of it included. Returns at once with the queued job; "
    "follow `GET /v1/jobs/{id}` (progress per partition). Its result names the occupation "
    "catalogue; a failed partition fails the job with the file, row groups and reason, and "
    "nothing is stored.",
    responses={**_ERRORS, 403: {"model": ErrorResponse, "description": "Outside the data "
               "directories, or none configured"}},
)  # fmt: skip
def compute_occupation(
    map_id: IdPath,
    body: OccupationComputeIn,
    session: SessionDep,
    settings: SettingsDep,
    jobs: JobsDep,
    key_name: ApiKeyDep,
    response: Response,
) -> OccupationJobAccepted:
    m = ready_map(session, map_id)
    job, source, n_files = occupation_service.queue_compute(
        session, jobs, m, body, settings.data_dirs, settings.dask_schedulers, key_name
    )
    session.commit()
    jobs.start(job.id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return OccupationJobAccepted(
        map_id=m.id, dataset=str(source), n_files=n_files,
        job=JobOut.model_validate(get_job(session, job.id)),
    )  # fmt: skip


@router.get(
    "/{map_id}/occupations",
    response_model=list[OccupationOut],
    summary="Occupation catalogues of the map",
    responses=NOT_FOUND,
)
def list_occupations(map_id: IdPath, session: SessionDep, _auth: ReadDep) -> list[OccupationOut]:
    m = map_store.get_map(session, map_id)
    return [
        OccupationOut.model_validate(occupation_service.describe(session, c))
        for c in occupation_service.list_for_map(session, m)
    ]


@router.get(
    "/{map_id}/occupations/{catalogue_id}",
    response_model=OccupationOut,
    summary="One occupation catalogue: provenance, counters and splits",
    responses={**NOT_FOUND, 422: {"model": ErrorResponse}},
)
def read_occupation(
    map_id: IdPath, catalogue_id: IdPath, session: SessionDep, _auth: ReadDep
) -> OccupationOut:
    m = map_store.get_map(session, map_id)
    cat, row = occupation_service.occupation_row(session, catalogue_id)
    if row.map_id != m.id:
        from app.services.errors import NotFoundError

        raise NotFoundError(f"occupation catalogue {cat.id} is not of map {m.id}")
    return OccupationOut.model_validate(occupation_service.describe(session, cat))


@router.get(
    "/{map_id}/occupations/{catalogue_id}/sky",
    response_model=OccupationSkyOut,
    summary="Per HEALPix pixel: galaxies and the share in cells without spectroscopy",
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                          "application/fits": {"schema": {"type": "string",
                                                          "format": "binary"}}},
              "description": "JSON; with `format=png` the sky map (Mollweide); with "
              "`format=fits` a HEALPix map (NESTED, healpy's convention)"},
        **NOT_FOUND, **NOT_READY, 422: {"model": ErrorResponse},
    },
)  # fmt: skip
def occupation_sky(
    map_id: IdPath,
    catalogue_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    format: Literal["json", "png", "fits"] = "json",
    order: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_HEALPIX_ORDER,
            description="Read the sky split degraded to this coarser HEALPix order.",
        ),
    ] = None,  # fmt: skip
) -> OccupationSkyOut | Response:
    m = ready_map(session, map_id)
    occ, frame = occupation_service.sky(session, m, catalogue_id, order)
    if format == "fits":
        data = occupation_service.sky_fits(occ, frame, m, catalogue_id)
        return Response(data, media_type="application/fits")
    if format == "png":
        from som.plotting import figure_to_png, plot_uncovered_sky

        fig = plot_uncovered_sky(
            frame["pixel"].to_numpy(), frame["fraction_uncovered"].to_numpy(),
            occ.healpix_order, title=f"map {m.id}, occupation {catalogue_id}",
        )  # fmt: skip
        return Response(figure_to_png(fig), media_type="image/png")
    return OccupationSkyOut(
        map_id=m.id,
        catalogue_id=catalogue_id,
        healpix_order=int(occ.healpix_order),
        k=m.min_secure,
        pixel=frame["pixel"].astype(int).tolist(),
        n_galaxies=frame["n_galaxies"].astype(int).tolist(),
        n_uncovered=frame["n_uncovered"].astype(int).tolist(),
        fraction_uncovered=frame["fraction_uncovered"].astype(float).tolist(),
    )
