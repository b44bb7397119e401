"""Photometry to SOM features: colours of adjacent bands, masks, errors and normalisation.

The SOM is trained on colours (u-g, g-r, ...), optionally with one magnitude, because colours
track redshift and galaxy type while being independent of distance (Masters et al. 2015).
This module turns a catalogue of magnitudes or fluxes into the feature matrix ``X`` and its
errors ``E``, and stores the normalisation with the map so a map applied later transforms
new inputs bit-for-bit like its training set.

Missing photometry is masked (NaN in ``X``), never replaced by a number: NaN, +-inf, catalogue
sentinels (99, -99, -99.9 by default) and non-positive fluxes are all "missing", and a colour
is missing when either of its bands is. ``E`` is finite exactly where ``X`` is finite.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .vocabulary import NegativeError, choices

__all__ = [
    "AB_ZEROPOINT_JY",
    "ColourFeatures",
    "PhotometryError",
    "clean_band",
    "column_unit_kind",
    "flux_to_mag",
    "flux_unit_in_jy",
]

#: Flux density of an AB magnitude of zero, in Jy (the convention used by the field).
AB_ZEROPOINT_JY = 3631.0

# d(mag)/d(ln f): the factor in sigma_m = 2.5/ln(10) * sigma_f / f.
_POGSON = 2.5 / math.log(10.0)

_FORMAT_TYPE = "somcal.ColourFeatures"
_FORMAT_VERSION = 1

# Sentinels are compared with a relative tolerance so that -99.9 stored as float32 (which
# becomes -99.90000152587891 in float64) or printed with few digits still matches.
_SENTINEL_RTOL = 1e-6

_MAX_LISTED_COLUMNS = 40

_PARAM_NAMES = (
    "bands",
    "kind",
    "value_template",
    "error_template",
    "flux_unit",
    "magnitude_band",
    "normalise",
    "sentinels",
    "min_error",
    "negative_error",
    "check",
    "colours",
)


class PhotometryError(ValueError):
    """Bad photometric input, located as precisely as possible.

    Attributes
    ----------
    reason : str
        What is wrong.
    column : str or None
        The offending column.
    row : int or None
        First offending row, 0-based position in the input order (not a pandas index label).
    source : str or None
        The file (or other source name) the table came from, when the caller gave one.
    """

    def __init__(
        self,
        reason: str,
        *,
        column: str | None = None,
        row: int | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = reason
        self.column = None if column is None else str(column)
        self.row = None if row is None else int(row)
        self.source = None if source is None else str(source)
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        where = []
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if where:
            parts.append(", ".join(where))
        parts.append(self.reason)
        return ": ".join(parts)

    def __reduce__(self):
        # Keyword-only arguments are lost by the default exception pickling; errors must survive
        # being sent back from worker processes (Dask, multiprocessing).
        return (_rebuild_error, (type(self), self.reason, self.column, self.row, self.source))


def _rebuild_error(cls, reason, column, row, source):
    return cls(reason, column=column, row=row, source=source)


# --------------------------------------------------------------------------------------------
# units
# --------------------------------------------------------------------------------------------


def _parse_unit(text: str, strict: bool):
    from astropy import units as u

    with warnings.catch_warnings():
        # "erg/s/cm2/Hz" is what people write; astropy warns that FITS dislikes two slashes.
        warnings.simplefilter("ignore")
        return u.Unit(text, parse_strict="raise" if strict else "silent")


def _is_magnitude_unit(unit) -> bool:
    from astropy import units as u

    # "AB" and "ST" parse as flux units (3631 Jy, ...) but in catalogue headers they label
    # magnitudes.
    if isinstance(unit, u.UnrecognizedUnit):
        return False
    return isinstance(unit, u.MagUnit) or unit == u.mag or unit.to_string() in ("AB", "ST")


def _is_flux_unit(unit) -> bool:
    from astropy import units as u

    if isinstance(unit, u.UnrecognizedUnit) or _is_magnitude_unit(unit):
        return False
    try:
        return unit.is_equivalent(u.Jy)
    except Exception:  # function units and other exotic kinds: not a plain flux density
        return False


def flux_unit_in_jy(flux_unit: str) -> float:
    """Size of one ``flux_unit`` in Jy; ``ValueError`` if it is not a flux density unit."""

    try:
        unit = _parse_unit(flux_unit, strict=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"flux_unit {flux_unit!r} is not a unit astropy understands") from exc
    size = _unit_size_jy(unit)
    if size is None:
        raise ValueError(
            f"flux_unit {flux_unit!r} is not a spectral flux density "
            "(expected e.g. 'uJy', 'nJy', 'Jy', 'erg/s/cm2/Hz', 'nanomaggy')"
        )
    return size


def column_unit_kind(text: str | None) -> tuple[str | None, float | None]:
    """What a column's declared unit says it holds: ``("flux", size in Jy)``, ``("mag",
    None)``, or ``(None, None)`` for no unit or one that is neither (counts, "dimensionless").

    The same reading of FITS/ECSV/VOTable/Parquet unit strings as ``ColourFeatures`` applies
    to astropy tables, for callers that read a file's header themselves (the service).
    """
    if not text:
        return None, None
    unit = _parse_unit(str(text), strict=False)
    if _is_magnitude_unit(unit):
        return "mag", None
    size = _unit_size_jy(unit)
    return ("flux", size) if size is not None else (None, None)


def _unit_size_jy(unit) -> float | None:
    """Size of a parsed flux unit in Jy, or None if it is not a flux unit."""
    from astropy import units as u

    if _is_maggy_unit(unit):
        # SDSS / Legacy Survey fluxes: a maggy is by definition the AB zero-point flux.
        return float(unit.to(u.maggy)) * AB_ZEROPOINT_JY
    if _is_flux_unit(unit):
        return float(unit.to(u.Jy))
    return None


def _is_maggy_unit(unit) -> bool:
    from astropy import units as u

    if isinstance(unit, u.UnrecognizedUnit) or unit == u.dimensionless_unscaled:
        return False
    try:
        return unit.is_equivalent(u.maggy)
    except Exception:
        return False


def flux_to_mag(
    flux: np.ndarray,
    flux_err: np.ndarray | None = None,
    flux_unit: str = "uJy",
) -> tuple[np.ndarray, np.ndarray | None]:
    """AB magnitudes (and errors) from fluxes; non-positive or non-finite fluxes give NaN.

    ``mag = -2.5 log10(f / 3631 Jy)`` and ``sigma_mag = 2.5/ln(10) * sigma_f / f`` (first-order
    propagation, which understates the error at low signal-to-noise).

    Parameters
    ----------
    flux, flux_err : array_like, shape (n,)
        Flux densities and their 1-sigma errors in ``flux_unit``.
    flux_unit : str
        Any astropy spectral flux density unit ("uJy", "nJy", "Jy", "erg/s/cm2/Hz", ...) or
        "nanomaggy" (1 maggy = 3631 Jy).
    """
    zeropoint = _ab_zeropoint(flux_unit_in_jy(flux_unit))
    f = np.asarray(flux, dtype=np.float64)
    ok = np.isfinite(f) & (f > 0)
    mag = np.full(f.shape, np.nan)
    mag[ok] = zeropoint - 2.5 * np.log10(f[ok])
    if flux_err is None:
        return mag, None
    e = np.asarray(flux_err, dtype=np.float64)
    err = np.full(f.shape, np.nan)
    err[ok] = e[ok] / f[ok] * _POGSON  # same operation order as ColourFeatures
    return mag, err


def _ab_zeropoint(unit_in_jy: float) -> float:
    # mag = -2.5 log10(f * unit / 3631 Jy) = zeropoint - 2.5 log10(f): 23.9 for uJy, 31.4 for nJy.
    return 2.5 * math.log10(AB_ZEROPOINT_JY / unit_in_jy)


# --------------------------------------------------------------------------------------------
# table access
# --------------------------------------------------------------------------------------------


class _Columns:
    """Uniform read-only access to 1-D numeric columns of the supported table types."""

    def __init__(self, table: Any, source: str | None) -> None:
        self.source = source
        self.table = table
        if isinstance(table, pd.DataFrame):
            self.kind = "pandas"
            self.names = [str(c) for c in table.columns]
            self._keys = _keys_by_name(table.columns)
            self.n = len(table)
            self._units = dict(table.attrs.get("units", {}) or {})
            return
        if isinstance(table, np.ndarray):
            if table.dtype.names is None:
                raise TypeError(
                    "a plain numpy array has no column names; pass a structured array, a "
                    "pandas DataFrame, an astropy Table or a dict of arrays"
                )
            if table.ndim != 1:
                raise PhotometryError(
                    f"structured array must be 1-D, got shape {table.shape}", source=source
                )
            self.kind = "structured"
            self.names = list(table.dtype.names)
            self.n = len(table)
            self._units = {}
            return
        if type(table).__module__.startswith("astropy.table"):
            self.kind = "astropy"
            self.names = list(table.colnames)
            self.n = len(table)
            self._units = {
                name: table[name].unit for name in self.names if table[name].unit is not None
            }
            return
        if isinstance(table, Mapping):
            self.kind = "mapping"
            self.names = [str(k) for k in table]
            self._keys = _keys_by_name(table)
            self._units = {}
            self.n = None  # fixed by the first column read; all must agree
            return
        raise TypeError(
            f"unsupported table type {type(table).__name__}: pass a pandas DataFrame, an astropy "
            "Table, a numpy structured array or a dict of arrays"
        )

    def has(self, name: str) -> bool:
        return name in self.names

    def missing_column_error(self, name: str, role: str) -> PhotometryError:
        names = self.names
        listed = ", ".join(repr(c) for c in names[:_MAX_LISTED_COLUMNS])
        if len(names) > _MAX_LISTED_COLUMNS:
            listed += f", ... ({len(names) - _MAX_LISTED_COLUMNS} more)"
        lowered = {c.lower(): c for c in names}
        if name.lower() in lowered:
            hint = [lowered[name.lower()]]
        else:
            # A high cutoff: 'mag_g' must not suggest 'mag_u', but 'magerr_g' may suggest
            # 'mag_err_g'.
            hint = difflib.get_close_matches(name, names, n=1, cutoff=0.85)
        reason = f"required {role} column is missing; available columns: {listed or '(none)'}"
        if hint:
            reason += f"; did you mean {hint[0]!r}?"
        return PhotometryError(reason, column=name, source=self.source)

    def unit(self, name: str):
        unit = self._units.get(name)
        if unit is None:
            return None
        if isinstance(unit, str):
            return _parse_unit(unit, strict=False)
        return unit

    def raw(self, name: str) -> Any:
        """Column ``name`` as stored (numbers or text), checked for duplicates and length."""
        if self.kind in ("pandas", "mapping"):
            keys = self._keys.get(name, [])
            if len(keys) > 1:
                raise PhotometryError(
                    "column name appears more than once", column=name, source=self.source
                )
            raw = self.table[keys[0]]
        else:
            raw = self.table[name]
        if not isinstance(raw, pd.Series) and not hasattr(raw, "shape"):
            raw = np.asarray(raw)
        if getattr(raw, "ndim", 1) != 1:
            raise PhotometryError(
                f"expected a 1-D column, got shape {raw.shape}", column=name, source=self.source
            )
        if self.n is None:
            self.n = len(raw)
        elif len(raw) != self.n:
            raise PhotometryError(
                f"column has {len(raw)} rows, other columns have {self.n}",
                column=name,
                source=self.source,
            )
        return raw


def _keys_by_name(keys) -> dict[str, list]:
    # Columns may be keyed by non-strings (e.g. ints); templates produce strings.
    out: dict[str, list] = {}
    for key in keys:
        out.setdefault(str(key), []).append(key)
    return out


def column_as_float64(raw: Any, column: str, source: str | None) -> np.ndarray:
    """Column as float64 by :func:`parse_numbers`' rules; text that is not a number raises,
    naming the first such row."""
    values, bad = _numbers_or_error(raw, column, source)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PhotometryError(
            f"not a number: {str(_value_at(raw, row))[:40]!r}",
            column=column,
            row=row,
            source=source,
        )
    return values


def near_sentinels(values: np.ndarray, sentinels: Sequence[float]) -> np.ndarray:
    """True where ``values`` is within a relative 1e-6 of one of ``sentinels`` (so that -99.9
    stored as float32, -99.90000152587891 in float64, still matches)."""
    hit = np.zeros(values.shape, dtype=bool)
    if not sentinels:
        return hit
    tols = [_SENTINEL_RTOL * max(1.0, abs(s)) for s in sentinels]
    # Sentinels sit far from real photometry, so one cheap |v| test finds the few candidates
    # and the exact comparisons run on those only (3x faster on 10^6-row catalogues).
    floor = min(abs(s) - t for s, t in zip(sentinels, tols, strict=True))
    with np.errstate(invalid="ignore"):
        candidates = np.flatnonzero(np.abs(values) >= floor)
    if candidates.size:
        picked = values[candidates]
        found = np.zeros(candidates.size, dtype=bool)
        for s, t in zip(sentinels, tols, strict=True):
            found |= np.abs(picked - s) <= t
        hit[candidates[found]] = True
    return hit


# --------------------------------------------------------------------------------------------
# the one cleaning path: raw values -> AB magnitude, error and a status per row
# --------------------------------------------------------------------------------------------

#: Status of one band of one row after :func:`clean_band`.
MEASURED, MISSING, UNDETECTED, NO_ERROR, INVALID = 0, 1, 2, 3, 4
STATUS_NAMES = ("measured", "missing", "undetected", "no_error", "invalid")

#: Values that mean "no value" in magnitude columns (compared with a relative tolerance of
#: 1e-6, so float32-stored -99.9 matches). NaN, +-inf, blanks and |v| >= 1e20 (the 1e30
#: fill of many pipelines) are always missing.
MAG_SENTINELS: tuple[float, ...] = (99.0, -99.0, 99.9, -99.9, 99.99, -99.99, 999.0, -999.0,
                                    9999.0, -9999.0)
#: The same for flux columns. Positive sentinels are left out: a flux of 99 (µJy) is a real
#: measurement, and a negative or zero flux is a non-detection anyway.
FLUX_SENTINELS: tuple[float, ...] = (-99.0, -99.9, -99.99, -999.0, -9999.0)
#: Accepted AB magnitude range for a measurement; outside it the value is invalid (a fill
#: value not declared as a sentinel, or a flux in a magnitude column).
MAG_RANGE = (0.0, 50.0)
_FILL_ABS = 1e20

#: Text that means "no value" in a numeric column (case-insensitive, stripped).
BLANK_TEXT = frozenset({"", "nan", "+nan", "-nan", "null", "none", "na", "n/a", "--", "-", "?"})

NEGATIVE_ERROR_POLICIES = choices(NegativeError)


def parse_numbers(raw: Any) -> tuple[np.ndarray, np.ndarray]:
    """Float64 values of a column and the mask of entries that are text, not numbers.

    Blanks and :data:`BLANK_TEXT` (``'N/A'``, ``'null'``, ``'--'``...) become NaN; numeric
    columns are converted as they are; booleans are refused (``TypeError``) because true and
    false would pass as the numbers 1 and 0.
    """
    if isinstance(raw, pd.Series):
        if pd.api.types.is_bool_dtype(raw.dtype):
            raise TypeError("boolean column where numbers are expected")
        if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_complex_dtype(
            raw.dtype
        ):
            values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            return values, np.zeros(len(values), dtype=bool)
        obj = raw.to_numpy(dtype=object, na_value=None)
    else:
        if hasattr(raw, "unit") and hasattr(raw, "value") and not isinstance(
            raw, np.ma.MaskedArray
        ):
            raw = raw.value  # astropy Quantity: units are checked by the caller
        if isinstance(raw, np.ma.MaskedArray):  # includes astropy MaskedColumn
            mask = np.ma.getmaskarray(raw)
            data = np.asarray(np.ma.getdata(raw))
            if data.dtype.kind in "iuf":
                values = data.astype(np.float64)
                values[mask] = np.nan
                return values, np.zeros(len(values), dtype=bool)
            obj = data.astype(object)
            obj[mask] = None
        else:
            arr = np.asarray(raw)
            if arr.dtype.kind == "b":
                raise TypeError("boolean column where numbers are expected")
            if arr.dtype.kind == "c":
                raise TypeError("complex column where real numbers are expected")
            if arr.dtype.kind in "iuf":
                values = arr.astype(np.float64, copy=False)
                return values, np.zeros(values.shape, dtype=bool)
            if arr.dtype.kind not in "USO":
                raise TypeError(f"column has non-numeric dtype {arr.dtype}")
            obj = arr.astype(object)
    if obj.ndim != 1:
        raise TypeError(f"expected a 1-D column, got shape {obj.shape}")
    def decode(v):
        return v.decode("utf-8", "replace") if isinstance(v, bytes | bytearray | np.bytes_) else v

    text = pd.Series(obj, dtype=object).map(decode)
    if text.map(lambda v: isinstance(v, bool | np.bool_)).any():
        raise TypeError("boolean values where numbers are expected")
    as_text = text.astype("string").str.strip()
    blank = as_text.isna() | as_text.str.lower().isin(BLANK_TEXT)
    values = pd.to_numeric(as_text.where(~blank), errors="coerce").astype(np.float64)
    values = values.to_numpy(na_value=np.nan)
    bad = np.isnan(values) & ~blank.to_numpy(dtype=bool)
    return values, bad


@dataclass
class CleanBand:
    """One band after cleaning: AB magnitude and error (NaN unless measured), status codes."""

    mag: np.ndarray  # (n,) float64
    magerr: np.ndarray  # (n,) float64, NaN where no error column or not measured
    status: np.ndarray  # (n,) uint8: MEASURED, MISSING, UNDETECTED, NO_ERROR, INVALID
    # row -> (column, why) for every INVALID row; the column is the value's or the error's
    invalid: dict[int, tuple[str | None, str]]


def _close_to(values: np.ndarray, sentinels: Sequence[float]) -> np.ndarray:
    """True where ``values`` is a sentinel or a fill (|v| >= 1e20)."""
    with np.errstate(invalid="ignore"):
        fill = np.abs(values) >= _FILL_ABS
    return fill | near_sentinels(values, sentinels)


def clean_band(
    values: Any,
    errors: Any = None,
    *,
    kind: str = "mag",
    flux_unit: str | float = "uJy",
    sentinels: Sequence[float] | None = None,
    negative_error: str = "limit",
    check: bool = True,
    column: str | None = None,
    error_column: str | None = None,
    source: str | None = None,
) -> CleanBand:
    """Turn one band's raw values (and errors) into AB magnitudes: the one cleaning path.

    Library features, ingest, assignment and the CLI all call this, so a raw value has one
    meaning everywhere:

    ========================================  =========================================
    raw value                                 outcome
    ========================================  =========================================
    NaN, blank, 'N/A', 'null', '--', +-inf    missing
    a sentinel (see :data:`MAG_SENTINELS`,    missing
    :data:`FLUX_SENTINELS`), abs >= 1e20
    flux <= 0                                 undetected
    error < 0 (CIGALE/LePhare upper limit)    undetected (``negative_error="invalid"``:
                                              invalid)
    value given, error missing or sentinel    no_error: the band is dropped (a
                                              measurement that cannot be weighted)
    magnitude <= 0 or > 50, text              invalid (named with column and row)
    ========================================  =========================================

    Parameters
    ----------
    values, errors : array-like, shape (n,)
        Raw magnitudes or fluxes and their 1-sigma errors (``errors=None``: no error column).
    kind : {"mag", "flux"}
    flux_unit : str or float
        Unit of fluxes and flux errors (astropy spectral flux density, "nanomaggy"), or its
        size in Jy.
    sentinels : sequence of float, optional
        Overrides the default sentinels of ``kind``.
    negative_error : {"limit", "invalid"}
        What a negative error on a measured value means.
    check : bool
        Refuse a column whose values do not look like ``kind`` (see
        :func:`check_plausible`); pass False when you know better.
    column, error_column, source : str, optional
        Names used in messages.

    Returns
    -------
    CleanBand
        ``mag``/``magerr`` NaN wherever ``status != MEASURED``.
    """
    if kind not in ("mag", "flux"):
        raise ValueError(f"kind must be 'mag' or 'flux', got {kind!r}")
    if negative_error not in NEGATIVE_ERROR_POLICIES:
        raise ValueError(f"negative_error must be one of {NEGATIVE_ERROR_POLICIES}")
    invalid: dict[int, tuple[str | None, str]] = {}
    v, bad_text = _numbers_or_error(values, column, source)
    n = v.shape[0]
    status = np.full(n, MEASURED, dtype=np.uint8)
    if sentinels is None:
        sentinels = MAG_SENTINELS if kind == "mag" else FLUX_SENTINELS
    missing = ~np.isfinite(v) | _close_to(v, sentinels)
    status[missing] = MISSING
    _mark_text(bad_text, status, invalid, values, column)

    if check:
        problem = check_plausible(v[status == MEASURED], kind, flux_unit)
        if problem:
            raise PhotometryError(
                problem + " (pass check=False / --no-check if the values are right)",
                column=column,
                source=source,
            )

    if kind == "flux":
        unit_jy = _unit_jy(flux_unit)
        with np.errstate(invalid="ignore"):
            status[(status == MEASURED) & (v <= 0)] = UNDETECTED
    else:
        lo, hi = MAG_RANGE
        with np.errstate(invalid="ignore"):
            out = (status == MEASURED) & ((v <= lo) | (v > hi))
        for r in np.flatnonzero(out):
            invalid[int(r)] = (
                column,
                f"magnitude {_fmt_num(v[r])} outside ({lo:g}, {hi:g}]: a flux in a magnitude "
                "column, or a fill value to declare as a sentinel?",
            )
        status[out] = INVALID

    e = None
    if errors is not None:
        e, bad_etext = _numbers_or_error(errors, error_column, source)
        if e.shape != v.shape:
            raise PhotometryError(
                f"error column has {e.shape[0]} rows, values have {n}",
                column=error_column,
                source=source,
            )
        measured = status == MEASURED
        e_missing = ~np.isfinite(e) | _close_to(e, MAG_SENTINELS if kind == "mag" else ())
        status[measured & e_missing] = NO_ERROR
        with np.errstate(invalid="ignore"):
            negative = (status == MEASURED) & (e < 0)
        if negative_error == "limit":
            status[negative] = UNDETECTED
        else:
            for r in np.flatnonzero(negative):
                reason = f"negative error {_fmt_num(e[r])} on a measured value"
                invalid[int(r)] = (error_column, reason)
            status[negative] = INVALID
        text_rows = bad_etext & (status != INVALID)
        _mark_text(
            text_rows, status, invalid, errors, error_column, f" (error column {error_column!r})"
        )

    ok = status == MEASURED
    # ufuncs with where= leave the unusable entries NaN without the gather and scatter of
    # fancy indexing, which doubled the cost on 10^6 rows; NaN stays NaN through the rest.
    mag = np.full(n, np.nan)
    err = np.full(n, np.nan)
    if kind == "flux":
        np.log10(v, out=mag, where=ok)
        mag *= -2.5
        mag += _ab_zeropoint(unit_jy)
        if e is not None:
            np.divide(e, v, out=err, where=ok)
            err *= _POGSON
    else:
        np.copyto(mag, v, where=ok)
        if e is not None:
            np.copyto(err, e, where=ok)
    return CleanBand(mag, err, status, invalid)


def _numbers_or_error(raw: Any, column: str | None, source: str | None):
    try:
        return parse_numbers(raw)
    except TypeError as exc:
        raise PhotometryError(str(exc), column=column, source=source) from exc


def _value_at(raw: Any, row: int) -> Any:
    return raw.iloc[row] if isinstance(raw, pd.Series) else np.asarray(raw, dtype=object)[row]


def _mark_text(bad, status, invalid, raw, column, note: str = "") -> None:
    if not bad.any():
        return
    status[bad] = INVALID
    for r in np.flatnonzero(bad):
        invalid[int(r)] = (column, f"not a number: {str(_value_at(raw, r))[:40]!r}{note}")


def _unit_jy(flux_unit: str | float) -> float:
    """Size of ``flux_unit`` in Jy (a number is taken as that size already)."""
    return float(flux_unit) if isinstance(flux_unit, int | float) else flux_unit_in_jy(flux_unit)


def _fmt_num(value: float) -> str:
    return np.format_float_positional(float(value), precision=6, trim="-")


def check_plausible(values: np.ndarray, kind: str, flux_unit: str | float = "uJy") -> str | None:
    """Why a column does not look like ``kind`` (magnitudes or fluxes), or None.

    Needs at least 20 measured values. Rules, chosen to be far from any real survey:

    * magnitudes whose median lies outside [10, 40] AB, or whose values spread less than
      0.02 mag: fluxes (or another quantity) in a magnitude column;
    * fluxes whose logarithm spreads less than 0.1 dex with values within [10, 40]:
      magnitudes in a flux column;
    * fluxes whose implied median AB magnitude lies outside [16, 31]: a unit off by a
      factor of 1,000 or more (a galaxy survey's median magnitude sits near 20-28).
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 20:
        return None
    if kind == "mag":
        med = float(np.median(v))
        if not 10.0 <= med <= 40.0:
            return (
                f"values do not look like AB magnitudes (median {med:.3g}, outside 10-40): "
                "fluxes, or another quantity? declare the column as a flux with its unit"
            )
        spread = float(np.percentile(v, 95) - np.percentile(v, 5))
        if spread < 0.02:
            return (
                f"magnitudes hardly vary (5-95% range {spread:.2g} mag): not photometry of "
                "different galaxies"
            )
        return None
    pos = v[v > 0]
    if pos.size < 20:
        return None
    logs = np.log10(pos)
    inside = np.mean((pos >= 10) & (pos <= 40))
    if float(np.std(logs)) < 0.1 and inside > 0.9:
        return (
            f"values look like magnitudes, not fluxes (median {np.median(pos):.3g}, spread "
            f"{np.std(logs):.2g} dex): declare the column as a magnitude"
        )
    unit_jy = _unit_jy(flux_unit)
    med_mag = _ab_zeropoint(unit_jy) - 2.5 * float(np.median(logs))
    if not 16.0 <= med_mag <= 31.0:
        unit = flux_unit if isinstance(flux_unit, str) else f"{flux_unit:g} Jy"
        return (
            f"fluxes in {unit} imply a median AB magnitude of {med_mag:.1f}, far from any "
            "galaxy survey (16-31): is the flux unit right (off by a factor of 1,000?)"
        )
    return None


# --------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------


class ColourFeatures:
    """Turn a photometric catalogue into SOM features: adjacent colours (+ one magnitude).

    Parameters
    ----------
    bands : sequence of str
        Band names in wavelength order; features are ``bands[k] - bands[k+1]`` (AB colours)
        unless ``colours`` lists them.
    colours : sequence of "a-b" or (a, b), optional
        The colours to use instead of the adjacent ones, e.g. ``["u-g", "g-i", "i-Ks"]``;
        every band must be in ``bands``.
    kind : {"mag", "flux"}
        Whether the value columns hold AB magnitudes or flux densities.
    value_template, error_template : str
        Column names with ``{band}`` in place of the band name. ``error_template=None`` means
        no errors. For ``kind="flux"`` the error columns are flux errors in ``flux_unit``.
    flux_unit : str
        Unit of the flux columns (any astropy spectral flux density unit: "uJy", "nJy", "Jy",
        "erg/s/cm2/Hz", or "nanomaggy"/"maggy"). Fluxes are converted to AB magnitudes with
        3631 Jy as zero point.
    magnitude_band : str or None
        Append this band's magnitude as the last feature (named by the band, e.g. "i").
    normalise : {"standard", None}
        "standard": each feature becomes ``(x - mean_) / scale_`` with the NaN-aware mean and
        population standard deviation (ddof=0) of the training set. None: raw colours.
    sentinels : sequence of float
        Values that mean missing/undetected in value and error columns, compared with a
        relative tolerance of 1e-6 (so float32-stored -99.9 matches). NaN and +-inf are
        always missing. Beware that for fluxes a positive sentinel (99.0) also masks a genuine
        flux equal to 99.0 in ``flux_unit``; pass ``sentinels=(-99.0, -99.9)`` if that matters.
    min_error : float
        Magnitude error floor added in quadrature to every band error before colours are
        formed (e.g. for calibration uncertainties).

    Missing-value rules
    -------------------
    * A band value is missing if it is NaN, +-inf, a sentinel, or (fluxes) <= 0.
    * A band whose value is present but whose error is NaN/inf/sentinel is masked too, so that
      ``E`` is finite exactly where ``X`` is: a measurement that cannot be weighted is dropped.
    * A negative (non-sentinel) error on a present value raises :class:`PhotometryError`.
    * A colour is missing if either band is missing.

    Attributes (after ``fit``)
    --------------------------
    feature_names_ : list of str     e.g. ["u-g", "g-r", ..., "i"]
    n_features_ : int
    mean_, scale_ : ndarray, shape (n_features_,)   (zeros and ones when ``normalise=None``)
    n_valid_ : ndarray of int, shape (n_features_,)  training rows with the feature present
    """

    def __init__(
        self,
        bands: Sequence[str] = ("u", "g", "r", "i", "z", "Y", "J", "H"),
        kind: str = "mag",
        value_template: str = "mag_{band}",
        error_template: str | None = "magerr_{band}",
        flux_unit: str = "uJy",
        magnitude_band: str | None = None,
        normalise: str | None = "standard",
        sentinels: Sequence[float] | None = None,
        min_error: float = 0.0,
        negative_error: str = "limit",
        check: bool = True,
        colours: Sequence[Sequence[str] | str] | None = None,
    ) -> None:
        if isinstance(bands, str):
            raise ValueError(f"bands must be a sequence of band names, not the string {bands!r}")
        self.bands = tuple(str(b) for b in bands)
        if len(self.bands) < 2:
            raise ValueError(f"need at least two bands to form a colour, got {self.bands}")
        if len(set(self.bands)) != len(self.bands):
            raise ValueError(f"bands contain duplicates: {self.bands}")
        if kind not in ("mag", "flux"):
            raise ValueError(f"kind must be 'mag' or 'flux', got {kind!r}")
        self.kind = kind
        self.value_template = _check_template(value_template, "value_template")
        self.error_template = (
            None if error_template is None else _check_template(error_template, "error_template")
        )
        self.flux_unit = str(flux_unit)
        # Validated even for magnitudes so a typo does not wait until someone switches kind.
        self._unit_in_jy = flux_unit_in_jy(self.flux_unit) if kind == "flux" else None
        self.magnitude_band = None if magnitude_band is None else str(magnitude_band)
        if normalise not in ("standard", None):
            raise ValueError(f"normalise must be 'standard' or None, got {normalise!r}")
        self.normalise = normalise
        if sentinels is None:
            sentinels = MAG_SENTINELS if kind == "mag" else FLUX_SENTINELS
        try:
            self.sentinels = tuple(float(s) for s in sentinels)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sentinels must be numbers, got {sentinels!r}") from exc
        if negative_error not in NEGATIVE_ERROR_POLICIES:
            raise ValueError(
                f"negative_error must be one of {NEGATIVE_ERROR_POLICIES}, got {negative_error!r}"
            )
        self.negative_error = negative_error
        self.check = bool(check)
        self.colours = None if colours is None else _colour_list(colours, self.bands)
        if not all(math.isfinite(s) for s in self.sentinels):
            raise ValueError("sentinels must be finite (NaN and inf are always treated as missing)")
        self.min_error = float(min_error)
        if not (math.isfinite(self.min_error) and self.min_error >= 0):
            raise ValueError(f"min_error must be a finite number >= 0, got {min_error!r}")

    # ----------------------------------------------------------------------------- names
    def _colour_pairs(self) -> list[tuple[str, str]]:
        """The colours as (blue band, red band): adjacent bands unless ``colours`` says."""
        if self.colours is not None:
            return list(self.colours)
        return list(zip(self.bands[:-1], self.bands[1:], strict=True))

    def _feature_names(self) -> list[str]:
        names = [f"{a}-{b}" for a, b in self._colour_pairs()]
        if self.magnitude_band is not None:
            names.append(self.magnitude_band)
        return names

    def _needed_bands(self) -> tuple[str, ...]:
        if self.magnitude_band is None or self.magnitude_band in self.bands:
            return self.bands
        return (*self.bands, self.magnitude_band)

    def value_column(self, band: str) -> str:
        """Name of the value column of ``band``."""
        return self.value_template.format(band=band)

    def error_column(self, band: str) -> str | None:
        """Name of the error column of ``band`` (None when errors are not configured)."""
        return None if self.error_template is None else self.error_template.format(band=band)

    # ----------------------------------------------------------------------------- core
    def band_magnitudes(
        self, table: Any, source: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
        """AB magnitudes and errors per band, with every missing-value rule applied.

        Returns ``(M, Em, bands)``: ``M`` shape (n, B) AB mag, NaN where missing; ``Em`` shape
        (n, B) magnitude errors including ``min_error`` (None without error columns); and the
        band order (``bands`` plus ``magnitude_band`` if it is not among them). Needs no fit.
        """
        cols = _Columns(table, source)
        bands = self._needed_bands()
        for band in bands:
            if not cols.has(self.value_column(band)):
                raise cols.missing_column_error(self.value_column(band), "value")
        with_errors = False
        if self.error_template is not None:
            present = [cols.has(self.error_column(b)) for b in bands]
            if all(present):
                with_errors = True
            elif any(present):
                absent = self.error_column(bands[present.index(False)])
                err = cols.missing_column_error(absent, "error")
                raise PhotometryError(
                    "error column missing while other bands have errors; " + err.reason,
                    column=absent,
                    source=source,
                )

        n = cols.n
        M = Em = None
        for j, band in enumerate(bands):
            vname = self.value_column(band)
            self._check_unit(cols, vname)
            ename = self.error_column(band) if with_errors else None
            if ename is not None:
                self._check_unit(cols, ename)
            cleaned = clean_band(
                cols.raw(vname),
                cols.raw(ename) if ename is not None else None,
                kind=self.kind,
                flux_unit=self._unit_in_jy if self.kind == "flux" else "uJy",
                sentinels=self.sentinels,
                negative_error=self.negative_error,
                check=self.check,
                column=vname,
                error_column=ename,
                source=source,
            )
            if cleaned.invalid:
                row = min(cleaned.invalid)
                column, reason = cleaned.invalid[row]
                raise PhotometryError(reason, column=column, row=row, source=source)
            if M is None:
                n = len(cleaned.mag)
                M = np.empty((n, len(bands)), dtype=np.float64)
                Em = np.empty((n, len(bands)), dtype=np.float64) if with_errors else None
            M[:, j] = cleaned.mag
            if with_errors:
                Em[:, j] = cleaned.magerr
        if with_errors and self.min_error > 0:
            Em = np.hypot(Em, self.min_error)
        return M, Em, bands

    def _check_unit(self, cols: _Columns, name: str) -> None:
        unit = cols.unit(name)
        if unit is None:
            return
        if self.kind == "mag" and _is_flux_unit(unit):
            raise PhotometryError(
                f"column unit is {unit} (a flux) but kind='mag'; use kind='flux'",
                column=name,
                source=cols.source,
            )
        if self.kind == "flux":
            if _is_magnitude_unit(unit):
                raise PhotometryError(
                    f"column unit is {unit} (a magnitude) but kind='flux'",
                    column=name,
                    source=cols.source,
                )
            size = _unit_size_jy(unit)
            if size is not None and not math.isclose(size, self._unit_in_jy, rel_tol=1e-9):
                raise PhotometryError(
                    f"column unit is {unit} but flux_unit={self.flux_unit!r}",
                    column=name,
                    source=cols.source,
                )

    def _raw_features(self, table: Any, source: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        M, Em, bands = self.band_magnitudes(table, source)
        pairs = self._colour_pairs()
        nc = len(pairs)
        blue = [bands.index(a) for a, _ in pairs]
        red = [bands.index(b) for _, b in pairs]
        adjacent = blue == list(range(nc)) and red == list(range(1, nc + 1))
        F = nc + (self.magnitude_band is not None)
        X = np.empty((M.shape[0], F), dtype=np.float64)
        # adjacent colours (the default) as slices: no gather copies on 10^6-row inputs
        mb, mr = (M[:, :nc], M[:, 1 : nc + 1]) if adjacent else (M[:, blue], M[:, red])
        np.subtract(mb, mr, out=X[:, :nc])
        if self.magnitude_band is not None:
            X[:, nc] = M[:, bands.index(self.magnitude_band)]
        if Em is None:
            return X, None
        E = np.empty_like(X)
        eb, er = (Em[:, :nc], Em[:, 1 : nc + 1]) if adjacent else (Em[:, blue], Em[:, red])
        # sqrt(a^2 + b^2) in place rather than np.hypot (3x slower); magnitude errors never come
        # near the 1e154 where squaring would overflow.
        np.multiply(eb, eb, out=E[:, :nc])
        E[:, :nc] += er**2
        np.sqrt(E[:, :nc], out=E[:, :nc])
        if self.magnitude_band is not None:
            E[:, nc] = Em[:, bands.index(self.magnitude_band)]
        return X, E

    # ----------------------------------------------------------------------------- API
    def fit(self, table: Any, source: str | None = None) -> ColourFeatures:
        """Fit the per-feature normalisation on a training table; returns ``self``."""
        X, _ = self._raw_features(table, source)
        names = self._feature_names()
        if X.shape[0] == 0:
            raise PhotometryError("cannot fit features on an empty table", source=source)
        F = X.shape[1]
        mean = np.zeros(F)
        scale = np.ones(F)
        n_valid = np.zeros(F, dtype=np.int64)
        for k in range(F):
            # Contiguous copy of the finite values: numpy's pairwise summation then applies.
            col = X[:, k][np.isfinite(X[:, k])]
            n_valid[k] = col.size
            if col.size == 0:
                raise PhotometryError(
                    f"feature {names[k]!r} has no valid value in the training table "
                    f"({X.shape[0]} rows); check the band columns and sentinels",
                    source=source,
                )
            if self.normalise == "standard":
                m = col.mean()
                s = math.sqrt(np.mean((col - m) ** 2))
                if not s > 0:
                    raise PhotometryError(
                        f"feature {names[k]!r} has zero spread in the training table "
                        f"({col.size} valid values), so it cannot be standardised",
                        source=source,
                    )
                mean[k] = m
                scale[k] = s
        self.feature_names_ = names
        self.n_features_ = F
        self.mean_ = mean
        self.scale_ = scale
        self.n_valid_ = n_valid
        return self

    def transform(
        self, table: Any, source: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Features ``X`` (n, F) float64, NaN where missing, and errors ``E`` (n, F).

        ``E`` is in normalised units (colour error in quadrature, divided by ``scale_``),
        finite exactly where ``X`` is, or None when the table has no error columns.
        """
        self._require_fitted()
        X, E = self._raw_features(table, source)
        if self.normalise == "standard":
            X -= self.mean_
            X /= self.scale_
            if E is not None:
                E /= self.scale_
        return X, E

    def fit_transform(
        self, table: Any, source: str | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``fit(table)`` then ``transform(table)``, reading the table once."""
        return self.fit(table, source).transform(table, source)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Raw colours (and magnitude) from normalised features, e.g. for SOM cell weights."""
        self._require_fitted()
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-1] != self.n_features_:
            raise ValueError(f"expected {self.n_features_} features, got shape {X.shape}")
        return X * self.scale_ + self.mean_

    def _require_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise RuntimeError(
                "ColourFeatures is not fitted: call fit(training_table) first, or load a fitted "
                "one with ColourFeatures.from_dict(...)"
            )

    # ----------------------------------------------------------------------------- save/load
    def get_params(self) -> dict[str, Any]:
        return {
            "bands": list(self.bands),
            "kind": self.kind,
            "value_template": self.value_template,
            "error_template": self.error_template,
            "flux_unit": self.flux_unit,
            "magnitude_band": self.magnitude_band,
            "normalise": self.normalise,
            "sentinels": list(self.sentinels),
            "min_error": self.min_error,
            "negative_error": self.negative_error,
            "check": self.check,
            "colours": None if self.colours is None else [list(c) for c in self.colours],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description; floats are stored exactly (json uses repr)."""
        d: dict[str, Any] = {"type": _FORMAT_TYPE, "version": _FORMAT_VERSION}
        d.update(self.get_params())
        d["fitted"] = hasattr(self, "mean_")
        if d["fitted"]:
            d["feature_names"] = list(self.feature_names_)
            d["mean"] = [float(v) for v in self.mean_]
            d["scale"] = [float(v) for v in self.scale_]
            d["n_valid"] = [int(v) for v in self.n_valid_]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColourFeatures:
        """Rebuild (a fitted) ``ColourFeatures`` from :meth:`to_dict` output."""
        if not isinstance(d, Mapping):
            raise ValueError(f"expected a dict from ColourFeatures.to_dict(), got {type(d)}")
        if d.get("type") != _FORMAT_TYPE:
            raise ValueError(f"not a ColourFeatures description: type={d.get('type')!r}")
        if d.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"ColourFeatures format version {d.get('version')!r} is not supported "
                f"(this somcal reads version {_FORMAT_VERSION})"
            )
        try:
            # Maps saved before negative_error/check existed were made with those defaults.
            optional = {"negative_error": "limit", "check": True, "colours": None}
            obj = cls(
                **{k: d[k] if k not in optional else d.get(k, optional[k]) for k in _PARAM_NAMES}
            )
        except KeyError as exc:
            raise ValueError(f"ColourFeatures description lacks key {exc.args[0]!r}") from exc
        if d.get("fitted"):
            names = list(d["feature_names"])
            if names != obj._feature_names():
                raise ValueError(
                    f"stored feature names {names} do not match the parameters "
                    f"({obj._feature_names()}): the description is inconsistent"
                )
            mean = np.asarray(d["mean"], dtype=np.float64)
            scale = np.asarray(d["scale"], dtype=np.float64)
            n_valid = np.asarray(d.get("n_valid", [0] * len(names)), dtype=np.int64)
            for arr, key in ((mean, "mean"), (scale, "scale"), (n_valid, "n_valid")):
                if arr.shape != (len(names),):
                    raise ValueError(f"{key!r} has shape {arr.shape}, expected ({len(names)},)")
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
                raise ValueError("stored mean/scale must be finite with scale > 0")
            obj.feature_names_ = names
            obj.n_features_ = len(names)
            obj.mean_ = mean
            obj.scale_ = scale
            obj.n_valid_ = n_valid
        return obj

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"ColourFeatures({params})"


def parse_colour(text: str, bands: Sequence[str]) -> tuple[str, str]:
    """``"g-i"`` as ``("g", "i")``, splitting at the one '-' that leaves two of ``bands``
    (band names may themselves hold a '-')."""
    splits = [
        (text[:k], text[k + 1 :])
        for k, ch in enumerate(text)
        if ch == "-" and text[:k] in bands and text[k + 1 :] in bands
    ]
    if len(splits) != 1:
        raise ValueError(
            f"colour {text!r} is not 'band-band' of two of the bands {list(bands)}"
            + (" (ambiguous)" if splits else "")
        )
    return splits[0]


def _colour_list(colours, bands: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if isinstance(colours, str):
        raise ValueError(f"colours must be a list, not the string {colours!r}")
    out = []
    for c in colours:
        pair = parse_colour(c, bands) if isinstance(c, str) else tuple(str(b) for b in c)
        if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= set(bands):
            raise ValueError(f"colour {c!r} must be two different bands of {list(bands)}")
        out.append(pair)
    if not out:
        raise ValueError("colours, when given, must list at least one colour")
    if len(set(out)) != len(out):
        raise ValueError(f"colours repeat: {[f'{a}-{b}' for a, b in out]}")
    return tuple(out)


def _check_template(template: str, name: str) -> str:
    template = str(template)
    if "{band}" not in template:
        raise ValueError(f"{name} must contain '{{band}}', got {template!r}")
    try:
        template.format(band="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{name} {template!r} is not a valid template: {exc}") from exc
    return template
