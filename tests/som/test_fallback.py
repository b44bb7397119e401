"""Cells without a label borrow from the nearest labelled cell on the map (issue 10, item 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from som import SOM, Grid
from som.calibration import cell_statistics, fill_unlabelled_cells


def test_rect_planar_borrows_from_the_nearest_cell():
    g = Grid(3, 4)
    z = np.full(12, np.nan)
    z[0], z[11] = 0.3, 1.2
    out = fill_unlabelled_cells(z, g)
    # cell 1 (0,1) is 1 from cell 0 and sqrt(4+9) from 11; cell 10 (2,2) is 1 from 11
    assert out.values[1] == 0.3 and out.values[10] == 1.2
    assert out.source[1] == 0 and out.source[10] == 11
    assert out.grid_distance[1] == pytest.approx(1.0)
    assert out.fallback.sum() == 10 and not out.fallback[[0, 11]].any()
    assert out.source[0] == 0 and out.grid_distance[0] == 0.0
    np.testing.assert_array_equal(out.values[[0, 11]], [0.3, 1.2])


def test_hex_lattice_uses_hex_distances():
    z = np.full(16, np.nan)
    z[1] = 0.5  # (row 0, col 1)
    far = 3 * 4 + 3  # (3, 3)
    z[far] = 2.0
    # (1, 0) on an odd (shifted) row touches (0, 0) and (0, 1): distance 1 on hex ...
    hexg = fill_unlabelled_cells(z, Grid(4, 4, "hex"))
    assert hexg.source[4] == 1 and hexg.grid_distance[4] == pytest.approx(1.0)
    # ... but sqrt(2) on a rectangular lattice
    rect = fill_unlabelled_cells(z, Grid(4, 4, "rect"))
    assert rect.source[4] == 1 and rect.grid_distance[4] == pytest.approx(np.sqrt(2))


@pytest.mark.parametrize("lattice", ["rect", "hex"])
def test_torus_borrows_across_the_wrap(lattice):
    g = Grid(4, 6, lattice, periodic=True)
    z = np.full(24, np.nan)
    z[5] = 1.0  # (0, 5): the neighbour of (0, 0) across the wrap
    z[2] = 3.0  # (0, 2): two cells away from (0, 0) without the wrap
    out = fill_unlabelled_cells(z, g)
    assert out.source[0] == 5 and out.grid_distance[0] == pytest.approx(1.0)
    planar = fill_unlabelled_cells(z, Grid(4, 6, lattice))
    assert planar.source[0] == 2


@pytest.mark.parametrize(
    "lattice,periodic", [("rect", False), ("hex", False), ("rect", True), ("hex", True)]
)
def test_matches_brute_force_and_keeps_2d_rows(lattice, periodic):
    g = Grid(6, 8, lattice, periodic)
    rng = np.random.default_rng(1)
    labelled = rng.uniform(size=g.n_cells) < 0.2
    pz = rng.uniform(size=(g.n_cells, 5))
    pz[~labelled] = np.nan
    out = fill_unlabelled_cells(pz, g)
    d = g.distance(np.arange(g.n_cells)[:, None], np.arange(g.n_cells)[None, :])
    d[:, ~labelled] = np.inf
    expected = np.argmin(d, axis=1)  # lowest index among ties, as documented
    np.testing.assert_array_equal(out.source, expected)
    np.testing.assert_array_equal(out.fallback, ~labelled)
    np.testing.assert_allclose(out.grid_distance, d[np.arange(g.n_cells), expected])
    np.testing.assert_array_equal(out.values, pz[expected])
    assert out.n_filled == (~labelled).sum()


def test_max_distance_dataframe_and_a_som():
    som = SOM(3, 4, lattice="rect")
    cells = np.array([0, 0, 0])
    stats = cell_statistics(cells, np.array([0.1, 0.2, 0.3]), 12)
    with pytest.raises(ValueError, match="labelled is needed"):
        fill_unlabelled_cells(stats, som)
    out = fill_unlabelled_cells(stats, som, stats["count_z"].to_numpy() > 0, max_distance=1.5)
    assert isinstance(out.values, pd.DataFrame)
    assert list(out.values.index) == list(stats.index)
    # cells (0,1), (1,0), (1,1) are within 1.5 of cell 0; the rest keep their NaN
    assert set(np.flatnonzero(out.fallback)) == {1, 4, 5}
    assert out.values["z_median"].iloc[5] == pytest.approx(0.2)
    assert np.isnan(out.values["z_median"].iloc[11])
    assert out.source[11] == -1 and np.isinf(out.grid_distance[11])
    nothing = fill_unlabelled_cells(np.full(12, np.nan), som.grid)
    assert nothing.n_filled == 0 and (nothing.source == -1).all()
    with pytest.raises(ValueError, match="one row per cell"):
        fill_unlabelled_cells(np.zeros(5), som.grid)
