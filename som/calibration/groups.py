"""Groups of cells and KiDS's quality control of them (Wright et al. 2020; Hildebrandt et al.
2021).

A large map has more cells than a spectroscopic sample can fill. KiDS groups the cells of a
trained map by hierarchical clustering of their weight vectors, calibrates each *group* with
the spectra that land in any of its cells, and drops the groups whose spectroscopic and
photometric mean redshifts disagree; what is left is the *gold* sample.

- :func:`group_cells`: hierarchical clustering of the cells' weight vectors into a chosen
  number of groups, optionally only joining neighbouring cells on the map's lattice;
- :func:`choose_n_groups`: the number of groups whose means best predict held-out spectra
  (K-fold cross-validation; it does not see a selection bias of the spectra);
- :func:`quality_control`: the per-group rule
  ``|<z_spec> - <z_phot>| <= max(5 sigma_MAD, 0.4)``;
- :func:`gold_selection`: the galaxies and cells in groups that pass, and the fraction of each
  tomographic bin's weight that survives.

Cells follow the conventions of :mod:`som.calibration`: integers ``0 .. n_cells - 1``
(row-major) or ``-1`` for a galaxy with no cell. A *group* is an integer ``0 .. n_groups - 1``
per cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.cluster import hierarchy

from som.calibration._arrays import as_1d, as_cells, as_float, as_weights, check_length, json_safe
from som.calibration.cells import NMAD_SCALE
from som.grid import Grid

#: Linkages offered. Centroid and median linkage are left out: their merge heights are not
#: monotone, so cutting the tree at a number of groups is not well defined.
LINKAGES = ("ward", "complete", "average", "single")


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _as_codebook(weights: Any) -> np.ndarray:
    arr = np.asarray(weights)
    if arr.ndim != 2:
        raise ValueError(
            f"weights must be the map's (n_cells, n_features) weight vectors, got shape {arr.shape}"
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"weights must be numeric, got dtype {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"weights must hold at least one cell and one feature, got {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(f"weights must be finite; cell {int(np.flatnonzero(bad)[0])} is not")
    return arr


def _check_n_groups(n_groups: Any, n_cells: int, name: str = "n_groups") -> int:
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise ValueError(f"{name} must be a positive integer, got {n_groups!r}")
    if n_groups > n_cells:
        raise ValueError(f"{name} is {int(n_groups)} but the map has only {n_cells} cells")
    return int(n_groups)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Number groups by their first cell: group 0 holds cell 0, and so on."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.ravel()]


def grid_adjacency(grid: Grid):
    """Sparse (n_cells, n_cells) adjacency of the cells at distance 1 on ``grid`` (its
    lattice and wrap honoured: 4 neighbours inside a rectangular map, 6 inside a hexagonal)."""
    from scipy.sparse import coo_matrix

    i, j = grid.neighbour_pairs(1.0)
    n = grid.n_cells
    return coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()


# --------------------------------------------------------------------------------------
# grouping cells
# --------------------------------------------------------------------------------------


def group_cells(
    weights: Any,
    n_groups: int,
    method: str = "ward",
    connectivity: str | None = None,
    grid: Grid | None = None,
) -> np.ndarray:
    """Group the cells of a trained map by hierarchical clustering of their weight vectors.

    Parameters
    ----------
    weights : (n_cells, n_features) float
        The map's weight vectors (``SOM.weights_``), in the map's normalised feature space,
        one row per cell in row-major order. Must be finite.
    n_groups : int
        Number of groups, ``1 <= n_groups <= n_cells``; the tree is cut to give exactly this
        many.
    method : {"ward", "complete", "average", "single"}
        Linkage (Euclidean distance between weight vectors). Ward, the default, merges the
        pair of groups that least increases the within-group sum of squares.
    connectivity : None or "grid"
        ``None`` (default): any two groups may merge, through
        :func:`scipy.cluster.hierarchy.linkage`. ``"grid"``: only groups that touch on the
        map's lattice may merge (cells at distance 1 on ``grid``), so every group is a
        contiguous patch of the map. This path uses scikit-learn's
        ``AgglomerativeClustering`` with a connectivity graph, an optional dependency
        (``pip install "somcal[groups]"``); scipy has no constrained clustering.
    grid : som.grid.Grid
        The map's lattice; required with ``connectivity="grid"`` and must have ``n_cells``
        cells.

    Returns
    -------
    (n_cells,) int64
        Group of every cell, ``0 .. n_groups - 1``, numbered by each group's first cell (group
        0 holds cell 0). Deterministic: the same weights give the same groups (ties in merge
        distance are broken by cell order).

    Cost: the unconstrained path holds all ``n_cells (n_cells - 1) / 2`` pairwise distances,
    about 0.4 GB for a 100 x 100 map (6 s, 0.95 GB peak measured for 10^4 cells and 8
    features); the ``"grid"`` path only the lattice's neighbour pairs (1.3 s, 0.27 GB peak).
    """
    codebook = _as_codebook(weights)
    n_cells = codebook.shape[0]
    n_groups = _check_n_groups(n_groups, n_cells)
    return _group_cells_at(codebook, [n_groups], method, connectivity, grid)[0]


def _group_cells_at(
    codebook: np.ndarray,
    ns: list[int],
    method: str,
    connectivity: str | None,
    grid: Grid | None,
) -> list[np.ndarray]:
    """Groups of every cell for each number in ``ns`` (checked), one tree when unconstrained."""
    n_cells = codebook.shape[0]
    if method not in LINKAGES:
        raise ValueError(f"method must be one of {LINKAGES}, got {method!r}")
    if connectivity not in (None, "grid"):
        raise ValueError(f"connectivity must be None or 'grid', got {connectivity!r}")

    if connectivity == "grid":
        if not isinstance(grid, Grid):
            raise ValueError("connectivity='grid' needs grid, the map's som.grid.Grid")
        if grid.n_cells != n_cells:
            raise ValueError(
                f"grid has {grid.n_cells} cells ({grid.n_rows}x{grid.n_cols}) but weights has "
                f"{n_cells} rows"
            )
        try:
            from sklearn.cluster import AgglomerativeClustering
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "group_cells(connectivity='grid') needs scikit-learn: "
                'pip install "somcal[groups]"'
            ) from exc
        adjacency = grid_adjacency(grid)
        out = []
        for n in ns:
            if n == n_cells:
                out.append(np.arange(n_cells, dtype=np.int64))
                continue
            model = AgglomerativeClustering(n_clusters=n, linkage=method, connectivity=adjacency)
            out.append(_relabel(model.fit_predict(codebook)))
        return out

    if n_cells == 1:
        return [np.zeros(1, dtype=np.int64) for _ in ns]
    tree = hierarchy.linkage(codebook, method=method, metric="euclidean")
    # cut_tree gives exactly n groups (fcluster's 'maxclust' can give fewer when merge
    # heights tie). It is called once per number: given several at once, scipy 1.17 returns
    # a single group for n == n_cells, so that case is also answered without it.
    return [
        np.arange(n_cells, dtype=np.int64)
        if n == n_cells
        else _relabel(hierarchy.cut_tree(tree, n_clusters=n)[:, 0])
        for n in ns
    ]


@dataclass
class NGroupsChoice:
    """The number of groups chosen by :func:`choose_n_groups`.

    ``n_groups`` is the choice and ``groups`` the group of every cell at that number.
    ``table`` is indexed by ``n_groups`` (each candidate, ascending) with columns ``cv_mse``
    (the cross-validated, weighted mean squared error of predicting a held-out spectrum's
    redshift by its group's mean), ``cv_rmse`` its square root, and ``uncovered_fraction``
    (the weight fraction of held-out spectra whose group held no training spectrum and was
    predicted by the overall mean instead).
    """

    n_groups: int
    groups: np.ndarray = field(repr=False)
    table: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the choice and the per-candidate table."""
        return json_safe({"n_groups": self.n_groups, "candidates": self.table.reset_index()})


def choose_n_groups(
    weights: Any,
    candidates: Any,
    spec_cells: Any,
    spec_z: Any,
    spec_weights: Any = None,
    method: str = "ward",
    connectivity: str | None = None,
    grid: Grid | None = None,
    n_folds: int = 5,
    rtol: float = 0.01,
    seed: int = 0,
) -> NGroupsChoice:
    """Choose the number of cell groups by K-fold cross-validation on the spectra.

    What it optimises: how well a group's mean spectroscopic redshift predicts the redshift
    of a spectrum it has not seen. The spectra (rows with a cell, a finite redshift and a
    positive weight) are split into ``n_folds`` folds by one seeded permutation; for every
    candidate number of groups (:func:`group_cells` with ``method``, ``connectivity`` and
    ``grid``) each held-out spectrum is predicted by the weighted mean redshift of the other
    folds' spectra in its group, or, when its group holds none, by their overall weighted
    mean (a group that cannot be calibrated predicts no better than knowing nothing about
    colour). The score is the weighted mean squared error over all held-out spectra. Too few
    groups mix redshifts (large scatter); too many leave groups noisy or empty, so the score
    has a minimum. The choice is the *smallest* candidate whose score is within ``rtol``
    (relative) of the minimum: fewer groups hold more spectra each for the same accuracy.

    What it does not measure: the bias of the gold sample's mean redshift. The spectra only
    validate themselves; a spectroscopic selection that differs from the wide sample inside a
    group is invisible here (that needs a mock with known truth, see
    :func:`~som.calibration.sampling_experiment`).

    Parameters
    ----------
    weights : (n_cells, n_features) float
        The map's weight vectors, as for :func:`group_cells`.
    candidates : sequence of int
        Numbers of groups to try, each ``1 .. n_cells``.
    spec_cells, spec_z : (M,) int, (M,) float
        Cell (``-1`` = none, ignored) and spectroscopic redshift of the spectra.
    spec_weights : (M,) float, optional
        Non-negative weight of each spectrum (``None``: 1 each); zero weight is left out.
    method, connectivity, grid
        As for :func:`group_cells`.
    n_folds : int
        Folds of the cross-validation, at least 2 and at most the number of usable spectra.
    rtol : float
        Relative tolerance on the minimum score for the parsimonious choice (0: the minimum).
    seed : int
        Seed of the permutation that assigns spectra to folds.

    Returns
    -------
    NGroupsChoice
    """
    codebook = _as_codebook(weights)
    n_cells = codebook.shape[0]
    cand = as_1d(candidates, "candidates")
    if len(cand) == 0:
        raise ValueError("candidates must hold at least one number of groups")
    ns = sorted({_check_n_groups(n, n_cells, "candidates entry") for n in cand.tolist()})
    c = as_cells(spec_cells, n_cells, "spec_cells")
    z = as_float(spec_z, len(c), "spec_z", "spec_cells")
    w = as_weights(spec_weights, len(c), "spec_weights", "spec_cells")
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if not np.isfinite(rtol) or rtol < 0:
        raise ValueError(f"rtol must be finite and >= 0, got {rtol!r}")
    use = (c >= 0) & np.isfinite(z) & (w > 0)
    if use.sum() < n_folds:
        raise ValueError(
            f"n_folds is {n_folds} but only {int(use.sum())} spectra have a cell, a finite "
            "redshift and a positive weight"
        )
    c, z, w = c[use], z[use], w[use]
    fold = np.empty(len(c), dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(len(c))] = np.arange(len(c)) % n_folds

    labels = _group_cells_at(codebook, ns, method, connectivity, grid)
    mse = np.empty(len(ns))
    uncovered = np.empty(len(ns))
    for i, (n, groups) in enumerate(zip(ns, labels, strict=True)):
        g = groups[c]
        sq_err = 0.0
        lost = 0.0
        for k in range(n_folds):
            test = fold == k
            train = ~test
            wt = np.bincount(g[train], weights=w[train], minlength=n)
            wzt = np.bincount(g[train], weights=w[train] * z[train], minlength=n)
            overall = wzt.sum() / wt.sum()
            has = wt[g[test]] > 0
            pred = np.where(has, wzt[g[test]] / np.where(has, wt[g[test]], 1.0), overall)
            sq_err += float(np.sum(w[test] * (z[test] - pred) ** 2))
            lost += float(w[test][~has].sum())
        mse[i] = sq_err / w.sum()
        uncovered[i] = lost / w.sum()
    best = int(np.flatnonzero(mse <= mse.min() * (1.0 + rtol))[0])
    table = pd.DataFrame(
        {"cv_mse": mse, "cv_rmse": np.sqrt(mse), "uncovered_fraction": uncovered},
        index=pd.Index(ns, name="n_groups"),
    )
    return NGroupsChoice(ns[best], labels[best], table)


# --------------------------------------------------------------------------------------
# quality control and the gold sample
# --------------------------------------------------------------------------------------


def _as_groups(groups: Any) -> tuple[np.ndarray, int]:
    """Group per cell as int64 (all >= 0) and the number of groups, ``max + 1``."""
    arr = as_1d(groups, "groups")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"groups must hold integer group ids (one per cell), got {arr.dtype}")
    if len(arr) == 0:
        raise ValueError("groups must hold one group id per cell, got none")
    arr = arr.astype(np.int64, copy=False)
    if (arr < 0).any():
        cell = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"groups must be >= 0; cell {cell} is {int(arr[cell])}")
    return arr, int(arr.max()) + 1


