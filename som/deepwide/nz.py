"""n(z) per tomographic bin of a deep/wide calibration, bin-conditioned:

    n(z|b) = Σ_c p(z|c[,b]) p(c|b),   p(c|b) = Σ_ĉ p(ĉ|b) p(c|ĉ,b)

c a deep cell, ĉ a wide cell, b a tomographic bin. The validated inputs (:class:`_Prepared`)
and the two halves of the sum (:func:`_deep_occupation`, :func:`_combine`) are shared with
:mod:`som.deepwide.ensemble`, which recomputes one half per realisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from som.calibration._arrays import as_cells, as_float, cell_bin_counts, json_safe
from som.calibration.nofz import MEAN_Z_REQUIREMENT
from som.deepwide.cells import _bins, _check_size, _moments, _spec_rows, _weights

# --------------------------------------------------------------------------------------
# 5. bin-conditioned deep occupation p(c|b) and the per-bin n(z)
# --------------------------------------------------------------------------------------


@dataclass
class DeepWideNz:
    """Per-bin n(z) of a deep/wide calibration (see :func:`deep_wide_nz`).

    Arrays are per tomographic bin (``n_bins``) and, for ``nz``, per z-bin (``n_z``):

    - ``nz`` (n_bins, n_z): density on ``z_edges`` with unit area;
    - ``mean_z``, ``width`` (n_bins,): mean and standard deviation of z, from the spectra
      themselves (no binning): Σ_c p(c|b)<z>_c and the matching second moment;
    - ``weight`` (n_bins,): Σ of the wide galaxies' weights in the bin; ``n_galaxies``: their
      number; ``n_eff``: Kish effective number (Σw)²/Σw²;
    - ``no_spec_fraction`` (n_bins,): share of the bin's p(c|b) in deep cells without
      spectra, excluded (the n(z) is renormalised over the rest, i.e. assumed to share
      their n(z));
    - ``no_transfer_fraction`` (n_bins,): share of the bin's wide weight in wide cells that
      no transfer object reaches (non-zero only with ``allow_missing_transfer=True``);
    - ``deep_occupation`` (n_bins, n_deep): p(c|b) before the exclusion;
    - with ``truth_z``: ``truth_mean_z``, ``delta_mean_z = mean_z - truth``,
      ``requirement = 0.002 (1 + truth)``, ``passes = |delta| <= requirement``.
    """

    z_edges: np.ndarray
    nz: np.ndarray
    mean_z: np.ndarray
    width: np.ndarray
    weight: np.ndarray
    n_galaxies: np.ndarray
    n_eff: np.ndarray
    no_spec_fraction: np.ndarray
    no_transfer_fraction: np.ndarray
    deep_occupation: np.ndarray = field(repr=False)
    truth_mean_z: np.ndarray | None = None
    delta_mean_z: np.ndarray | None = None
    requirement: np.ndarray | None = None
    passes: np.ndarray | None = None

    @property
    def n_bins(self) -> int:
        return self.nz.shape[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists, NaN as None; ``deep_occupation`` left out)."""
        keys = [
            "z_edges",
            "nz",
            "mean_z",
            "width",
            "weight",
            "n_galaxies",
            "n_eff",
            "no_spec_fraction",
            "no_transfer_fraction",
            "truth_mean_z",
            "delta_mean_z",
            "requirement",
            "passes",
        ]
        return json_safe({k: getattr(self, k) for k in keys})


@dataclass
class _Prepared:
    """Validated inputs, as the ensembles re-use them."""

    n_deep: int
    n_wide: int
    n_bins: int
    edges: np.ndarray
    t_deep: np.ndarray  # transfer rows with a deep cell, wide cell and bin, weight > 0
    t_wide: np.ndarray
    t_bin: np.ndarray
    t_w: np.ndarray
    t_ids: np.ndarray | None
    s_cell: np.ndarray  # usable spectra
    s_z: np.ndarray
    s_zb: np.ndarray
    s_w: np.ndarray
    s_frac: np.ndarray | None  # (S, n_bins) bin membership of usable spectra
    W: np.ndarray  # (n_bins, n_wide) wide weight per bin and wide cell
    weight: np.ndarray
    n_galaxies: np.ndarray
    n_eff: np.ndarray
    truth_mean: np.ndarray | None
    allow_missing_transfer: bool


