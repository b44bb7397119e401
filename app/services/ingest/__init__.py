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
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models import Catalogue
from app.services import presets
from app.services.bulk import Col, bulk_insert
from app.services.errors import (
    BadRequestError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    RowError,
    TooLargeError,
    unreadable_file,
)
from app.services.ledger import ledger_transaction
from app.services.phot_store import pack, photometry_frame
from som.bands import REGISTRY, BandError, BandRegistry
from som.photometry import (
    INVALID,
    MEASURED,
    STATUS_NAMES,
    PhotometryError,
    clean_band,
    column_unit_kind,
    flux_unit_in_jy,
    near_sentinels,
    parse_numbers,
)
from som.tables import FORMATS, CatalogueError, TableReader, detect_format

MAX_LISTED_ERRORS = 100
RANGES = {
    "ra": (0.0, 360.0),
    "dec": (-90.0, 90.0),
    "z_phot": (-0.1, 20.0),
    "z_spec": (-0.05, 15.0),
}
# Non-photometric numbers (positions, redshifts) share the photometry's "no value" codes.
SENTINELS = (-99.0, 99.0, -99.9, 99.9, -999.0, 999.0, -9999.0)
SECURE_RULE_KINDS = ("all", "column", "range", "in", "min")
MAX_TEXT = 64
#: Below this spectroscopic redshift an object is a star (or a local object whose redshift
#: is its peculiar velocity): never a calibrating galaxy redshift. 0.002 is ~600 km/s.
DEFAULT_Z_MIN = 0.002
#: Rows validated and written per step: bounds memory whatever the file size.
CHUNK_ROWS = 100_000


@dataclass
class IngestRequest:
    kind: str
    path: Path
    filename: str
    name: str | None = None
    preset: str | None = None
    mapping: dict[str, str | None] | None = None
    secure_rule: dict[str, Any] | None = None
    on_invalid: str = "reject"
    skip_missing_redshift: bool | None = None
    file_format: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    flux_unit: str | None = None
    negative_error: str = "limit"
    bands: list[dict[str, Any]] | None = None  # declared bands: name, wavelength | filter_curve
    z_min: float = DEFAULT_Z_MIN
    check: bool = True

    def options(self) -> dict[str, Any]:
        """What this request asks for, in a form stored with the catalogue and compared
        when the same file comes again (not the file's name, format or size)."""
        return {
            "preset": (self.preset or "auto").strip().lower() or "auto",
            "mapping": {k: v for k, v in sorted((self.mapping or {}).items())},
            "secure_rule": self.secure_rule,
            "on_invalid": self.on_invalid,
            "skip_missing_redshift": self.skip_missing_redshift,
            "flux_unit": self.flux_unit,
            "negative_error": self.negative_error,
            "bands": list(self.bands or []),
            "z_min": self.z_min,
            "check": self.check,
        }


@dataclass
class IngestResult:
    catalogue: Catalogue
    duplicate: bool
    errors: list[RowError] = field(default_factory=list)
    n_errors: int = 0
    assigned_maps: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class LedgerHook:
    """What the ledger does with a catalogue's rows inside the ingest transaction.

    ``rows`` is called for every written chunk with the stored rows (``object_id``,
    ``row_index``, ra, dec and ``mag_<band>``/``magerr_<band>``); ``done`` once at the end
    (recompute cells) and returns, for each map it updated, how the rows landed (counts by
    photometry, by position, unassigned, outside the training set).
    """

    def rows(self, session: Session, catalogue: Catalogue, rows: pd.DataFrame) -> None:
        raise NotImplementedError

    def done(self, session: Session, catalogue: Catalogue) -> dict[int, dict[str, int]]:
        raise NotImplementedError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- errors
