"""Groups of cells and KiDS's quality control of them (Wright et al. 2020; Hildebrandt et al.
2021).

A large map has more cells than a spectroscopic sample can fill. KiDS groups the cells of a
trained map by hierarchical clustering of their weight vectors, calibrates each *group* with
the spectra that land in any of its cells, and drops the groups whose spectroscopic and
photometric mean redshifts disagree; what is left is the *gold* sample.

- :func:`group_cells`: hierarchical clustering of the cells' weight vectors into a chosen
  number of groups, optionally only joining neighbouring cells on the map's lattice;
- :func:`choose_n_groups`: the number of groups chosen by cross-validation on the spectra;
- :func:`quality_control`: the per-group rule
  ``|<z_spec> - <z_phot>| <= max(5 sigma_MAD, 0.4)``;
- :func:`gold_selection`: the galaxies and cells in groups that pass, and the fraction of each
  tomographic bin's weight that survives.

Cells follow the conventions of :mod:`som.calibration`: integers ``0 .. n_cells - 1``
(row-major) or ``-1`` for a galaxy with no cell. A *group* is an integer ``0 .. n_groups - 1``
per cell.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.cluster import hierarchy

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
    """
    codebook = _as_codebook(weights)
    n_cells = codebook.shape[0]
    n_groups = _check_n_groups(n_groups, n_cells)
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
        if n_groups == n_cells:
            return np.arange(n_cells, dtype=np.int64)
        model = AgglomerativeClustering(
            n_clusters=n_groups, linkage=method, connectivity=grid_adjacency(grid)
        )
        return _relabel(model.fit_predict(codebook))

    if n_cells == 1:
        return np.zeros(1, dtype=np.int64)
    tree = hierarchy.linkage(codebook, method=method, metric="euclidean")
    # cut_tree gives exactly n_groups (fcluster's 'maxclust' can give fewer when merge
    # heights tie).
    labels = hierarchy.cut_tree(tree, n_clusters=n_groups)[:, 0]
    return _relabel(labels)