def _prepare(
    transfer_deep_cells,
    transfer_wide_cells,
    spec_deep_cells,
    spec_z,
    wide_cells,
    n_deep,
    n_wide,
    z_edges,
    *,
    cell_bins=None,
    wide_bins=None,
    transfer_bins=None,
    n_bins=None,
    wide_weights=None,
    transfer_weights=None,
    spec_weights=None,
    spec_bin_fractions=None,
    transfer_ids=None,
    truth_z=None,
    allow_missing_transfer=False,
) -> _Prepared:
    n_deep = _check_size(n_deep, "n_deep")
    n_wide = _check_size(n_wide, "n_wide")
    td = as_cells(transfer_deep_cells, n_deep, "transfer_deep_cells")
    tw_c = as_cells(transfer_wide_cells, n_wide, "transfer_wide_cells")
    if len(tw_c) != len(td):
        raise ValueError(
            f"transfer_wide_cells has {len(tw_c)} rows but transfer_deep_cells has {len(td)}"
        )
    t_w = _weights(transfer_weights, len(td), "transfer_weights", "transfer_deep_cells")
    wc = as_cells(wide_cells, n_wide, "wide_cells")
    w_w = _weights(wide_weights, len(wc), "wide_weights", "wide_cells")

    # Bins: per wide cell (the transfer objects follow their wide cell), or per galaxy
    # (the wide galaxies and the transfer objects each carry their own, e.g. by photo-z).
    if cell_bins is not None:
        if wide_bins is not None or transfer_bins is not None:
            raise ValueError("give either cell_bins or (wide_bins and transfer_bins), not both")
        cb = np.asarray(cell_bins)
        if cb.ndim != 1 or len(cb) != n_wide:
            raise ValueError(f"cell_bins must have one entry per wide cell ({n_wide})")
        if n_bins is None:
            # Checked as indices first (integers >= -1), so the bin count is well defined.
            nb = int(as_cells(cb, np.iinfo(np.int64).max, "cell_bins").max()) + 1
            if nb < 1:
                raise ValueError("cell_bins puts no wide cell in any bin")
        else:
            nb = _check_size(n_bins, "n_bins")
        cb = as_cells(cb, nb, "cell_bins")
        g_bin = np.where(wc >= 0, cb[wc], -1)
        t_bin = np.where(tw_c >= 0, cb[tw_c], -1)
    else:
        if wide_bins is None or transfer_bins is None:
            raise ValueError("give cell_bins, or both wide_bins and transfer_bins")
        if n_bins is None:
            raise ValueError("n_bins is required with wide_bins and transfer_bins")
        nb = _check_size(n_bins, "n_bins")
        g_bin = _bins(wide_bins, len(wc), nb, "wide_bins", "wide_cells")
        t_bin = _bins(transfer_bins, len(td), nb, "transfer_bins", "transfer_deep_cells")

    # Wide sample per bin: weight, count, Kish N_eff. A bin without weight is an error.
    g_ok = (wc >= 0) & (g_bin >= 0)
    weight = np.bincount(g_bin[g_ok], weights=w_w[g_ok], minlength=nb)
    sw2 = np.bincount(g_bin[g_ok], weights=w_w[g_ok] ** 2, minlength=nb)
    n_gal = np.bincount(g_bin[g_ok & (w_w > 0)], minlength=nb)
    empty = np.flatnonzero(weight <= 0)
    if len(empty):
        raise ValueError(
            f"tomographic bin {int(empty[0])} has no wide galaxies with weight > 0 "
            f"({len(empty)} of {nb} bins empty): drop it or change the bin edges"
        )
    W = cell_bin_counts(g_bin[g_ok], wc[g_ok], w_w[g_ok], nb, n_wide)

    truth_mean = None
    if truth_z is not None:
        tz = as_float(truth_z, len(wc), "truth_z", "wide_cells")
        bad = g_ok & (w_w > 0) & ~np.isfinite(tz)
        if bad.any():
            raise ValueError(f"truth_z must be finite; row {int(np.flatnonzero(bad)[0])} is not")
        sel = g_ok & (w_w > 0)
        truth_mean = np.bincount(g_bin[sel], weights=w_w[sel] * tz[sel], minlength=nb) / weight

    t_ok = (td >= 0) & (tw_c >= 0) & (t_bin >= 0) & (t_w > 0)
    ids = None
    if transfer_ids is not None:
        ids_all = np.asarray(transfer_ids)
        if ids_all.ndim != 1 or len(ids_all) != len(td):
            raise ValueError(
                f"transfer_ids must have one entry per transfer object ({len(td)} rows)"
            )
        ids = ids_all[t_ok]

    n_deep_, edges, s_cell, s_z, s_w, s_zb, s_ok = _spec_rows(
        spec_deep_cells, spec_z, n_deep, z_edges, spec_weights
    )
    s_frac = None
    if spec_bin_fractions is not None:
        f = np.asarray(spec_bin_fractions, dtype=np.float64)
        if f.shape != (len(s_cell), nb):
            raise ValueError(
                f"spec_bin_fractions must have shape (n_spec={len(s_cell)}, n_bins={nb}), "
                f"got {f.shape}"
            )
        if not np.all(np.isfinite(f)) or np.any(f < 0):
            raise ValueError("spec_bin_fractions must be finite and >= 0")
        s_frac = f[s_ok]

    return _Prepared(
        n_deep=n_deep,
        n_wide=n_wide,
        n_bins=nb,
        edges=edges,
        t_deep=td[t_ok],
        t_wide=tw_c[t_ok],
        t_bin=t_bin[t_ok],
        t_w=t_w[t_ok],
        t_ids=ids,
        s_cell=s_cell[s_ok],
        s_z=s_z[s_ok],
        s_zb=s_zb[s_ok],
        s_w=s_w[s_ok],
        s_frac=s_frac,
        W=W,
        weight=weight,
        n_galaxies=n_gal,
        n_eff=np.where(sw2 > 0, weight**2 / np.where(sw2 > 0, sw2, 1.0), 0.0),
        truth_mean=truth_mean,
        allow_missing_transfer=bool(allow_missing_transfer),
    )