class ErrorLog:
    """Collects row errors over the chunks of a file: all are counted, the first
    ``MAX_LISTED_ERRORS`` listed, rows numbered from the start of the file."""

    def __init__(self, file: str, limit: int | None = MAX_LISTED_ERRORS) -> None:
        self.file = file
        self.limit = limit
        self.offset = 0
        self.bad = np.zeros(0, dtype=bool)  # rows of the current chunk with an error
        self.items: list[RowError] = []
        self.count = 0
        self.rows_with_errors = 0

    def start_chunk(self, n: int) -> None:
        self.offset += len(self.bad)
        self.rows_with_errors += int(self.bad.sum())
        self.bad = np.zeros(n, dtype=bool)

    def finish(self) -> None:
        self.start_chunk(0)

    def add(self, column: str, mask: np.ndarray, reason: Callable[[int], str] | str) -> None:
        """Errors in the rows of the current chunk where ``mask`` is true."""
        self._add_rows(column, np.flatnonzero(mask), reason)

    def add_row(self, column: str, row: int, reason: str) -> None:
        """An error in one row of the current chunk (no chunk-sized mask needed)."""
        self._add_rows(column, np.array([row]), reason)

    def _add_rows(self, column: str, rows: np.ndarray, reason: Callable[[int], str] | str):
        if len(rows) == 0:
            return
        self.bad[rows] = True
        self.count += len(rows)
        room = len(rows) if self.limit is None else self.limit - len(self.items)
        for r in rows[: max(room, 0)]:
            text_ = reason(int(r)) if callable(reason) else reason
            self.items.append(RowError(self.file, column, self.offset + int(r), text_))

    def add_file(self, column: str | None, reason: str) -> None:
        if any(e.row is None and e.column == column and e.reason == reason for e in self.items):
            return  # the same file-level problem found again in a later chunk
        self.count += 1
        self.items.append(RowError(self.file, column, None, reason))

    @property
    def file_level(self) -> bool:
        return any(e.row is None for e in self.items)


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
    """Float64 values by the photometry's parsing rules (``som.photometry.parse_numbers``):
    text that is not a number is an error, blanks are NaN, a true/false column is refused."""
    try:
        values, bad = parse_numbers(series)
    except TypeError as exc:
        # true/false would otherwise pass as coordinates or redshifts of 0 and 1.
        log.add_file(column, str(exc))
        return np.full(len(series), np.nan)
    if bad.any():
        raw = _strings(series).str.strip().to_numpy(dtype=object)
        log.add(column, bad, lambda r: f"not a number: {str(raw[r])[:40]!r}")
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
@dataclass(frozen=True)
class BandColumns:
    """Where one band's photometry is in the file and what it is."""

    band: str  # canonical name
    kind: str  # "mag" | "flux"
    value: str  # column
    error: str | None  # column
    flux_unit: str | None = None


def registry_for(declared: list[dict[str, Any]] | None) -> BandRegistry:
    try:
        return REGISTRY.with_bands(declared or [])
    except BandError as exc:
        raise InvalidInputError(
            f"declared bands: {exc}", [RowError(None, "bands", None, str(exc))]
        ) from exc


