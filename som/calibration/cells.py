"""Per-cell statistics and p(z|cell), spectroscopic counts and covered cells, and the
per-galaxy and per-cell fallbacks that borrow from neighbouring cells on the map
(:func:`fuzzy_redshift`, :func:`fill_unlabelled_cells`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from som.calibration._arrays import (
    as_cells,
    as_edges,
    as_float,
    as_mask,
    as_weights,
    bin_index,
    cell_bin_counts,
    check_n_cells,
    group_abs_dev_median,
    group_median,
    group_sort,
)

#: Converts the median absolute deviation to the standard deviation of a Gaussian.
NMAD_SCALE = 1.4826

STAT_COLUMNS = ("z_mean", "z_median", "z_std", "z_nmad", "z_min", "z_max")


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
    deviations for ``z_nmad`` are not sorted again (see ``group_abs_dev_median``).
    """
    n_cells = check_n_cells(n_cells)
    c = as_cells(cells, n_cells, "cells")
    zz = as_float(z, len(c), "z", "cells")
    w = as_weights(weights, len(c), "weights", "cells")

    assigned = c >= 0
    count = np.bincount(c[assigned], minlength=n_cells)
    weight = np.bincount(c[assigned], weights=w[assigned], minlength=n_cells)
    total = weight.sum()
    fraction = weight / total if total > 0 else np.full(n_cells, np.nan)

    out = pd.DataFrame(
        {"count": count, "weight": weight, "fraction": fraction},
        index=pd.RangeIndex(n_cells, name="cell"),
    )
    stats = {name: np.full(n_cells, np.nan) for name in STAT_COLUMNS}
    count_z = np.zeros(n_cells, dtype=np.int64)

    use = assigned & np.isfinite(zz) & (w > 0)
    if use.any():
        cu, zu = c[use], zz[use]
        per_cell = np.bincount(cu, minlength=n_cells)
        order = group_sort(cu, zu, n_cells)
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
        median = group_median(zs, ws, starts, sizes)
        nmad = NMAD_SCALE * group_abs_dev_median(zs, ws, starts, sizes, median)
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
    for name in STAT_COLUMNS:
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
    n_cells = check_n_cells(n_cells)
    edges = as_edges(bins, "bins")
    c = as_cells(cells, n_cells, "cells")
    zz = as_float(z, len(c), "z", "cells")
    w = as_weights(weights, len(c), "weights", "cells")
    n_bins = len(edges) - 1
    b = bin_index(zz, edges)
    use = (c >= 0) & (b >= 0)
    hist = cell_bin_counts(c[use], b[use], w[use], n_cells, n_bins)
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
    n_cells = check_n_cells(n_cells)
    c = as_cells(spec_cells, n_cells, "spec_cells")
    s = as_mask(secure, len(c), "secure", "spec_cells")
    keep = s & (c >= 0)
    return np.bincount(c[keep], minlength=n_cells)


def covered_cells(spec_cells: Any, n_cells: int, secure: Any = None, k: int = 1) -> np.ndarray:
    """Boolean ``(n_cells,)`` array: a cell is covered when it holds at least ``k`` secure
    spectra."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return cell_spec_counts(spec_cells, n_cells, secure) >= k


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
        labelled = as_mask(labelled, n_cells, "labelled", "the grid")
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