def _deep_occupation(
    p: _Prepared, t_deep, t_wide, t_bin, t_w, draw: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Bin-conditioned deep occupation p(c|b) = Σ_ĉ p(ĉ|b) p(c|ĉ,b), shape (n_bins, n_deep),
    and the share of each bin's wide weight that has no transfer (excluded).

    p(c|ĉ,b) uses only the transfer objects whose own bin is b ("bin conditionalisation",
    Myles+2021): with bins per wide cell it is the rows of p(c|ĉ) of the bin's cells;
    with bins per galaxy, a wide cell split between bins gets one transfer row per bin.
    Computed object by object (no n_bins × n_wide × n_deep array). In an ensemble ``draw``
    a (bin, wide cell) left without transfer is excluded and a bin left without any is NaN.
    """
    nb, nw, nd = p.n_bins, p.n_wide, p.n_deep
    R = cell_bin_counts(t_bin, t_wide, t_w, nb, nw)  # transfer weight per (bin, ĉ)
    missing = (p.W > 0) & (R <= 0)
    no_transfer = (p.W * missing).sum(axis=1) / p.weight
    if missing.any() and not (p.allow_missing_transfer or draw):
        b, c = (int(x[0]) for x in np.nonzero(missing))
        raise ValueError(
            f"{int(missing.sum())} (bin, wide cell) pairs hold wide-sample weight but no "
            f"transfer object, e.g. wide cell {c} in bin {b}: p(c|ĉ) is unknown there "
            "(enlarge the transfer catalogue, or pass allow_missing_transfer=True to exclude "
            "that weight and report it)"
        )
    W_ok = np.where(missing, 0.0, p.W)
    tot = W_ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(R > 0, W_ok / R, 0.0) / np.where(tot > 0, tot, 1.0)[:, None]
    occ = cell_bin_counts(t_bin, t_deep, t_w * scale[t_bin, t_wide], nb, nd)
    if draw:
        occ[tot <= 0] = np.nan
    elif np.any(tot <= 0):
        b = int(np.flatnonzero(tot <= 0)[0])
        raise ValueError(f"tomographic bin {b}: none of its wide weight has a transfer function")
    return occ, no_transfer


def _spec_moments(p: _Prepared, cell, z, zb, w, frac):
    """(Σw, Σwz, Σwz²) per (cell, z-bin), shape (n_deep, n_z), or per bin (n_bins, n_deep,
    n_z) when spectra carry bin membership."""
    n_z = len(p.edges) - 1
    if frac is None:
        return _moments(cell, zb, z, w, p.n_deep, n_z)
    out = [_moments(cell, zb, z, w * frac[:, b], p.n_deep, n_z) for b in range(p.n_bins)]
    return tuple(np.stack([o[i] for o in out]) for i in range(3))


def _combine(occ: np.ndarray, H, Z1, Z2, widths: np.ndarray):
    """n(z), mean, width and no-spectra fraction per bin from p(c|b) (n_bins, n_deep) and
    spectral moments (n_deep, n_z) or (n_bins, n_deep, n_z)."""
    if H.ndim == 2:
        H, Z1, Z2 = H[None], Z1[None], Z2[None]
    S = H.sum(axis=2)  # (1 or n_bins, n_deep)
    has = S > 0
    Ss = np.where(has, S, 1.0)
    occ_s = occ * has
    covered = occ_s.sum(axis=1)
    no_spec = 1.0 - covered / occ.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = occ_s / Ss / covered[:, None]  # weight of each cell's unit-area histogram
        nz = np.einsum("bc,bcz->bz", a, np.broadcast_to(H, (len(occ),) + H.shape[1:])) / widths
        m1 = np.einsum("bc,bc->b", a, np.broadcast_to(Z1.sum(axis=2), a.shape))
        m2 = np.einsum("bc,bc->b", a, np.broadcast_to(Z2.sum(axis=2), a.shape))
    width = np.sqrt(np.maximum(m2 - m1**2, 0.0))
    return nz, m1, width, no_spec


def _result(p: _Prepared, occ, no_transfer, nz, mean, width, no_spec) -> DeepWideNz:
    out = DeepWideNz(
        z_edges=p.edges,
        nz=nz,
        mean_z=mean,
        width=width,
        weight=p.weight,
        n_galaxies=p.n_galaxies,
        n_eff=p.n_eff,
        no_spec_fraction=no_spec,
        no_transfer_fraction=no_transfer,
        deep_occupation=occ,
    )
    if p.truth_mean is not None:
        out.truth_mean_z = p.truth_mean
        out.delta_mean_z = mean - p.truth_mean
        out.requirement = MEAN_Z_REQUIREMENT * (1.0 + p.truth_mean)
        out.passes = np.abs(out.delta_mean_z) <= out.requirement
    return out


def _fiducial(p: _Prepared) -> DeepWideNz:
    occ, no_transfer = _deep_occupation(p, p.t_deep, p.t_wide, p.t_bin, p.t_w)
    H, Z1, Z2 = _spec_moments(p, p.s_cell, p.s_z, p.s_zb, p.s_w, p.s_frac)
    nz, mean, width, no_spec = _combine(occ, H, Z1, Z2, np.diff(p.edges))
    if np.any(no_spec >= 1.0):
        b = int(np.flatnonzero(no_spec >= 1.0)[0])
        raise ValueError(f"tomographic bin {b}: none of its deep cells has a spectrum")
    return _result(p, occ, no_transfer, nz, mean, width, no_spec)


def deep_wide_nz(
    transfer_deep_cells: Any,
    transfer_wide_cells: Any,
    spec_deep_cells: Any,
    spec_z: Any,
    wide_cells: Any,
    n_deep: int,
    n_wide: int,
    z_edges: Any,
    *,
    cell_bins: Any = None,
    wide_bins: Any = None,
    transfer_bins: Any = None,
    n_bins: int | None = None,
    wide_weights: Any = None,
    transfer_weights: Any = None,
    spec_weights: Any = None,
    spec_bin_fractions: Any = None,
    truth_z: Any = None,
    allow_missing_transfer: bool = False,
) -> DeepWideNz:
    """n(z) per tomographic bin of a wide sample, calibrated the deep/wide (SOMPZ) way.

        n(z|b) = Σ_c p(z|c[,b]) p(c|b),   p(c|b) = Σ_{ĉ} p(ĉ|b) p(c|ĉ,b)

    Parameters
    ----------
    transfer_deep_cells, transfer_wide_cells : (T,) int
        The transfer catalogue: deep cell and wide cell of each injected object.
    spec_deep_cells, spec_z : (S,) int, (S,) float
        Deep cell and secure redshift of each spectrum (p(z|c), see
        :func:`redshift_in_cells`; spectra outside ``z_edges`` are ignored).
    wide_cells : (G,) int
        Wide cell of each galaxy of the wide sample (``-1`` ignored).
    n_deep, n_wide : int
        Sizes of the two maps; a cell index beyond them is an error naming the argument.
    z_edges : (n_z + 1,) float
        Redshift bins of the n(z).
    cell_bins : (n_wide,) int, optional
        Tomographic bin of each wide cell (-1 = none), e.g.
        ``assign_bins(wide_cell_redshift(T, cz, "mean"), bin_edges)``. Galaxies and transfer
        objects follow their wide cell. Or instead:
    wide_bins, transfer_bins : (G,) int and (T,) int, with ``n_bins``
        Bin of each wide galaxy and of each transfer object from a per-galaxy photo-z
        (``assign_bins(photo_z, bin_edges)``); the transfer objects' own bins give the
        bin-conditioned p(c|ĉ,b).
    wide_weights : (G,) float, optional
        Per-galaxy weights (lensing response, shear weight) carried into p(ĉ|b), the bin's
        weight and N_eff.
    transfer_weights, spec_weights : optional
        Weights of transfer objects and of spectra.
    spec_bin_fractions : (S, n_bins) float, optional
        Bin membership of each spectrum (e.g. the fraction of its galaxy's injections that
        land in each bin): gives the bin-conditioned p(z|c,b) by weighting each spectrum by
        its membership of b. Without it p(z|c) is shared by all bins.
    truth_z : (G,) float, optional
        True redshift of each wide galaxy (a mock): fills the truth fields of the result.
        The truth is the weighted mean over all the bin's galaxies, including any whose
        wide cell was excluded for want of transfer, so that exclusion's cost shows.
    allow_missing_transfer : bool
        Wide weight in a (bin, wide cell) that no transfer object reaches is an error by
        default; with True it is excluded and its share reported as ``no_transfer_fraction``.

    Deep cells in p(c|b) without spectra are excluded and the n(z) renormalised over the
    rest (they are assumed to share the n(z) of the covered cells); their share is
    ``no_spec_fraction``. Mean and width come from the spectra's own redshifts, so they do
    not depend on ``z_edges`` (beyond which spectra are used).

    Raises ValueError for out-of-range cells, negative or all-zero weights, a bin with no
    wide galaxies, wide weight without transfer, or a bin without any spectrum.
    """
    p = _prepare(
        transfer_deep_cells,
        transfer_wide_cells,
        spec_deep_cells,
        spec_z,
        wide_cells,
        n_deep,
        n_wide,
        z_edges,
        cell_bins=cell_bins,
        wide_bins=wide_bins,
        transfer_bins=transfer_bins,
        n_bins=n_bins,
        wide_weights=wide_weights,
        transfer_weights=transfer_weights,
        spec_weights=spec_weights,
        spec_bin_fractions=spec_bin_fractions,
        truth_z=truth_z,
        allow_missing_transfer=allow_missing_transfer,
    )
    return _fiducial(p)