def resolve_mapping(
    kind: str,
    available: list[str],
    preset_name: str | None,
    overrides: dict[str, str | None] | None,
    registry: BandRegistry = REGISTRY,
) -> tuple[presets.Preset, dict[str, str], list[str]]:
    """The preset used, the final {somcal field: file column} mapping and warnings.

    Photometry fields are canonicalised (``mag_IE`` becomes ``mag_VIS``); an unknown band
    is an error that suggests the nearest known names.
    """
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
    warnings: list[str] = []
    errors: list[RowError] = []

    def canonical(f: str) -> str | None:
        """The field with its band's canonical name; None (and an error) if unknown."""
        parsed = presets.photometry_field(f)
        if parsed is None:
            return f if f in allowed else None
        pkind, role, band = parsed
        try:
            name = registry.canonical(band)
        except BandError as exc:
            errors.append(RowError(None, f, None, f"unknown field {f!r}: {exc}"))
            return None
        return presets.photometry_field_name(pkind, role, name)

    for f, candidates in preset.columns.items():
        if f not in allowed and presets.photometry_field(f) is None:
            continue
        col = presets.resolve_candidates(candidates, available)
        if col is not None:
            mapping[canonical(f) or f] = col
    if preset.options.get("generic_bands"):
        found, warnings = presets.detect_photometry(available, registry)
        for f, col in found.items():
            mapping.setdefault(f, col)
    for f, col in (overrides or {}).items():
        target = canonical(str(f))
        if target is None:
            if presets.photometry_field(str(f)) is None:
                errors.append(
                    RowError(
                        None,
                        str(col),
                        None,
                        f"unknown field {f!r} for a {kind} catalogue; fields are: "
                        f"{', '.join(allowed)} and mag_<band>, magerr_<band>, flux_<band>, "
                        "fluxerr_<band> for any known or declared band",
                    )
                )
            continue
        if col is None or col == "":
            mapping.pop(target, None)  # explicit null unmaps a preset column
            continue
        if col not in available:
            errors.append(
                RowError(None, str(col), None, f"column {col!r} (for {f}) is not in the file")
            )
            continue
        mapping[target] = col
        # A band is a magnitude or a flux, not both: the override wins.
        parsed = presets.photometry_field(target)
        if parsed is not None:
            other = "flux" if parsed[0] == "mag" else "mag"
            for stale in (
                presets.photometry_field_name(other, "value", parsed[2]),
                presets.photometry_field_name(other, "error", parsed[2]),
            ):
                if stale in mapping and stale not in (overrides or {}):
                    mapping.pop(stale)
    if errors:
        raise InvalidInputError(
            "column mapping does not fit the file", errors, available_columns=available[:200]
        )
    used = list(mapping.values())
    dupes = sorted({c for c in used if used.count(c) > 1})
    if dupes:
        fields = [f for f, c in mapping.items() if c in dupes]
        raise InvalidInputError(
            f"column {dupes[0]!r} is mapped to several fields ({', '.join(fields)})",
            [RowError(None, dupes[0], None, "mapped to more than one field")],
        )
    return preset, mapping, warnings


def band_columns(
    mapping: dict[str, str],
    registry: BandRegistry,
    flux_unit: str | None,
    units: dict[str, str],
    file: str,
) -> list[BandColumns]:
    """The photometry plan in wavelength order, with each flux band's unit."""
    by_band: dict[str, dict[str, str]] = {}
    for f, col in mapping.items():
        parsed = presets.photometry_field(f)
        if parsed is None:
            continue
        kind, role, band = parsed
        by_band.setdefault(band, {})[f"{kind}_{role}"] = col
    errors: list[RowError] = []
    plan: list[BandColumns] = []
    for band in registry.ordered_names(list(by_band)):
        cols = by_band[band]
        kinds = {k.split("_")[0] for k in cols}
        if len(kinds) > 1:
            errors.append(
                RowError(
                    file,
                    cols.get("mag_value") or cols.get("mag_error"),
                    None,
                    f"band {band} is mapped both as a magnitude and as a flux",
                )
            )
            continue
        kind = kinds.pop()
        value = cols.get(f"{kind}_value")
        error = cols.get(f"{kind}_error")
        if value is None:
            errors.append(
                RowError(file, error, None, f"error column given for band {band} without a value")
            )
            continue
        declared, declared_jy = column_unit_kind(units.get(value))
        if declared is not None and declared != kind:
            errors.append(
                RowError(
                    file,
                    value,
                    None,
                    f"the file gives column {value!r} the unit {units[value]!r}, a "
                    f"{'flux' if declared == 'flux' else 'magnitude'}, but it is mapped as "
                    f"{kind}_{band}; map it as "
                    f"{presets.photometry_field_name(declared, 'value', band)}",
                )
            )
            continue
        unit = None
        if kind == "flux":
            unit = flux_unit or units.get(value)
            if unit is None:
                errors.append(
                    RowError(
                        file,
                        value,
                        None,
                        f"flux column for band {band} has no unit in the file; give flux_unit "
                        "(nJy, uJy, mJy, Jy, nanomaggy)",
                    )
                )
                continue
            try:
                size = flux_unit_in_jy(unit)
            except ValueError as exc:
                errors.append(RowError(file, value, None, str(exc)))
                continue
            if declared_jy is not None and not math.isclose(size, declared_jy, rel_tol=1e-9):
                errors.append(
                    RowError(
                        file,
                        value,
                        None,
                        f"the file gives column {value!r} the unit {units[value]!r} but "
                        f"flux_unit is {flux_unit!r}; leave flux_unit out to use the file's",
                    )
                )
                continue
        plan.append(BandColumns(band, kind, value, error, unit))
    if errors:
        raise InvalidInputError(f"{file}: photometry columns do not fit", errors)
    return plan


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
def _in_range(values: np.ndarray, column: str, log: ErrorLog, lo: float, hi: float, what: str):
    """Sentinels → NaN; inf and out-of-range values are errors (and become NaN)."""
    values = values.copy()
    values[near_sentinels(values, SENTINELS)] = np.nan
    inf = np.isinf(values)
    log.add(column, inf, "infinite value")
    values[inf] = np.nan
    out = (values < lo) | (values > hi)
    log.add(column, out, lambda r: f"{what} {_fmt(float(values[r]))} outside [{lo:g}, {hi:g}]")
    values[out] = np.nan
    return values


