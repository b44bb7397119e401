"""Ingest a photometric or spectroscopic catalogue file into the database.

Steps: checksum (the same file with the same options is recognised; with other options it
is a 409 naming the difference) → format and header → column mapping (preset + overrides;
photometry fields ``mag_/magerr_/flux_/fluxerr_<band>`` for any band of the registry or a
declared one) → the rows, read and validated chunk by chunk → one transaction: catalogue
row, bulk rows (COPY on PostgreSQL) per chunk, the caller's hooks (assignment to existing
maps) per chunk and once at the end. Any failure rolls the whole ingest back, so a
catalogue is either fully there or not at all.

Photometry goes through ``som.photometry.clean_band``, the one place where a raw value
becomes an AB magnitude or a missing value (the same rules as the library and ``assign``):
sentinels, fills, blanks and +-inf are missing; fluxes <= 0 and negative errors (upper
limits) are non-detections; a value without a usable error is dropped; magnitudes outside
(0, 50] and text are errors naming file, column and row; a column that does not look like
what it is declared as (fluxes given as magnitudes, a flux unit off by 1000) is refused
unless ``check=False``.

Other rules (each violation names file, column, 0-based data row and reason): +-inf, text,
RA outside [0, 360], Dec outside [-90, 90], photometric redshifts outside [-0.1, 20] and
spectroscopic redshifts outside [-0.05, 15] are errors. A spectroscopic row without a
redshift is an error unless ``skip_missing_redshift``; one that has neither usable
photometry (two bands) nor a position can never be placed on a map and is an error too.
Secure redshifts must be galaxies': ``z < z_min`` (default 0.002) or a ``star`` flag makes a
spectrum not secure, and the answer says how many.
With ``on_invalid="reject"`` (default) any error refuses the file (HTTP 422, first 100
errors listed); with ``"skip"`` offending rows are left out and reported.

The package, by job: :mod:`.mapping` (file columns → fields and the photometry plan, against
the band registry), :mod:`.validation` (the rules above and the error log), :mod:`.store`
(the duplicate check and the chunked read + bulk write transaction), :mod:`.request` (request,
result, ledger hook). Here: :func:`ingest`, which checks the request and the file's header
and hands the rules to :func:`.store.write`, and every name callers import.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.services import band_semantics
from app.services.errors import (
    BadRequestError,
    InvalidInputError,
    NotFoundError,
    RowError,
    TooLargeError,
    unreadable_file,
)
from app.services.ingest.mapping import BandColumns, band_columns, registry_for, resolve_mapping
from app.services.ingest.request import (
    TABLE_KEY_HINT,
    IngestRequest,
    IngestResult,
    LedgerHook,
    parse_table_key,
    sha256_file,
)
from app.services.ingest.store import CHUNK_ROWS, find_duplicate, same_or_conflict, write
from app.services.ingest.validation import (
    DEFAULT_Z_MIN,
    MAX_LISTED_ERRORS,
    MAX_TEXT,
    RANGES,
    SECURE_RULE_KINDS,
    SENTINELS,
    ErrorLog,
    Rules,
    Validated,
    check_secure_rule,
    default_secure_rule,
    evaluate_secure,
    validate,
)
from som.tables import CHOOSE_TABLE, FORMATS, CatalogueError, TableReader, detect_format

__all__ = [
    "CHUNK_ROWS",
    "DEFAULT_Z_MIN",
    "MAX_LISTED_ERRORS",
    "MAX_TEXT",
    "RANGES",
    "SECURE_RULE_KINDS",
    "SENTINELS",
    "BandColumns",
    "ErrorLog",
    "IngestRequest",
    "IngestResult",
    "LedgerHook",
    "TABLE_KEY_HINT",
    "Rules",
    "Validated",
    "band_columns",
    "check_secure_rule",
    "default_secure_rule",
    "evaluate_secure",
    "parse_table_key",
    "find_duplicate",
    "ingest",
    "registry_for",
    "resolve_mapping",
    "sha256_file",
    "validate",
]


def ingest(
    factory: sessionmaker[Session],
    req: IngestRequest,
    *,
    max_rows: int,
    after_insert: LedgerHook | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Read, check and store one catalogue file in one transaction (see the module's text).
    A file ``som.tables`` cannot read is an ``InvalidInputError`` naming the file, column
    and row, as for the API's other tables."""
    try:
        return _ingest(
            factory, req, max_rows=max_rows, after_insert=after_insert, progress=progress
        )
    except CatalogueError as exc:
        if exc.reason.endswith(CHOOSE_TABLE):
            # som.tables names its own argument (key=); the service's is table_key / --hdu
            reason = exc.reason[: -len(CHOOSE_TABLE)] + f"choose one with {TABLE_KEY_HINT}"
            raise unreadable_file(
                CatalogueError(reason, column=exc.column, row=exc.row, source=exc.source),
                req.filename,
            ) from exc
        raise unreadable_file(exc, req.filename) from exc