def _group_mean(
    group_of_row: np.ndarray, z: np.ndarray, w: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group count, weight and weighted mean of ``z`` over the rows that have a group
    (>= 0), a finite ``z`` and a positive weight. Mean NaN where a group has none."""
    use = (group_of_row >= 0) & np.isfinite(z) & (w > 0)
    g = group_of_row[use]
    count = np.bincount(g, minlength=n_groups)
    weight = np.bincount(g, weights=w[use], minlength=n_groups)
    wz = np.bincount(g, weights=w[use] * z[use], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(weight > 0, wz / np.where(weight > 0, weight, 1.0), np.nan)
    return count, weight, mean


@dataclass
class QualityControl:
    """KiDS's quality control of cell groups (see :func:`quality_control`).

    ``table`` is indexed by ``group`` (0..n_groups-1) with columns

    - ``n_phot``, ``phot_weight``, ``z_phot_mean``: photometric galaxies entering the
      group's mean photo-z (finite ``phot_z``, weight > 0), their weight and weighted mean;
    - ``n_spec``, ``spec_weight``, ``z_spec_mean``: the same for the spectra;
    - ``delta = z_spec_mean - z_phot_mean``;
    - ``calibrated``: the group holds at least one usable spectrum;
    - ``passes``: calibrated, holds photometric galaxies, and ``|delta| <= threshold``.

    ``sigma_mad`` is the normalised median absolute deviation of ``delta`` over the groups
    where it is defined (each group counts once); ``threshold = max(n_sigma * sigma_mad,
    floor)``.
    """

    table: pd.DataFrame
    sigma_mad: float
    threshold: float
    n_sigma: float
    floor: float

    @property
    def passed(self) -> np.ndarray:
        """(n_groups,) bool: the groups that pass."""
        return self.table["passes"].to_numpy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN as None)."""
        return json_safe(
            {
                "sigma_mad": self.sigma_mad,
                "threshold": self.threshold,
                "n_sigma": self.n_sigma,
                "floor": self.floor,
                "groups": self.table.reset_index(),
            }
        )


def quality_control(
    groups: Any,
    phot_cells: Any,
    phot_z: Any,
    spec_cells: Any,
    spec_z: Any,
    phot_weights: Any = None,
    spec_weights: Any = None,
    n_sigma: float = 5.0,
    floor: float = 0.4,
) -> QualityControl:
    """KiDS's quality control of cell groups (Wright et al. 2020, §3; Hildebrandt et al. 2021).

    A group *passes* when ``|<z_spec> - <z_phot>| <= max(n_sigma * sigma_MAD, floor)``, with

    - ``<z_spec>``: the weighted mean spectroscopic redshift of the spectra in the group's
      cells (``spec_z``, ``spec_weights``);
    - ``<z_phot>``: the weighted mean photometric redshift of the photometric galaxies in the
      group's cells (``phot_z``, ``phot_weights``). As we read KiDS (Wright et al. 2020;
      Hildebrandt et al. 2021, which added the 0.4 floor) the comparison is with the mean
      photo-z of the wide (target) galaxies in the group: pass the wide sample as
      ``phot_*``. Passing the spectroscopic sample's own photo-z instead compares each
      group's spectra with their own photo-z;
    - ``sigma_MAD = 1.4826 * median_g |d_g - median(d)|`` of ``d_g = <z_spec>_g -
      <z_phot>_g`` over every group where ``d_g`` is defined, each group counted once
      (unweighted). It is the scatter of the *difference*, not of ``<z_phot>`` itself: the
      spread of the groups' photo-z spans the survey's redshift range and would make the
      rule pass everything. With a single such group ``sigma_MAD`` is 0 and the threshold
      is ``floor``.

    A group with no usable spectrum fails ("not calibrated"); so does a group with no
    photometric galaxy (nothing to compare with, and nothing to calibrate).

    Parameters
    ----------
    groups : (n_cells,) int
        Group of every cell (:func:`group_cells`); ``n_groups = groups.max() + 1``.
    phot_cells, phot_z : (N,) int, (N,) float
        Cell (``-1`` = none, ignored) and photometric redshift of the photometric sample.
    spec_cells, spec_z : (M,) int, (M,) float
        Cell (``-1`` = none, ignored) and spectroscopic redshift of the spectra. Pass only
        secure redshifts; NaN redshifts are ignored.
    phot_weights, spec_weights : (N,), (M,) float, optional
        Non-negative weights (``None``: 1 each). Zero-weight rows count nowhere.
    n_sigma, floor : float
        The rule's multiplier of ``sigma_MAD`` (KiDS: 5) and its floor (KiDS-1000: 0.4).

    Returns
    -------
    QualityControl
    """
    grp, n_groups = _as_groups(groups)
    n_cells = len(grp)
    pc = as_cells(phot_cells, n_cells, "phot_cells")
    pz = as_float(phot_z, len(pc), "phot_z", "phot_cells")
    pw = as_weights(phot_weights, len(pc), "phot_weights", "phot_cells")
    sc = as_cells(spec_cells, n_cells, "spec_cells")
    sz = as_float(spec_z, len(sc), "spec_z", "spec_cells")
    sw = as_weights(spec_weights, len(sc), "spec_weights", "spec_cells")
    for name, value in (("n_sigma", n_sigma), ("floor", floor)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")

    def group_of(cells: np.ndarray) -> np.ndarray:
        return np.where(cells >= 0, grp[np.maximum(cells, 0)], -1)

    n_phot, phot_weight, z_phot = _group_mean(group_of(pc), pz, pw, n_groups)
    n_spec, spec_weight, z_spec = _group_mean(group_of(sc), sz, sw, n_groups)
    delta = z_spec - z_phot
    defined = np.isfinite(delta)
    if defined.any():
        d = delta[defined]
        sigma_mad = float(NMAD_SCALE * np.median(np.abs(d - np.median(d))))
    else:
        sigma_mad = float("nan")
    threshold = float(floor) if not defined.any() else max(n_sigma * sigma_mad, float(floor))
    with np.errstate(invalid="ignore"):
        passes = defined & (np.abs(delta) <= threshold)
    table = pd.DataFrame(
        {
            "n_phot": n_phot,
            "phot_weight": phot_weight,
            "z_phot_mean": z_phot,
            "n_spec": n_spec,
            "spec_weight": spec_weight,
            "z_spec_mean": z_spec,
            "delta": delta,
            "calibrated": n_spec > 0,
            "passes": passes,
        },
        index=pd.RangeIndex(n_groups, name="group"),
    )
    return QualityControl(table, sigma_mad, threshold, float(n_sigma), float(floor))


@dataclass
class GoldSelection:
    """The gold sample: what survives quality control (see :func:`gold_selection`).

    ``galaxies`` (N,) bool marks the galaxies in passing groups; ``cells`` (n_cells,) bool the
    cells of passing groups. ``bins`` is indexed by ``bin`` (each tomographic bin label
    present, ascending) with columns ``n`` and ``weight`` (galaxies with a positive weight in
    the bin, and their weight), ``n_gold`` and ``gold_weight`` (the same in the gold sample)
    and ``fraction = gold_weight / weight``, the fraction of the bin's weight that survives
    (NaN for a bin whose galaxies all weigh 0).
    """

    galaxies: np.ndarray = field(repr=False)
    cells: np.ndarray = field(repr=False)
    bins: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the per-bin table and the gold cells (masks of galaxies left out)."""
        return json_safe(
            {"gold_cells": np.flatnonzero(self.cells), "bins": self.bins.reset_index()}
        )


def gold_selection(
    passed: Any,
    groups: Any,
    cells: Any,
    tomo_bins: Any = None,
    weights: Any = None,
) -> GoldSelection:
    """The galaxies and cells in groups that pass quality control, and the fraction of each
    tomographic bin's weight that survives.

    Parameters
    ----------
    passed : QualityControl or (n_groups,) bool
        The groups that pass (:func:`quality_control`).
    groups : (n_cells,) int
        Group of every cell, as given to :func:`quality_control`.
    cells : (N,) int
        Cell of each galaxy of the sample to select from; ``-1`` (no cell) is never gold but
        still counts in its bin's weight: it is lost to the calibration too.
    tomo_bins : (N,) int, optional
        Tomographic bin of each galaxy, ``>= 0``, or ``-1`` for a galaxy in no bin (left out
        of the per-bin table). ``None``: the whole sample is bin 0.
    weights : (N,) float, optional
        Non-negative weight of each galaxy (lensing weight, response); ``None``: 1 each.
        Zero-weight galaxies count in no column.

    Returns
    -------
    GoldSelection
    """
    grp, n_groups = _as_groups(groups)
    ok = passed.passed if isinstance(passed, QualityControl) else as_1d(passed, "passed")
    if ok.dtype != bool:
        raise ValueError(f"passed must be a boolean array (one entry per group), got {ok.dtype}")
    if len(ok) != n_groups:
        raise ValueError(f"passed has {len(ok)} entries but groups has {n_groups} groups")
    gold_cells = ok[grp]
    c = as_cells(cells, len(grp), "cells")
    w = as_weights(weights, len(c), "weights", "cells")
    if tomo_bins is None:
        b = np.zeros(len(c), dtype=np.int64)
    else:
        b = as_1d(tomo_bins, "tomo_bins")
        if b.dtype == bool or not np.issubdtype(b.dtype, np.integer):
            raise ValueError(f"tomo_bins must hold integer bin labels, got dtype {b.dtype}")
        check_length(b, len(c), "tomo_bins", "cells")
        if (b < -1).any():
            row = int(np.flatnonzero(b < -1)[0])
            raise ValueError(
                f"tomo_bins must be >= 0, or -1 for no bin; row {row} is {int(b[row])}"
            )
        b = b.astype(np.int64, copy=False)
    in_bin = (b >= 0) & (w > 0)
    gold = (c >= 0) & gold_cells[np.maximum(c, 0)]

    labels = np.unique(b[b >= 0])
    if len(labels) == 0:
        raise ValueError("no galaxy is in a tomographic bin (every tomo_bins entry is -1)")
    if not (w[b >= 0] > 0).any():
        raise ValueError("weights are all zero for the galaxies in tomographic bins")
    idx = np.searchsorted(labels, b[in_bin])
    n_lab = len(labels)
    g_in = gold[in_bin]
    n = np.bincount(idx, minlength=n_lab)
    weight = np.bincount(idx, weights=w[in_bin], minlength=n_lab)
    n_gold = np.bincount(idx[g_in], minlength=n_lab)
    gold_weight = np.bincount(idx[g_in], weights=w[in_bin][g_in], minlength=n_lab)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(weight > 0, gold_weight / np.where(weight > 0, weight, 1.0), np.nan)
    table = pd.DataFrame(
        {
            "n": n,
            "weight": weight,
            "n_gold": n_gold,
            "gold_weight": gold_weight,
            "fraction": fraction,
        },
        index=pd.Index(labels, name="bin"),
    )
    return GoldSelection(gold, gold_cells, table)