@dataclass
class Rules:
    """Everything validation needs besides the rows themselves."""

    kind: str
    mapping: dict[str, str]
    plan: list[BandColumns]
    file: str
    secure_rule: dict[str, Any] | None
    survey_default: str | None
    skip_missing_redshift: bool
    negative_error: str = "limit"
    z_min: float = DEFAULT_Z_MIN
    check: bool = True


@dataclass
class Validated:
    columns: dict[str, np.ndarray]  # stored fields -> values (mags/magerrs: (n, B))
    keep: np.ndarray  # rows (of the chunk) that are stored, in order
    counts: dict[str, dict[str, int]]  # band -> status -> rows (of the kept rows)
    spectra: dict[str, int]  # spectroscopic outcome counts (of the kept rows)


def validate(chunk: pd.DataFrame, rules: Rules, log: ErrorLog) -> Validated:
    """Validate one chunk of rows; errors go to ``log`` (which knows the chunk's offset)."""
    n = len(chunk)
    mapping, file = rules.mapping, rules.file
    log.start_chunk(n)
    out: dict[str, np.ndarray] = {}

    if "source_id" in mapping:
        ids = _text(chunk[mapping["source_id"]], mapping["source_id"], log)
        missing = np.fromiter((v is None for v in ids), dtype=bool, count=n)
        log.add(mapping["source_id"], missing, "missing source id")
        out["source_id"] = ids
    else:
        out["source_id"] = (np.arange(n) + log.offset).astype(str).astype(object)

    for f in ("ra", "dec"):
        if f in mapping:
            col = mapping[f]
            lo, hi = RANGES[f]
            out[f] = _in_range(_as_float(chunk[col], col, log), col, log, lo, hi, f.upper())
        else:
            out[f] = np.full(n, np.nan)

    B = len(rules.plan)
    mags = np.full((n, B), np.nan)
    errs = np.full((n, B), np.nan)
    status = np.zeros((n, B), dtype=np.uint8)
    for j, bc in enumerate(rules.plan):
        try:
            cleaned = clean_band(
                chunk[bc.value],
                chunk[bc.error] if bc.error is not None else None,
                kind=bc.kind,
                flux_unit=bc.flux_unit or "uJy",
                negative_error=rules.negative_error,
                check=rules.check,
                column=bc.value,
                error_column=bc.error,
                source=file,
            )
        except PhotometryError as exc:
            log.add_file(exc.column or bc.value, exc.reason)
            continue
        for r, (column, reason) in cleaned.invalid.items():
            log.add_row(column or bc.value, r, reason)
        mags[:, j] = cleaned.mag
        errs[:, j] = cleaned.magerr
        status[:, j] = cleaned.status
    out["mags"] = mags
    out["magerrs"] = errs
    n_measured = (status == MEASURED).sum(axis=1)

    dropped = np.zeros(n, dtype=bool)
    spectra: dict[str, int] = {}
    if rules.kind == "photometric":
        if "z_phot" in mapping:
            col = mapping["z_phot"]
            lo, hi = RANGES["z_phot"]
            out["z_phot"] = _in_range(_as_float(chunk[col], col, log), col, log, lo, hi, "z_phot")
        else:
            out["z_phot"] = np.full(n, np.nan)
    else:
        col = mapping["z_spec"]
        lo, hi = RANGES["z_spec"]
        z = _in_range(_as_float(chunk[col], col, log), col, log, lo, hi, "z_spec")
        no_z = np.isnan(z) & ~log.bad
        if rules.skip_missing_redshift:
            dropped |= no_z
        else:
            log.add(col, no_z, "missing spectroscopic redshift")
        out["z_spec"] = z

        quality = quality_raw = None
        if "quality" in mapping:
            qcol = mapping["quality"]
            series = chunk[qcol]
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
            secure_col = _bools(chunk[mapping["secure"]], mapping["secure"], log)
        star = np.zeros(n, dtype=bool)
        if "star" in mapping:
            star = _bools(chunk[mapping["star"]], mapping["star"], log)
        rule = rules.secure_rule
        quality_ok = evaluate_secure(n, rule, quality, quality_raw, secure_col)
        with np.errstate(invalid="ignore"):
            low_z = ~star & (z < rules.z_min)
        galaxy = ~star & ~low_z
        out["secure"] = quality_ok & galaxy

        # A spectrum without two usable bands and without a position can never be placed
        # on a map: it would be counted nowhere, so it is not taken silently.
        placeable = (n_measured >= 2) | (np.isfinite(out["ra"]) & np.isfinite(out["dec"]))
        log.add(
            mapping.get("ra") or mapping["z_spec"],
            ~placeable & ~dropped & ~log.bad,
            "spectrum has neither usable photometry (two bands) nor RA/Dec, so it cannot be "
            "placed in a cell; give its photometry or position, or use on_invalid=skip",
        )
        if "survey" in mapping:
            out["survey"] = _text(chunk[mapping["survey"]], mapping["survey"], log)
        else:
            out["survey"] = np.full(n, rules.survey_default, dtype=object)
        spectra = {"star": star, "low_z": low_z, "quality_ok": quality_ok}

    keep = ~(log.bad | dropped)
    columns = {k: v[keep] for k, v in out.items()}
    kept_status = status[keep]
    counts = {
        bc.band: {
            name: int((kept_status[:, j] == code).sum())
            for code, name in enumerate(STATUS_NAMES)
            if code != INVALID
        }
        for j, bc in enumerate(rules.plan)
    }
    spec_counts: dict[str, int] = {}
    if rules.kind == "spectroscopic":
        star, low_z, quality_ok = (spectra[k][keep] for k in ("star", "low_z", "quality_ok"))
        spec_counts = {
            "secure": int(columns["secure"].sum()),
            "not_secure_quality": int((~quality_ok & ~star & ~low_z).sum()),
            "star": int(star.sum()),
            "below_z_min": int(low_z.sum()),
            "no_photometry": int((n_measured[keep] < 2).sum()),
            "dropped_no_redshift": int(dropped.sum()),
        }
    return Validated(columns, np.flatnonzero(keep), counts, spec_counts)


