"""Tests of som.calibration.groups (cell groups, KiDS quality control, gold selection) on
hand-made maps, spectra and weights whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from som.calibration import group_cells
from som.calibration.groups import grid_adjacency
from som.grid import Grid

# ---------------------------------------------------------------------------- helpers


def two_blobs(n_a: int = 7, n_b: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Weight vectors of n_a cells near (0, 0, 0) and n_b near (10, 10, 10), interleaved."""
    rng = np.random.default_rng(seed)
    n = n_a + n_b
    truth = np.zeros(n, dtype=np.int64)
    truth[rng.permutation(n)[:n_b]] = 1
    weights = rng.normal(0.0, 0.1, (n, 3)) + 10.0 * truth[:, None]
    return weights, truth


def is_contiguous(groups: np.ndarray, grid: Grid) -> bool:
    """Every group is one connected patch of the lattice."""
    adj = grid_adjacency(grid)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        n_comp, _ = connected_components(adj[members][:, members], directed=False)
        if n_comp != 1:
            return False
    return True


# ---------------------------------------------------------------------------- group_cells


@pytest.mark.parametrize("method", ["ward", "complete", "average", "single"])
def test_two_separated_blobs_give_two_groups_exactly(method):
    weights, truth = two_blobs()
    groups = group_cells(weights, 2, method=method)
    assert groups.dtype == np.int64 and groups.shape == (12,)
    # Numbered by first cell: group 0 holds cell 0.
    expected = truth if truth[0] == 0 else 1 - truth
    np.testing.assert_array_equal(groups, expected)


def test_groups_are_deterministic_and_exactly_n():
    rng = np.random.default_rng(3)
    weights = rng.normal(size=(60, 4))
    for n in (1, 2, 7, 23, 59, 60):
        a = group_cells(weights, n)
        b = group_cells(weights.copy(), n)
        np.testing.assert_array_equal(a, b)
        assert len(np.unique(a)) == n
        # labels run 0..n-1 in order of first appearance
        _, first = np.unique(a, return_index=True)
        assert np.all(np.diff(first) > 0)


@pytest.mark.parametrize(
    "grid",
    [Grid(6, 7, "rect"), Grid(6, 7, "hex"), Grid(6, 6, "hex", periodic=True)],
    ids=["rect", "hex", "hex-torus"],
)
def test_grid_connectivity_keeps_groups_contiguous(grid):
    pytest.importorskip("sklearn")
    # Weights alternate between two far-apart values in a checkerboard of columns: without
    # the lattice constraint the groups are the two interleaved sets, which are not patches.
    rows, cols = np.divmod(np.arange(grid.n_cells), grid.n_cols)
    rng = np.random.default_rng(0)
    weights = np.column_stack([10.0 * (cols % 2), rng.normal(0, 0.01, grid.n_cells)])
    free = group_cells(weights, 2)
    assert not is_contiguous(free, grid)
    for n in (2, 3, 5, 9):
        constrained = group_cells(weights, n, connectivity="grid", grid=grid)
        assert len(np.unique(constrained)) == n
        assert is_contiguous(constrained, grid)
        np.testing.assert_array_equal(
            constrained, group_cells(weights, n, connectivity="grid", grid=grid)
        )


def test_grid_connectivity_joins_neighbouring_halves():
    pytest.importorskip("sklearn")
    grid = Grid(4, 6)
    cols = np.arange(grid.n_cells) % grid.n_cols
    weights = np.column_stack([(cols >= 3) * 5.0, np.zeros(grid.n_cells)])
    groups = group_cells(weights, 2, connectivity="grid", grid=grid)
    np.testing.assert_array_equal(groups, (cols >= 3).astype(int))


def test_group_cells_bad_input():
    weights, _ = two_blobs()
    with pytest.raises(ValueError, match="n_groups is 13 but the map has only 12 cells"):
        group_cells(weights, 13)
    with pytest.raises(ValueError, match="n_groups must be a positive integer"):
        group_cells(weights, 0)
    with pytest.raises(ValueError, match="n_groups must be a positive integer"):
        group_cells(weights, 2.0)
    with pytest.raises(ValueError, match="weights must be the map's"):
        group_cells(weights[:, 0], 2)
    bad = weights.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="cell 4"):
        group_cells(bad, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        group_cells(weights, 2, method="centroid")
    with pytest.raises(ValueError, match="connectivity must be"):
        group_cells(weights, 2, connectivity="knn")
    with pytest.raises(ValueError, match="needs grid"):
        group_cells(weights, 2, connectivity="grid")
    with pytest.raises(ValueError, match="grid has 20 cells"):
        group_cells(weights, 2, connectivity="grid", grid=Grid(4, 5))
