"""Tests of som.calibration.groups (cell groups, KiDS quality control, gold selection) on
hand-made maps, spectra and weights whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from som.calibration import (
    NMAD_SCALE,
    choose_n_groups,
    gold_selection,
    group_cells,
    quality_control,
)
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


# ---------------------------------------------------------------------------- quality control

# Eight cells in four groups of two. By construction:
#   group 0: <z_phot> 0.5, <z_spec> 0.52            -> consistent, passes
#   group 1: <z_phot> 1.0, <z_spec> (3*1.0 + 1.12)/4 = 1.03 (weighted) -> passes
#   group 2: <z_phot> 0.3, <z_spec> 1.5             -> outlying spectra, fails
#   group 3: <z_phot> 0.8, no usable spectrum       -> not calibrated, fails
# Zero-weight rows, rows with no cell and NaN redshifts must change nothing.
GROUPS = np.array([0, 0, 1, 1, 2, 2, 3, 3])
PHOT_CELLS = np.array([0, 1, 1, 2, 3, 4, 5, 6, 7, -1])
PHOT_Z = np.array([0.4, 0.6, 9.0, 1.0, 1.0, 0.3, 0.3, 0.8, 0.8, 5.0])
PHOT_W = np.array([1.0, 1.0, 0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
SPEC_CELLS = np.array([0, 1, 2, 3, 5, -1, 6])
SPEC_Z = np.array([0.52, 3.0, 1.0, 1.12, 1.5, 0.8, np.nan])
SPEC_W = np.array([1.0, 0.0, 3.0, 1.0, 1.0, 1.0, 1.0])


def run_qc(**kwargs):
    return quality_control(
        GROUPS,
        PHOT_CELLS,
        PHOT_Z,
        SPEC_CELLS,
        SPEC_Z,
        phot_weights=PHOT_W,
        spec_weights=SPEC_W,
        **kwargs,
    )


def test_qc_keeps_consistent_and_drops_outlier_and_uncalibrated():
    qc = run_qc()
    t = qc.table
    np.testing.assert_allclose(t["z_phot_mean"], [0.5, 1.0, 0.3, 0.8])
    np.testing.assert_allclose(t["z_spec_mean"], [0.52, 1.03, 1.5, np.nan])
    np.testing.assert_allclose(t["delta"], [0.02, 0.03, 1.2, np.nan], atol=1e-12)
    np.testing.assert_array_equal(t["n_spec"], [1, 2, 1, 0])
    np.testing.assert_array_equal(t["n_phot"], [2, 2, 2, 2])
    np.testing.assert_allclose(t["spec_weight"], [1.0, 4.0, 1.0, 0.0])
    np.testing.assert_allclose(t["phot_weight"], [2.0, 3.0, 2.0, 2.0])
    np.testing.assert_array_equal(t["calibrated"], [True, True, True, False])
    np.testing.assert_array_equal(qc.passed, [True, True, False, False])
    # sigma_MAD of the differences over the three defined groups: median 0.03, absolute
    # deviations (0.01, 0, 1.17) -> 1.4826 * 0.01; 5 sigma is below the floor of 0.4.
    assert qc.sigma_mad == pytest.approx(NMAD_SCALE * 0.01)
    assert qc.threshold == pytest.approx(0.4)
    d = qc.to_dict()
    assert d["groups"][3]["z_spec_mean"] is None and d["threshold"] == pytest.approx(0.4)


def test_qc_threshold_from_sigma_mad_when_above_floor():
    qc = run_qc(floor=0.0)
    assert qc.threshold == pytest.approx(5 * NMAD_SCALE * 0.01)
    np.testing.assert_array_equal(qc.passed, [True, True, False, False])
    # A tighter rule drops group 1 (|delta| 0.03) but keeps group 0 (0.02).
    qc = run_qc(floor=0.0, n_sigma=1.5)
    np.testing.assert_array_equal(qc.passed, [True, False, False, False])


def test_qc_weights_move_the_spectroscopic_mean():
    # Unweighted, group 1's spectra average (1.0 + 1.12) / 2 = 1.06.
    qc = quality_control(GROUPS, PHOT_CELLS, PHOT_Z, SPEC_CELLS, SPEC_Z, phot_weights=PHOT_W)
    assert qc.table.loc[1, "z_spec_mean"] == pytest.approx(1.06)
    # ... and the zero-weight spectrum at z = 3 now counts in group 0.
    assert qc.table.loc[0, "z_spec_mean"] == pytest.approx((0.52 + 3.0) / 2)


def test_qc_bad_input():
    with pytest.raises(ValueError, match="phot_z has 3 rows but phot_cells has 10"):
        quality_control(GROUPS, PHOT_CELLS, PHOT_Z[:3], SPEC_CELLS, SPEC_Z)
    with pytest.raises(ValueError, match="spec_weights must be finite and >= 0; row 2"):
        quality_control(
            GROUPS, PHOT_CELLS, PHOT_Z, SPEC_CELLS, SPEC_Z, spec_weights=[1, 1, -1, 1, 1, 1, 1]
        )
    with pytest.raises(ValueError, match="spec_cells out of range: row 0 is 8"):
        quality_control(GROUPS, PHOT_CELLS, PHOT_Z, [8], [0.5])
    with pytest.raises(ValueError, match="groups must be >= 0; cell 1"):
        quality_control([0, -1], [0], [0.5], [0], [0.5])
    with pytest.raises(ValueError, match="floor must be finite"):
        run_qc(floor=-0.1)


# ---------------------------------------------------------------------------- gold selection


def test_gold_fractions_per_bin_by_hand():
    qc = run_qc()  # groups 0 and 1 (cells 0..3) pass
    cells = np.array([0, 2, 4, -1, 6, 3, 1, 5])
    bins = np.array([0, 0, 0, 0, 1, 1, 1, -1])
    w = np.array([1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 0.0, 5.0])
    gold = gold_selection(qc, GROUPS, cells, tomo_bins=bins, weights=w)
    np.testing.assert_array_equal(gold.cells, [True] * 4 + [False] * 4)
    np.testing.assert_array_equal(
        gold.galaxies, [True, True, False, False, False, True, True, False]
    )
    t = gold.bins
    assert list(t.index) == [0, 1]
    # bin 0: weight 1 + 2 + 1 + 1 (the galaxy with no cell is lost too), gold 1 + 2
    # bin 1: weight 3 + 1 (the zero-weight galaxy counts nowhere), gold 1
    np.testing.assert_array_equal(t["n"], [4, 2])
    np.testing.assert_array_equal(t["n_gold"], [2, 1])
    np.testing.assert_allclose(t["weight"], [5.0, 4.0])
    np.testing.assert_allclose(t["gold_weight"], [3.0, 1.0])
    np.testing.assert_allclose(t["fraction"], [0.6, 0.25])
    # A plain boolean per group does the same; no bins means one bin of everything in a bin.
    same = gold_selection(qc.passed, GROUPS, cells, tomo_bins=bins, weights=w)
    np.testing.assert_array_equal(same.galaxies, gold.galaxies)
    whole = gold_selection(qc, GROUPS, cells, weights=w)
    assert whole.bins["fraction"].tolist() == pytest.approx([4.0 / 14.0])
    assert gold.to_dict()["gold_cells"] == [0, 1, 2, 3]


def test_gold_selection_bad_input():
    qc = run_qc()
    with pytest.raises(ValueError, match="passed has 3 entries but groups has 4 groups"):
        gold_selection(np.ones(3, bool), GROUPS, [0])
    with pytest.raises(ValueError, match="passed must be a boolean array"):
        gold_selection(np.ones(4), GROUPS, [0])
    with pytest.raises(ValueError, match="tomo_bins has 1 rows but cells has 2"):
        gold_selection(qc, GROUPS, [0, 1], tomo_bins=[0])
    with pytest.raises(ValueError, match="weights must be finite and >= 0; row 1"):
        gold_selection(qc, GROUPS, [0, 1], weights=[1.0, -2.0])
    with pytest.raises(ValueError, match="weights are all zero"):
        gold_selection(qc, GROUPS, [0, 1], weights=[0.0, 0.0])
    with pytest.raises(ValueError, match="tomo_bins must be >= 0, or -1"):
        gold_selection(qc, GROUPS, [0, 1], tomo_bins=[0, -2])
    with pytest.raises(ValueError, match="no galaxy is in a tomographic bin"):
        gold_selection(qc, GROUPS, [0, 1], tomo_bins=[-1, -1])


# ---------------------------------------------------------------------------- choose_n_groups


def three_blob_map(seed: int = 2):
    """30 cells in three far-apart blobs of weight vectors, 20 spectra per cell at the blob's
    redshift (0.3, 0.9, 1.5) with a 0.05 scatter."""
    rng = np.random.default_rng(seed)
    blob = np.repeat([0, 1, 2], 10)[rng.permutation(30)]
    weights = rng.normal(0, 0.1, (30, 2)) + 20.0 * blob[:, None]
    cells = np.repeat(np.arange(30), 20)
    z = np.array([0.3, 0.9, 1.5])[blob[cells]] + rng.normal(0, 0.05, cells.size)
    return weights, blob, cells, z


def test_choose_n_groups_finds_the_three_blobs():
    weights, blob, cells, z = three_blob_map()
    choice = choose_n_groups(weights, [6, 1, 2, 3, 4, 10, 30], cells, z)
    assert choice.n_groups == 3
    assert list(choice.table.index) == [1, 2, 3, 4, 6, 10, 30]
    # three groups are the blobs themselves
    assert len(np.unique(choice.groups)) == 3
    for b in range(3):
        assert len(np.unique(choice.groups[blob == b])) == 1
    t = choice.table
    assert t.loc[3, "cv_rmse"] == pytest.approx(0.05, rel=0.1)
    assert t.loc[1, "cv_mse"] > 10 * t.loc[3, "cv_mse"]
    assert t.loc[2, "cv_mse"] > 10 * t.loc[3, "cv_mse"]
    assert (t["uncovered_fraction"] == 0).all()
    # the same seed gives the same table
    again = choose_n_groups(weights, [6, 1, 2, 3, 4, 10, 30], cells, z)
    np.testing.assert_array_equal(again.table.to_numpy(), t.to_numpy())
    assert choice.to_dict()["n_groups"] == 3


def test_choose_n_groups_penalises_groups_without_spectra():
    weights, blob, cells, z = three_blob_map()
    # one spectrum per cell: with a group per cell every held-out spectrum is alone
    one = np.arange(0, cells.size, 20)
    choice = choose_n_groups(weights, [3, 30], cells[one], z[one], n_folds=3)
    assert choice.table.loc[30, "uncovered_fraction"] == pytest.approx(1.0)
    assert choice.table.loc[3, "uncovered_fraction"] == 0.0
    assert choice.n_groups == 3


def test_choose_n_groups_with_grid_connectivity_and_weights():
    pytest.importorskip("sklearn")
    grid = Grid(5, 6, "hex")
    cols = np.arange(grid.n_cells) % grid.n_cols
    weights = np.column_stack([(cols >= 3) * 5.0, np.zeros(grid.n_cells)])
    cells = np.repeat(np.arange(grid.n_cells), 4)
    z = np.where(cols[cells] >= 3, 1.2, 0.4) + np.tile([-0.01, 0.0, 0.01, 0.0], grid.n_cells)
    w = np.ones(cells.size)
    w[::4] = 0.0  # zero-weight spectra are left out
    choice = choose_n_groups(
        weights, [1, 2, 4], cells, z, spec_weights=w, connectivity="grid", grid=grid
    )
    assert choice.n_groups == 2
    np.testing.assert_array_equal(choice.groups, (cols >= 3).astype(int))


def test_choose_n_groups_bad_input():
    weights, _, cells, z = three_blob_map()
    with pytest.raises(ValueError, match="candidates entry is 31 but the map has only 30"):
        choose_n_groups(weights, [2, 31], cells, z)
    with pytest.raises(ValueError, match="candidates must hold at least one"):
        choose_n_groups(weights, [], cells, z)
    with pytest.raises(ValueError, match="spec_z has 5 rows but spec_cells has 600"):
        choose_n_groups(weights, [2], cells, z[:5])
    with pytest.raises(ValueError, match="n_folds must be an integer >= 2"):
        choose_n_groups(weights, [2], cells, z, n_folds=1)
    with pytest.raises(ValueError, match="only 2 spectra"):
        choose_n_groups(weights, [2], cells[:2], z[:2])
    with pytest.raises(ValueError, match="spec_weights must be finite and >= 0; row 0"):
        choose_n_groups(weights, [2], cells, z, spec_weights=-np.ones(cells.size))


# ---------------------------------------------------------------------------- on the mock


def test_groups_qc_and_gold_on_the_mock():
    """Mock -> colours -> map -> groups -> quality control -> gold, end to end: the groups'
    spectroscopic means give the gold sample's mean redshift to within 0.02."""
    pytest.importorskip("sklearn")
    from som import SOM
    from som.mock import make_mock
    from som.photometry import ColourFeatures

    mock = make_mock(20_000, seed=3)
    phot = mock[mock["mag_i"].to_numpy() < 24.5].reset_index(drop=True)
    feats = ColourFeatures(bands=("u", "g", "r", "i", "z", "Y", "J", "H"))
    X, _ = feats.fit_transform(phot)
    som = SOM(15, 20, n_epochs=5, random_state=0).fit(X)
    cells = som.assign(X, allow_empty=True).cell.astype(np.int64)
    spec = mock[np.isfinite(mock["z_spec"].to_numpy())].reset_index(drop=True)
    spec_cells = som.assign(feats.transform(spec)[0], allow_empty=True).cell.astype(np.int64)
    spec_z = spec["z_spec"].to_numpy()

    candidates = [10, 40, 300]
    choice = choose_n_groups(
        som.weights_, candidates, spec_cells, spec_z, connectivity="grid", grid=som.grid
    )
    # neither one group per cell (too few spectra) nor the coarsest grouping wins
    assert choice.n_groups == 40
    assert is_contiguous(choice.groups, som.grid)
    groups = choice.groups

    qc = quality_control(groups, cells, phot["z_phot"].to_numpy(), spec_cells, spec_z)
    assert not qc.table.loc[~qc.table["calibrated"], "passes"].any()
    assert qc.passed.sum() >= 0.8 * len(qc.passed)
    tomo = np.digitize(phot["z_phot"].to_numpy(), [0.3, 0.6, 0.9, 1.2])
    gold = gold_selection(qc, groups, cells, tomo_bins=tomo)
    assert list(gold.bins.index) == [0, 1, 2, 3, 4]
    assert ((gold.bins["fraction"] > 0.8) & (gold.bins["fraction"] <= 1.0)).all()
    g = groups[cells][gold.galaxies]
    estimate = qc.table["z_spec_mean"].to_numpy()[g].mean()
    assert estimate == pytest.approx(phot["z_true"].to_numpy()[gold.galaxies].mean(), abs=0.02)
