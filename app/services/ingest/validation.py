"""Row validation of an ingest, chunk by chunk: the error log (every error counted, the
first ``MAX_LISTED_ERRORS`` listed with file, column, row and reason), parsing of numbers,
text and booleans, ranges and sentinels, the secure-redshift rules, and :func:`validate`,
which turns one chunk of file rows into the columns that are stored."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.services import presets
from app.services.errors import BadRequestError, RowError
from app.services.ingest.mapping import BandColumns
from som.photometry import (
    INVALID,
    MEASURED,
    STATUS_NAMES,
    PhotometryError,
    clean_band,
    deredden,
    near_sentinels,
    parse_numbers,
    to_ab,
)

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


_DECIMAL_COMMA = re.compile(r"not a number: '[+-]?\d*,\d+'")


def decimal_comma_hint(reason: str) -> str:
    """A European spreadsheet's ``21,5`` is refused like any text, with the likely cause."""
    if _DECIMAL_COMMA.match(reason):
        return f"{reason} (a decimal comma? export the numbers with a decimal point)"
    return reason


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
        log.add(column, bad, lambda r: decimal_comma_hint(f"not a number: {str(raw[r])[:40]!r}"))
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


def _bools(
    series: pd.Series,
    column: str,
    log: ErrorLog,
    true: frozenset[str] | set[str] = _TRUE,
    false: frozenset[str] | set[str] = _FALSE,
    what: str = "a boolean",
) -> np.ndarray:
    """True where a value (text compared lower-case) is in ``true``; a value in neither set
    is an error of its row, saying it is not ``what``."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=bool)
    text = _strings(series).str.strip().str.lower()
    truthy = text.isin(true).to_numpy(dtype=bool)
    falsy = text.isin(false).to_numpy(dtype=bool)
    raw = _strings(series).to_numpy(dtype=object, na_value=None)
    log.add(column, ~(truthy | falsy), lambda r: f"not {what}: {str(raw[r])[:40]!r}")
    return truthy


#: Spectral classes of a ``star`` column given as text (SDSS ``class``, DESI ``SPECTYPE``).
_STAR_CLASSES = {"star"}
_NOT_STAR_CLASSES = {"galaxy", "gal", "qso", "agn"}


def _star_flags(series: pd.Series, column: str, log: ErrorLog) -> np.ndarray:
    """A ``star`` column: booleans, or the spectral class a pipeline gives (``STAR`` is a
    star; ``GALAXY``, ``QSO`` are not), so a survey's class column maps as it is."""
    return _bools(
        series,
        column,
        log,
        true=_TRUE | _STAR_CLASSES,
        false=_FALSE | _NOT_STAR_CLASSES,
        what="a boolean or a spectral class (STAR, GALAXY, QSO)",
    )


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
    stars = rule.get("star_values")
    if stars is not None and (
        not isinstance(stars, list)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in stars)
    ):
        raise BadRequestError("secure_rule.star_values must be a list of quality values")
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


def _sigma_from_ivar(raw: pd.Series, column: str, log: ErrorLog) -> pd.Series:
    """sigma = 1/sqrt(ivar), NaN where there is none. An inverse variance of zero means no
    measurement (the Legacy Surveys' convention), so the caller marks the band missing; a
    negative one or text is an error of the row."""
    try:
        ivar, text = parse_numbers(raw)
    except TypeError as exc:
        log.add_file(column, f"inverse variances: {exc}")
        return pd.Series(np.full(len(raw), np.nan), index=raw.index)
    shown = raw.to_numpy(dtype=object)
    log.add(column, text, lambda r: f"inverse variance is not a number: {str(shown[r])[:40]!r}")
    log.add(column, ivar < 0, lambda r: f"negative inverse variance {_fmt(float(ivar[r]))}")
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(ivar > 0, 1.0 / np.sqrt(ivar), np.nan)
    return pd.Series(sigma, index=raw.index)


def _deredden(mag, err, status, raw: pd.Series, bc: BandColumns, log: ErrorLog):
    """``som.photometry.deredden`` with the band's extinction column; an unusable value
    where the band is measured is an error of its row."""
    column = bc.extinction
    assert column is not None and bc.extinction_kind is not None
    values = _as_float(raw, column, log)
    mag, err, status, bad = deredden(mag, err, status, values, bc.extinction_kind)
    what = "transmission" if bc.extinction_kind == "transmission" else "extinction"
    log.add(
        column,
        bad,
        lambda r: f"Galactic {what} {_fmt(float(values[r]))} of band {bc.band} is not usable",
    )
    return mag, err, status


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
        value = chunk[bc.value]
        error = chunk[bc.error] if bc.error is not None else None
        if error is not None and bc.error_is_ivar:
            error = _sigma_from_ivar(error, bc.error, log)
            # No inverse variance, no observation: the band is missing, whatever the flux.
            value = value.where(error.notna() | chunk[bc.error].isna(), np.nan)
        try:
            cleaned = clean_band(
                value,
                error,
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
            log.add_row(column or bc.value, r, decimal_comma_hint(reason))
        mags[:, j] = cleaned.mag
        errs[:, j] = cleaned.magerr
        status[:, j] = cleaned.status
        # The band's magnitude system to AB and its Galactic extinction
        # (band_semantics.band_semantics)
        mag, err, band_status = to_ab(
            mags[:, j], errs[:, j], status[:, j], bc.ab_offset, bc.softening
        )
        if bc.extinction is not None:
            mag, err, band_status = _deredden(mag, err, band_status, chunk[bc.extinction], bc, log)
        mags[:, j], errs[:, j], status[:, j] = mag, err, band_status
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
            star = _star_flags(chunk[mapping["star"]], mapping["star"], log)
        rule = rules.secure_rule
        if rule.get("star_values") and quality is not None:
            # A survey that flags stars by their quality code (DEEP2 ZQUALITY = -1).
            star |= np.isin(quality, np.asarray(rule["star_values"], dtype=float))
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
