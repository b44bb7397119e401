"""Redshift calibration through a self-organising map (Masters et al. 2015, C3R2, DES SOMPZ).

Pure functions over numpy arrays and pandas frames. Nothing here trains a map, and only
:func:`fuzzy_redshift` applies one: every other input is a *cell assignment*, an integer in
``0 .. n_cells - 1`` (row-major, ``cell = row * n_cols + col``) or ``-1`` for a source that
has no cell, which every function here ignores.

The pieces, in the order a calibration uses them:

- per-cell statistics and p(z|cell) histograms: :func:`cell_statistics`, :func:`cell_pz`;
- spectroscopic coverage of the map and its gaps: :func:`cell_spec_counts`,
  :func:`covered_cells`, :func:`coverage_summary`, :func:`gaps`;
- spectroscopic targets for the gaps, C3R2-style: :func:`select_targets`;
- cells without spectroscopy borrowing from the nearest labelled cell on the map:
  :func:`fill_unlabelled_cells`;
- the redshift distribution of a sample: :func:`nz`;
- the Masters et al. (2015) spectroscopic-sampling experiment: :func:`sampling_experiment`,
  :func:`first_passing_n`;
- a per-galaxy redshift from the labelled cells around its best cell, weighted by fuzzy
  membership: :func:`fuzzy_redshift` (the one function here that applies a map: it needs
  the galaxy's distance to several cells' weights, which a cell assignment has lost).

Conventions: redshifts are plain floats, magnitudes AB, weights non-negative floats
(``None`` means every row weighs 1). Histogram bins are given as edges, strictly increasing;
as in :func:`numpy.histogram` a value equal to the last edge falls in the last bin and
values outside the edges are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "NMAD_SCALE",
    "CoverageSummary",
    "FilledCells",
    "NzResult",
    "cell_pz",
    "cell_spec_counts",
    "cell_statistics",
    "coverage_summary",
    "covered_cells",
    "fill_unlabelled_cells",
    "first_passing_n",
    "fuzzy_redshift",
    "gaps",
    "map_spacing2",
    "nz",
    "sampling_experiment",
    "select_targets",
]

#: Converts the median absolute deviation to the standard deviation of a Gaussian.
NMAD_SCALE = 1.4826

#: Mean-redshift requirement of Euclid/LSST-class weak lensing: |Δ<z>| ≤ 0.002 (1 + <z>).
MEAN_Z_REQUIREMENT = 0.002

_STRATEGIES = ("random", "systematic", "uniform")

_STAT_COLUMNS = ("z_mean", "z_median", "z_std", "z_nmad", "z_min", "z_max")


# --------------------------------------------------------------------------------------
# input checks: every error names the argument (and row) at fault
# --------------------------------------------------------------------------------------


def _check_n_cells(n_cells: Any) -> int:
    if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    return int(n_cells)


def _as_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_length(arr: np.ndarray, n: int, name: str, other: str) -> None:
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows but {other} has {n}")


def _as_cells(cells: Any, n_cells: int, name: str) -> np.ndarray:
    """Cell indices as int64, checked to lie in -1 .. n_cells-1."""
    arr = _as_1d(cells, name)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must hold integer cell indices, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} must hold integer cell indices (-1 = unassigned); "
                f"row {row} is {arr[row]!r}"
            )
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < -1) | (arr >= n_cells)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} out of range: row {row} is {int(arr[row])}, "
            f"cells must be in 0..{n_cells - 1} or -1 for unassigned"
        )
    return arr


def _as_float(values: Any, n: int, name: str, other: str) -> np.ndarray:
    arr = _as_1d(values, name)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    _check_length(arr, n, name, other)
    return arr.astype(np.float64, copy=False)


def _as_weights(weights: Any, n: int, name: str, other: str) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    arr = _as_float(weights, n, name, other)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite and >= 0; row {row} is {arr[row]!r}")
    return arr


def _as_mask(mask: Any, n: int, name: str, other: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    arr = _as_1d(mask, name)
    if arr.dtype != bool:
        raise ValueError(f"{name} must be a boolean mask, got dtype {arr.dtype}")
    _check_length(arr, n, name, other)
    return arr


def _as_edges(bins: Any, name: str) -> np.ndarray:
    edges = _as_1d(bins, name)
    if edges.dtype == bool or not np.issubdtype(edges.dtype, np.number):
        raise ValueError(f"{name} must be numeric bin edges, got dtype {edges.dtype}")
    edges = edges.astype(np.float64)
    if len(edges) < 2:
        raise ValueError(f"{name} needs at least two edges, got {len(edges)}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"{name} must be finite")
    if np.any(np.diff(edges) <= 0):
        raise ValueError(f"{name} must be strictly increasing")
    return edges


def _as_covered(covered: Any, n_cells: int | None = None) -> np.ndarray:
    arr = _as_1d(covered, "covered")
    if arr.dtype != bool:
        raise ValueError(f"covered must be a boolean array (one entry per cell), got {arr.dtype}")
    if n_cells is not None and len(arr) != n_cells:
        raise ValueError(f"covered has {len(arr)} entries but n_cells is {n_cells}")
    return arr


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value (numpy.histogram convention); -1 outside the edges or not finite."""
    n_bins = len(edges) - 1
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = n_bins - 1
    idx[(idx < 0) | (idx >= n_bins) | ~np.isfinite(values)] = -1
    return idx


def _edges_from(bins: Any, values: np.ndarray, name: str) -> np.ndarray:
    """Edges given directly, or an integer number of equal bins spanning the finite values."""
    if bins is None or isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        n = 10 if bins is None else int(bins)
        if n < 1:
            raise ValueError(f"{name} must be a positive number of bins or bin edges")
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            raise ValueError(f"{name}: no finite values to bin")
        lo, hi = float(finite.min()), float(finite.max())
        if hi <= lo:
            hi = lo + 1.0
        return np.linspace(lo, hi, n + 1)
    return _as_edges(bins, name)


def _json_safe(value: Any) -> Any:
    """NaN/inf to None and numpy scalars to Python, so to_dict() output is valid JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, pd.DataFrame):
        return [_json_safe(r) for r in value.to_dict(orient="records")]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------
# grouped order statistics (sort once by (cell, value), then reduce per contiguous group)
# --------------------------------------------------------------------------------------


def _group_order(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Stable permutation sorting rows by group (integers in 0..n_groups-1)."""
    # A stable sort of 16-bit integers is a radix sort in numpy: several times faster than
    # sorting int64 (or lexsort) on 10^7 rows.
    if n_groups <= np.iinfo(np.int16).max:
        groups = groups.astype(np.int16)
    return np.argsort(groups, kind="stable")


def _group_sort(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Permutation sorting rows by group, then by value within the group."""
    by_value = np.argsort(values, kind="quicksort")
    return by_value[_group_order(groups[by_value], n_groups)]


def _group_cumweight(
    w: np.ndarray | None, starts: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Running weight over contiguous groups: ``(cw, half, tol)``.

    ``cw`` has N+1 entries with ``cw[0] = 0``, so the weight of rows ``i..j-1`` is
    ``cw[j] - cw[i]``; ``half`` is half of each group's weight; a difference within ``tol``
    of ``half`` counts as equal to it. Unweighted, ``cw`` holds exact integers (``tol`` is
    then below any possible non-zero difference). Weighted, each group is normalised to unit
    weight first, which keeps the running sum's rounding small relative to one group however
    long the whole array is.
    """
    if w is None:
        return np.arange(sizes.sum() + 1, dtype=np.float64), 0.5 * sizes, 0.25
    totals = np.add.reduceat(w, starts)
    cw = np.empty(len(w) + 1)
    cw[0] = 0.0
    np.cumsum(w / np.repeat(totals, sizes), out=cw[1:])
    # Measure each group's total with the same running sum, so 'all of the group' is exact.
    half = 0.5 * (cw[starts + sizes] - cw[starts])
    return cw, half, 1e-9


def _bisect(lo: np.ndarray, hi: np.ndarray, pred) -> np.ndarray:
    """First index in ``[lo, hi)`` where ``pred`` holds (``hi`` if nowhere), for many
    independent searches at once; ``pred(idx)`` must be monotone (False then True) in each."""
    lo, hi = lo.copy(), hi.copy()
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        ok = pred(mid, active)
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)