def default_secure_rule(
    mapping: dict[str, str], requested: dict[str, Any] | None, preset: presets.Preset, file: str
) -> dict[str, Any]:
    """The rule that decides ``secure``: the request's, the preset's, or implied by columns."""
    rule = requested if requested is not None else preset.secure_rule
    if rule is None:
        if "secure" in mapping:
            rule = {"kind": "column"}
        elif "quality" not in mapping:
            # No flag at all: the catalogue vouches for every redshift it lists.
            rule = {"kind": "all"}
        else:
            raise BadRequestError(
                f"{file}: a quality column ({mapping['quality']!r}) is mapped but no "
                "secure_rule says which values are secure, e.g. "
                '{"kind": "range", "min": 3, "max": 5, "modulo": 10}',
                [RowError(file, mapping["quality"], None, "secure_rule needed")],
            )
    if rule["kind"] == "column" and "secure" not in mapping:
        raise BadRequestError(f"{file}: secure_rule 'column' needs a mapped 'secure' column")
    if rule["kind"] in ("range", "in", "min") and "quality" not in mapping:
        raise BadRequestError(
            f"{file}: secure_rule {rule['kind']!r} needs a 'quality' column; map one, "
            'e.g. mapping={"quality": "flag"}'
        )
    return rule


# ----------------------------------------------------------------------------- orchestration
def find_duplicate(session: Session, kind: str, sha256: str) -> Catalogue | None:
    return session.scalar(
        select(Catalogue).where(Catalogue.kind == kind, Catalogue.sha256 == sha256)
    )


