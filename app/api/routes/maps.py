"""Maps: training, assignment, cells, coverage, gaps, targets and n(z): /v1/maps."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from app.api.deps import (
    ApiKeyDep,
    FactoryDep,
    IdPath,
    JobsDep,
    ReadDep,
    SessionDep,
    SettingsDep,
)
from app.models import Map
from app.schemas import (
    AssignIn,
    AssignOut,
    Band,
    CellDetail,
    CellList,
    CoverageOut,
    ErrorResponse,
    GapsOut,
    JobOut,
    MapList,
    MapOut,
    NzIn,
    NzOut,
    TargetListFull,
    TargetListOut,
    TargetsOut,
    TargetsQuery,
    TrainAccepted,
    TrainMapIn,
)
from app.services import calibrate, ledger, map_store, training
from app.services.errors import ConflictError, InvalidInputError, RowError
from app.services.jobs import get_job
from app.services.tables import TableFile, detect_format
from som.vocabulary import MapStatus, OnInvalid

router = APIRouter(prefix="/v1/maps", tags=["maps"])

_404 = {404: {"model": ErrorResponse, "description": "Unknown map or cell"}}
_409 = {409: {"model": ErrorResponse, "description": "Map not ready"}}


def _ready_map(session, map_id: int) -> Map:
    m = map_store.get_map(session, map_id)
    map_store.require_ready(m)
    return m


def _json(payload: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status_code)


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
def list_maps(
    session: SessionDep,
    _auth: ReadDep,
    status: MapStatus | None = None,
) -> MapList:
    query = select(Map).order_by(Map.id)
    if status:
        query = query.where(Map.status == status)
    items = session.scalars(query).all()
    return MapList(items=[MapOut.model_validate(m) for m in items], total=len(items))


@router.get("/{map_id}", response_model=MapOut, summary="One map", responses=_404)
def read_map(map_id: IdPath, session: SessionDep, _auth: ReadDep) -> MapOut:
    return MapOut.model_validate(map_store.get_map(session, map_id))


@router.delete(
    "/{map_id}",
    summary="Delete a map with its cells and assignments",
    responses={**_404, **_409, 401: {"model": ErrorResponse}},
)
def delete_map(map_id: IdPath, session: SessionDep, _key: ApiKeyDep) -> dict[str, int]:
    m = map_store.get_map(session, map_id)
    if m.status in ("queued", "training"):
        raise ConflictError(f"map {map_id} is {m.status}; wait for its job to finish")
    session.delete(m)
    session.commit()
    return {"deleted": map_id}


# ----------------------------------------------------------------------------- assign
_ASSIGN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AssignIn"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/fits": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _rows_from_file(body: bytes, ctype: str, tmp_dir: Path | None):
    suffix = {"text/csv": ".csv", "application/fits": ".fits"}.get(ctype, "")
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=tmp_dir) as fh:
        fh.write(body)
        fh.flush()
        path = Path(fh.name)
        fmt = detect_format(path, f"request{suffix}")
        table = TableFile(path, fmt, "request body")
        return table, table.read(list(table.columns))


def _assign_frame(request_rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(request_rows)
    if frame.empty:
        raise InvalidInputError("no rows to assign")
    return frame


@router.post(
    "/{map_id}/assign",
    response_model=AssignOut,
    summary="Cells of new photometry: JSON rows, or a CSV / Parquet / FITS body",
    description="For each source: its cell, distance to the cell's weight vector, the cell's "
    "redshift statistics and whether it is covered; `include_pz` adds p(z) from photo-z and "
    "from secure spectra (densities on `z_edges`). `format=csv` answers in CSV.",
    responses={**_404, **_409, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    openapi_extra=_ASSIGN_BODY,
)
async def assign(
    map_id: IdPath,
    request: Request,
    factory: FactoryDep,
    settings: SettingsDep,
    _auth: ReadDep,
    include_pz: bool = False,
    format: Literal["json", "csv"] = "json",
    on_invalid: OnInvalid = OnInvalid.skip,
    flux_unit: Annotated[str | None, Query(max_length=32)] = None,
):
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        raise InvalidInputError("empty request body; send JSON rows or a catalogue file")
    preset = mapping = None
    options: dict[str, Any] = {"on_invalid": on_invalid, "flux_unit": flux_unit}
    if ctype == "application/json":
        try:
            parsed = AssignIn.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidInputError(
                "invalid assign request",
                [
                    RowError(None, ".".join(str(p) for p in e["loc"]), None, e["msg"])
                    for e in exc.errors()[:100]
                ],
            ) from exc
        include_pz = include_pz or parsed.include_pz
        preset, mapping = parsed.preset, parsed.mapping
        options = {
            "on_invalid": parsed.on_invalid,
            "flux_unit": parsed.flux_unit,
            "negative_error": parsed.negative_error,
            "bands": [b.model_dump(exclude_none=True) for b in parsed.bands or []] or None,
        }
        frame, file = _assign_frame(parsed.rows), "request"
    elif ctype in (
        "text/csv",
        "application/vnd.apache.parquet",
        "application/x-parquet",
        "application/fits",
        "image/fits",
        "application/octet-stream",
    ):
        _, frame = await run_in_threadpool(_rows_from_file, body, ctype, settings.upload_tmp_dir)
        file = "request body"
    else:
        raise HTTPException(
            status_code=415,
            detail=f"unsupported content type {ctype or '(none)'!r}: send application/json "
            "rows or a text/csv, Parquet or FITS body",
        )

    def work():
        with factory() as session:
            m = _ready_map(session, map_id)
            rows = calibrate.photometry_rows(frame, file, preset, mapping, **options)
            return calibrate.assign_rows(session, m, rows, include_pz, settings.max_assign_rows)

    out = await run_in_threadpool(work)
    if format == "csv":
        csv_frame = out.frame.copy()
        for col in ("pz_phot", "pz_spec"):
            if col in csv_frame:
                csv_frame[col] = [json.dumps(v) if v is not None else "" for v in csv_frame[col]]
        return Response(csv_frame.to_csv(index=False), media_type="text/csv")
    return Response(calibrate.assign_json(out, map_id), media_type="application/json")


# ----------------------------------------------------------------------------- cells
@router.get(
    "/{map_id}/cells",
    response_model=CellList,
    summary="Cells with their statistics, filtered and paginated",
    responses={**_404, **_409},
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
):
    m = _ready_map(session, map_id)
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
    return _json(
        {
            "map_id": m.id,
            "items": calibrate.target_records(page.reset_index(drop=True)),
            "total": len(frame),
            "limit": limit,
            "offset": offset,
        }
    )


@router.get(
    "/{map_id}/cells/{cell}",
    response_model=CellDetail,
    summary="One cell: weight vector as colours, statistics, p(z), neighbours, spectra",
    responses={**_404, **_409},
)
def read_cell(
    map_id: IdPath,
    cell: Annotated[int, PathParam(ge=0, le=2**31 - 1)],
    session: SessionDep,
    _auth: ReadDep,
) -> Any:
    m = _ready_map(session, map_id)
    return _json(calibrate.cell_detail(session, m, cell))


# ----------------------------------------------------------------------------- coverage
def _bins_param(value: str | None, name: str) -> Any:
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if "," in text:
            edges = [float(v) for v in text.split(",")]
            if len(edges) < 2 or any(not np.isfinite(e) for e in edges):
                raise ValueError
            return np.asarray(edges)
        n = int(text)
        if not 1 <= n <= 1000:
            raise ValueError
        return n
    except ValueError as exc:
        raise InvalidInputError(
            f"{name} must be a number of bins (1-1000) or comma-separated edges",
            [RowError(None, name, None, f"invalid value {value!r}")],
        ) from exc


@router.get(
    "/{map_id}/coverage",
    response_model=CoverageOut,
    summary="Spectroscopic coverage: summary and per-cell arrays",
    responses={**_404, **_409},
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
):
    m = _ready_map(session, map_id)
    mb = _bins_param(mag_bins, "mag_bins")
    zb = _bins_param(z_bins, "z_bins")
    if mb is not None and mag_band is None:
        raise InvalidInputError("mag_bins given without mag_band")
    return _json(calibrate.coverage(session, m, mag_band, mb if mb is not None else 10, zb))


@router.get(
    "/{map_id}/gaps",
    response_model=GapsOut,
    summary="Uncovered cells ranked by the galaxies they hold",
    responses={**_404, **_409},
)
def gaps(
    map_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    limit: Annotated[int, Query(ge=1, le=100000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
):
    m = _ready_map(session, map_id)
    return _json(calibrate.gaps(session, m, limit, offset))


@router.get(
    "/{map_id}/targets",
    response_model=TargetsOut,
    summary="Spectroscopic targets for the gaps (JSON, CSV or FITS)",
    description="C3R2-style: the most populated uncovered cells first, the source closest to "
    "each cell's weight vector first, round-robin over cells up to `per_cell`, cut at the "
    "budget (targets or hours of a simple exposure-time model).",
    responses={
        **_404,
        **_409,
        200: {"content": {"text/csv": {}, "application/fits": {}}},
    },
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
    format: Literal["json", "csv", "fits"] = "json",
):
    m = _ready_map(session, map_id)
    frame = calibrate.targets(
        session,
        m,
        budget=budget,
        budget_hours=budget_hours,
        mag_band=mag_band,
        mag_limit=mag_limit,
        per_cell=per_cell,
    )
    params = {
        "budget": budget,
        "budget_hours": budget_hours,
        "mag_band": calibrate.map_mag_band(m, mag_band),
        "mag_limit": mag_limit,
        "per_cell": per_cell,
        "k": m.min_secure,
    }
    if format != "json":
        return _table_response(frame, params, f"somcal_map{m.id}_targets", format, m.id)
    return _json(
        {
            "map_id": m.id,
            "n_targets": len(frame),
            "n_outside_training": ledger.n_outside(session, m.id, "photometric"),
            "params": params,
            "targets": calibrate.target_records(frame),
        }
    )


def _table_response(
    frame: pd.DataFrame, params: dict[str, Any], name: str, format: str, map_id: int
) -> Response:
    if format == "csv":
        return Response(
            frame.to_csv(index=False),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    from astropy.table import Table

    table = Table.from_pandas(frame)
    for key, value in params.items():
        if value is not None and not isinstance(value, dict | list):
            table.meta[key.upper()[:8]] = value
    table.meta["MAP_ID"] = map_id
    buf = io.BytesIO()
    table.write(buf, format="fits")
    return Response(
        buf.getvalue(),
        media_type="application/fits",
        headers={"Content-Disposition": f'attachment; filename="{name}.fits"'},
    )


@router.post(
    "/{map_id}/target-lists",
    status_code=201,
    response_model=TargetListFull,
    summary="Compute a target list and save it as a snapshot",
    responses={**_404, **_409, 401: {"model": ErrorResponse}},
)
def save_target_list(map_id: IdPath, body: TargetsQuery, session: SessionDep, _key: ApiKeyDep):
    m = _ready_map(session, map_id)
    frame = calibrate.targets(
        session,
        m,
        budget=body.budget,
        budget_hours=body.budget_hours,
        mag_band=body.mag_band,
        mag_limit=body.mag_limit,
        per_cell=body.per_cell,
    )
    params = {
        **body.model_dump(),
        "mag_band": calibrate.map_mag_band(m, body.mag_band),
        "k": m.min_secure,
    }
    tl = calibrate.save_target_list(session, m, frame, params)
    session.commit()
    out = TargetListOut.model_validate(tl).model_dump(mode="json")
    return _json({**out, "targets": calibrate.target_records(frame)}, status_code=201)


@router.get(
    "/{map_id}/target-lists",
    response_model=list[TargetListOut],
    summary="Saved target lists of a map",
    responses=_404,
)
def list_target_lists(map_id: IdPath, session: SessionDep, _auth: ReadDep):
    m = map_store.get_map(session, map_id)
    return [TargetListOut.model_validate(t) for t in calibrate.list_target_lists(session, m)]


@router.get(
    "/{map_id}/target-lists/{list_id}",
    response_model=TargetListFull,
    summary="A saved target list (JSON, CSV or FITS)",
    responses={**_404, 200: {"content": {"text/csv": {}, "application/fits": {}}}},
)
def read_target_list(
    map_id: IdPath,
    list_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    format: Literal["json", "csv", "fits"] = "json",
):
    m = map_store.get_map(session, map_id)
    tl, frame = calibrate.get_target_list(session, m, list_id)
    if format != "json":
        return _table_response(
            frame, tl.params, f"somcal_map{m.id}_targetlist{tl.id}", format, m.id
        )
    out = TargetListOut.model_validate(tl).model_dump(mode="json")
    return _json({**out, "targets": calibrate.target_records(frame)})


@router.post(
    "/{map_id}/nz",
    response_model=NzOut,
    summary="n(z) of a sample through the map, with bootstrap errors and uncovered fraction",
    responses={**_404, **_409, 422: {"model": ErrorResponse}},
)
def nz(map_id: IdPath, body: NzIn, session: SessionDep, settings: SettingsDep, _auth: ReadDep):
    m = _ready_map(session, map_id)
    if body.catalog_id is not None:
        from app.services.catalogs import get_catalogue

        cat = get_catalogue(session, body.catalog_id)
        cells, _, outside = calibrate.sample_assignments(session, m, cat.id)
        sample = {"catalog_id": cat.id, "n_rows": cat.n_rows, "n_assigned": len(cells)}
    else:
        rows = calibrate.photometry_rows(_assign_frame(body.rows or []), "request")
        out = calibrate.assign_rows(session, m, rows, False, settings.max_assign_rows)
        cells = out.frame["cell"].to_numpy(dtype=np.int64)
        # rows without a cell stay in the sample as before (uncovered); flagged ones apart
        outside = out.frame["outside_training"].to_numpy(dtype=bool) & (cells >= 0)
        sample = {"rows": len(cells), "n_assigned": int((cells >= 0).sum())}
    sample["n_outside_training"] = int(outside.sum())
    bins = np.asarray(body.bins, dtype=float) if body.bins is not None else None
    result = calibrate.nz(
        session, m, cells, bins, body.k, body.gold, body.n_boot, body.random_state, outside
    )
    return _json({**result, "sample": sample})
