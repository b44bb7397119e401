"""Ingest a photometric or spectroscopic catalogue file into the database.

Steps: checksum (a file already ingested as this kind is returned, not duplicated) →
format and header → column mapping (preset + overrides) → read the mapped columns →
row-level validation → one transaction: catalogue row, bulk rows (COPY on PostgreSQL),
then whatever the caller hooks in (assignment to existing maps). Any failure rolls the
whole ingest back, so a catalogue is either fully there or not at all.

Validation rules (each violation names file, column, 0-based data row and reason):
* Sentinels ``-99, 99, -99.9, 99.9`` (and NaN/empty) mean "no value" and are stored as NULL.
* +-inf, non-numeric text in a numeric column, RA outside [0, 360], Dec outside [-90, 90],
  magnitudes outside [-10, 50], negative magnitude errors, photometric redshifts outside
  [-0.1, 20] and spectroscopic redshifts outside [-0.05, 15] are errors.
* A magnitude whose error is a sentinel or ``-1`` (the usual upper-limit marker, e.g. in the
  COSMOS photometry of zCOSMOS) is a limit, not a measurement: both become NULL.
* A spectroscopic row without a redshift is an error, unless ``skip_missing_redshift`` (the
  somcal mock, where only some galaxies have spectra) drops it.
With ``on_invalid="reject"`` (default) any error refuses the file (HTTP 422, first 100
errors listed); with ``"skip"`` offending rows are left out and reported.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models import BANDS, MAG_COLUMNS, MAGERR_COLUMNS, Catalogue
from app.services import presets
from app.services.bulk import Col, bulk_insert
from app.services.errors import (
    BadRequestError,
    InvalidInputError,
    NotFoundError,
    RowError,
    TooLargeError,
)
from app.services.ledger import ledger_transaction
from app.services.tables import FORMATS, TableFile, detect_format

SENTINELS = (-99.0, 99.0, -99.9, 99.9)
UPPER_LIMIT_ERROR = -1.0
MAX_LISTED_ERRORS = 100
RANGES = {
    "ra": (0.0, 360.0),
    "dec": (-90.0, 90.0),
    "z_phot": (-0.1, 20.0),
    "z_spec": (-0.05, 15.0),
    "mag": (-10.0, 50.0),
}
SECURE_RULE_KINDS = ("all", "column", "range", "in", "min")
MAX_TEXT = 64


@dataclass
class IngestRequest:
    kind: str
    path: Path
    filename: str
    name: str | None = None
    preset: str | None = None
    mapping: dict[str, str] | None = None
    secure_rule: dict[str, Any] | None = None
    on_invalid: str = "reject"
    skip_missing_redshift: bool | None = None
    file_format: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None


@dataclass
class IngestResult:
    catalogue: Catalogue
    duplicate: bool
    errors: list[RowError] = field(default_factory=list)
    n_errors: int = 0
    assigned_maps: list[int] = field(default_factory=list)


# Called inside the ingest transaction after the rows are written, with the stored rows
# (DB column names plus ``row_index``), e.g. to assign them to every trained map; returns
# the ids of the maps it updated.
AfterInsertHook = Callable[[Session, Catalogue, pd.DataFrame], list[int]]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- errors
class ErrorLog:
    """Collects row errors: all are counted, the first ``MAX_LISTED_ERRORS`` are listed."""

    def __init__(self, file: str, n: int) -> None:
        self.file = file
        self.bad = np.zeros(n, dtype=bool)
        self.items: list[RowError] = []
        self.count = 0

    def add(self, column: str, mask: np.ndarray, reason: Callable[[int], str] | str) -> None:
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return
        self.bad[rows] = True
        self.count += len(rows)
        room = MAX_LISTED_ERRORS - len(self.items)
        for r in rows[: max(room, 0)]:
            text = reason(int(r)) if callable(reason) else reason
            self.items.append(RowError(self.file, column, int(r), text))

    def add_file(self, column: str | None, reason: str) -> None:
        self.count += 1
        self.items.append(RowError(self.file, column, None, reason))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return np.format_float_positional(value, trim="-")
    return str(value)


# ----------------------------------------------------------------------------- parsing
def _strings(series: pd.Series) -> pd.Series:
    """The values as a pandas string series.

    Bytes (a Parquet binary column) are decoded as UTF-8, undecodable bytes replaced, so
    that they are reported as bad values; pandas' own conversion raised and made a 500.
    """
    if series.dtype == object:
        series = series.map(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray) else v
        )
    return series.astype("string")


def _as_float(series: pd.Series, column: str, log: ErrorLog) -> np.ndarray:
    """Float64 values; text that is not a number is an error, blanks are NaN."""
    if pd.api.types.is_bool_dtype(series):
        # true/false would otherwise pass as magnitudes or coordinates of 0 and 1.
        log.add_file(column, "column holds true/false values where numbers are needed")
        return np.full(len(series), np.nan)
    if pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype(np.float64).to_numpy(na_value=np.nan)
    text = _strings(series).str.strip()
    lowered = text.str.lower()
    blank = text.isna() | lowered.isin(["", "nan", "null", "none", "na", "n/a", "--"])
    values = pd.to_numeric(text.where(~blank), errors="coerce").astype(np.float64)
    values = values.to_numpy(na_value=np.nan)
    bad = np.isnan(values) & ~blank.to_numpy(dtype=bool)
    raw = text.to_numpy(dtype=object)
    log.add(column, bad, lambda r: f"not a number: {str(raw[r])[:40]!r}")
    return values


def _sentinel(values: np.ndarray) -> np.ndarray:
    out = np.zeros(values.shape, dtype=bool)
    for s in SENTINELS:
        out |= np.isclose(values, s, rtol=1e-6, atol=0.0)
    return out


def _clean(values: np.ndarray, column: str, log: ErrorLog, lo: float, hi: float, what: str):
    """Sentinels → NaN; inf and out-of-range values are errors (and become NaN)."""
    values = values.copy()
    values[_sentinel(values)] = np.nan
    inf = np.isinf(values)
    log.add(column, inf, "infinite value")
    values[inf] = np.nan
    out = (values < lo) | (values > hi)
    log.add(column, out, lambda r: f"{what} {_fmt(float(values[r]))} outside [{lo:g}, {hi:g}]")
    values[out] = np.nan
    return values


def _text(series: pd.Series, column: str, log: ErrorLog) -> np.ndarray:
    if pd.api.types.is_float_dtype(series):
        vals = series.to_numpy(dtype=np.float64)
        out = np.empty(len(vals), dtype=object)
        finite = np.isfinite(vals)
        integral = finite & (vals == np.round(vals))
        out[integral] = vals[integral].astype(np.int64).astype(str)
        rest = finite & ~integral
        out[rest] = [_fmt(float(v)) for v in vals[rest]]
        out[~finite] = None
        return out
    if pd.api.types.is_integer_dtype(series) and not series.isna().any():
        return series.to_numpy().astype(str).astype(object)
    if series.dtype == object:  # Parquet list/struct columns arrive as Python objects
        nested = np.fromiter(
            (isinstance(v, list | tuple | dict | np.ndarray) for v in series),
            dtype=bool,
            count=len(series),
        )
        log.add(column, nested, "a list or structure where a single value is needed")
    out = _strings(series).str.strip().to_numpy(dtype=object, na_value=None)
    too_long = np.fromiter(
        (v is not None and len(v) > MAX_TEXT for v in out), dtype=bool, count=len(out)
    )
    log.add(column, too_long, f"text longer than {MAX_TEXT} characters")
    out[too_long] = None
    empty = np.fromiter((v == "" for v in out), dtype=bool, count=len(out))
    out[empty] = None
    return out


_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def _bools(series: pd.Series, column: str, log: ErrorLog) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    text = _strings(series).str.strip().str.lower()
    truthy = text.isin(_TRUE).to_numpy(dtype=bool)
    falsy = text.isin(_FALSE).to_numpy(dtype=bool)
    raw = _strings(series).to_numpy(dtype=object, na_value=None)
    log.add(column, ~(truthy | falsy), lambda r: f"not a boolean: {str(raw[r])[:40]!r}")
    return truthy


# ----------------------------------------------------------------------------- mapping
def resolve_mapping(
    kind: str, available: list[str], preset_name: str | None, overrides: dict[str, str] | None
) -> tuple[presets.Preset, dict[str, str]]:
    """The preset used and the final {somcal field: file column} mapping."""
    if preset_name in (None, "", "auto"):
        preset = presets.auto_preset(kind, available)
    else:
        found = presets.get_preset(preset_name)
        if found is None:
            raise BadRequestError(
                f"unknown preset {preset_name!r}; known presets: {', '.join(presets.PRESETS)}"
            )
        preset = found
    allowed = presets.fields_for(kind)
    mapping: dict[str, str] = {}
    for f, candidates in preset.columns.items():
        if f not in allowed:
            continue
        col = presets.resolve_candidates(candidates, available)
        if col is not None:
            mapping[f] = col
    errors: list[RowError] = []
    for f, col in (overrides or {}).items():
        if f not in allowed:
            errors.append(
                RowError(
                    None,
                    str(col),
                    None,
                    f"unknown field {f!r} for a {kind} catalogue; fields are: {', '.join(allowed)}",
                )
            )
            continue
        if col is None or col == "":
            mapping.pop(f, None)  # explicit null unmaps a preset column
            continue
        if col not in available:
            errors.append(
                RowError(None, str(col), None, f"column {col!r} (for {f}) is not in the file")
            )
            continue
        mapping[f] = col
    if errors:
        raise InvalidInputError(
            "column mapping does not fit the file", errors, available_columns=available[:200]
        )
    used = [c for c in mapping.values()]
    dupes = sorted({c for c in used if used.count(c) > 1})
    if dupes:
        fields = [f for f, c in mapping.items() if c in dupes]
        raise InvalidInputError(
            f"column {dupes[0]!r} is mapped to several fields ({', '.join(fields)})",
            [RowError(None, dupes[0], None, "mapped to more than one field")],
        )
    return preset, mapping


def check_secure_rule(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    if rule is None:
        return None
    if not isinstance(rule, dict) or rule.get("kind") not in SECURE_RULE_KINDS:
        raise BadRequestError(
            f"secure_rule must be an object with kind one of {', '.join(SECURE_RULE_KINDS)}; "
            f"got {rule!r}"
        )
    kind = rule["kind"]

    def number(key: str, required: bool) -> None:
        v = rule.get(key)
        if v is None:
            if required:
                raise BadRequestError(f"secure_rule of kind {kind!r} needs {key!r}")
            return
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise BadRequestError(f"secure_rule.{key} must be a finite number, got {v!r}")

    if kind == "range":
        number("min", True)
        number("max", False)
        number("modulo", False)
        if rule.get("modulo") is not None and rule["modulo"] <= 0:
            raise BadRequestError("secure_rule.modulo must be > 0")
    elif kind == "min":
        number("value", True)
    elif kind == "in":
        values = rule.get("values")
        if not isinstance(values, list) or not values:
            raise BadRequestError("secure_rule of kind 'in' needs a non-empty list 'values'")
    return rule


def evaluate_secure(
    n: int,
    rule: dict[str, Any],
    quality: np.ndarray | None,
    quality_raw: np.ndarray | None,
    secure_col: np.ndarray | None,
) -> np.ndarray:
    kind = rule["kind"]
    if kind == "all":
        return np.ones(n, dtype=bool)
    if kind == "column":
        assert secure_col is not None
        return secure_col.astype(bool)
    assert quality is not None and quality_raw is not None
    if kind == "in":
        numeric = [v for v in rule["values"] if isinstance(v, int | float)]
        texts = {str(v).strip() for v in rule["values"] if isinstance(v, str)}
        out = (
            np.isin(quality, np.asarray(numeric, dtype=float))
            if numeric
            else np.zeros(len(quality), bool)
        )
        if texts:
            out |= np.fromiter((v in texts for v in quality_raw), dtype=bool, count=len(out))
        return out
    q = quality
    with np.errstate(invalid="ignore"):
        if kind == "min":
            return np.nan_to_num(q, nan=-np.inf) >= float(rule["value"])
        if rule.get("modulo") is not None:
            # Classes are decimal codes (zCOSMOS 14.5): round away binary remainders such as
            # 14.5 % 10 = 4.4999...; a negative code is never secure.
            q = np.where(q < 0, np.nan, np.round(np.mod(q, float(rule["modulo"])), 6))
        q = np.nan_to_num(q, nan=-np.inf)
        out = q >= float(rule["min"])
        if rule.get("max") is not None:
            out &= q < float(rule["max"])
    return out


# ----------------------------------------------------------------------------- validation
@dataclass
class Validated:
    columns: dict[str, np.ndarray]  # DB column name -> values
    keep: np.ndarray  # rows (of the file) that are stored, in order
    n_skipped: int
    errors: list[RowError]
    n_errors: int
    bands: list[str]
    n_secure: int | None


def validate(
    kind: str,
    frame: pd.DataFrame,
    mapping: dict[str, str],
    file: str,
    secure_rule: dict[str, Any] | None,
    survey_default: str | None,
    on_invalid: str,
    skip_missing_redshift: bool,
) -> Validated:
    n = len(frame)
    log = ErrorLog(file, n)
    out: dict[str, np.ndarray] = {}

    if "source_id" in mapping:
        ids = _text(frame[mapping["source_id"]], mapping["source_id"], log)
        missing = np.fromiter((v is None for v in ids), dtype=bool, count=n)
        log.add(mapping["source_id"], missing, "missing source id")
        out["source_id"] = ids
    else:
        out["source_id"] = np.arange(n).astype(str).astype(object)

    for f in ("ra", "dec"):
        if f in mapping:
            col = mapping[f]
            lo, hi = RANGES[f]
            out[f] = _clean(_as_float(frame[col], col, log), col, log, lo, hi, f.upper())
        else:
            out[f] = np.full(n, np.nan)

    bands: list[str] = []
    for band in BANDS:
        mcol = mapping.get(f"mag_{band}")
        ecol = mapping.get(f"magerr_{band}")
        if mcol is None:
            if ecol is not None:
                log.add_file(ecol, f"error column given for band {band} without a magnitude")
            out[MAG_COLUMNS[band]] = np.full(n, np.nan)
            out[MAGERR_COLUMNS[band]] = np.full(n, np.nan)
            continue
        lo, hi = RANGES["mag"]
        mag = _clean(_as_float(frame[mcol], mcol, log), mcol, log, lo, hi, "magnitude")
        err = np.full(n, np.nan)
        if ecol is not None:
            raw = _as_float(frame[ecol], ecol, log)
            limit = _sentinel(raw) | np.isclose(raw, UPPER_LIMIT_ERROR)
            mag[limit] = np.nan
            err = raw.copy()
            err[limit] = np.nan
            inf = np.isinf(err)
            log.add(ecol, inf, "infinite magnitude error")
            err[inf] = np.nan
            neg = err < 0
            log.add(ecol, neg, lambda r, e=err: f"negative magnitude error {_fmt(float(e[r]))}")
            err[neg] = np.nan
            err[np.isnan(mag)] = np.nan
        out[MAG_COLUMNS[band]] = mag
        out[MAGERR_COLUMNS[band]] = err
        if np.isfinite(mag).any():
            bands.append(band)

    dropped = np.zeros(n, dtype=bool)
    n_secure: int | None = None
    if kind == "photometric":
        if "z_phot" in mapping:
            col = mapping["z_phot"]
            lo, hi = RANGES["z_phot"]
            out["z_phot"] = _clean(_as_float(frame[col], col, log), col, log, lo, hi, "z_phot")
        else:
            out["z_phot"] = np.full(n, np.nan)
    else:
        col = mapping["z_spec"]
        lo, hi = RANGES["z_spec"]
        z = _clean(_as_float(frame[col], col, log), col, log, lo, hi, "z_spec")
        no_z = np.isnan(z) & ~log.bad
        if skip_missing_redshift:
            dropped |= no_z
        else:
            log.add(col, no_z, "missing spectroscopic redshift")
        out["z_spec"] = z

        quality = quality_raw = None
        if "quality" in mapping:
            qcol = mapping["quality"]
            series = frame[qcol]
            quality_raw = _text(series, qcol, log)
            if pd.api.types.is_numeric_dtype(series):
                quality = series.astype(np.float64).to_numpy(na_value=np.nan)
            else:
                quality = (
                    pd.to_numeric(_strings(series).str.strip(), errors="coerce")
                    .astype(np.float64)
                    .to_numpy(na_value=np.nan)
                )
            quality = np.where(np.isinf(quality), np.nan, quality)
        out["quality_raw"] = quality_raw if quality_raw is not None else np.full(n, None, object)
        out["quality"] = quality if quality is not None else np.full(n, np.nan)

        secure_col = None
        if "secure" in mapping:
            secure_col = _bools(frame[mapping["secure"]], mapping["secure"], log)
        rule = secure_rule
        if rule is None:
            if secure_col is not None:
                rule = {"kind": "column"}
            elif quality is None:
                # No flag at all: the catalogue vouches for every redshift it lists.
                rule = {"kind": "all"}
            else:
                raise BadRequestError(
                    f"{file}: a quality column ({mapping['quality']!r}) is mapped but no "
                    "secure_rule says which values are secure, e.g. "
                    '{"kind": "range", "min": 3, "max": 5, "modulo": 10}',
                    [RowError(file, mapping["quality"], None, "secure_rule needed")],
                )
        if rule["kind"] == "column" and secure_col is None:
            raise BadRequestError(f"{file}: secure_rule 'column' needs a mapped 'secure' column")
        if rule["kind"] in ("range", "in", "min") and quality is None:
            raise BadRequestError(
                f"{file}: secure_rule {rule['kind']!r} needs a 'quality' column; map one, "
                'e.g. mapping={"quality": "flag"}'
            )
        out["secure"] = evaluate_secure(n, rule, quality, quality_raw, secure_col)

        if "survey" in mapping:
            out["survey"] = _text(frame[mapping["survey"]], mapping["survey"], log)
        else:
            out["survey"] = np.full(n, survey_default, dtype=object)

    if kind == "photometric" and len(bands) < 2:
        log.add_file(
            None,
            "fewer than two bands with magnitudes (a colour needs two); recognised bands: "
            f"{bands or 'none'}; map columns such as mag_g, mag_r or choose a preset",
        )

    if log.count and on_invalid == "reject":
        raise InvalidInputError(
            f"{file}: {log.count} invalid value(s); nothing was stored "
            f"(first {min(log.count, MAX_LISTED_ERRORS)} listed)",
            log.items,
            n_errors=log.count,
        )
    if any(e.row is None for e in log.items):
        # File-level problems cannot be skipped row by row.
        raise InvalidInputError(f"{file}: the file cannot be ingested", log.items)
    keep = ~(log.bad | dropped)
    if not keep.any():
        items = log.items[:MAX_LISTED_ERRORS]
        if dropped.any():
            items.append(
                RowError(file, mapping.get("z_spec"), None, "no row has a spectroscopic redshift")
            )
        raise InvalidInputError(f"{file}: no valid rows to ingest", items)
    columns = {k: v[keep] for k, v in out.items()}
    if kind == "spectroscopic":
        n_secure = int(columns["secure"].sum())
    return Validated(
        columns=columns,
        keep=np.flatnonzero(keep),
        n_skipped=int((~keep).sum()),
        errors=log.items,
        n_errors=log.count,
        bands=bands,
        n_secure=n_secure,
    )


# ----------------------------------------------------------------------------- orchestration
def find_duplicate(session: Session, kind: str, sha256: str) -> Catalogue | None:
    return session.scalar(
        select(Catalogue).where(Catalogue.kind == kind, Catalogue.sha256 == sha256)
    )


def ingest(
    factory: sessionmaker[Session],
    req: IngestRequest,
    *,
    max_rows: int,
    after_insert: AfterInsertHook | None = None,
) -> IngestResult:
    if req.kind not in ("photometric", "spectroscopic"):
        raise BadRequestError(f"kind must be photometric or spectroscopic, got {req.kind!r}")
    if req.on_invalid not in ("reject", "skip"):
        raise BadRequestError(f"on_invalid must be 'reject' or 'skip', got {req.on_invalid!r}")
    if not req.path.is_file():
        raise NotFoundError(f"file {req.filename!r} not found")
    file = req.filename
    sha = req.sha256 or sha256_file(req.path)
    size = req.size_bytes if req.size_bytes is not None else req.path.stat().st_size

    with factory() as session:
        existing = find_duplicate(session, req.kind, sha)
        if existing is not None:
            return IngestResult(catalogue=existing, duplicate=True)

    if size == 0:
        raise InvalidInputError(f"{file}: file is empty", [RowError(file, None, None, "empty")])
    fmt = req.file_format or detect_format(req.path, req.filename)
    if fmt not in FORMATS:
        raise BadRequestError(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
    table = TableFile(req.path, fmt, file)
    hint = table.n_rows_hint()
    if hint is not None and hint > max_rows:
        raise TooLargeError(f"{file}: {hint} rows; the limit is {max_rows}")
    available = table.columns
    rule = check_secure_rule(req.secure_rule)
    preset, mapping = resolve_mapping(req.kind, available, req.preset, req.mapping)
    if req.kind == "spectroscopic" and "z_spec" not in mapping:
        raise InvalidInputError(
            f"{file}: no spectroscopic redshift column found (preset {preset.name!r}); map one "
            'with mapping={"z_spec": "<column>"}',
            [RowError(file, None, None, "no z_spec column")],
            available_columns=available[:200],
        )
    text_cols = tuple(mapping[f] for f in ("source_id", "survey", "quality") if f in mapping)
    frame = table.read(list(dict.fromkeys(mapping.values())), text_cols)
    if len(frame) > max_rows:
        raise TooLargeError(f"{file}: {len(frame)} rows; the limit is {max_rows}")
    if len(frame) == 0:
        raise InvalidInputError(f"{file}: no data rows", [RowError(file, None, None, "no rows")])
    skip_missing = (
        req.skip_missing_redshift
        if req.skip_missing_redshift is not None
        else bool(preset.options.get("skip_missing_redshift", False))
    )
    checked = validate(
        req.kind,
        frame,
        mapping,
        file,
        rule if rule is not None else preset.secure_rule,
        preset.survey,
        req.on_invalid,
        skip_missing,
    )
    del frame

    with factory() as session, ledger_transaction(session):
        try:
            catalogue = Catalogue(
                kind=req.kind,
                name=(req.name or Path(file).stem)[:255],
                filename=file[:512],
                file_format=fmt,
                sha256=sha,
                size_bytes=size,
                preset=preset.name,
                column_mapping=mapping,
                secure_rule=(rule or preset.secure_rule) if req.kind == "spectroscopic" else None,
                bands=checked.bands,
                n_rows=len(checked.keep),
                n_skipped=checked.n_skipped,
                n_secure=checked.n_secure,
                status="ready",
            )
            session.add(catalogue)
            try:
                session.flush()
            except IntegrityError:
                # Someone ingested the same file meanwhile; theirs is the catalogue.
                session.rollback()
                existing = find_duplicate(session, req.kind, sha)
                if existing is None:
                    raise
                return IngestResult(catalogue=existing, duplicate=True)
            _insert_rows(session, catalogue, checked)
            assigned: list[int] = []
            if after_insert is not None:
                rows = pd.DataFrame(checked.columns)
                rows["row_index"] = checked.keep
                assigned = after_insert(session, catalogue, rows)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return IngestResult(
        catalogue=catalogue,
        duplicate=False,
        errors=checked.errors,
        n_errors=checked.n_errors,
        assigned_maps=assigned,
    )


def _insert_rows(session: Session, catalogue: Catalogue, checked: Validated) -> None:
    c = checked.columns
    n = len(checked.keep)
    cols = [
        Col("catalogue_id", "int4", np.full(n, catalogue.id, dtype=np.int32)),
        Col("row_index", "int4", checked.keep.astype(np.int32)),
        Col("source_id", "text", c["source_id"]),
        Col("ra", "float8", c["ra"]),
        Col("dec", "float8", c["dec"]),
    ]
    if catalogue.kind == "photometric":
        table = "sources"
        cols.append(Col("z_phot", "float8", c["z_phot"]))
    else:
        table = "spectra"
        cols += [
            Col("z_spec", "float8", c["z_spec"]),
            Col("quality_raw", "text", c["quality_raw"]),
            Col("quality", "float8", c["quality"]),
            Col("secure", "bool", c["secure"]),
            Col("survey", "text", c["survey"]),
        ]
    for band in BANDS:
        cols.append(Col(MAG_COLUMNS[band], "float8", c[MAG_COLUMNS[band]]))
        cols.append(Col(MAGERR_COLUMNS[band], "float8", c[MAGERR_COLUMNS[band]]))
    # catalogue_id is the catalogue row flushed just above, in this transaction.
    bulk_insert(session.connection(), table, cols, references_valid=True)
