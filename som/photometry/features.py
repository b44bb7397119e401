"""Photometry to SOM features: :class:`ColourFeatures` (adjacent colours, optionally one
magnitude, their errors and the normalisation stored with a map) and its column access.

At ~600 lines on purpose: one class and the column lookup it alone uses; split, neither half
would read on its own."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from som.photometry.cleaning import (
    FLUX_SENTINELS,
    MAG_SENTINELS,
    NEGATIVE_ERROR_POLICIES,
    clean_band,
    column_as_float64,
    near_sentinels,
)
from som.photometry.errors import PhotometryError
from som.photometry.units import (
    flux_unit_in_jy,
    is_magnitude_unit,
    parse_unit,
    unit_size_jy,
)
from som.vocabulary import MagnitudeScale, choices

_FORMAT_TYPE = "somcal.ColourFeatures"
_FORMAT_VERSION = 1

_MAX_LISTED_COLUMNS = 40

#: ColourFeatures' constructor parameters, in order
FEATURE_PARAMS = _PARAM_NAMES = (
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
    "magnitudes",
    "softening",
)
#: Lupton, Gunn & Szalay (1999): the softening that minimises the asinh magnitude's error
#: at low signal-to-noise is b = 1.042 sigma (sigma: the sky noise of a flux measurement).
LUPTON_B_PER_SIGMA = 1.042


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
            return parse_unit(unit, strict=False)
        from astropy import units as u

        if isinstance(unit, u.UnrecognizedUnit):
            # astropy's table readers keep "nanomaggies" or "ABmag" unparsed: read it again
            # with the astronomers' spellings
            return parse_unit(unit.to_string(), strict=False)
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
    magnitudes : {"pogson", "asinh"}
        "asinh" (fluxes only): Lupton et al. (1999) asinh magnitudes, as DES uses for its wide
        map. A measured flux <= 0 then still gives a finite magnitude (Pogson: undetected,
        the band missing), so noisy shallow photometry keeps faint galaxies' information.
    softening : mapping of band to flux, optional
        "asinh" only: the softening b of each band in ``flux_unit``. None: learned by ``fit``
        as 1.042 x the median flux error of the band in the training table (Lupton's
        optimal b for sky-limited noise); stored in ``softening_``.

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
        magnitudes: str = "pogson",
        softening: Mapping[str, float] | None = None,
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
        if magnitudes not in choices(MagnitudeScale):
            raise ValueError(
                f"magnitudes must be one of {choices(MagnitudeScale)}, got {magnitudes!r}"
            )
        self.magnitudes = str(MagnitudeScale(magnitudes).value)
        if self.magnitudes == "asinh" and kind != "flux":
            raise ValueError(
                "asinh magnitudes need fluxes (kind='flux'): a catalogue of magnitudes has "
                "already lost the faint and negative fluxes they keep"
            )
        if softening is not None and self.magnitudes != "asinh":
            raise ValueError("softening applies to magnitudes='asinh' only")
        self.softening = None if softening is None else _softening(softening, self._needed_bands())

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
                softening=self._softening_of(band),
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

    def _softening_of(self, band: str) -> float | None:
        if self.magnitudes != "asinh":
            return None
        table = self.softening if self.softening is not None else getattr(self, "softening_", None)
        if table is None:
            raise RuntimeError(
                "asinh magnitudes need each band's softening: fit(training_table) first, or "
                "give softening={band: flux}"
            )
        return table[band]

    def _learn_softening(self, table: Any, source: str | None) -> dict[str, float]:
        """1.042 x the median flux error of each band (Lupton's optimal b): the typical
        error is the sky noise of the faint majority of a catalogue."""
        if self.error_template is None:
            raise PhotometryError(
                "asinh magnitudes learn each band's softening from its flux errors: give "
                "error columns (error_template) or softening={band: flux}",
                source=source,
            )
        cols = _Columns(table, source)
        out = {}
        for band in self._needed_bands():
            name = self.error_column(band)
            if not cols.has(name):
                raise cols.missing_column_error(name, "error")
            e = column_as_float64(cols.raw(name), name, source)
            with np.errstate(invalid="ignore"):
                good = np.isfinite(e) & (e > 0) & ~near_sentinels(e, self.sentinels)
            if not good.any():
                raise PhotometryError(
                    "no positive flux error to learn the asinh softening from",
                    column=name,
                    source=source,
                )
            out[band] = LUPTON_B_PER_SIGMA * float(np.median(e[good]))
        return out

    def _check_unit(self, cols: _Columns, name: str) -> None:
        unit = cols.unit(name)
        if unit is None:
            return
        if self.kind == "mag" and unit_size_jy(unit) is not None:  # maggies too
            raise PhotometryError(
                f"column unit is {unit} (a flux) but kind='mag'; use kind='flux'",
                column=name,
                source=cols.source,
            )
        if self.kind == "flux":
            if is_magnitude_unit(unit):
                raise PhotometryError(
                    f"column unit is {unit} (a magnitude) but kind='flux'",
                    column=name,
                    source=cols.source,
                )
            size = unit_size_jy(unit)
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
        """Fit the per-feature normalisation (and, for asinh magnitudes without a given
        softening, each band's softening) on a training table; returns ``self``."""
        if self.magnitudes == "asinh" and self.softening is None:
            self.softening_ = self._learn_softening(table, source)
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
            "magnitudes": self.magnitudes,
            "softening": None if self.softening is None else dict(self.softening),
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
            if hasattr(self, "softening_"):
                d["softening_learned"] = dict(self.softening_)
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
            optional = {
                "negative_error": "limit",
                "check": True,
                "colours": None,
                "magnitudes": "pogson",
                "softening": None,
            }
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
            if d.get("softening_learned") is not None:
                obj.softening_ = _softening(d["softening_learned"], obj._needed_bands())
            elif obj.magnitudes == "asinh" and obj.softening is None:
                raise ValueError("a fitted asinh description must carry softening_learned")
        return obj

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"ColourFeatures({params})"


def _softening(values: Mapping[str, float], bands: Sequence[str]) -> dict[str, float]:
    """``{band: b}`` for every band, each a finite flux > 0."""
    if not isinstance(values, Mapping):
        raise ValueError(f"softening must map band names to fluxes, got {type(values).__name__}")
    missing = [b for b in bands if b not in values]
    if missing:
        raise ValueError(f"softening lacks band(s) {missing}")
    out = {}
    for band in bands:
        try:
            b = float(values[band])
        except (TypeError, ValueError):
            raise ValueError(
                f"softening[{band!r}] must be a number, got {values[band]!r}"
            ) from None
        if not (math.isfinite(b) and b > 0):
            raise ValueError(f"softening[{band!r}] must be a finite flux > 0, got {b}")
        out[band] = b
    return out


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
