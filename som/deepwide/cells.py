"""The pieces of a deep/wide calibration: the transfer function p(c|ĉ), p(z|c) per deep
cell, the wide occupation p(ĉ), tomographic bin assignment, and the input checks that
:mod:`som.deepwide.nz` shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from som.calibration._arrays import (
    as_cells,
    as_edges,
    as_float,
    as_weights,
    bin_index,
    cell_bin_counts,
)

# --------------------------------------------------------------------------------------
# input checks specific to the deep/wide side
# --------------------------------------------------------------------------------------


def _check_size(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _weights(weights: Any, n: int, name: str, other: str) -> np.ndarray:
    """Non-negative finite weights (``None`` → ones) that do not all vanish."""
    w = as_weights(weights, n, name, other)
    if n and weights is not None and not np.any(w > 0):
        raise ValueError(f"{name} are all zero: nothing to weight")
    return w


def _bins(bins: Any, n: int, n_bins: int, name: str, other: str) -> np.ndarray:
    """Bin index per row, in -1 .. n_bins-1 (-1 = in no bin)."""
    arr = as_cells(bins, n_bins, name)
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows but {other} has {n}")
    return arr


# --------------------------------------------------------------------------------------
# 1. transfer function p(c|ĉ)
# --------------------------------------------------------------------------------------


def transfer_matrix(
    deep_cells: Any, wide_cells: Any, n_deep: int, n_wide: int, weights: Any = None
) -> np.ndarray:
    """Transfer function p(c|ĉ) from a transfer (Balrog-like injection) catalogue.

    Parameters
    ----------
    deep_cells : (N,) int
        Deep-map cell of each transfer object's deep photometry (``-1`` = none: ignored).
    wide_cells : (N,) int
        Wide-map cell of the same object observed with wide-survey noise (``-1`` ignored).
    n_deep, n_wide : int
        Cells of the deep and of the wide map.
    weights : (N,) float, optional
        Non-negative weight per transfer object (e.g. its lensing weight or 1/number of
        injections of its deep galaxy); ``None`` = 1 each.

    Returns
    -------
    (n_wide, n_deep) float array. Row ĉ is p(c|ĉ), summing to 1. A wide cell that no
    transfer object (with weight > 0) reaches has a row of NaN: its transfer function is
    unknown, not zero. Count them with ``np.isnan(T[:, 0]).sum()``; :func:`deep_wide_nz`
    raises if wide-sample weight falls in such a cell (or excludes it, when asked, and
    reports the excluded fraction).
    """
    n_deep = _check_size(n_deep, "n_deep")
    n_wide = _check_size(n_wide, "n_wide")
    d = as_cells(deep_cells, n_deep, "deep_cells")
    w_c = as_cells(wide_cells, n_wide, "wide_cells")
    if len(w_c) != len(d):
        raise ValueError(f"wide_cells has {len(w_c)} rows but deep_cells has {len(d)}")
    w = _weights(weights, len(d), "weights", "deep_cells")
    ok = (d >= 0) & (w_c >= 0)
    counts = cell_bin_counts(w_c[ok], d[ok], w[ok], n_wide, n_deep)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, counts / rows, np.nan)


# --------------------------------------------------------------------------------------
# 2. p(z|c) per deep cell
# --------------------------------------------------------------------------------------


@dataclass
class CellRedshifts:
    """Redshift distribution of every deep cell from spectra (see :func:`redshift_in_cells`).

    ``pz`` (n_deep, n_z): p(z|c), a unit-area density on ``z_edges`` for every cell with
    spectra, zeros for a cell without. ``counts`` (n_deep, n_z): the weighted histogram
    behind it; ``sum_z``/``sum_z2`` (n_deep, n_z): weighted Σz and Σz² of the spectra in each
    cell and z-bin (so means and widths are free of binning); ``n_spec`` (n_deep,): number of
    spectra per cell (unweighted); ``n_eff`` (n_deep,): Kish effective number per cell;
    ``mean_z`` (n_deep,): weighted mean spectroscopic z (NaN without spectra).
    """

    z_edges: np.ndarray
    pz: np.ndarray
    counts: np.ndarray
    sum_z: np.ndarray
    sum_z2: np.ndarray
    n_spec: np.ndarray
    n_eff: np.ndarray
    mean_z: np.ndarray

    @property
    def has_spectra(self) -> np.ndarray:
        return self.counts.sum(axis=-1) > 0


def _moments(
    cells: np.ndarray, zb: np.ndarray, z: np.ndarray, w: np.ndarray, n_deep: int, n_z: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted Σw, Σwz, Σwz² per (cell, z-bin); rows must all be valid."""
    return (
        cell_bin_counts(cells, zb, w, n_deep, n_z),
        cell_bin_counts(cells, zb, w * z, n_deep, n_z),
        cell_bin_counts(cells, zb, w * z * z, n_deep, n_z),
    )


