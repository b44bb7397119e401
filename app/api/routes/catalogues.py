"""Catalogue ingestion and management: /v1/catalogues."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.api.deps import ApiKeyDep, FactoryDep, IdPath, ReadDep, SessionDep, SettingsDep
from app.core.paths import resolve_data_path
from app.schemas import (
    CatalogueKind,
    CatalogueList,
    CatalogueOut,
    DeleteOut,
    ErrorItem,
    ErrorResponse,
    IngestFromPath,
    IngestKind,
    IngestOptions,
    IngestOut,
    PresetOut,
    PurgeOut,
    RestoreOut,
)
from app.services import catalogues as catalogue_service
from app.services import ingest as ingest_service
from app.services import presets
from app.services.errors import BadRequestError, InvalidInputError, RowError, TooLargeError
from app.services.hooks import (
    after_catalogue_deleted,
    after_catalogue_inserted,
    after_catalogue_restored,
)
from som.vocabulary import ChangeAction, OnInvalid, TableFormat, choices

router = APIRouter(prefix="/v1/catalogues", tags=["catalogues"])
# Clients written before "catalogue" became the one spelling: a permanent redirect that
# keeps the method and body (308), out of the documented schema.
moved = APIRouter(include_in_schema=False)


@moved.api_route("/v1/catalogs{rest:path}", methods=["GET", "POST", "DELETE"])
async def catalogs_moved(request: Request, rest: str) -> RedirectResponse:
    return RedirectResponse(str(request.url.replace(path="/v1/catalogues" + rest)), 308)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad options"},
    401: {"model": ErrorResponse, "description": "No API key"},
    403: {"model": ErrorResponse, "description": "Bad API key, or path outside data dirs"},
    404: {"model": ErrorResponse, "description": "Path not found"},
    413: {"model": ErrorResponse, "description": "Upload or row count over the limit"},
    415: {"model": ErrorResponse, "description": "Neither multipart nor JSON"},
    422: {"model": ErrorResponse, "description": "Invalid file: errors name file/column/row"},
}

_OPTION_FIELDS = (
    "name",
    "preset",
    "mapping",
    "secure_rule",
    "on_invalid",
    "skip_missing_redshift",
    "format",
    "flux_unit",
    "negative_error",
    "bands",
    "z_min",
    "check",
    "table_key",
)

_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string"},
                        "preset": {"type": "string", "example": "zcosmos"},
                        "mapping": {
                            "type": "string",
                            "description": "JSON object: somcal field -> column",
                            "example": '{"z_spec": "zpec"}',
                        },
                        "secure_rule": {
                            "type": "string",
                            "description": "JSON object, see SecureRule",
                            "example": '{"kind": "range", "min": 3, "max": 5, "modulo": 10}',
                        },
                        "on_invalid": {"type": "string", "enum": list(choices(OnInvalid))},
                        "skip_missing_redshift": {"type": "boolean"},
                        "format": {"type": "string", "enum": list(choices(TableFormat))},
                        "table_key": {
                            "type": "string",
                            "description": "Which table of a multi-table file: FITS HDU "
                            "EXTNAME or 0-based index, HDF5 key (see IngestOptions)",
                            "example": "LDAC_OBJECTS",
                        },
                    },
                }
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/IngestFromPath"}},
        },
    }
}


def _parse_options(form: dict[str, Any]) -> IngestOptions:
    data: dict[str, Any] = {}
    for key in _OPTION_FIELDS:
        value = form.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise BadRequestError(f"form field {key!r} must be text")
        if key in ("mapping", "secure_rule", "bands"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise BadRequestError(
                    f"form field {key!r} is not valid JSON: {exc.msg} at position {exc.pos}",
                    [RowError(None, key, None, "not valid JSON")],
                ) from exc
        elif key in ("skip_missing_redshift", "check"):
            value = value.strip().lower() in ("1", "true", "yes", "on")
        data[key] = value
    unknown = sorted(set(form) - set(_OPTION_FIELDS) - {"file"})
    if unknown:
        raise BadRequestError(f"unknown form field(s): {', '.join(unknown)}")
    try:
        return IngestOptions.model_validate(data)
    except ValidationError as exc:
        raise _options_error(exc) from exc


def _options_error(exc: ValidationError) -> InvalidInputError:
    errors = [
        RowError(None, ".".join(str(p) for p in e["loc"]) or None, None, e["msg"])
        for e in exc.errors()
    ]
    return InvalidInputError("invalid ingest options", errors)


def _spool(upload: UploadFile, directory: Path | None, max_bytes: int) -> tuple[Path, str, int]:
    """Copy the upload to a named temp file (readers need a path), hashing on the way."""
    suffix = "".join(Path(upload.filename or "").suffixes[-2:])[:20]
    fd, name = tempfile.mkstemp(prefix="somcal-upload-", suffix=suffix, dir=directory)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            while block := upload.file.read(1 << 20):
                size += len(block)
                if size > max_bytes:
                    raise TooLargeError(f"upload larger than the limit of {max_bytes} bytes")
                digest.update(block)
                out.write(block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name), digest.hexdigest(), size


def _result_out(result: ingest_service.IngestResult) -> IngestOut:
    base = CatalogueOut.model_validate(result.catalogue).model_dump()
    return IngestOut(
        **base,
        duplicate=result.duplicate,
        n_errors=result.n_errors,
        errors=[ErrorItem(**e.as_dict()) for e in result.errors],
        assigned_maps=result.assigned_maps,
        warnings=result.warnings,
    )


@router.get("/presets", response_model=list[PresetOut], summary="Column-mapping presets")
def list_presets(_auth: ReadDep) -> list[PresetOut]:
    return [PresetOut(**p) for p in presets.describe_presets()]


@router.post(
    "/{kind}",
    response_model=IngestOut,
    status_code=201,
    summary="Ingest a catalogue: multipart upload, or JSON {path} inside the data directories",
    description=(
        "201 with the new catalogue; 200 with `duplicate: true` and the existing catalogue "
        "when this file (same SHA-256) was already ingested as this kind. The ingest is one "
        "transaction: on any error nothing is stored. New spectra are assigned to every map "
        "and coverage is recomputed before the response."
    ),
    responses={200: {"model": IngestOut, "description": "Already ingested"}, **_ERRORS},
    openapi_extra=_INGEST_BODY,
)
async def ingest_catalogue(
    kind: IngestKind,
    request: Request,
    response: Response,
    settings: SettingsDep,
    factory: FactoryDep,
    key_name: ApiKeyDep,
) -> IngestOut:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    cleanup: Path | None = None
    sha = size = None
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=len(_OPTION_FIELDS) + 1)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInputError(
                    "multipart body needs a 'file' part holding the catalogue",
                    [RowError(None, "file", None, "missing file part")],
                )
            fields = {k: v for k, v in form.multi_items() if k != "file"}
            options = _parse_options(fields)
            filename = Path(upload.filename or "upload").name or "upload"
            path, sha, size = await run_in_threadpool(
                _spool, upload, settings.upload_tmp_dir, settings.max_upload_bytes
            )
            cleanup = path
        finally:
            await form.close()
    elif ctype == "application/json":
        try:
            body = IngestFromPath.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _options_error(exc) from exc
        options = body
        path = resolve_data_path(body.path, settings.data_dirs)
        filename = path.name
    else:
        raise _unsupported(ctype)

    req = ingest_service.IngestRequest(
        kind=kind,
        path=path,
        filename=filename,
        name=options.name,
        preset=options.preset,
        mapping=options.mapping,  # type: ignore[arg-type]
        secure_rule=options.secure_rule.as_dict() if options.secure_rule else None,
        on_invalid=options.on_invalid,
        skip_missing_redshift=options.skip_missing_redshift,
        file_format=options.format,
        sha256=sha,
        size_bytes=size,
        flux_unit=options.flux_unit,
        negative_error=options.negative_error,
        bands=options.declared_bands(),
        z_min=options.z_min,
        check=options.check,
        table_key=options.table_key,
    )
    try:
        result = await run_in_threadpool(
            ingest_service.ingest,
            factory,
            req,
            max_rows=settings.max_rows,
            after_insert=after_catalogue_inserted(settings.match_radius_arcsec, key_name),
        )
    finally:
        if cleanup is not None:
            cleanup.unlink(missing_ok=True)
    response.status_code = 200 if result.duplicate else 201
    return _result_out(result)


def _unsupported(ctype: str) -> HTTPException:
    return HTTPException(
        status_code=415,
        detail=f"unsupported content type {ctype or '(none)'!r}: send multipart/form-data with "
        "a 'file' part, or application/json with a 'path'",
    )


@router.get("", response_model=CatalogueList, summary="List catalogues")
def list_catalogues(
    session: SessionDep,
    _auth: ReadDep,
    kind: CatalogueKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    deleted: Annotated[
        bool, Query(description="List the deleted catalogues (restorable until purged) instead.")
    ] = False,
) -> CatalogueList:
    items, total = catalogue_service.list_catalogues(session, kind, limit, offset, deleted)
    return CatalogueList(
        items=[CatalogueOut.model_validate(c) for c in items],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{catalogue_id}",
    response_model=CatalogueOut,
    summary="One catalogue",
    responses={404: {"model": ErrorResponse}},
)
def read_catalogue(catalogue_id: IdPath, session: SessionDep, _auth: ReadDep) -> CatalogueOut:
    return CatalogueOut.model_validate(catalogue_service.get_catalogue(session, catalogue_id))


@router.delete(
    "/{catalogue_id}",
    response_model=DeleteOut,
    summary="Delete a catalogue: out of the ledger, coverage recomputed; reversible until purged",
    description=(
        "The catalogue and its rows leave everything that reads the ledger (coverage, gaps, "
        "targets, n(z), cells, deep/wide calibrations, outcome ingestion, listings) but are "
        "kept: `POST .../restore` brings them back, `POST .../purge` removes them for good. "
        "Logged with the API key's name and a coverage snapshot of every map."
    ),
    responses={404: {"model": ErrorResponse}, 401: {"model": ErrorResponse}},
)
def delete_catalogue(
    catalogue_id: IdPath, session: SessionDep, settings: SettingsDep, key_name: ApiKeyDep
) -> DeleteOut:
    cat, updated = catalogue_service.delete_catalogue(
        session, catalogue_id, after_catalogue_deleted(settings.match_radius_arcsec, key_name)
    )
    return DeleteOut(
        deleted=cat.id,
        kind=cat.kind,
        maps_updated=updated,
        restore=f"POST /v1/catalogues/{cat.id}/restore",
    )


@router.post(
    "/{catalogue_id}/restore",
    response_model=RestoreOut,
    summary="Restore a deleted catalogue: its rows are assigned again to every ready map",
    responses={
        404: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        409: {"model": ErrorResponse, "description": "Not deleted"},
    },
)
def restore_catalogue(
    catalogue_id: IdPath, session: SessionDep, settings: SettingsDep, key_name: ApiKeyDep
) -> RestoreOut:
    cat, placed = catalogue_service.restore_catalogue(
        session, catalogue_id, after_catalogue_restored(settings.match_radius_arcsec, key_name)
    )
    return RestoreOut(
        restored=cat.id,
        kind=cat.kind,
        maps_updated=sorted(placed),
        assigned={str(k): v for k, v in placed.items()},
    )


# A verb of its own rather than DELETE ?purge=true: DELETE keeps one meaning (reversible),
# so a client or proxy that drops a query string can never turn it into an irreversible
# one, and purge, like restore, acts on a deleted catalogue only (409 otherwise): removing
# data for good takes two deliberate calls.
@router.post(
    "/{catalogue_id}/purge",
    response_model=PurgeOut,
    summary="Purge a deleted catalogue: its rows are removed for good",
    responses={
        404: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        409: {"model": ErrorResponse, "description": "Not deleted"},
    },
)
def purge_catalogue(
    catalogue_id: IdPath, session: SessionDep, settings: SettingsDep, key_name: ApiKeyDep
) -> PurgeOut:
    cat, updated = catalogue_service.purge_catalogue(
        session,
        catalogue_id,
        after_catalogue_deleted(
            settings.match_radius_arcsec, key_name, ChangeAction.catalogue_purged
        ),
    )
    return PurgeOut(purged=cat.id, kind=cat.kind, maps_updated=updated)