def _other_tables(table: TableReader, file: str) -> list[RowError]:
    """For a FITS file with several tables whose columns do not fit: which HDU was read."""
    if table.hdu is None or len(table.table_hdus) < 2:
        return []
    others = ", ".join(f"{i} {name!r}" for i, name in table.table_hdus if i != table.hdu[0])
    return [
        RowError(
            file,
            None,
            None,
            f"the columns are those of HDU {table.hdu[0]} {table.hdu[1]!r}; the file has "
            f"other tables: {others}; choose one with {TABLE_KEY_HINT}",
        )
    ]


def _ingest(
    factory: sessionmaker[Session],
    req: IngestRequest,
    *,
    max_rows: int,
    after_insert: LedgerHook | None,
    progress: Callable[[int], None] | None,
) -> IngestResult:
    if req.kind not in ("photometric", "spectroscopic"):
        raise BadRequestError(f"kind must be photometric or spectroscopic, got {req.kind!r}")
    if req.on_invalid not in ("reject", "skip"):
        raise BadRequestError(f"on_invalid must be 'reject' or 'skip', got {req.on_invalid!r}")
    if req.negative_error not in ("limit", "invalid"):
        raise BadRequestError(
            f"negative_error must be 'limit' or 'invalid', got {req.negative_error!r}"
        )
    if not (isinstance(req.z_min, int | float) and math.isfinite(req.z_min)):
        raise BadRequestError(f"z_min must be a finite number, got {req.z_min!r}")
    if not req.path.is_file():
        raise NotFoundError(f"file {req.filename!r} not found")
    file = req.filename
    sha = req.sha256 or sha256_file(req.path)
    size = req.size_bytes if req.size_bytes is not None else req.path.stat().st_size

    with factory() as session:
        existing = find_duplicate(session, req.kind, sha)
        if existing is not None:
            return same_or_conflict(existing, req)

    if size == 0:
        raise InvalidInputError(f"{file}: file is empty", [RowError(file, None, None, "empty")])
    fmt = req.file_format or detect_format(req.path, req.filename)
    if fmt not in FORMATS:
        raise BadRequestError(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
    if req.table_key is not None and fmt not in ("fits", "hdf5"):
        raise BadRequestError(
            f"{file}: table_key chooses a table of a FITS or HDF5 file; this file is {fmt}, "
            "which holds one table"
        )
    # an HDF5 key is a path: "2" was parsed as an HDU index, but here it names a node
    key = str(req.table_key) if fmt == "hdf5" and req.table_key is not None else req.table_key
    table = TableReader(req.path, fmt, name=file, key=key)
    hint = table.n_rows_hint()
    if hint is not None and hint > max_rows:
        raise TooLargeError(f"{file}: {hint} rows; the limit is {max_rows}")
    available = table.columns
    registry = registry_for(req.bands)
    rule = check_secure_rule(req.secure_rule)
    try:
        preset, mapping, warnings = resolve_mapping(
            req.kind, available, req.preset, req.mapping, registry, file=file
        )
    except InvalidInputError as exc:
        exc.errors.extend(_other_tables(table, file))
        raise
    if req.kind == "spectroscopic" and "z_spec" not in mapping:
        raise InvalidInputError(
            f"{file}: no spectroscopic redshift column found (preset {preset.name!r}); map one "
            'with mapping={"z_spec": "<column>"}',
            [RowError(file, None, None, "no z_spec column")],
            available_columns=available[:200],
        )
    units = table.units()
    plan = band_columns(
        mapping, registry, req.flux_unit, units, file, preset.options.get("flux_unit"), preset
    )
    warnings = [*warnings, *band_semantics.plan_warnings(plan)]
    if req.kind == "photometric" and len(plan) < 2:
        raise InvalidInputError(
            f"{file}: fewer than two bands with photometry (a colour needs two); recognised: "
            f"{[b.band for b in plan] or 'none'}; map columns such as mag_g/flux_g, declare "
            "bands the registry does not know, or choose a preset",
            [RowError(file, None, None, w) for w in warnings] + _other_tables(table, file)
            or [RowError(file, None, None, "fewer than two bands")],
            available_columns=available[:200],
        )
    skip_missing = (
        req.skip_missing_redshift
        if req.skip_missing_redshift is not None
        else bool(preset.options.get("skip_missing_redshift", False))
    )
    secure_rule = (
        default_secure_rule(mapping, rule, preset, file) if req.kind == "spectroscopic" else None
    )
    rules = Rules(
        kind=req.kind,
        mapping=mapping,
        plan=plan,
        file=file,
        secure_rule=secure_rule,
        survey_default=preset.survey,
        skip_missing_redshift=skip_missing,
        negative_error=req.negative_error,
        z_min=float(req.z_min),
        check=req.check,
    )
    return write(
        factory,
        req,
        table,
        rules,
        fmt=fmt,
        sha=sha,
        size=size,
        preset=preset,
        warnings=warnings,
        max_rows=max_rows,
        after_insert=after_insert,
        progress=progress,
    )