def _spec_rows(spec_deep_cells, z, n_deep, z_edges, weights):
    n_deep = _check_size(n_deep, "n_deep")
    edges = as_edges(z_edges, "z_edges")
    cells = as_cells(spec_deep_cells, n_deep, "spec_deep_cells")
    zz = as_float(z, len(cells), "z", "spec_deep_cells")
    w = _weights(weights, len(cells), "spec_weights", "spec_deep_cells")
    zb = bin_index(zz, edges)
    ok = (cells >= 0) & (zb >= 0) & (w > 0)
    return n_deep, edges, cells, zz, w, zb, ok


def redshift_in_cells(
    spec_deep_cells: Any, z: Any, n_deep: int, z_edges: Any, weights: Any = None
) -> CellRedshifts:
    """p(z|c) of every deep cell from a redshift sample.

    Parameters
    ----------
    spec_deep_cells : (S,) int
        Deep cell of each spectrum (``-1`` ignored).
    z : (S,) float
        Its (secure) redshift; values outside ``z_edges`` or not finite are ignored.
    n_deep : int
        Cells of the deep map.
    z_edges : (n_z + 1,) float
        Strictly increasing redshift bin edges.
    weights : (S,) float, optional
        Redshift-sample weights (e.g. to correct a spectroscopic selection).

    Each cell's histogram is normalised to unit area *before* any later weighting by the
    wide sample: weighting raw histograms would also weight each cell by its number of
    spectra. The raw weighted ``counts`` are kept for the ensembles.
    """
    n_deep, edges, cells, zz, w, zb, ok = _spec_rows(spec_deep_cells, z, n_deep, z_edges, weights)
    n_z = len(edges) - 1
    H, Z1, Z2 = _moments(cells[ok], zb[ok], zz[ok], w[ok], n_deep, n_z)
    tot = H.sum(axis=1)
    sw2 = np.bincount(cells[ok], weights=w[ok] ** 2, minlength=n_deep)
    with np.errstate(invalid="ignore", divide="ignore"):
        pz = np.where(tot[:, None] > 0, H / tot[:, None] / np.diff(edges), 0.0)
        mean = np.where(tot > 0, Z1.sum(axis=1) / tot, np.nan)
        n_eff = np.where(sw2 > 0, tot**2 / sw2, 0.0)
    return CellRedshifts(
        z_edges=edges,
        pz=pz,
        counts=H,
        sum_z=Z1,
        sum_z2=Z2,
        n_spec=np.bincount(cells[ok], minlength=n_deep),
        n_eff=n_eff,
        mean_z=mean,
    )


# --------------------------------------------------------------------------------------
# 3. wide occupation p(ĉ)
# --------------------------------------------------------------------------------------


def wide_occupation(wide_cells: Any, n_wide: int, weights: Any = None) -> np.ndarray:
    """p(ĉ): the wide sample's weighted share in each wide cell, ``(n_wide,)``, summing to 1.

    ``weights`` are per-galaxy (lensing response, shear weight): a cell's share is the sum of
    its galaxies' weights over the sample's. Galaxies with cell ``-1`` are ignored.
    """
    n_wide = _check_size(n_wide, "n_wide")
    cells = as_cells(wide_cells, n_wide, "wide_cells")
    w = _weights(weights, len(cells), "wide_weights", "wide_cells")
    ok = cells >= 0
    occ = np.bincount(cells[ok], weights=w[ok], minlength=n_wide)
    total = occ.sum()
    if total <= 0:
        raise ValueError("wide_cells: no galaxy with weight > 0 is assigned to a wide cell")
    return occ / total


# --------------------------------------------------------------------------------------
# 4. tomographic bin assignment
# --------------------------------------------------------------------------------------