def _group_median(
    vals: np.ndarray, w: np.ndarray | None, starts: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Median of each contiguous, value-sorted group of ``vals`` (groups all non-empty).

    The smallest value at which the cumulative weight reaches half the group's weight; when
    the half falls exactly on the boundary between two values it is their midpoint, so that
    unit weights (or none) give exactly ``numpy.median``.
    """
    ends = starts + sizes
    cw, half, tol = _group_cumweight(w, starts, sizes)
    target = cw[starts] + half
    # cw is globally non-decreasing, so one searchsorted serves every group.
    idx = np.searchsorted(cw, target - tol, side="left") - 1
    idx = np.clip(idx, starts, ends - 1)
    tie = (np.abs(cw[idx + 1] - target) <= tol) & (idx + 1 < ends)
    return 0.5 * (vals[idx] + vals[np.where(tie, idx + 1, idx)])


def _group_abs_dev_median(
    vals: np.ndarray,
    w: np.ndarray | None,
    starts: np.ndarray,
    sizes: np.ndarray,
    centre: np.ndarray,
) -> np.ndarray:
    """Median of ``|vals - centre|`` in each contiguous, value-sorted group, with the
    conventions of :func:`_group_median`, without sorting the deviations again.

    Within a sorted group the deviations fall along the rows below the centre and rise
    along the rows above it. The weight with deviation <= t is therefore the weight of one
    contiguous block ``[p(t), q(t))``, found by bisection; the answer is the smallest
    deviation, searched on each side of the centre, whose block holds half the weight.
    Cost O(groups × log²(group size)) after an O(N) pass.
    """
    ends = starts + sizes
    n = len(vals)
    dev = np.abs(vals - np.repeat(centre, sizes))
    cw, half, tol = _group_cumweight(w, starts, sizes)
    last = max(n - 1, 0)

    def at(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return a[np.minimum(idx, last)]

    # First row at or above the centre: deviations fall before it and rise from it.
    split = _bisect(starts, ends, lambda m, act: at(vals, m) >= centre)

    def block(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = _bisect(starts, split, lambda m, act: at(dev, m) <= t)
        q = _bisect(split, ends, lambda m, act: at(dev, m) > t)
        return p, q

    def enough(t: np.ndarray) -> np.ndarray:
        p, q = block(t)
        return cw[q] - cw[p] >= half - tol

    # Below the centre t grows as the row index falls: the last row that holds enough.
    i_lo = _bisect(starts, split, lambda m, act: ~enough(at(dev, m))) - 1
    # Above the centre t grows with the row index: the first row that holds enough.
    j_hi = _bisect(split, ends, lambda m, act: enough(at(dev, m)))
    t_lo = np.where(i_lo >= starts, at(dev, np.maximum(i_lo, 0)), np.inf)
    t_hi = np.where(j_hi < ends, at(dev, j_hi), np.inf)
    t = np.minimum(t_lo, t_hi)
    p, q = block(t)
    tie = np.abs(cw[q] - cw[p] - half) <= tol
    nxt = np.minimum(
        np.where(p > starts, at(dev, np.maximum(p - 1, 0)), np.inf),
        np.where(q < ends, at(dev, q), np.inf),
    )
    tie &= np.isfinite(nxt)
    return np.where(tie, 0.5 * (t + np.where(tie, nxt, t)), t)


# --------------------------------------------------------------------------------------
# 2. per-cell statistics and p(z|cell)
# --------------------------------------------------------------------------------------


def cell_statistics(cells: Any, z: Any, n_cells: int, weights: Any = None) -> pd.DataFrame:
    """Occupation and redshift statistics of every cell of a map.

    Parameters
    ----------
    cells : (N,) int
        Cell of each source, ``-1`` for unassigned (ignored).
    z : (N,) float
        Redshift of each source (photometric or spectroscopic). NaN redshifts are left out of
        the redshift statistics but still count towards the occupation.
    n_cells : int
        Number of cells of the map; the frame has one row per cell.
    weights : (N,) float, optional
        Non-negative weight of each source. Zero-weight sources count in ``count`` but not in
        any weighted quantity.

    Returns
    -------
    pandas.DataFrame indexed by ``cell`` (0..n_cells-1) with columns

    - ``count``: assigned sources in the cell; ``weight``: their summed weight;
    - ``fraction``: weighted occupation, ``weight / weight of all assigned sources``;
    - ``count_z``: sources entering the redshift statistics (finite z, weight > 0);
    - ``z_mean``, ``z_std`` (weighted, population standard deviation, ``ddof=0``),
      ``z_median`` (weighted median, see below), ``z_nmad`` (``1.4826 * median|z -
      z_median|``, weighted likewise), ``z_min``, ``z_max``. NaN where ``count_z == 0``.

    The weighted median is the smallest redshift at which the cumulative weight reaches half
    the cell's weight, or the midpoint of two redshifts when the half falls exactly between
    them, so that without weights it equals :func:`numpy.median`.

    Cost is one sort of the N redshifts plus linear passes (no per-cell Python loop); the
    deviations for ``z_nmad`` are not sorted again (see ``_group_abs_dev_median``).
    """
    n_cells = _check_n_cells(n_cells)
    c = _as_cells(cells, n_cells, "cells")
    zz = _as_float(z, len(c), "z", "cells")
    w = _as_weights(weights, len(c), "weights", "cells")

    assigned = c >= 0
    count = np.bincount(c[assigned], minlength=n_cells)
    weight = np.bincount(c[assigned], weights=w[assigned], minlength=n_cells)
    total = weight.sum()
    fraction = weight / total if total > 0 else np.full(n_cells, np.nan)

    out = pd.DataFrame(
        {"count": count, "weight": weight, "fraction": fraction},
        index=pd.RangeIndex(n_cells, name="cell"),
    )
    stats = {name: np.full(n_cells, np.nan) for name in _STAT_COLUMNS}
    count_z = np.zeros(n_cells, dtype=np.int64)

    use = assigned & np.isfinite(zz) & (w > 0)
    if use.any():
        cu, zu = c[use], zz[use]
        per_cell = np.bincount(cu, minlength=n_cells)
        order = _group_sort(cu, zu, n_cells)
        zs = zu[order]
        occupied = np.flatnonzero(per_cell)
        sizes = per_cell[occupied]
        starts = np.cumsum(sizes) - sizes
        # Unweighted, skip the weight arrays: on 10^7 rows every gather costs.
        ws = None if weights is None else w[use][order]
        wsum = sizes if ws is None else np.add.reduceat(ws, starts)
        mean = np.add.reduceat(zs if ws is None else ws * zs, starts) / wsum
        # Two-pass variance: subtracting the cell mean first avoids catastrophic cancellation.
        dev2 = (zs - np.repeat(mean, sizes)) ** 2
        std = np.sqrt(np.add.reduceat(dev2 if ws is None else ws * dev2, starts) / wsum)
        median = _group_median(zs, ws, starts, sizes)
        nmad = NMAD_SCALE * _group_abs_dev_median(zs, ws, starts, sizes, median)
        count_z[occupied] = sizes
        for name, values in (
            ("z_mean", mean),
            ("z_median", median),
            ("z_std", std),
            ("z_nmad", nmad),
            ("z_min", zs[starts]),
            ("z_max", zs[starts + sizes - 1]),
        ):
            stats[name][occupied] = values
    out["count_z"] = count_z
    for name in _STAT_COLUMNS:
        out[name] = stats[name]
    return out


def cell_pz(
    cells: Any,
    z: Any,
    n_cells: int,
    bins: Any,
    weights: Any = None,
    normalise: bool = True,
) -> np.ndarray:
    """Histogram of redshift in every cell: an ``(n_cells, n_bins)`` array.

    ``bins`` are redshift edges. With ``normalise`` each non-empty row is a density with unit
    area, ``sum(row * diff(bins)) == 1``; empty rows (no source inside the edges) stay zero.
    Without it rows hold (weighted) counts. NaN redshifts and unassigned sources are ignored.
    """
    n_cells = _check_n_cells(n_cells)
    edges = _as_edges(bins, "bins")
    c = _as_cells(cells, n_cells, "cells")
    zz = _as_float(z, len(c), "z", "cells")
    w = _as_weights(weights, len(c), "weights", "cells")
    n_bins = len(edges) - 1
    b = _bin_index(zz, edges)
    use = (c >= 0) & (b >= 0)
    hist = np.bincount(
        c[use] * n_bins + b[use], weights=w[use], minlength=n_cells * n_bins
    ).reshape(n_cells, n_bins)
    if normalise:
        hist = _normalise_rows(hist, np.diff(edges))
    return hist


def _normalise_rows(hist: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Rows of (weighted) counts ``(C, B)`` to densities over bins of ``widths`` ``(B,)``
    with ``sum(row * widths) == 1``; all-zero rows stay zero."""
    total = hist.sum(axis=1)
    out = np.zeros(hist.shape, dtype=np.float64)
    nonzero = total > 0
    out[nonzero] = hist[nonzero] / total[nonzero, None] / widths
    return out


# --------------------------------------------------------------------------------------
# 3. coverage
# --------------------------------------------------------------------------------------


def cell_spec_counts(spec_cells: Any, n_cells: int, secure: Any = None) -> np.ndarray:
    """Number of (secure) spectra in every cell, an ``(n_cells,)`` int array.

    ``secure`` is a boolean mask over the spectra (quality flags decide it); ``None`` counts
    every spectrum. Unassigned spectra (cell -1) are not counted.
    """
    n_cells = _check_n_cells(n_cells)
    c = _as_cells(spec_cells, n_cells, "spec_cells")
    s = _as_mask(secure, len(c), "secure", "spec_cells")
    keep = s & (c >= 0)
    return np.bincount(c[keep], minlength=n_cells)


def covered_cells(spec_cells: Any, n_cells: int, secure: Any = None, k: int = 1) -> np.ndarray:
    """Boolean ``(n_cells,)`` array: a cell is covered when it holds at least ``k`` secure
    spectra."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return cell_spec_counts(spec_cells, n_cells, secure) >= k


@dataclass
class CoverageSummary:
    """How much of a photometric sample sits in spectroscopically covered cells.

    ``fraction_cells_covered`` is over all cells of the map; ``fraction_occupied_cells_covered``
    over the cells the sample occupies; ``fraction_galaxies_covered`` is the (weighted) share
    of the assigned sample living in covered cells. ``by_magnitude`` / ``by_redshift`` hold,
    per bin (``bin_lo``, ``bin_hi``): ``n_galaxies``, ``weight``, ``n_galaxies_covered``,
    ``weight_covered`` and ``fraction_covered`` (weighted; NaN for an empty bin), or are None
    when no magnitudes / redshifts were given. Unassigned galaxies are counted only in
    ``n_unassigned``.
    """

    n_cells: int
    n_cells_occupied: int
    n_cells_covered: int
    n_cells_occupied_covered: int
    fraction_cells_covered: float
    fraction_occupied_cells_covered: float
    fraction_galaxies_covered: float
    n_galaxies: int
    n_unassigned: int
    by_magnitude: pd.DataFrame | None = None
    by_redshift: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (frames as lists of records, NaN as None)."""
        out = {
            name: getattr(self, name)
            for name in (
                "n_cells",
                "n_cells_occupied",
                "n_cells_covered",
                "n_cells_occupied_covered",
                "fraction_cells_covered",
                "fraction_occupied_cells_covered",
                "fraction_galaxies_covered",
                "n_galaxies",
                "n_unassigned",
            )
        }
        out["by_magnitude"] = None if self.by_magnitude is None else self.by_magnitude
        out["by_redshift"] = None if self.by_redshift is None else self.by_redshift
        return _json_safe(out)


def _coverage_by_bin(
    values: np.ndarray, edges: np.ndarray, in_covered: np.ndarray, w: np.ndarray
) -> pd.DataFrame:
    n_bins = len(edges) - 1
    b = _bin_index(values, edges)
    inside = b >= 0
    bi, cov, wi = b[inside], in_covered[inside], w[inside]
    n_gal = np.bincount(bi, minlength=n_bins)
    weight = np.bincount(bi, weights=wi, minlength=n_bins)
    n_cov = np.bincount(bi[cov], minlength=n_bins)
    w_cov = np.bincount(bi[cov], weights=wi[cov], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(weight > 0, w_cov / weight, np.nan)
    return pd.DataFrame(
        {
            "bin_lo": edges[:-1],
            "bin_hi": edges[1:],
            "n_galaxies": n_gal,
            "weight": weight,
            "n_galaxies_covered": n_cov,
            "weight_covered": w_cov,
            "fraction_covered": frac,
        }
    )


def coverage_summary(
    phot_cells: Any,
    covered: Any,
    weights: Any = None,
    mags: Any = None,
    mag_bins: Any = None,
    z: Any = None,
    z_bins: Any = None,
) -> CoverageSummary:
    """Summarise the spectroscopic coverage of a photometric sample.

    ``covered`` is the per-cell boolean from :func:`covered_cells` (its length is the number
    of cells). ``mags`` / ``z`` (one per photometric source; NaN sources are left out of the
    breakdown) give the breakdown by magnitude / redshift; their bins are edges, or a number
    of equal bins over the finite values (default 10).
    """
    cov = _as_covered(covered)
    n_cells = len(cov)
    c = _as_cells(phot_cells, n_cells, "phot_cells")
    w = _as_weights(weights, len(c), "weights", "phot_cells")
    assigned = c >= 0
    ca, wa = c[assigned], w[assigned]
    count = np.bincount(ca, minlength=n_cells)
    occ_w = np.bincount(ca, weights=wa, minlength=n_cells)
    occupied = count > 0
    total_w = occ_w.sum()
    in_cov = np.zeros(len(c), dtype=bool)
    in_cov[assigned] = cov[ca]

    def breakdown(values: Any, bins: Any, name: str, bins_name: str) -> pd.DataFrame | None:
        if values is None:
            if bins is not None and not isinstance(bins, (int, np.integer)):
                raise ValueError(f"{bins_name} given without {name}")
            return None
        v = _as_float(values, len(c), name, "phot_cells")
        edges = _edges_from(bins, v[assigned], bins_name)
        return _coverage_by_bin(v[assigned], edges, in_cov[assigned], wa)

    n_occ = int(occupied.sum())
    n_occ_cov = int((occupied & cov).sum())
    return CoverageSummary(
        n_cells=n_cells,
        n_cells_occupied=n_occ,
        n_cells_covered=int(cov.sum()),
        n_cells_occupied_covered=n_occ_cov,
        fraction_cells_covered=float(cov.sum() / n_cells),
        fraction_occupied_cells_covered=float(n_occ_cov / n_occ) if n_occ else float("nan"),
        fraction_galaxies_covered=float(occ_w[cov].sum() / total_w)
        if total_w > 0
        else float("nan"),
        n_galaxies=int(assigned.sum()),
        n_unassigned=int((~assigned).sum()),
        by_magnitude=breakdown(mags, mag_bins, "mags", "mag_bins"),
        by_redshift=breakdown(z, z_bins, "z", "z_bins"),
    )


def _check_cell_stats(cell_stats: pd.DataFrame, n_cells: int, columns: Sequence[str]) -> None:
    if not isinstance(cell_stats, pd.DataFrame):
        raise ValueError("cell_stats must be the DataFrame returned by cell_statistics")
    if len(cell_stats) != n_cells:
        raise ValueError(f"cell_stats has {len(cell_stats)} rows but the map has {n_cells} cells")
    for col in columns:
        if col not in cell_stats.columns:
            raise ValueError(f"cell_stats is missing column {col!r}")


def gaps(
    phot_cells: Any,
    covered: Any,
    n_cells: int,
    weights: Any = None,
    cell_stats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Occupied but uncovered cells, most populated (by weight) first.

    Columns: ``cell``, ``n_galaxies``, ``weight``, ``fraction`` (share of the assigned
    sample's weight in that cell), ``cumulative_fraction`` (share held by this gap and all
    larger ones: how much of the sample filling the first N gaps would cover). With
    ``cell_stats`` (e.g. photo-z statistics from :func:`cell_statistics`) its redshift
    columns are joined on. Ties are broken by cell index.
    """
    n_cells = _check_n_cells(n_cells)
    cov = _as_covered(covered, n_cells)
    c = _as_cells(phot_cells, n_cells, "phot_cells")
    w = _as_weights(weights, len(c), "weights", "phot_cells")
    if cell_stats is not None:
        _check_cell_stats(cell_stats, n_cells, _STAT_COLUMNS)
    assigned = c >= 0
    count = np.bincount(c[assigned], minlength=n_cells)
    occ_w = np.bincount(c[assigned], weights=w[assigned], minlength=n_cells)
    total = occ_w.sum()
    gap = np.flatnonzero((count > 0) & ~cov)
    # lexsort sorts by the last key first: weight descending, then cell ascending.
    gap = gap[np.lexsort((gap, -occ_w[gap]))]
    frac = occ_w[gap] / total if total > 0 else np.full(len(gap), np.nan)
    out = pd.DataFrame(
        {
            "cell": gap,
            "n_galaxies": count[gap],
            "weight": occ_w[gap],
            "fraction": frac,
            "cumulative_fraction": np.cumsum(frac),
        }
    )
    if cell_stats is not None:
        for col in _STAT_COLUMNS:
            out[col] = cell_stats[col].to_numpy()[gap]
    return out


# --------------------------------------------------------------------------------------
# 4. spectroscopic targets for the gaps (C3R2)
# --------------------------------------------------------------------------------------


def select_targets(
    sources: pd.DataFrame,
    covered: Any,
    cell_stats: pd.DataFrame | None = None,
    *,
    budget_targets: int | None = None,
    budget_hours: float | None = None,
    mag_column: str = "mag_i",
    mag_limit: float | None = None,
    per_cell: int = 1,
    exposure_ref_mag: float = 22.5,
    exposure_ref_hours: float = 1.0,
    exposure_slope: float = 0.8,
    overhead_hours: float = 0.0,
) -> pd.DataFrame:
    """Rank spectroscopic targets that fill the map's gaps, in the manner of C3R2.

    ``sources`` needs columns ``id``, ``cell`` and ``distance`` (distance of the source to its
    cell's weight vector) and ``mag_column``; ``ra``, ``dec`` and every ``mag_*`` column are
    carried through. ``covered`` is the per-cell boolean of :func:`covered_cells`.

    Rules, in order:

    1. only sources in uncovered cells, with a finite ``distance`` and magnitude, and (with
       ``mag_limit``) ``mag <= mag_limit`` are candidates;
    2. cells are ranked by the galaxies they hold, most first: ``cell_stats['count']`` when
       given (the whole photometric sample), else the number of rows of ``sources`` in the
       cell; ties by cell index;
    3. within a cell candidates are ranked by ``distance`` (closest to the weight vector is
       most representative of the cell), ties by magnitude (brighter is cheaper), then by
       row order of ``sources``;
    4. round-robin: the best candidate of every cell, in cell rank, before the second of
       any cell, up to ``per_cell`` per cell;
    5. the list stops at the first target that would exceed ``budget_targets`` or
       ``budget_hours`` (cumulative, overheads included); later, cheaper targets are not
       pulled forward, so the priority order is never broken.

    Exposure model: ``exposure_hours = exposure_ref_hours * 10**(exposure_slope * (mag -
    exposure_ref_mag))`` for the S/N reached at ``exposure_ref_mag`` in ``exposure_ref_hours``.
    The default slope 0.8 is the background-limited regime (S/N ∝ F t^½ / B^½, so t ∝ F^-2 =
    10^(0.8 Δm)), which is where C3R2's faint (i ≈ 22–25) targets are; use 0.4 for the
    source-limited regime (t ∝ F^-1). ``cumulative_hours`` adds ``overhead_hours`` per target.
    Times are per target, as if observed one at a time: multiplexing is the planner's job.

    Returns a frame, one row per target: ``priority`` (1 = first), ``id``, ``ra``, ``dec``
    (when present), the magnitude columns, ``cell``, ``distance``, ``cell_n_galaxies``,
    ``z_expected`` (the cell's ``z_median`` from ``cell_stats``, else NaN), ``z_spread``
    (the cell's ``z_nmad``, else NaN), ``exposure_hours``, ``cumulative_hours``.
    """
    if not isinstance(sources, pd.DataFrame):
        raise ValueError("sources must be a pandas DataFrame")
    for col in ("id", "cell", "distance", mag_column):
        if col not in sources.columns:
            raise ValueError(f"sources is missing column {col!r}")
    cov = _as_covered(covered)
    n_cells = len(cov)
    if cell_stats is not None:
        _check_cell_stats(cell_stats, n_cells, ("count", "z_median", "z_nmad"))
    if isinstance(per_cell, bool) or not isinstance(per_cell, (int, np.integer)) or per_cell < 1:
        raise ValueError(f"per_cell must be a positive integer, got {per_cell!r}")
    if budget_targets is not None and (
        isinstance(budget_targets, bool)
        or not isinstance(budget_targets, (int, np.integer))
        or budget_targets < 0
    ):
        raise ValueError(f"budget_targets must be a non-negative integer, got {budget_targets!r}")
    if budget_hours is not None and not (budget_hours >= 0):
        raise ValueError(f"budget_hours must be >= 0, got {budget_hours!r}")
    if not (exposure_ref_hours > 0):
        raise ValueError(f"exposure_ref_hours must be > 0, got {exposure_ref_hours!r}")
    if not (overhead_hours >= 0):
        raise ValueError(f"overhead_hours must be >= 0, got {overhead_hours!r}")

    cells = _as_cells(sources["cell"].to_numpy(), n_cells, "sources['cell']")
    dist = _as_float(sources["distance"].to_numpy(), len(cells), "sources['distance']", "sources")
    mag = _as_float(
        sources[mag_column].to_numpy(), len(cells), f"sources[{mag_column!r}]", "sources"
    )

    assigned = cells >= 0
    if cell_stats is not None:
        cell_n = cell_stats["count"].to_numpy()
    else:
        cell_n = np.bincount(cells[assigned], minlength=n_cells)

    ok = assigned & np.isfinite(dist) & np.isfinite(mag)
    ok[ok] &= ~cov[cells[ok]]
    if mag_limit is not None:
        ok &= mag <= mag_limit
    rows = np.flatnonzero(ok)
    rc, rd, rm = cells[rows], dist[rows], mag[rows]

    # Cell rank: most galaxies first, ties by cell index.
    all_cells = np.arange(n_cells)
    cell_rank = np.empty(n_cells, dtype=np.int64)
    cell_rank[np.lexsort((all_cells, -cell_n))] = all_cells

    # Rank within the cell: distance, then magnitude, then row order.
    order = np.lexsort((rows, rm, rd, rc))
    sc = rc[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sc)) + 1] if len(sc) else np.array([], int)
    sizes = np.diff(np.r_[starts, len(sc)])
    within = np.arange(len(sc)) - np.repeat(starts, sizes)
    keep = within < per_cell
    order, within, sc = order[keep], within[keep], sc[keep]
    # Round-robin: round first, then cell rank.
    rr = np.lexsort((cell_rank[sc], within))
    chosen = rows[order[rr]]

    exposure = exposure_ref_hours * 10.0 ** (exposure_slope * (mag[chosen] - exposure_ref_mag))
    cumulative = np.cumsum(exposure + overhead_hours)
    n_take = len(chosen)
    if budget_targets is not None:
        n_take = min(n_take, int(budget_targets))
    if budget_hours is not None:
        # Tolerance so that a budget equal to the sum of the chosen times is met exactly.
        n_take = min(n_take, int(np.searchsorted(cumulative, budget_hours * (1 + 1e-12), "right")))
    chosen, exposure, cumulative = chosen[:n_take], exposure[:n_take], cumulative[:n_take]

    ch_cells = cells[chosen]
    out = pd.DataFrame({"priority": np.arange(1, n_take + 1)})
    out["id"] = sources["id"].to_numpy()[chosen]
    for col in ("ra", "dec"):
        if col in sources.columns:
            out[col] = sources[col].to_numpy()[chosen]
    mag_cols = [mag_column] + [
        c
        for c in sources.columns
        if isinstance(c, str) and c.startswith("mag_") and c != mag_column
    ]
    for col in mag_cols:
        out[col] = sources[col].to_numpy()[chosen]
    out["cell"] = ch_cells
    out["distance"] = dist[chosen]
    out["cell_n_galaxies"] = np.asarray(cell_n)[ch_cells]
    if cell_stats is not None:
        out["z_expected"] = cell_stats["z_median"].to_numpy()[ch_cells]
        out["z_spread"] = cell_stats["z_nmad"].to_numpy()[ch_cells]
    else:
        out["z_expected"] = np.nan
        out["z_spread"] = np.nan
    out["exposure_hours"] = exposure
    out["cumulative_hours"] = cumulative
    return out


# --------------------------------------------------------------------------------------
# 5. n(z) of a sample
# --------------------------------------------------------------------------------------


@dataclass
class NzResult:
    """The redshift distribution of a sample calibrated through the map (see :func:`nz`).

    ``nz`` is a density over ``bins`` with unit area; ``nz_err`` its bootstrap standard
    deviation per bin (NaN without bootstrap). ``mean_z`` is computed from the spectra
    themselves (no binning), ``mean_z_hist`` from the histogram's bin centres; ``mean_z_err``
    is the bootstrap standard deviation of ``mean_z``. ``truth_mean_z``, ``delta_mean_z =
    mean_z - truth_mean_z``, ``requirement = 0.002 (1 + truth_mean_z)`` and ``passes =
    |delta_mean_z| <= requirement`` are filled only when true redshifts were given.
    ``sample_used`` marks the sample members the estimate describes (all assigned members,
    or only those in covered cells with ``gold``) and ``n_sample`` counts them;
    ``n_spec_used`` counts the spectra behind the estimate (in covered cells holding sample
    weight), ``n_spec_outside_bins`` the otherwise usable spectra outside ``bins``;
    ``n_cells_covered`` the cells with at least ``k`` usable spectra.
    """

    bins: np.ndarray
    nz: np.ndarray
    nz_err: np.ndarray
    mean_z: float
    mean_z_err: float
    mean_z_hist: float
    uncovered_fraction: float
    n_sample: int
    n_spec_used: int
    n_spec_outside_bins: int
    n_cells_covered: int
    k: int
    gold: bool
    n_boot: int
    truth_mean_z: float | None = None
    delta_mean_z: float | None = None
    requirement: float | None = None
    passes: bool | None = None
    sample_used: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists, NaN as None; ``sample_used`` left out)."""
        out = {
            "bins": self.bins,
            "nz": self.nz,
            "nz_err": self.nz_err,
            "mean_z": self.mean_z,
            "mean_z_err": self.mean_z_err,
            "mean_z_hist": self.mean_z_hist,
            "uncovered_fraction": self.uncovered_fraction,
            "n_sample": self.n_sample,
            "n_spec_used": self.n_spec_used,
            "n_spec_outside_bins": self.n_spec_outside_bins,
            "n_cells_covered": self.n_cells_covered,
            "k": self.k,
            "gold": self.gold,
            "n_boot": self.n_boot,
            "truth_mean_z": self.truth_mean_z,
            "delta_mean_z": self.delta_mean_z,
            "requirement": self.requirement,
            "passes": self.passes,
        }
        return _json_safe(out)


def _nz_from_cells(
    w_cov: np.ndarray, hist: np.ndarray, mean_c: np.ndarray, widths: np.ndarray
) -> tuple[np.ndarray, float]:
    """n(z) and mean z from covered-cell weights ``(C,)``, raw histograms ``(C, B)`` and
    per-cell mean spectroscopic z ``(C,)``.

    Each histogram is made a unit-area density *before* weighting: weighting raw histograms
    would weight every cell by its number of spectra as well as by its share of the sample.
    """
    total = w_cov.sum()
    if total <= 0:
        return np.full(hist.shape[1], np.nan), float("nan")
    # Σ_c w_c H_c / (S_c Δz) without forming the normalised (C, B) matrix; every covered
    # cell has S_c > 0 (at least k spectra with weight > 0 inside the bins).
    n_of_z = ((w_cov / hist.sum(axis=1)) @ hist) / widths / total
    return n_of_z, float(w_cov @ mean_c / total)


def nz(
    sample_cells: Any,
    n_cells: int,
    spec_cells: Any,
    spec_z: Any,
    bins: Any,
    *,
    sample_weights: Any = None,
    spec_weights: Any = None,
    spec_secure: Any = None,
    k: int = 1,
    gold: bool = False,
    n_boot: int = 200,
    random_state: Any = None,
    truth_z: Any = None,
) -> NzResult:
    """Redshift distribution of a sample through the map: n(z) = Σ_c w_c p(z|c) / Σ_c w_c.

    ``w_c`` is the sample's (weighted) number of members in cell ``c``; ``p(z|c)`` the
    histogram of the cell's spectra (weighted by ``spec_weights``), each normalised to unit
    area before it is weighted. Spectra used: secure (``spec_secure``), assigned, finite
    redshift inside ``bins``, weight > 0; spectra outside the bins are counted in
    ``n_spec_outside_bins`` and otherwise ignored, so choose bins spanning the redshifts of
    interest. A cell is covered when it holds at least ``k`` used spectra.

    Uncovered cells, whose share of the sample weight is reported as ``uncovered_fraction``:

    - ``gold=False`` (default): the estimate stands for the *whole* assigned sample. The
      covered cells are renormalised to unit total weight, which assumes the uncovered part
      of the sample has the same n(z) as the covered part; this assumption is what
      ``uncovered_fraction`` quantifies. ``truth_z`` is compared over the whole sample, so
      the bias it reports includes the cost of that assumption.
    - ``gold=True`` (KiDS "gold" selection): sample members in uncovered cells are removed
      from the sample. The n(z) numbers are the same, but they describe the smaller gold
      sample (``sample_used``, ``n_sample``); the bootstrap resamples and ``truth_z`` is
      compared over the gold sample only.

    The mean redshift ``mean_z`` is the weighted mean of the per-cell mean spectroscopic
    redshifts (``Σ_c w_c <z_spec>_c / Σ_c w_c``), free of binning; ``mean_z_hist`` is the
    mean of the histogram.

    Bootstrap (``n_boot`` > 0): every realisation resamples with replacement the sample
    (whole or gold) and, independently within every covered cell, that cell's spectra, all
    from one ``numpy.random.Generator`` seeded by ``random_state``. A cell with one spectrum
    contributes no spectroscopic variance, a known limit of the bootstrap with few spectra.
    ``nz_err`` and ``mean_z_err`` are the standard deviations (ddof=1) over realisations.
    Unweighted, the sample is resampled as a multinomial draw of cell counts (cost per
    realisation independent of the sample size); weighted, member by member (about 0.2 s
    per realisation per 10^7 members).

    ``truth_z`` (true redshift of every sample member, e.g. in a simulation) gives
    ``delta_mean_z``, ``requirement = 0.002 (1 + <z_true>)`` and ``passes``.

    Raises ValueError for mismatched lengths, out-of-range cells, or when no sample weight
    lies in a covered cell (n(z) would be undefined).
    """
    n_cells = _check_n_cells(n_cells)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    edges = _as_edges(bins, "bins")
    widths = np.diff(edges)
    n_bins = len(widths)

    sc = _as_cells(sample_cells, n_cells, "sample_cells")
    sw = _as_weights(sample_weights, len(sc), "sample_weights", "sample_cells")
    pc = _as_cells(spec_cells, n_cells, "spec_cells")
    pz = _as_float(spec_z, len(pc), "spec_z", "spec_cells")
    pw = _as_weights(spec_weights, len(pc), "spec_weights", "spec_cells")
    secure = _as_mask(spec_secure, len(pc), "spec_secure", "spec_cells")
    truth = None if truth_z is None else _as_float(truth_z, len(sc), "truth_z", "sample_cells")

    pb = _bin_index(pz, edges)
    candidate = secure & (pc >= 0) & np.isfinite(pz) & (pw > 0)
    used = candidate & (pb >= 0)
    n_outside = int((candidate & (pb < 0)).sum())
    counts = np.bincount(pc[used], minlength=n_cells)
    covered = counts >= k

    assigned = sc >= 0
    w_cell = np.bincount(sc[assigned], weights=sw[assigned], minlength=n_cells)
    total_w = w_cell.sum()
    if total_w <= 0:
        raise ValueError("sample_cells: no sample member with weight > 0 is assigned to a cell")
    uncovered_fraction = float(w_cell[~covered].sum() / total_w)
    cov_idx = np.flatnonzero(covered & (w_cell > 0))
    if len(cov_idx) == 0:
        raise ValueError(
            "no sample weight falls in a covered cell: n(z) is undefined "
            f"(k={k}, {int(covered.sum())} covered cells)"
        )

    population = assigned.copy()
    if gold:
        population[assigned] &= covered[sc[assigned]]

    # Compress to the covered cells that carry sample weight: C rows instead of n_cells.
    to_c = np.full(n_cells, -1, dtype=np.int64)
    to_c[cov_idx] = np.arange(len(cov_idx))
    in_cov = np.zeros(len(pc), dtype=bool)
    in_cov[used] = to_c[pc[used]] >= 0
    spec_rows = np.flatnonzero(in_cov)
    s_c = to_c[pc[spec_rows]]
    order = np.argsort(s_c, kind="stable")
    spec_rows, s_c = spec_rows[order], s_c[order]
    s_z, s_w, s_b = pz[spec_rows], pw[spec_rows], pb[spec_rows]
    n_c = len(cov_idx)

    def cell_hist_mean(zz, ww, bb):
        hist = np.bincount(s_c * n_bins + bb, weights=ww, minlength=n_c * n_bins).reshape(
            n_c, n_bins
        )
        mean_c = np.bincount(s_c, weights=ww * zz, minlength=n_c) / np.bincount(
            s_c, weights=ww, minlength=n_c
        )
        return hist, mean_c

    hist, mean_c = cell_hist_mean(s_z, s_w, s_b)
    n_of_z, mean_z = _nz_from_cells(w_cell[cov_idx], hist, mean_c, widths)
    centres = 0.5 * (edges[:-1] + edges[1:])
    mean_z_hist = float(np.sum(n_of_z * widths * centres))

    nz_err = np.full(n_bins, np.nan)
    mean_z_err = float("nan")
    if n_boot > 0:
        rng = np.random.default_rng(random_state)
        pop_cells = sc[population]
        pop_w = sw[population]
        n_pop = len(pop_cells)
        unweighted = sample_weights is None
        pop_counts = np.bincount(pop_cells, minlength=n_cells)
        pvals = pop_counts / n_pop
        if not unweighted:
            # Members sorted by cell, so a resample's multiplicities sum per cell by reduceat:
            # several times faster on 10^7 rows than gathering cells and weights per draw.
            pop_occ = np.flatnonzero(pop_counts)
            pop_starts = np.cumsum(pop_counts[pop_occ]) - pop_counts[pop_occ]
            pop_w_sorted = pop_w[_group_order(pop_cells, n_cells)]
            idx_dtype = np.int32 if n_pop < np.iinfo(np.int32).max else np.int64
        starts = np.searchsorted(s_c, np.arange(n_c))
        sizes = np.bincount(s_c, minlength=n_c)
        row_start, row_size = starts[s_c], sizes[s_c]
        boot_nz = np.empty((n_boot, n_bins))
        boot_mean = np.empty(n_boot)
        for i in range(n_boot):
            if unweighted:
                # Resampling N unit-weight members is a multinomial draw of cell counts.
                w_b = rng.multinomial(n_pop, pvals).astype(np.float64)
            else:
                multiplicity = np.bincount(
                    rng.integers(0, n_pop, n_pop, dtype=idx_dtype), minlength=n_pop
                )
                w_b = np.zeros(n_cells)
                w_b[pop_occ] = np.add.reduceat(pop_w_sorted * multiplicity, pop_starts)
            j = row_start + (rng.random(len(s_c)) * row_size).astype(np.int64)
            h_b, m_b = cell_hist_mean(s_z[j], s_w[j], s_b[j])
            boot_nz[i], boot_mean[i] = _nz_from_cells(w_b[cov_idx], h_b, m_b, widths)
        if n_boot > 1:
            nz_err = np.nanstd(boot_nz, axis=0, ddof=1)
            mean_z_err = float(np.nanstd(boot_mean, ddof=1))

    truth_mean = delta = requirement = passes = None
    if truth is not None:
        t, tw = truth[population], sw[population]
        bad = ~np.isfinite(t)
        if bad.any():
            row = int(np.flatnonzero(population)[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"truth_z must be finite for the sample used; row {row} is {truth[row]}"
            )
        truth_mean = float(np.sum(tw * t) / np.sum(tw))
        delta = mean_z - truth_mean
        requirement = MEAN_Z_REQUIREMENT * (1.0 + truth_mean)
        passes = bool(abs(delta) <= requirement)

    return NzResult(
        bins=edges,
        nz=n_of_z,
        nz_err=nz_err,
        mean_z=mean_z,
        mean_z_err=mean_z_err,
        mean_z_hist=mean_z_hist,
        uncovered_fraction=uncovered_fraction,
        n_sample=int(population.sum()),
        n_spec_used=len(spec_rows),
        n_spec_outside_bins=n_outside,
        n_cells_covered=int(covered.sum()),
        k=int(k),
        gold=bool(gold),
        n_boot=int(n_boot),
        truth_mean_z=truth_mean,
        delta_mean_z=delta,
        requirement=requirement,
        passes=passes,
        sample_used=population,
    )


# --------------------------------------------------------------------------------------
# 6. the Masters et al. (2015) spectroscopic-sampling experiment
# --------------------------------------------------------------------------------------


def _spread_order(
    cells: np.ndarray, n_cells: int, n_take: int, rng: np.random.Generator, uniform: bool
) -> np.ndarray:
    """Indices of ``n_take`` galaxies, the first a random galaxy from each occupied cell,
    most populated cells first (ties in random order), as a gap-filling survey would take
    them. After that, ``uniform`` keeps going round the cells in the same order (a second
    from every cell before a third from any); otherwise the rest are drawn at random from
    the galaxies not yet taken, i.e. in proportion to occupation."""
    u = rng.random(len(cells))
    by_cell = np.lexsort((u, cells))
    sorted_cells = cells[by_cell]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_cells)) + 1]
    sizes = np.diff(np.r_[starts, len(sorted_cells)])
    rank = np.arange(len(cells)) - np.repeat(starts, sizes)
    occupation = np.bincount(cells, minlength=n_cells)
    cell_position = np.empty(n_cells, dtype=np.int64)
    cell_position[np.lexsort((rng.random(n_cells), -occupation))] = np.arange(n_cells)
    if uniform:
        key = rank * n_cells + cell_position[sorted_cells]
    else:
        later = rank > 0
        key = cell_position[sorted_cells]
        key[later] = n_cells + rng.permutation(int(later.sum()))
    # Only the first n_take are needed: a partition is O(N) where a full sort is not.
    n_take = min(n_take, len(key))
    part = np.argpartition(key, n_take - 1)[:n_take]
    return by_cell[part[np.argsort(key[part])]]


def sampling_experiment(
    cells: Any,
    z_true: Any,
    n_cells: int,
    tomo_edges: Any,
    n_spec_list: Sequence[int],
    *,
    bin_z: Any = None,
    strategy: str | Sequence[str] = "random",
    n_realisations: int = 100,
    random_state: Any = None,
) -> pd.DataFrame:
    """How many spectra calibrate tomographic mean redshifts? (Masters et al. 2015, sec. 6).

    The photometric sample is every assigned galaxy, with true redshifts ``z_true``.
    Tomographic bins are ``tomo_edges`` over ``bin_z`` (e.g. a photo-z column); by default
    ``bin_z`` is the SOM photo-z, the median ``z_true`` of each galaxy's cell, so that every
    bin is a union of cells.

    For each realisation and each ``N`` in ``n_spec_list`` a spectroscopic sample of ``N``
    galaxies (true redshifts known) is drawn:

    - ``"random"``: ``N`` galaxies at random from the whole sample, as a survey ignoring the
      map would;
    - ``"systematic"``: spectra spread over the map, as Masters et al. propose: a random
      galaxy from each of the ``N`` most populated cells (ties in random order, like
      :func:`select_targets`); once every occupied cell has one, the rest at random from
      the remaining galaxies, so that extra spectra follow the occupation (as existing
      surveys plus C3R2-style gap filling would);
    - ``"uniform"``: as ``"systematic"`` but always round the cells, a second from every
      cell before a third from any. Beyond one per cell this spends spectra on sparsely
      occupied cells and does worse than occupation-proportional sampling when the
      within-cell scatter dominates: it is here to show that.

    Samples for the ``N`` of one realisation are nested (prefixes of one draw), which keeps
    the trend with ``N`` smooth. Each bin's mean redshift is then estimated through the map,
    ``Σ_c w_bc <z_spec>_c / Σ_c w_bc`` over cells holding spectra (``w_bc`` = galaxies of bin
    ``b`` in cell ``c``; cells without spectra dropped), and compared with the true mean of the
    bin.

    Returns one row per (strategy, n_spec, tomo_bin): ``z_lo``, ``z_hi``, ``n_galaxies``,
    ``z_mean_true``, ``bias_mean`` and ``bias_std`` (over realisations), ``bias_rms``,
    ``requirement = 0.002 (1 + z_mean_true)``, ``passes_fraction`` (share of realisations with
    ``|bias| <= requirement``; a realisation with no spectrum in the bin's cells fails),
    ``uncovered_fraction_mean`` (mean share of the bin's galaxies in cells without spectra)
    and ``n_realisations``. Empty tomographic bins are left out.
    """
    n_cells = _check_n_cells(n_cells)
    c = _as_cells(cells, n_cells, "cells")
    zt = _as_float(z_true, len(c), "z_true", "cells")
    edges = _as_edges(tomo_edges, "tomo_edges")
    strategies = [strategy] if isinstance(strategy, str) else list(strategy)
    for s in strategies:
        if s not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {s!r}")
    if (
        isinstance(n_realisations, bool)
        or not isinstance(n_realisations, (int, np.integer))
        or n_realisations < 1
    ):
        raise ValueError(f"n_realisations must be a positive integer, got {n_realisations!r}")

    assigned = c >= 0
    bad = assigned & ~np.isfinite(zt)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"z_true must be finite for assigned galaxies; row {row} is {zt[row]}")
    if bin_z is None:
        stats = cell_statistics(c, zt, n_cells)
        bz_all = np.full(len(c), np.nan)
        bz_all[assigned] = stats["z_median"].to_numpy()[c[assigned]]
    else:
        bz_all = _as_float(bin_z, len(c), "bin_z", "cells")
    ca, za, bza = c[assigned], zt[assigned], bz_all[assigned]
    n_gal = len(ca)

    ns = np.asarray(list(n_spec_list))
    if ns.ndim != 1 or len(ns) == 0 or not np.issubdtype(ns.dtype, np.integer):
        raise ValueError("n_spec_list must be a non-empty sequence of integers")
    if ns.min() < 1 or ns.max() > n_gal:
        raise ValueError(
            f"n_spec_list values must be in 1..{n_gal} (the number of assigned galaxies)"
        )
    ns = np.unique(ns)

    tomo = _bin_index(bza, edges)
    n_tomo = len(edges) - 1
    inb = tomo >= 0
    # W[b, c]: galaxies of tomographic bin b in cell c.
    W = (
        np.bincount(tomo[inb] * n_cells + ca[inb], minlength=n_tomo * n_cells)
        .reshape(n_tomo, n_cells)
        .astype(np.float64)
    )
    n_in_bin = W.sum(axis=1)
    true_mean = np.bincount(tomo[inb], weights=za[inb], minlength=n_tomo) / np.where(
        n_in_bin > 0, n_in_bin, 1
    )
    bins_kept = np.flatnonzero(n_in_bin > 0)

    rng = np.random.default_rng(random_state)
    rows = []
    n_max = int(ns.max())
    for strat in strategies:
        bias = np.full((n_realisations, len(ns), n_tomo), np.nan)
        unc = np.full((n_realisations, len(ns), n_tomo), np.nan)
        for r in range(n_realisations):
            if strat == "random":
                draw = rng.choice(n_gal, size=n_max, replace=False)
            else:
                draw = _spread_order(ca, n_cells, n_max, rng, uniform=strat == "uniform")
            cnt = np.zeros(n_cells)
            zsum = np.zeros(n_cells)
            done = 0
            for j, n in enumerate(ns):
                new = draw[done:n]
                cnt += np.bincount(ca[new], minlength=n_cells)
                zsum += np.bincount(ca[new], weights=za[new], minlength=n_cells)
                done = n
                cov = cnt > 0
                mean_c = np.where(cov, zsum / np.where(cov, cnt, 1), 0.0)
                w_cov = W @ cov.astype(np.float64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    est = (W @ mean_c) / w_cov
                    unc[r, j] = 1.0 - w_cov / n_in_bin
                est[w_cov == 0] = np.nan
                bias[r, j] = est - true_mean
        for j, n in enumerate(ns):
            for b in bins_kept:
                bb = bias[:, j, b]
                finite = np.isfinite(bb)
                req = MEAN_Z_REQUIREMENT * (1.0 + true_mean[b])
                rows.append(
                    {
                        "strategy": strat,
                        "n_spec": int(n),
                        "tomo_bin": int(b),
                        "z_lo": edges[b],
                        "z_hi": edges[b + 1],
                        "n_galaxies": int(n_in_bin[b]),
                        "z_mean_true": true_mean[b],
                        "bias_mean": float(bb[finite].mean()) if finite.any() else np.nan,
                        "bias_std": float(bb[finite].std(ddof=1)) if finite.sum() > 1 else np.nan,
                        "bias_rms": float(np.sqrt(np.mean(bb[finite] ** 2)))
                        if finite.any()
                        else np.nan,
                        "requirement": req,
                        "passes_fraction": float(np.mean(finite & (np.abs(bb) <= req))),
                        "uncovered_fraction_mean": float(np.mean(unc[:, j, b])),
                        "n_realisations": n_realisations,
                    }
                )
    return pd.DataFrame(rows)


def first_passing_n(df: pd.DataFrame, min_pass_fraction: float = 0.68) -> pd.DataFrame:
    """Smallest number of spectra meeting the mean-redshift requirement, per strategy and bin.

    ``df`` is the output of :func:`sampling_experiment`. A bin passes at ``N`` when at least
    ``min_pass_fraction`` of the realisations have ``|bias| <= requirement`` (0.68: the bias
    is within the requirement at about one sigma). ``first_n`` is the smallest tested ``N``
    from which the bin passes at *every* larger tested ``N`` too, so a lucky small ``N`` does
    not count; ``<NA>`` when the largest tested ``N`` fails. A strategy as a whole needs the
    largest ``first_n`` over its bins.
    """
    for col in ("strategy", "n_spec", "tomo_bin", "passes_fraction"):
        if col not in df.columns:
            raise ValueError(f"df is missing column {col!r}")
    if not 0 < min_pass_fraction <= 1:
        raise ValueError(f"min_pass_fraction must be in (0, 1], got {min_pass_fraction!r}")
    out = []
    for (strat, b), g in df.groupby(["strategy", "tomo_bin"], sort=True):
        g = g.sort_values("n_spec")
        ok = g["passes_fraction"].to_numpy() >= min_pass_fraction
        # Passing from index i onwards: every later entry passes too.
        tail_ok = np.flip(np.logical_and.accumulate(np.flip(ok)))
        idx = np.flatnonzero(tail_ok)
        first = int(g["n_spec"].to_numpy()[idx[0]]) if len(idx) else pd.NA
        out.append({"strategy": strat, "tomo_bin": int(b), "first_n": first})
    result = pd.DataFrame(out, columns=["strategy", "tomo_bin", "first_n"])
    result["first_n"] = result["first_n"].astype("Int64")
    return result


# --------------------------------------------------------------------------------------
# 7. a redshift per galaxy that uses the map: fuzzy membership of the cells near its best
# --------------------------------------------------------------------------------------


def _grid_offsets(grid: Any, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row/column offsets of the cells within ``radius`` of a cell, for each row parity.

    Returns ``(dr, dc, ok)``, each ``(2, m)``: offset ``j`` of a cell on a row of parity
    ``p`` is ``(dr[p, j], dc[p, j])`` where ``ok[p, j]`` (hexagonal lattices have a
    different set per parity; the shorter set is padded). On a torus, offsets that wrap to
    the same cell are kept once.
    """
    table = grid.offset_distance_table()
    sets = []
    for parity in (0, 1):
        r_idx, c_idx = np.nonzero(table[parity] <= radius + 1e-9)
        dr, dc = r_idx - (grid.n_rows - 1), c_idx - (grid.n_cols - 1)
        if grid.periodic:
            _, first = np.unique(
                np.column_stack([dr % grid.n_rows, dc % grid.n_cols]), axis=0, return_index=True
            )
            first = np.sort(first)
            dr, dc = dr[first], dc[first]
        sets.append((dr, dc))
    m = max(len(s[0]) for s in sets)
    dr = np.zeros((2, m), np.int64)
    dc = np.zeros((2, m), np.int64)
    ok = np.zeros((2, m), bool)
    for parity, (r, c) in enumerate(sets):
        dr[parity, : len(r)], dc[parity, : len(c)], ok[parity, : len(r)] = r, c, True
    return dr, dc, ok


def map_spacing2(som: Any) -> float:
    """Median squared feature-space distance between the weights of adjacent cells.

    The natural unit of a map's resolution: :func:`fuzzy_redshift` measures its
    ``temperature`` in it on Euclidean maps. Computed over all pairs of grid neighbours.
    """
    i, j = som.grid.neighbour_pairs(1.0)
    if len(i) == 0:
        return 1.0
    w = np.asarray(som.weights_, dtype=np.float64)
    s2 = float(np.median(np.sum((w[i] - w[j]) ** 2, axis=1)))
    return s2 if s2 > 0 else 1.0


def fuzzy_redshift(
    som: Any,
    X: Any,
    cell_z: Any,
    errors: Any = None,
    *,
    temperature: float = 0.25,
    radius: float = 2.0,
    scale: float | None = None,
    chunk_size: int = 65_536,
) -> np.ndarray:
    """Redshift of every row from the labelled cells around its best cell, weighted by fit.

    The cell-median estimate gives a galaxy the label of its best-matching cell alone. Here
    each galaxy takes the mean of the labels of the cells within ``radius`` (grid units) of
    its best cell, each cell weighted by how well its weight vector matches the galaxy,

        p(c | x) ∝ exp(-d²(x, w_c) / (2 T s²)),

    the soft ("fuzzy") cell membership of DES SOMPZ (Buchs et al. 2019, Myles et al. 2021),
    restricted to the best cell's grid neighbourhood. On an ordered map those are the
    cells of similar colours, so the estimate interpolates between neighbouring cells
    instead of stepping at cell borders, which lets a map keep a neighbourhood large enough
    to stay ordered and still give precise per-galaxy redshifts.

    Parameters
    ----------
    som : a fitted :class:`som.SOM` (anything with ``weights_``, ``grid``, ``assign``).
    X : (n, F) features (or a catalogue, if the map has ``features``); NaN = missing
        feature, left out of the distance (rescaled by F / n_present) as in
        :meth:`som.SOM.assign`.
    cell_z : (n_cells,) label of every cell, NaN where a cell has none, e.g.
        ``cell_statistics(train_cells, z_train, som.n_cells)["z_median"]``.
    errors : (n, F) feature errors, used (as in training) when the map's distance is
        "chi2": then d² is the chi² of the galaxy against the cell's weights.
    temperature : T, in units of ``scale``; 0 gives each row the label of the
        best-matching *labelled* cell within ``radius``, which is the cell median wherever
        the best cell is labelled. 0.25 suited 30×30 maps of 5-7 colours (README).
    radius : cells whose grid distance from the best cell is at most this take part.
    scale : s², squared feature distance. None: :func:`map_spacing2` (the median squared
        distance between adjacent cells' weights) on Euclidean maps, 1 on chi2 maps (so
        that T = 1 is the likelihood exp(-chi²/2) of DES's fuzzy assignment).
    chunk_size : rows per chunk; memory is O(chunk_size x cells within radius).

    Returns
    -------
    (n,) float64 redshifts; NaN where a row has no usable feature or no labelled cell lies
    within ``radius`` of its best cell (fill those from a fallback).
    """
    z_cell = np.asarray(cell_z, dtype=np.float64)
    if z_cell.shape != (som.n_cells,):
        raise ValueError(f"cell_z has shape {z_cell.shape}, expected ({som.n_cells},)")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")
    if not (math.isfinite(radius) and radius >= 0):
        raise ValueError(f"radius must be finite and >= 0, got {radius!r}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size!r}")
    chi2 = getattr(som, "distance", "euclidean") == "chi2"
    if scale is None:
        scale = 1.0 if chi2 else map_spacing2(som)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be finite and positive, got {scale!r}")
    X, errors = som._features_from(X, errors)
    W = np.asarray(som.weights_, dtype=np.float64)
    labelled = np.isfinite(z_cell)
    grid = som.grid
    dr, dc, ok = _grid_offsets(grid, float(radius))
    two_t = 2.0 * float(temperature) * float(scale)
    n = X.shape[0]
    out = np.full(n, np.nan)
    step = int(chunk_size)
    for start in range(0, n, step):
        stop = min(n, start + step)
        xc = np.asarray(X[start:stop], dtype=np.float64)
        ec = None if errors is None else errors[start:stop]
        best = som.assign(xc, ec, allow_empty=True).cell.astype(np.int64)
        has = best >= 0
        r0, c0 = np.divmod(np.where(has, best, 0), grid.n_cols)
        parity = r0 % 2 if grid.lattice == "hex" else np.zeros_like(r0)
        rr, cc = r0[:, None] + dr[parity], c0[:, None] + dc[parity]
        valid = ok[parity] & has[:, None]
        if grid.periodic:
            rr, cc = rr % grid.n_rows, cc % grid.n_cols
        else:
            valid &= (rr >= 0) & (rr < grid.n_rows) & (cc >= 0) & (cc < grid.n_cols)
        cand = np.where(valid, rr * grid.n_cols + cc, 0)
        valid &= labelled[cand]
        present = np.isfinite(xc)
        x0 = np.where(present, xc, 0.0)
        if chi2:
            with np.errstate(divide="ignore", invalid="ignore"):
                iv = np.where(present, 1.0 / np.asarray(ec, dtype=np.float64) ** 2, 0.0)
        else:
            iv = present.astype(np.float64)
        d2 = np.empty(cand.shape)
        for j in range(cand.shape[1]):  # (rows x features) at a time, never rows x cells
            d2[:, j] = np.einsum("nf,nf->n", iv, (x0 - W[cand[:, j]]) ** 2)
        # as the map's own distance: missing features skipped, rescaled by F / n_present
        n_present = present.sum(axis=1)
        d2 *= (xc.shape[1] / np.maximum(n_present, 1))[:, None]
        d2 = np.where(valid, d2, np.inf)
        d2_min = d2.min(axis=1, keepdims=True)
        found = np.isfinite(d2_min[:, 0])
        d2_min = np.where(found[:, None], d2_min, 0.0)
        # T = 0: all weight on the closest labelled cell(s)
        w = np.exp(-(d2 - d2_min) / two_t) if two_t > 0 else (d2 == d2_min).astype(np.float64)
        w = np.where(valid, w, 0.0)
        total = w.sum(axis=1)
        z = np.where(valid, z_cell[cand], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:stop] = np.where(found, (w * z).sum(axis=1) / total, np.nan)
    return out

# cells without a label: borrow from the nearest labelled cell on the map
# --------------------------------------------------------------------------------------

#: (unlabelled x labelled) grid distances computed per block, to bound memory
_FILL_BLOCK = 4_000_000


@dataclass
class FilledCells:
    """Per-cell labels with the gaps filled from the nearest labelled cell on the map.

    ``values`` has the input's type and shape; ``fallback`` (n_cells,) is True where the
    value was borrowed, ``source`` (n_cells,) is the cell each value comes from (the cell
    itself when labelled, -1 when nothing could be borrowed: no labelled cell within
    ``max_distance``, the value stays as it was) and ``grid_distance`` (n_cells,) how far
    away that cell is in grid units (0 for a labelled cell, inf when nothing was borrowed).
    """

    values: Any
    fallback: np.ndarray
    source: np.ndarray
    grid_distance: np.ndarray

    @property
    def n_filled(self) -> int:
        return int(np.count_nonzero(self.fallback))


def fill_unlabelled_cells(
    values: Any,
    grid: Any,
    labelled: Any = None,
    *,
    max_distance: float | None = None,
) -> FilledCells:
    """Give every unlabelled cell the label of the nearest labelled cell *on the map*.

    A cell holding no spectroscopic galaxy has no redshift of its own; the cells around it
    on the map hold the most similar colours, so the nearest labelled cell in grid distance
    (honouring a hexagonal lattice and the wrap of a toroidal map, ``Grid.distance``) is the
    natural stand-in. The answer says it borrowed (``fallback``), from where and how far.

    values : (n_cells,) or (n_cells, k) array, or a DataFrame with one row per cell (e.g.
        :func:`cell_statistics` or :func:`cell_pz` output); a cell's whole row is copied.
    grid : a ``som.Grid`` (or anything with a ``.grid``, such as a ``SOM``).
    labelled : (n_cells,) bool, which cells hold a label. Default for arrays: cells with at
        least one finite value in their row (a row of NaN is unlabelled); required for a
        DataFrame, whose count columns are finite even in empty cells (e.g.
        ``stats["count_z"].to_numpy() > 0``). Borrowed rows are copied whole, counts
        included: ``fallback`` tells them apart.
    max_distance : borrow only from cells at most this far (grid units); None: any distance.

    Among equidistant labelled cells the one with the lowest index is taken, so the result
    is deterministic.
    """
    grid = getattr(grid, "grid", grid)
    n_cells = int(grid.n_cells)
    frame = isinstance(values, pd.DataFrame)
    arr = values.to_numpy() if frame else np.asarray(values)
    if arr.ndim not in (1, 2) or arr.shape[0] != n_cells:
        raise ValueError(
            f"values must have one row per cell ({n_cells}), got shape {np.shape(values)}"
        )
    if labelled is None:
        if frame:
            raise ValueError(
                "labelled is needed for a DataFrame: say which cells hold a label, "
                "e.g. labelled=stats['count_z'].to_numpy() > 0 for cell_statistics output"
            )
        finite = np.isfinite(arr.astype(np.float64, copy=False))
        labelled = finite if finite.ndim == 1 else finite.any(axis=1)
    else:
        labelled = _as_mask(labelled, n_cells, "labelled", "the grid")
    if max_distance is not None and not max_distance >= 0:
        raise ValueError(f"max_distance must be non-negative, got {max_distance!r}")

    source = np.where(labelled, np.arange(n_cells), -1).astype(np.int64)
    distance = np.where(labelled, 0.0, np.inf)
    lab = np.flatnonzero(labelled)
    unl = np.flatnonzero(~labelled)
    if lab.size and unl.size:
        step = max(1, _FILL_BLOCK // lab.size)
        for i in range(0, unl.size, step):
            block = unl[i : i + step]
            d = grid.distance(block[:, None], lab[None, :])
            k = np.argmin(d, axis=1)  # first minimum: the lowest labelled index on ties
            dk = d[np.arange(block.size), k]
            ok = np.ones(block.size, bool) if max_distance is None else dk <= max_distance + 1e-9
            source[block[ok]] = lab[k[ok]]
            distance[block[ok]] = dk[ok]
    fallback = ~labelled & (source >= 0)
    take = np.where(fallback, source, np.arange(n_cells))
    if frame:
        filled = values.iloc[take].copy()
        filled.index = values.index
    else:
        filled = arr[take].copy()
    return FilledCells(filled, fallback, source, distance)
