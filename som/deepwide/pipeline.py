"""End-to-end deep/wide calibration from catalogues: :class:`DeepWideCalibration`.

Builds colour features with :class:`~som.photometry.ColourFeatures` for the deep bands and
the wide bands (any subsets, named by their columns), trains a deep map and a wide map,
assigns the transfer catalogue on both, the spectra on the deep map and the wide sample on
the wide map, and calls :func:`~som.deepwide.deep_wide_nz`.

Column conventions (those of :mod:`som.mock`): the deep and wide frames hold
``value_template`` / ``error_template`` columns per band (``mag_{band}``,
``magerr_{band}``); the transfer catalogue holds the same columns prefixed
``deep_`` and ``wide_`` (``deep_mag_u``, ``wide_mag_u_lsst``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from som.deepwide import saved
from som.deepwide.cells import (
    assign_bins,
    redshift_in_cells,
    spec_bin_fractions,
    transfer_matrix,
    wide_cell_redshift,
)
from som.deepwide.ensemble import DeepWideEnsemble, nz_ensemble
from som.deepwide.nz import DeepWideNz, deep_wide_nz
from som.estimator import SOM
from som.photometry import ColourFeatures
from som.photometry.features import FEATURE_PARAMS

BINNINGS = ("mean", "mode", "photoz")
TRAIN_WIDE_ON = ("wide", "transfer")
#: the constructor's parameters (saved with a fitted calibration)
PARAM_NAMES = (
    "deep_bands",
    "wide_bands",
    "deep_shape",
    "wide_shape",
    "lattice",
    "n_epochs",
    "random_state",
    "bin_edges",
    "z_edges",
    "binning",
    "value_template",
    "error_template",
    "kind",
    "magnitude_band",
    "deep_magnitude_band",
    "wide_magnitude_band",
    "transfer_prefixes",
    "train_wide_on",
    "bin_conditioning",
    "deep_photometry",
    "wide_photometry",
)
#: what deep_photometry / wide_photometry may set (bands and the magnitude band have their
#: own parameters)
_PHOTOMETRY_KEYS = frozenset(FEATURE_PARAMS) - {"bands", "magnitude_band"}
#: default n(z) grid: 0 < z < 4 in steps of 0.02
Z_EDGES = tuple(round(0.02 * k, 2) for k in range(201))


def _strip_prefix(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    cols = [c for c in frame.columns if isinstance(c, str) and c.startswith(prefix)]
    return frame[cols].rename(columns={c: c[len(prefix) :] for c in cols})


def _column(frame: pd.DataFrame, spec: Any, n: int, name: str) -> np.ndarray | None:
    """A per-row array given as a column name, an array, or None."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in frame.columns:
            raise ValueError(f"{name}: column {spec!r} is not in the catalogue")
        return frame[spec].to_numpy(dtype=np.float64)
    arr = np.asarray(spec, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one value per row ({n}), got shape {arr.shape}")
    return arr


class DeepWideCalibration:
    """Deep/wide SOM n(z) (SOMPZ) from a deep, a wide and a transfer catalogue and spectra.

    Parameters
    ----------
    deep_bands, wide_bands : sequence of str
        Bands of the deep and of the wide map, in wavelength order (adjacent colours).
    deep_shape, wide_shape : (int, int)
        Rows and columns of the two maps.
    lattice : {"hex", "rect"}; n_epochs : int; random_state : int or None
        Passed to both :class:`~som.SOM` s (the wide map gets ``random_state + 1``).
    bin_edges : sequence of float
        Tomographic bin edges (in the redshift that ``binning`` gives).
    z_edges : sequence of float
        Redshift grid of the n(z).
    binning : {"mean", "mode", "photoz"}
        Bin each wide cell by the mean or modal redshift its deep cells give, or bin each
        galaxy (and each transfer object) by a supplied photo-z (``photo_z`` in ``fit``).
    value_template, error_template, kind, magnitude_band :
        Passed to both :class:`ColourFeatures` (``deep_magnitude_band`` /
        ``wide_magnitude_band`` override ``magnitude_band`` per map).
    transfer_prefixes : (str, str)
        Prefixes of the deep and the wide photometry in the transfer catalogue.
    train_wide_on : {"wide", "transfer"}
        Train the wide map on the wide sample or on the transfer catalogue's wide side.
    bin_conditioning : bool
        Weight each spectrum by its galaxy's bin membership (:func:`spec_bin_fractions`)
        when the transfer catalogue has ``id`` and the spectra do too.
    deep_photometry, wide_photometry : dict, optional
        :class:`ColourFeatures` keywords for one side over the shared ones (``kind``,
        ``value_template``, ``error_template``, ``flux_unit``, ``magnitudes``,
        ``softening``, ``min_error``, ``sentinels``, ``colours``, ...). DES's wide map on
        asinh magnitudes of the mock's fluxes: ``wide_photometry={"kind": "flux",
        "value_template": "flux_{band}", "error_template": "fluxerr_{band}",
        "magnitudes": "asinh"}``.

    Learned attributes: ``deep_features_``, ``wide_features_``, ``deep_som_``,
    ``wide_som_``, ``transfer_deep_cells_``, ``transfer_wide_cells_``, ``spec_deep_cells_``,
    ``spec_z_``, ``wide_cells_``, ``transfer_matrix_``, ``cell_redshifts_``,
    ``wide_cell_z_``, ``cell_bins_`` (None with photo-z binning), ``wide_bins_``,
    ``transfer_bins_``, ``spec_bin_fractions_`` (or None), ``nz_`` (:class:`DeepWideNz`).
    """

    def __init__(
        self,
        deep_bands=("u", "g", "r", "i", "z", "Y", "J", "H"),
        wide_bands=("u_lsst", "g_lsst", "r_lsst", "i_lsst", "z_lsst", "y_lsst"),
        *,
        deep_shape: tuple[int, int] = (32, 32),
        wide_shape: tuple[int, int] = (24, 24),
        lattice: str = "hex",
        n_epochs: int = 20,
        random_state: int | None = 0,
        bin_edges=(0.0, 0.4, 0.7, 1.0, 1.5),
        z_edges=Z_EDGES,
        binning: str = "mean",
        value_template: str = "mag_{band}",
        error_template: str | None = "magerr_{band}",
        kind: str = "mag",
        magnitude_band: str | None = None,
        deep_magnitude_band: str | None = None,
        wide_magnitude_band: str | None = None,
        transfer_prefixes: tuple[str, str] = ("deep_", "wide_"),
        train_wide_on: str = "wide",
        bin_conditioning: bool = True,
        deep_photometry: dict[str, Any] | None = None,
        wide_photometry: dict[str, Any] | None = None,
    ) -> None:
        self.deep_bands = deep_bands
        self.wide_bands = wide_bands
        self.deep_shape = deep_shape
        self.wide_shape = wide_shape
        self.lattice = lattice
        self.n_epochs = n_epochs
        self.random_state = random_state
        self.bin_edges = bin_edges
        self.z_edges = z_edges
        self.binning = binning
        self.value_template = value_template
        self.error_template = error_template
        self.kind = kind
        self.magnitude_band = magnitude_band
        self.deep_magnitude_band = deep_magnitude_band
        self.wide_magnitude_band = wide_magnitude_band
        self.transfer_prefixes = transfer_prefixes
        self.train_wide_on = train_wide_on
        self.bin_conditioning = bin_conditioning
        self.deep_photometry = deep_photometry
        self.wide_photometry = wide_photometry

    # ------------------------------------------------------------------ helpers
    def _photometry(self, side: str) -> dict[str, Any]:
        """ColourFeatures keywords of one side ("deep" or "wide"): the shared ones, then
        ``deep_photometry`` / ``wide_photometry`` over them."""
        base = {
            "kind": self.kind,
            "value_template": self.value_template,
            "error_template": self.error_template,
        }
        override = self.deep_photometry if side == "deep" else self.wide_photometry
        if override is not None:
            unknown = set(override) - _PHOTOMETRY_KEYS
            if unknown:
                raise ValueError(
                    f"{side}_photometry: unknown key(s) {sorted(unknown)}; use "
                    f"{sorted(_PHOTOMETRY_KEYS)}"
                )
            base.update(override)
        return base

    def _features(self, side: str) -> ColourFeatures:
        bands = tuple(self.deep_bands if side == "deep" else self.wide_bands)
        own = self.deep_magnitude_band if side == "deep" else self.wide_magnitude_band
        if len(bands) < 2 or len(set(bands)) != len(bands):
            raise ValueError(f"a map needs at least two distinct bands, got {bands!r}")
        return ColourFeatures(
            bands=bands,
            magnitude_band=own if own is not None else self.magnitude_band,
            **self._photometry(side),
        )

    def _columns(self, side: str) -> list[str]:
        bands = self.deep_bands if side == "deep" else self.wide_bands
        phot = self._photometry(side)
        cols = [phot["value_template"].format(band=b) for b in bands]
        if phot["error_template"] is not None:
            cols += [phot["error_template"].format(band=b) for b in bands]
        return cols

    def _check_bands(self, frame: pd.DataFrame, side: str, what: str, prefix: str = "") -> None:
        """Clear error when a catalogue lacks a map's band columns."""
        bands = self.deep_bands if side == "deep" else self.wide_bands
        missing = [prefix + c for c in self._columns(side) if prefix + c not in frame.columns]
        if not missing:
            return
        head = prefix + self._photometry(side)["value_template"].split("{band}")[0]
        have = sorted(
            c[len(head) :]
            for c in frame.columns
            if isinstance(c, str) and c.startswith(head) and not c.startswith(head + "err")
        )
        raise ValueError(
            f"{what} does not match the map's bands {list(bands)}: missing columns "
            f"{missing[:6]}{' ...' if len(missing) > 6 else ''}; it has bands {have}"
        )

    def _som(self, shape, seed_offset: int) -> SOM:
        rows, cols = (int(s) for s in shape)
        rs = None if self.random_state is None else int(self.random_state) + seed_offset
        return SOM(rows, cols, lattice=self.lattice, n_epochs=self.n_epochs, random_state=rs)

    def _check_params(self) -> None:
        if self.binning not in BINNINGS:
            raise ValueError(f"binning must be one of {BINNINGS}, got {self.binning!r}")
        if self.train_wide_on not in TRAIN_WIDE_ON:
            raise ValueError(
                f"train_wide_on must be one of {TRAIN_WIDE_ON}, got {self.train_wide_on!r}"
            )
        if len(self.transfer_prefixes) != 2:
            raise ValueError("transfer_prefixes must be (deep_prefix, wide_prefix)")

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        deep: pd.DataFrame,
        wide: pd.DataFrame,
        transfer: pd.DataFrame,
        spec: Any,
        *,
        z_column: str = "z_spec",
        wide_weights: Any = None,
        transfer_weights: Any = "weight",
        spec_weights: Any = None,
        photo_z: Any = None,
        transfer_photo_z: Any = None,
        truth_column: str | None = None,
        allow_missing_transfer: bool = False,
    ) -> DeepWideCalibration:
        """Train both maps and compute the n(z).

        ``spec``: a boolean mask over ``deep``'s rows (the deep galaxies with a redshift in
        ``z_column``), or a frame with the deep bands and ``z_column``. Spectra with a NaN
        redshift are ignored. ``wide_weights``/``transfer_weights``/``spec_weights``: a
        column name of the matching frame, an array, or None (``transfer_weights``
        defaults to the mock's ``weight`` column when present). ``photo_z`` and
        ``transfer_photo_z`` (binning="photoz"): per-galaxy photo-z of the wide sample and
        of the transfer objects (column names or arrays). ``truth_column``: a wide column
        of true redshifts (a mock), filling the truth fields of ``nz_``.
        """
        self._check_params()
        dp, wp = self.transfer_prefixes
        self._check_bands(deep, "deep", "the deep catalogue")
        self._check_bands(wide, "wide", "the wide catalogue")
        self._check_bands(transfer, "deep", "the transfer catalogue's deep side", dp)
        self._check_bands(transfer, "wide", "the transfer catalogue's wide side", wp)
        if isinstance(spec, pd.DataFrame):
            spec_frame = spec
            self._check_bands(spec_frame, "deep", "the spectroscopic catalogue")
        else:
            mask = np.asarray(spec)
            if mask.dtype != bool or mask.shape != (len(deep),):
                raise ValueError(
                    f"spec must be a DataFrame or a boolean mask over the deep rows "
                    f"({len(deep)}), got dtype {mask.dtype} and shape {mask.shape}"
                )
            spec_frame = deep[mask]
        if z_column not in spec_frame.columns:
            raise ValueError(f"the spectroscopic catalogue has no column {z_column!r}")
        if self.binning == "photoz" and (photo_z is None or transfer_photo_z is None):
            raise ValueError("binning='photoz' needs photo_z and transfer_photo_z")

        t_deep = _strip_prefix(transfer, dp)
        t_wide = _strip_prefix(transfer, wp)

        # deep map: trained on the deep catalogue
        self.deep_features_ = self._features("deep")
        Xd, Ed = self.deep_features_.fit_transform(deep)
        # Real catalogues hold galaxies with no usable colour (no counterpart, every band
        # missing): they cannot train a map, and are left without a cell (-1) below, so
        # they count in no bin; ``deep_som_.n_skipped_`` / ``wide_som_.n_skipped_`` say how
        # many.
        self.deep_som_ = self._som(self.deep_shape, 0).fit(Xd, Ed, skip_empty=True)
        # wide map: on the wide sample or the transfer's wide side
        self.wide_features_ = self._features("wide")
        train = wide if self.train_wide_on == "wide" else t_wide
        self.wide_features_.fit(train)
        Xw, Ew = self.wide_features_.transform(wide)
        Xtrain, Etrain = (Xw, Ew) if train is wide else self.wide_features_.transform(train)
        self.wide_som_ = self._som(self.wide_shape, 1).fit(Xtrain, Etrain, skip_empty=True)

        def cells(som, X, E):
            return som.assign(X, E, skip_empty=True).cell.astype(np.int64)

        self.wide_cells_ = cells(self.wide_som_, Xw, Ew)
        self.transfer_deep_cells_ = cells(self.deep_som_, *self.deep_features_.transform(t_deep))
        self.transfer_wide_cells_ = cells(self.wide_som_, *self.wide_features_.transform(t_wide))
        self.spec_deep_cells_ = cells(self.deep_som_, *self.deep_features_.transform(spec_frame))
        self.spec_z_ = spec_frame[z_column].to_numpy(dtype=np.float64)
        s_ok = np.isfinite(self.spec_z_)
        self.spec_deep_cells_ = np.where(s_ok, self.spec_deep_cells_, -1)
        z_clean = np.where(s_ok, self.spec_z_, -1.0)

        nd, nw = self.deep_som_.n_cells, self.wide_som_.n_cells
        # the default "weight": the mock's column when there is one, else unweighted
        if (
            isinstance(transfer_weights, str)
            and transfer_weights == "weight"
            and ("weight" not in transfer.columns)
        ):
            transfer_weights = None
        t_w = _column(transfer, transfer_weights, len(transfer), "transfer_weights")
        w_w = _column(wide, wide_weights, len(wide), "wide_weights")
        s_w = _column(spec_frame, spec_weights, len(spec_frame), "spec_weights")
        self.transfer_matrix_ = transfer_matrix(
            self.transfer_deep_cells_, self.transfer_wide_cells_, nd, nw, t_w
        )
        self.cell_redshifts_ = redshift_in_cells(
            self.spec_deep_cells_, z_clean, nd, self.z_edges, s_w
        )
        n_bins = len(self.bin_edges) - 1
        if self.binning == "photoz":
            self.wide_cell_z_ = None
            self.cell_bins_ = None
            self.wide_bins_ = assign_bins(
                _column(wide, photo_z, len(wide), "photo_z"), self.bin_edges
            )
            self.transfer_bins_ = assign_bins(
                _column(transfer, transfer_photo_z, len(transfer), "transfer_photo_z"),
                self.bin_edges,
            )
        else:
            self.wide_cell_z_ = wide_cell_redshift(
                self.transfer_matrix_, self.cell_redshifts_, self.binning
            )
            self.cell_bins_ = assign_bins(self.wide_cell_z_, self.bin_edges)
            self.wide_bins_ = np.where(self.wide_cells_ >= 0, self.cell_bins_[self.wide_cells_], -1)
            self.transfer_bins_ = np.where(
                self.transfer_wide_cells_ >= 0, self.cell_bins_[self.transfer_wide_cells_], -1
            )
        self.spec_bin_fractions_ = None
        if self.bin_conditioning and "id" in transfer.columns and "id" in spec_frame.columns:
            self.spec_bin_fractions_ = spec_bin_fractions(
                spec_frame["id"].to_numpy(),
                transfer["id"].to_numpy(),
                self.transfer_bins_,
                n_bins,
                t_w,
            )
        self._transfer_ids = transfer["id"].to_numpy() if "id" in transfer.columns else None
        truth = None if truth_column is None else _column(wide, truth_column, len(wide), "truth")
        self._nz_inputs = self._nz_inputs_from(
            z_clean,
            wide_weights=w_w,
            transfer_weights=t_w,
            spec_weights=s_w,
            truth=truth,
            allow_missing_transfer=allow_missing_transfer,
        )
        self.nz_ = deep_wide_nz(**self._nz_inputs)
        return self

    def _nz_inputs_from(
        self,
        spec_z: np.ndarray,
        *,
        wide_weights: np.ndarray | None,
        transfer_weights: np.ndarray | None,
        spec_weights: np.ndarray | None,
        truth: np.ndarray | None,
        allow_missing_transfer: bool,
    ) -> dict[str, Any]:
        """The arguments of :func:`deep_wide_nz` from the learned cells and bins (``spec_z``
        with NaN redshifts as -1): kept so that ensembles redraw the same n(z)."""
        n_bins = len(self.bin_edges) - 1
        inputs = dict(
            transfer_deep_cells=self.transfer_deep_cells_,
            transfer_wide_cells=self.transfer_wide_cells_,
            spec_deep_cells=self.spec_deep_cells_,
            spec_z=spec_z,
            wide_cells=self.wide_cells_,
            n_deep=self.deep_som_.n_cells,
            n_wide=self.wide_som_.n_cells,
            z_edges=self.z_edges,
            wide_weights=wide_weights,
            transfer_weights=transfer_weights,
            spec_weights=spec_weights,
            spec_bin_fractions=self.spec_bin_fractions_,
            truth_z=truth,
            allow_missing_transfer=allow_missing_transfer,
        )
        if self.binning == "photoz":
            inputs.update(wide_bins=self.wide_bins_, transfer_bins=self.transfer_bins_)
        else:
            inputs.update(cell_bins=self.cell_bins_)
        inputs["n_bins"] = n_bins
        return inputs

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """The fitted calibration as one self-describing zip (:mod:`som.deepwide.saved`):
        both maps, their colour features, the parameters and the arrays the n(z) comes
        from; no pickle."""
        return saved.to_bytes(self)

    def save(self, path) -> Path:
        """Write the fitted calibration to ``path`` (atomically)."""
        return saved.save(self, path)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> DeepWideCalibration:
        return saved.from_bytes(cls, data, source)

    @classmethod
    def load(cls, path) -> DeepWideCalibration:
        """A calibration saved with :meth:`save`; its n(z) is recomputed from the stored
        cells and weights and equals the saved one's."""
        return saved.load(cls, path)

    def nz_ensemble(
        self, n: int = 100, method: str = "dirichlet", random_state: Any = None, **kwargs
    ) -> DeepWideEnsemble:
        """Realisations of the fitted n(z) (see :func:`~som.deepwide.nz_ensemble`)."""
        if not hasattr(self, "nz_"):
            raise RuntimeError("DeepWideCalibration is not fitted: call fit(...) first")
        inputs = dict(self._nz_inputs)
        if method == "bootstrap_deep" and "transfer_ids" not in kwargs:
            kwargs["transfer_ids"] = getattr(self, "_transfer_ids", None)
        return nz_ensemble(
            **inputs, n_realisations=n, method=method, random_state=random_state, **kwargs
        )


__all__ = ["BINNINGS", "DeepWideCalibration", "DeepWideNz"]