def wide_cell_redshift(
    transfer: np.ndarray, cell_z: CellRedshifts, statistic: str = "mean"
) -> np.ndarray:
    """Redshift of each wide cell from its deep cells: p(z|ĉ) = Σ_c p(z|c) p(c|ĉ).

    ``statistic="mean"``: Σ_c p(c|ĉ)<z>_c over deep cells with spectra (renormalised to them);
    ``"mode"``: the centre of the highest z-bin of p(z|ĉ). NaN for a wide cell whose
    transfer row is unknown (NaN) or reaches no deep cell with spectra. Shape (n_wide,).
    """
    T = np.asarray(transfer, dtype=np.float64)
    if T.ndim != 2 or T.shape[1] != cell_z.pz.shape[0]:
        raise ValueError(
            f"transfer must be (n_wide, n_deep={cell_z.pz.shape[0]}), got shape {T.shape}"
        )
    has = cell_z.has_spectra
    Tz = np.where(np.isnan(T), 0.0, T)[:, has]
    mass = Tz.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if statistic == "mean":
            out = Tz @ cell_z.mean_z[has] / mass
        elif statistic == "mode":
            pz_hat = Tz @ cell_z.pz[has]
            centres = 0.5 * (cell_z.z_edges[:-1] + cell_z.z_edges[1:])
            out = centres[np.argmax(pz_hat, axis=1)]
        else:
            raise ValueError(f"statistic must be 'mean' or 'mode', got {statistic!r}")
    return np.where(mass > 0, out, np.nan)


def assign_bins(values: Any, bin_edges: Any) -> np.ndarray:
    """Tomographic bin of each value (a wide cell's redshift from :func:`wide_cell_redshift`,
    or a galaxy's photo-z): int in 0..n_bins-1, ``-1`` outside ``bin_edges`` or NaN.
    Lower edges are inclusive; the last upper edge too (``numpy.histogram`` convention).
    """
    edges = as_edges(bin_edges, "bin_edges")
    v = _as_1d_float(values, "values")
    return bin_index(v, edges)


def _as_1d_float(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be a one-dimensional numeric array")
    return arr.astype(np.float64)


# --------------------------------------------------------------------------------------
# 5. bin membership of the redshift sample, for p(z|c,b)
# --------------------------------------------------------------------------------------


def spec_bin_fractions(
    spec_ids: Any,
    transfer_ids: Any,
    transfer_bins: Any,
    n_bins: int,
    transfer_weights: Any = None,
) -> np.ndarray:
    """Bin membership of each spectrum from its galaxy's injections, ``(S, n_bins)``.

    Row i is the (weighted) fraction of the injections of spectrum i's deep galaxy
    (``transfer_ids == spec_ids[i]``) whose wide realisation lands in each tomographic bin;
    injections in no bin (``-1``: undetected, outside the bins) count in the denominator, so
    a row sums to at most 1 and is p(b | that galaxy). Passed to
    :func:`~som.deepwide.nz.deep_wide_nz` as ``spec_bin_fractions`` it weights each
    spectrum by p(b|galaxy) in the bin-conditioned p(z|c,b) (DES Y3 SOMPZ, Myles+2021).

    Raises ValueError if a spectrum's galaxy has no injection with weight > 0 (its
    membership would be unknown, not zero).
    """
    nb = _check_size(n_bins, "n_bins")
    sid = np.asarray(spec_ids)
    tid = np.asarray(transfer_ids)
    if sid.ndim != 1 or tid.ndim != 1:
        raise ValueError("spec_ids and transfer_ids must be one-dimensional")
    tb = _bins(transfer_bins, len(tid), nb, "transfer_bins", "transfer_ids")
    tw = _weights(transfer_weights, len(tid), "transfer_weights", "transfer_ids")
    keys, inverse = np.unique(np.concatenate([tid, sid]), return_inverse=True)
    t_key, s_key = inverse[: len(tid)], inverse[len(tid) :]
    total = np.bincount(t_key, weights=tw, minlength=len(keys))
    ok = tb >= 0
    per_bin = cell_bin_counts(t_key[ok], tb[ok], tw[ok], len(keys), nb)
    missing = total[s_key] <= 0
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"spec_ids: {int(missing.sum())} spectra have no injection in the transfer "
            f"catalogue, e.g. row {row} (id {sid[row]!r})"
        )
    return per_bin[s_key] / total[s_key][:, None]
