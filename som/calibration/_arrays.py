"""Input checks and grouped order statistics shared by the calibration modules.

Every check names the argument (and row) at fault; the grouped statistics sort once by
(cell, value) and reduce per contiguous group.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------------------
# input checks: every error names the argument (and row) at fault
# --------------------------------------------------------------------------------------


def check_n_cells(n_cells: Any) -> int:
    if isinstance(n_cells, bool) or not isinstance(n_cells, (int, np.integer)) or n_cells < 1:
        raise ValueError(f"n_cells must be a positive integer, got {n_cells!r}")
    return int(n_cells)


def as_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def check_length(arr: np.ndarray, n: int, name: str, other: str) -> None:
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows but {other} has {n}")


def as_cells(cells: Any, n_cells: int, name: str) -> np.ndarray:
    """Cell indices as int64, checked to lie in -1 .. n_cells-1."""
    arr = as_1d(cells, name)
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


def as_float(values: Any, n: int, name: str, other: str) -> np.ndarray:
    arr = as_1d(values, name)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    check_length(arr, n, name, other)
    return arr.astype(np.float64, copy=False)


def as_weights(weights: Any, n: int, name: str, other: str) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    arr = as_float(weights, n, name, other)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite and >= 0; row {row} is {arr[row]!r}")
    return arr


def as_mask(mask: Any, n: int, name: str, other: str) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    arr = as_1d(mask, name)
    if arr.dtype != bool:
        raise ValueError(f"{name} must be a boolean mask, got dtype {arr.dtype}")
    check_length(arr, n, name, other)
    return arr


def as_edges(bins: Any, name: str) -> np.ndarray:
    edges = as_1d(bins, name)
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


def as_covered(covered: Any, n_cells: int | None = None) -> np.ndarray:
    arr = as_1d(covered, "covered")
    if arr.dtype != bool:
        raise ValueError(f"covered must be a boolean array (one entry per cell), got {arr.dtype}")
    if n_cells is not None and len(arr) != n_cells:
        raise ValueError(f"covered has {len(arr)} entries but n_cells is {n_cells}")
    return arr


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value (numpy.histogram convention); -1 outside the edges or not finite."""
    n_bins = len(edges) - 1
    idx = np.searchsorted(edges, values, side="right") - 1
    idx[values == edges[-1]] = n_bins - 1
    idx[(idx < 0) | (idx >= n_bins) | ~np.isfinite(values)] = -1
    return idx


def cell_bin_counts(
    cells: np.ndarray, bins: np.ndarray, weights: np.ndarray, n_cells: int, n_bins: int
) -> np.ndarray:
    """Weighted counts ``(n_cells, n_bins)`` of rows by cell and bin; every ``cells`` and
    ``bins`` entry must be a valid index (filter out -1 first)."""
    flat = np.bincount(cells * n_bins + bins, weights=weights, minlength=n_cells * n_bins)
    return flat.reshape(n_cells, n_bins)


def edges_from(bins: Any, values: np.ndarray, name: str) -> np.ndarray:
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
    return as_edges(bins, name)


def json_safe(value: Any) -> Any:
    """NaN/inf to None and numpy scalars to Python, so to_dict() output is valid JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, pd.DataFrame):
        return [json_safe(r) for r in value.to_dict(orient="records")]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------
# grouped order statistics (sort once by (cell, value), then reduce per contiguous group)
# --------------------------------------------------------------------------------------


def group_order(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Stable permutation sorting rows by group (integers in 0..n_groups-1)."""
    # A stable sort of 16-bit integers is a radix sort in numpy: several times faster than
    # sorting int64 (or lexsort) on 10^7 rows.
    if n_groups <= np.iinfo(np.int16).max:
        groups = groups.astype(np.int16)
    return np.argsort(groups, kind="stable")


def group_sort(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Permutation sorting rows by group, then by value within the group."""
    by_value = np.argsort(values, kind="quicksort")
    return by_value[group_order(groups[by_value], n_groups)]


def group_cumweight(
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


def bisect(lo: np.ndarray, hi: np.ndarray, pred) -> np.ndarray:
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


def group_median(
    vals: np.ndarray, w: np.ndarray | None, starts: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Median of each contiguous, value-sorted group of ``vals`` (groups all non-empty).

    The smallest value at which the cumulative weight reaches half the group's weight; when
    the half falls exactly on the boundary between two values it is their midpoint, so that
    unit weights (or none) give exactly ``numpy.median``.
    """
    ends = starts + sizes
    cw, half, tol = group_cumweight(w, starts, sizes)
    target = cw[starts] + half
    # cw is globally non-decreasing, so one searchsorted serves every group.
    idx = np.searchsorted(cw, target - tol, side="left") - 1
    idx = np.clip(idx, starts, ends - 1)
    tie = (np.abs(cw[idx + 1] - target) <= tol) & (idx + 1 < ends)
    return 0.5 * (vals[idx] + vals[np.where(tie, idx + 1, idx)])


def group_abs_dev_median(
    vals: np.ndarray,
    w: np.ndarray | None,
    starts: np.ndarray,
    sizes: np.ndarray,
    centre: np.ndarray,
) -> np.ndarray:
    """Median of ``|vals - centre|`` in each contiguous, value-sorted group, with the
    conventions of :func:`group_median`, without sorting the deviations again.

    Within a sorted group the deviations fall along the rows below the centre and rise
    along the rows above it. The weight with deviation <= t is therefore the weight of one
    contiguous block ``[p(t), q(t))``, found by bisection; the answer is the smallest
    deviation, searched on each side of the centre, whose block holds half the weight.
    Cost O(groups × log²(group size)) after an O(N) pass.
    """
    ends = starts + sizes
    n = len(vals)
    dev = np.abs(vals - np.repeat(centre, sizes))
    cw, half, tol = group_cumweight(w, starts, sizes)
    last = max(n - 1, 0)

    def at(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return a[np.minimum(idx, last)]

    # First row at or above the centre: deviations fall before it and rise from it.
    split = bisect(starts, ends, lambda m, act: at(vals, m) >= centre)

    def block(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = bisect(starts, split, lambda m, act: at(dev, m) <= t)
        q = bisect(split, ends, lambda m, act: at(dev, m) > t)
        return p, q

    def enough(t: np.ndarray) -> np.ndarray:
        p, q = block(t)
        return cw[q] - cw[p] >= half - tol

    # Below the centre t grows as the row index falls: the last row that holds enough.
    i_lo = bisect(starts, split, lambda m, act: ~enough(at(dev, m))) - 1
    # Above the centre t grows with the row index: the first row that holds enough.
    j_hi = bisect(split, ends, lambda m, act: enough(at(dev, m)))
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
