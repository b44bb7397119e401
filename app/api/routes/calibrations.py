"""Deep/wide calibrations: /v1/calibrations (a resource of its own: it ties two maps and
several catalogues, so it belongs under none of them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from app.api.deps import ApiKeyDep, IdPath, JobsDep, ReadDep, SessionDep
from app.api.routes.maps._common import TABLE_DOWNLOADS, table_response
from app.schemas import (
    Band,
    CalibrationDeleted,
    CalibrationIn,
    CalibrationList,
    CalibrationNzOut,
    CalibrationOut,
    CalibrationTargetsOut,
    ErrorResponse,
)
from app.services import deepwide

router = APIRouter(prefix="/v1/calibrations", tags=["calibrations"])

_NOT_FOUND = {404: {"model": ErrorResponse, "description": "Unknown calibration"}}
_NO_NZ = {
    409: {
        "model": ErrorResponse,
        "description": "No n(z): not computed yet, failed (the reason), or an input was deleted",
    }
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    "",
    status_code=202,
    response_model=CalibrationOut,
    summary="Create a deep/wide calibration; its n(z) is computed as a job",
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse, "description": "Unknown map or catalogue"},
        409: {"model": ErrorResponse, "description": "A map is not ready"},
        422: {"model": ErrorResponse, "description": "Bands do not match a map, bad choice"},
    },
)
def create_calibration(
    body: CalibrationIn, session: SessionDep, jobs: JobsDep, _key: ApiKeyDep
) -> CalibrationOut:
    c, job = deepwide.create(session, body)
    session.commit()
    jobs.start(job.id)
    return CalibrationOut(**deepwide.describe(c))


@router.get("", response_model=CalibrationList, summary="List deep/wide calibrations")
def list_calibrations(session: SessionDep, _auth: ReadDep) -> CalibrationList:
    return CalibrationList(
        items=[CalibrationOut(**deepwide.describe(c)) for c in deepwide.list_all(session)]
    )


@router.get(
    "/{calibration_id}",
    response_model=CalibrationOut,
    summary="A calibration: status, per-bin ⟨z⟩, its ensemble spread, N_eff, weight "
    "without spectra",
    responses=_NOT_FOUND,
)
def read_calibration(calibration_id: IdPath, session: SessionDep, _auth: ReadDep) -> CalibrationOut:
    return CalibrationOut(**deepwide.describe(deepwide.get(session, calibration_id)))


@router.post(
    "/{calibration_id}/recompute",
    status_code=202,
    response_model=CalibrationOut,
    summary="Queue a recomputation (it also happens by itself when inputs change)",
    responses={**_NOT_FOUND, 401: {"model": ErrorResponse}},
)
def recompute_calibration(
    calibration_id: IdPath, session: SessionDep, jobs: JobsDep, _key: ApiKeyDep
) -> CalibrationOut:
    c = deepwide.get(session, calibration_id)
    job = deepwide.recompute(session, c)
    session.commit()
    jobs.start(job.id)
    return CalibrationOut(**deepwide.describe(c))


@router.get(
    "/{calibration_id}/nz",
    response_model=CalibrationNzOut,
    summary="The deep/wide n(z) per bin and its realisations (JSON, qp, SACC or 2pt FITS)",
    responses={
        200: {
            "content": {"application/x-hdf5": _BINARY, "application/fits": _BINARY},
            "description": "JSON, or with `format=` a file holding the fiducial n(z) and the "
            "realisations: `qp` a qp.hist ensemble (HDF5), `sacc` a SACC file (one NZ tracer "
            "per bin, realisations as extra columns), `fits` a CosmoSIS/2pt NZ_SOURCE table "
            "(realisations in the NZ_SOURCE_REALISATIONS image)",
        },
        **_NOT_FOUND,
        **_NO_NZ,
        501: {"model": ErrorResponse, "description": "Format needs a package not installed"},
    },
)
def calibration_nz(
    calibration_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    format: Literal["json", "qp", "sacc", "fits"] = Query(
        "json", description="json, or a file: qp, sacc or fits (CosmoSIS/2pt)"
    ),
    include_realisations: bool = Query(False, description="JSON: add every realisation."),
) -> Any:
    res = deepwide.result(session, deepwide.get(session, calibration_id))
    if format == "json":
        return CalibrationNzOut(**deepwide.nz_answer(res, include_realisations))
    content, media, suffix = deepwide.nz_file(res, format)
    return Response(
        content,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="nz_calibration{calibration_id}{suffix}"'
        },
    )


@router.get(
    "/{calibration_id}/plots/nz.png",
    response_class=Response,
    summary="The per-bin n(z) with its ensemble's ±1σ band, as PNG",
    responses={
        200: {"content": {"image/png": _BINARY}, "description": "PNG image"},
        **_NOT_FOUND,
        **_NO_NZ,
    },
)
def calibration_plot(
    calibration_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    dpi: Annotated[float | None, Query(ge=20, le=300)] = None,
) -> Response:
    res = deepwide.result(session, deepwide.get(session, calibration_id))
    return Response(deepwide.nz_png(res, dpi=dpi), media_type="image/png")


@router.get(
    "/{calibration_id}/targets",
    response_model=CalibrationTargetsOut,
    summary="Targets for the deep cells whose missing redshifts weigh most in the wide n(z)",
    description="C3R2 aimed at the deep/wide n(z): deep cells without a spectrum ranked by "
    "w_c = Σ_ĉ p(ĉ) p(c|ĉ) (in one bin with `bin=`, else over the binned wide sample), the "
    "deep catalogue's source closest to each cell's weight vector first, round-robin up to "
    "`per_cell`, cut at the budget (targets or hours of a simple exposure-time model).",
    responses={**_NOT_FOUND, **_NO_NZ, **TABLE_DOWNLOADS},
)
def calibration_targets(
    calibration_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    bin: Annotated[int | None, Query(ge=0, le=1000, description="One tomographic bin.")] = None,
    budget: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
    budget_hours: Annotated[float | None, Query(ge=0, le=1e6)] = None,
    mag_band: Annotated[
        Band | None, Query(description="Band of the magnitude limit (one of the deep map's).")
    ] = None,
    mag_limit: Annotated[float | None, Query(ge=-10, le=50)] = None,
    per_cell: Annotated[int, Query(ge=1, le=1000)] = 1,
    format: Literal["json", "csv", "fits"] = "json",
) -> Any:
    c = deepwide.get(session, calibration_id)
    res = deepwide.result(session, c)
    frame, params = deepwide.targets(
        session,
        res,
        tomo_bin=bin,
        budget=budget,
        budget_hours=budget_hours,
        mag_band=mag_band,
        mag_limit=mag_limit,
        per_cell=per_cell,
    )
    if format != "json":
        name = f"somcal_calibration{c.id}_targets"
        return table_response(frame, params, name, format, c.deep_map_id or 0)
    return CalibrationTargetsOut(
        calibration_id=c.id,
        deep_map_id=c.deep_map_id or 0,
        n_targets=len(frame),
        params=params,
        targets=frame.to_dict(orient="records"),
    )


@router.delete(
    "/{calibration_id}",
    response_model=CalibrationDeleted,
    summary="Delete a calibration (its maps and catalogues stay)",
    responses={**_NOT_FOUND, 401: {"model": ErrorResponse}},
)
def delete_calibration(
    calibration_id: IdPath, session: SessionDep, _key: ApiKeyDep
) -> CalibrationDeleted:
    deepwide.delete(session, deepwide.get(session, calibration_id))
    session.commit()
    return CalibrationDeleted(deleted=calibration_id)