def _same_or_conflict(existing: Catalogue, req: IngestRequest) -> IngestResult:
    """The catalogue already made from this file, if it was made with the same options;
    otherwise a 409 that names every option that differs."""
    stored = existing.options
    wanted = req.options()
    if stored is None:
        # Ingested before options were recorded: only the preset and mapping are known.
        stored = {"preset": wanted["preset"], "mapping": wanted["mapping"]}
        stored = (
            {**wanted, **stored}
            if existing.preset in (None, wanted["preset"])
            else {**wanted, "preset": existing.preset}
        )
    diffs = [
        RowError(
            req.filename,
            None,
            None,
            f"{key}: catalogue {existing.id} was ingested with {stored.get(key)!r}, this "
            f"request asks for {wanted.get(key)!r}",
        )
        for key in wanted
        if stored.get(key) != wanted.get(key)
    ]
    if diffs:
        raise ConflictError(
            f"{req.filename}: this file is already catalogue {existing.id} ({existing.kind}), "
            f"ingested with other options ({', '.join(d.reason.split(':')[0] for d in diffs)}); "
            f"delete catalogue {existing.id} first to ingest it differently",
            diffs,
            catalogue_id=existing.id,
        )
    return IngestResult(catalogue=existing, duplicate=True)


def _chunks(table: TableReader, columns: list[str], text_cols: tuple[str, ...]):
    """The mapped columns in frames of at most ``CHUNK_ROWS`` rows, in file order."""
    for _offset, frame in table.iter_chunks(columns, text_cols, chunk_rows=CHUNK_ROWS):
        yield frame


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
        raise unreadable_file(exc, req.filename) from exc


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
            return _same_or_conflict(existing, req)

    if size == 0:
        raise InvalidInputError(f"{file}: file is empty", [RowError(file, None, None, "empty")])
    fmt = req.file_format or detect_format(req.path, req.filename)
    if fmt not in FORMATS:
        raise BadRequestError(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
    table = TableReader(req.path, fmt, name=file)
    hint = table.n_rows_hint()
    if hint is not None and hint > max_rows:
        raise TooLargeError(f"{file}: {hint} rows; the limit is {max_rows}")
    available = table.columns
    registry = registry_for(req.bands)
    rule = check_secure_rule(req.secure_rule)
    preset, mapping, warnings = resolve_mapping(
        req.kind, available, req.preset, req.mapping, registry
    )
    if req.kind == "spectroscopic" and "z_spec" not in mapping:
        raise InvalidInputError(
            f"{file}: no spectroscopic redshift column found (preset {preset.name!r}); map one "
            'with mapping={"z_spec": "<column>"}',
            [RowError(file, None, None, "no z_spec column")],
            available_columns=available[:200],
        )
    units = table.units()
    plan = band_columns(mapping, registry, req.flux_unit, units, file)
    if req.kind == "photometric" and len(plan) < 2:
        raise InvalidInputError(
            f"{file}: fewer than two bands with photometry (a colour needs two); recognised: "
            f"{[b.band for b in plan] or 'none'}; map columns such as mag_g/flux_g, declare "
            "bands the registry does not know, or choose a preset",
            [RowError(file, None, None, w) for w in warnings]
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
    text_cols = tuple(mapping[f] for f in ("source_id", "survey", "quality") if f in mapping)
    columns = list(dict.fromkeys(mapping.values()))
    log = ErrorLog(file)
    band_counts = {bc.band: dict.fromkeys(STATUS_NAMES[:INVALID], 0) for bc in plan}
    spec_counts: dict[str, int] = {}
    n_read = n_stored = 0

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
                secure_rule=secure_rule,
                bands=[bc.band for bc in plan],
                options=req.options(),
                n_rows=0,
                n_skipped=0,
                n_secure=None,
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
                return _same_or_conflict(existing, req)
            pieces = _chunks(table, columns, text_cols)
            for chunk in pieces:
                n_read += len(chunk)
                if n_read > max_rows:
                    total = n_read + sum(len(c) for c in pieces)  # say how many, to help
                    raise TooLargeError(f"{file}: {total} rows; the limit is {max_rows}")
                # The log numbers this chunk's rows from its first row in the file.
                checked = validate(chunk, rules, log)
                del chunk
                if progress is not None:
                    progress(n_read)
                if log.file_level or (log.count and req.on_invalid == "reject"):
                    continue  # keep reading to count (and list) the errors; store nothing
                for band, counts in checked.counts.items():
                    for k, v in counts.items():
                        band_counts[band][k] += v
                for k, v in checked.spectra.items():
                    spec_counts[k] = spec_counts.get(k, 0) + v
                if len(checked.keep) == 0:
                    continue
                _insert_rows(session, catalogue, checked, log.offset)
                n_stored += len(checked.keep)
                if after_insert is not None:
                    after_insert.rows(
                        session,
                        catalogue,
                        _stored_rows(session, catalogue, checked, log.offset, plan),
                    )
            log.finish()
            if n_read == 0:
                raise InvalidInputError(
                    f"{file}: no data rows", [RowError(file, None, None, "no rows")]
                )
            if log.count and (req.on_invalid == "reject" or log.file_level):
                what = (
                    "invalid input, the file cannot be ingested"
                    if log.file_level
                    else (f"{log.count} invalid value(s); nothing was stored")
                )
                raise InvalidInputError(
                    f"{file}: {what} (first {min(log.count, MAX_LISTED_ERRORS)} listed)",
                    log.items,
                    n_errors=log.count,
                )
            if n_stored == 0:
                items = log.items[:MAX_LISTED_ERRORS]
                if spec_counts.get("dropped_no_redshift") or (
                    skip_missing and req.kind == "spectroscopic"
                ):
                    items.append(
                        RowError(
                            file, mapping.get("z_spec"), None, "no row has a spectroscopic redshift"
                        )
                    )
                raise InvalidInputError(f"{file}: no valid rows to ingest", items)
            measured = [b for b, c in band_counts.items() if c["measured"] > 0]
            if req.kind == "photometric" and len(measured) < 2:
                raise InvalidInputError(
                    f"{file}: fewer than two bands have any measurement (a colour needs two); "
                    f"bands with values: {measured or 'none'}",
                    [RowError(file, None, None, "fewer than two measured bands")],
                )
            catalogue.n_rows = n_stored
            catalogue.n_skipped = n_read - n_stored
            catalogue.n_secure = spec_counts.get("secure") if req.kind == "spectroscopic" else None
            catalogue.summary = {
                "rows_read": n_read,
                "rows_stored": n_stored,
                "rows_skipped": n_read - n_stored,
                "rows_with_errors": log.rows_with_errors,
                "photometry": {
                    b.band: {
                        "kind": b.kind,
                        "column": b.value,
                        "error_column": b.error,
                        "flux_unit": b.flux_unit,
                        **band_counts[b.band],
                    }
                    for b in plan
                },
                **({"spectra": spec_counts} if req.kind == "spectroscopic" else {}),
                "warnings": warnings,
            }
            placed: dict[int, dict[str, int]] = {}
            if after_insert is not None:
                placed = after_insert.done(session, catalogue)
                # every ready map, and how many rows landed in a cell there (never silent)
                catalogue.summary = {
                    **catalogue.summary,
                    "maps": {str(k): v for k, v in placed.items()},
                }
            assigned = list(placed)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return IngestResult(
        catalogue=catalogue,
        duplicate=False,
        errors=log.items,
        n_errors=log.count,
        assigned_maps=assigned,
        warnings=warnings,
    )


def _insert_rows(session: Session, catalogue: Catalogue, checked: Validated, offset: int) -> None:
    """Write a chunk's kept rows (``offset``: the chunk's first row in the file)."""
    c = checked.columns
    n = len(checked.keep)
    cols = [
        Col("catalogue_id", "int4", np.full(n, catalogue.id, dtype=np.int32)),
        Col("row_index", "int4", (checked.keep + offset).astype(np.int32)),
        Col("source_id", "text", c["source_id"]),
        Col("ra", "float8", c["ra"]),
        Col("dec", "float8", c["dec"]),
        Col("mags", "bytea", pack(c["mags"])),
        Col("magerrs", "bytea", pack(c["magerrs"])),
    ]
    if catalogue.kind == "photometric":
        cols.append(Col("z_phot", "float8", c["z_phot"]))
    else:
        cols += [
            Col("z_spec", "float8", c["z_spec"]),
            Col("quality_raw", "text", c["quality_raw"]),
            Col("quality", "float8", c["quality"]),
            Col("secure", "bool", c["secure"]),
            Col("survey", "text", c["survey"]),
        ]
    # catalogue_id is the catalogue row flushed in this transaction.
    bulk_insert(session.connection(), _table(catalogue), cols, references_valid=True)


def _table(catalogue: Catalogue) -> str:
    return "sources" if catalogue.kind == "photometric" else "spectra"


def _stored_rows(
    session: Session,
    catalogue: Catalogue,
    checked: Validated,
    offset: int,
    plan: list[BandColumns],
) -> pd.DataFrame:
    """A written chunk as the ledger hook wants it: ``object_id`` (the ids the database
    gave, which COPY does not return), ``row_index``, ``mag_<band>``/``magerr_<band>``,
    ra, dec."""
    c = checked.columns
    row_index = (checked.keep + offset).astype(np.int32)
    ids = session.execute(
        text(
            f"SELECT id FROM {_table(catalogue)} WHERE catalogue_id = :c "
            "AND row_index BETWEEN :lo AND :hi ORDER BY row_index"
        ),
        {"c": catalogue.id, "lo": int(row_index[0]), "hi": int(row_index[-1])},
    ).all()
    rows = photometry_frame([b.band for b in plan], c["mags"], c["magerrs"])
    rows.insert(0, "row_index", row_index)
    rows.insert(0, "object_id", np.fromiter((r[0] for r in ids), np.int64, count=len(ids)))
    rows["ra"] = c["ra"]
    rows["dec"] = c["dec"]
    return rows
