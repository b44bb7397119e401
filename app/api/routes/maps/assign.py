"""Assignment of new photometry to a map's cells: JSON rows, or a CSV / Parquet / FITS body."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api.deps import FactoryDep, IdPath, ReadDep, SettingsDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY, ready_map
from app.schemas import AssignIn, AssignOut, ErrorResponse, OnInvalidName
from app.services import assignment
from app.services.errors import InvalidInputError, RowError
from som.tables import TableReader, detect_format
from som.vocabulary import OnInvalid

router = APIRouter()

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
_FILE_TYPES = (
    "text/csv",
    "application/vnd.apache.parquet",
    "application/x-parquet",
    "application/fits",
    "image/fits",
    "application/octet-stream",
)


def _rows_from_file(body: bytes, ctype: str, tmp_dir: Path | None) -> pd.DataFrame:
    """The rows of a catalogue sent as the request body (som.tables reads it; a file it
    cannot read is a 422 naming the file, column and row, see app.api.errors)."""
    suffix = {"text/csv": ".csv", "application/fits": ".fits"}.get(ctype, "")
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=tmp_dir) as fh:
        fh.write(body)
        fh.flush()
        path = Path(fh.name)
        fmt = detect_format(path, f"request{suffix}")
        reader = TableReader(path, fmt, name="request body")
        return reader.read(list(reader.columns))


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
    responses={
        **NOT_FOUND,
        **NOT_READY,
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "The assignments (JSON, or CSV with `format=csv`)",
        },
        413: {"model": ErrorResponse},
        415: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
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
    on_invalid: OnInvalidName = OnInvalid.skip,
    flux_unit: Annotated[str | None, Query(max_length=32)] = None,
) -> Any:
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
    elif ctype in _FILE_TYPES:
        frame = await run_in_threadpool(_rows_from_file, body, ctype, settings.upload_tmp_dir)
        file = "request body"
    else:
        raise HTTPException(
            status_code=415,
            detail=f"unsupported content type {ctype or '(none)'!r}: send application/json "
            "rows or a text/csv, Parquet or FITS body",
        )

    def work():
        with factory() as session:
            m = ready_map(session, map_id)
            rows = assignment.photometry_rows(frame, file, preset, mapping, **options)
            return assignment.assign_rows(session, m, rows, include_pz, settings.max_assign_rows)

    out = await run_in_threadpool(work)
    if format == "csv":
        csv_frame = out.frame.copy()
        for col in ("pz_phot", "pz_spec"):
            if col in csv_frame:
                csv_frame[col] = [json.dumps(v) if v is not None else "" for v in csv_frame[col]]
        return Response(csv_frame.to_csv(index=False), media_type="text/csv")
    return await run_in_threadpool(_answer, out, map_id)


def _answer(out: assignment.AssignOutput, map_id: int) -> AssignOut:
    n = len(out.frame)
    return AssignOut(
        map_id=map_id,
        n=n,
        n_assigned=n - out.n_unassigned,
        n_unassigned=out.n_unassigned,
        z_edges=out.z_edges,
        results=assignment.assign_results(out),
    )
