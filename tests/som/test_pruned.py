"""The pruned best-cell search against brute force (issue 12).

Exact means: the same best and second-best cells as the float64 brute-force reference,
except where two cells' distances tie to rounding. In float64 the tests demand equal
cells outright; in float32 a differing cell must tie with the reference's to rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from som import SOM, kernels
from tests.som import reference as ref


def _data(n, F, seed, nan_fraction=0.0):
    """Clustered rows (a map has structure to exploit), optionally with missing features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(6, F))
    X = centres[rng.integers(0, 6, n)] + rng.normal(size=(n, F))
    if nan_fraction:
        X[rng.uniform(size=X.shape) < nan_fraction] = np.nan
        X[np.isnan(X).all(1), 0] = 0.3
    return X


def _map(lattice, periodic, trained, F=5, seed=0, dtype=np.float64, shape=(12, 14)):
    X = _data(3000, F, seed)
    som = SOM(*shape, lattice=lattice, periodic=periodic, random_state=seed, dtype=dtype)
    if trained:
        som.fit(X, n_epochs=6)
    else:
        som.weights_ = np.random.default_rng(seed).normal(0, 3, size=(som.n_cells, F))
        som.n_features_in_ = F
    return som


def _search(som, how, X, errors=None):
    som._search = how
    som._search_counts = [0, 0]
    a = som.assign(X, errors, return_second=True, skip_empty=True)
    return a, list(som._search_counts)


def _d2(X, W, cells, inv_var=None):
    """The reference's distance of each row to the given cells."""
    X = np.asarray(X, np.float64)
    present = np.isfinite(X)
    iv = np.ones_like(X) if inv_var is None else inv_var
    diff = np.where(present, X - W[cells], 0.0)
    return (iv * diff**2).sum(1) * X.shape[1] / present.sum(1)


def _pruned_against_reference(som, metric, n, data_seed, error_seed):
    """Assign n rows by the pruned search and demand the reference's best and second-best
    cells and distances; returns (X, errors, assignment, search counts, reference best)."""
    X = _data(n, 5, seed=data_seed, nan_fraction=0.2 if metric != "euclidean" else 0.0)
    errors = iv = None
    if metric == "chi2":
        errors = np.random.default_rng(error_seed).uniform(0.2, 2.0, size=X.shape)
        iv = 1 / errors**2
        som.distance = "chi2"
    a, counts = _search(som, "pruned", X, errors)
    best, second, d2 = ref.bmu(X, som.weights_, iv)
    np.testing.assert_array_equal(a.cell, best)
    np.testing.assert_array_equal(a.second, second)
    np.testing.assert_allclose(a.distance.astype(np.float64) ** 2, d2, rtol=1e-5)
    return X, errors, a, counts, best


@pytest.mark.parametrize(
    "lattice,periodic", [("rect", False), ("rect", True), ("hex", False), ("hex", True)]
)
@pytest.mark.parametrize("trained", [True, False])
@pytest.mark.parametrize("metric", ["euclidean", "missing", "chi2"])
def test_pruned_equals_brute_force(lattice, periodic, trained, metric):
    som = _map(lattice, periodic, trained)
    X, errors, a, counts, _ = _pruned_against_reference(som, metric, 1500, 7, 3)
    b, _ = _search(som, "brute", X, errors)
    np.testing.assert_array_equal(a.cell, b.cell)
    assert counts[0] <= counts[1]
    if trained:
        # the search did skip work: otherwise this test would prove nothing about pruning
        assert counts[0] < 0.8 * counts[1]


@pytest.mark.parametrize("metric", ["euclidean", "missing", "chi2"])
def test_pruned_float32_differs_only_at_ties(metric):
    som = _map("hex", False, True, F=7, dtype=np.float32, shape=(30, 40))
    X = _data(5000, 7, seed=11, nan_fraction=0.15 if metric != "euclidean" else 0.0)
    errors = iv = None
    if metric == "chi2":
        errors = np.random.default_rng(5).uniform(0.2, 2.0, size=X.shape)
        iv = 1 / errors**2
        som.distance = "chi2"
    som._search = "auto"  # 1,200 cells: auto chooses the pruned search
    som._search_counts = [0, 0]
    a = som.assign(X, errors, return_second=True)
    assert 0 < som._search_counts[0] < 0.5 * som._search_counts[1]
    best, _, d2 = ref.bmu(X, som.weights_, iv)
    W = som.weights_.astype(np.float64)
    differ = a.cell != best
    assert differ.mean() < 1e-3
    got = _d2(X, W, a.cell, iv)
    np.testing.assert_allclose(got[differ], d2[differ], rtol=2e-6)
    np.testing.assert_allclose(a.distance.astype(np.float64) ** 2, got, rtol=1e-5, atol=1e-6)


def test_exact_ties_go_to_the_lower_cell():
    som = SOM(20, 25, lattice="rect", dtype=np.float64)
    rng = np.random.default_rng(2)
    W = rng.normal(size=(som.n_cells, 3))
    W[[7, 310, 499]] = W[123]  # identical weights in distant blocks
    som.weights_, som.n_features_in_ = W, 3
    X = np.vstack([W[123] + 1e-3, rng.normal(size=(200, 3))])
    a, _ = _search(som, "pruned", X)
    best, second, _ = ref.bmu(X, W)
    np.testing.assert_array_equal(a.cell, best)
    np.testing.assert_array_equal(a.second, second)
    assert (a.cell[0], a.second[0]) == (7, 123)


def test_rows_without_features_get_no_cell():
    som = _map("rect", False, True, shape=(20, 25))
    X = _data(50, 5, 1)
    X[[3, 17]] = np.nan
    a, _ = _search(som, "pruned", X)
    assert a.cell[3] == a.cell[17] == -1 and np.isnan(a.distance[[3, 17]]).all()
    keep = np.isfinite(X).any(1)
    np.testing.assert_array_equal(a.cell[keep], ref.bmu(X[keep], som.weights_)[0])


@pytest.mark.parametrize("lattice,periodic", [("rect", False), ("hex", True)])
def test_training_with_pruned_search_gives_the_brute_force_map(lattice, periodic):
    X = _data(4000, 5, seed=4, nan_fraction=0.05)
    kw = dict(lattice=lattice, periodic=periodic, random_state=3, dtype=np.float64, n_epochs=8)
    pruned = SOM(20, 22, **kw)
    pruned._search = "pruned"
    pruned.fit(X)
    brute = SOM(20, 22, **kw)
    brute._search = "brute"
    brute.fit(X)
    assert pruned._search_counts[0] < pruned._search_counts[1]
    np.testing.assert_allclose(pruned.weights_, brute.weights_, rtol=1e-12, atol=1e-12)
    assert pruned.quality_ == pytest.approx(brute.quality_, rel=1e-12)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("shape", [(9, 13), (10, 7), (1, 12)])
@pytest.mark.parametrize("neighbourhood", ["gaussian", "bubble"])
def test_separable_smoothing_equals_the_direct_sum(periodic, shape, neighbourhood):
    from som import kernels

    rng = np.random.default_rng(8)
    som = SOM(*shape, lattice="rect", periodic=periodic, neighbourhood=neighbourhood)
    som._distance_table = som.grid.offset_distance_table()
    K = som.n_cells
    S = rng.normal(size=(K, 3))
    N = rng.uniform(0, 5, size=(K, 3)) * (rng.uniform(size=(K, 3)) < 0.7)
    for sigma in (0.4, 1.0, 2.3, 5.0, 40.0):
        h, win_r, win_c = som._neighbourhood_table(sigma)
        num, den = np.empty_like(S), np.empty_like(N)
        kernels.smooth(S, N, h, *shape, periodic, win_r, win_c, num, den)
        num2, den2 = np.empty_like(S), np.empty_like(N)
        gy, gx, cw = som._separable_factors(h)
        kernels.smooth_separable(S, N, gy, gx, cw, *shape, periodic, num2, den2)
        np.testing.assert_allclose(num2, num, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(den2, den, rtol=1e-12, atol=1e-12)
        # a cell no data reaches keeps exactly zero, so it keeps its weight
        np.testing.assert_array_equal(den2 == 0, den == 0)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("shape", [(9, 13), (10, 7), (1, 12), (12, 12), (2, 5)])
@pytest.mark.parametrize("neighbourhood", ["gaussian", "bubble"])
def test_hexagonal_separable_smoothing_equals_the_direct_sum(periodic, shape, neighbourhood):
    from som import kernels

    if periodic and shape[0] % 2:
        shape = (shape[0] + 1, shape[1])  # a hexagonal torus needs an even number of rows
    rng = np.random.default_rng(8)
    som = SOM(*shape, lattice="hex", periodic=periodic, neighbourhood=neighbourhood)
    som._distance_table = som.grid.offset_distance_table()
    K = som.n_cells
    S = rng.normal(size=(K, 3))
    N = rng.uniform(0, 5, size=(K, 3)) * (rng.uniform(size=(K, 3)) < 0.7)
    # 0.866 and 1.0: the disc's edge falls exactly on lattice distances (sqrt(3)/2, 1)
    for sigma in (0.3, 0.55, np.sqrt(3) / 2, 1.0, 2.3, 5.0, 40.0):
        h, win_r, win_c = som._neighbourhood_table(sigma)
        num, den = np.empty_like(S), np.empty_like(N)
        kernels.smooth(S, N, h, *shape, periodic, win_r, win_c, num, den)
        num2, den2 = np.empty_like(S), np.empty_like(N)
        kernels.smooth_separable_hex(
            S, N, *som._hex_separable_factors(sigma), *shape, periodic, num2, den2
        )
        np.testing.assert_allclose(num2, num, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(den2, den, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(den2 == 0, den == 0)


# ---------------------------------------------------------------- tiled search, 8 x 8 tiles
# maps of at least 32 x 32 cells use 8 x 8 tiles (kernels.tile_shape); 34 x 41 also cuts
# tiles short at both edges, so padded tile positions are exercised


@pytest.mark.parametrize("grouping", ["lattice", "weights"])
@pytest.mark.parametrize("shape", [(12, 14), (34, 41)])
def test_tile_index_holds_every_cell_once(shape, grouping):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(shape[0] * shape[1], 4))
    index = kernels.tile_index(W, *shape, dtype=np.float64, grouping=grouping)
    WB, tcell, tile_n, cell_tile = index.WB, index.tcell, index.tile_n, index.cell_tile
    K = W.shape[0]
    assert tile_n.sum() == K
    real = np.concatenate([tcell[j, : tile_n[j]] for j in range(len(tile_n))])
    np.testing.assert_array_equal(np.sort(real), np.arange(K))
    # padding repeats a cell of the same tile; each tile's weights match its cells (stored
    # minus their mean)
    assert (cell_tile[tcell] == np.arange(len(tile_n))[:, None]).all()
    assert (tcell[cell_tile, index.cell_pos] == np.arange(K)).all()
    np.testing.assert_allclose(WB + index.mu[None, :, None], W[tcell].transpose(0, 2, 1))
    np.testing.assert_allclose(index.HB, 0.5 * (WB**2).sum(axis=1))
    assert (index.lo <= WB.min(axis=2).T).all() and (index.hi >= WB.max(axis=2).T).all()
    # each tile's representative is one of its own cells
    for j in range(len(tile_n)):
        assert np.isclose(WB[j], index.rep[:, j : j + 1]).all(axis=0).any()
    assert WB.shape[2] == (64 if min(shape) >= 32 else 16)


@pytest.mark.parametrize(
    "lattice,periodic", [("rect", False), ("rect", True), ("hex", False), ("hex", True)]
)
@pytest.mark.parametrize("trained", [True, False])
@pytest.mark.parametrize("metric", ["euclidean", "missing", "chi2"])
def test_large_tiles_equal_brute_force(lattice, periodic, trained, metric):
    som = _map(lattice, periodic, trained, shape=(34, 41))
    X, errors, a, counts, best = _pruned_against_reference(som, metric, 800, 9, 4)
    # without the second-best cell (predict, training) the threshold is the best distance
    som._search = "pruned"
    np.testing.assert_array_equal(som.predict(X, errors, skip_empty=True), best)
    assert counts[0] <= counts[1]
    if trained:
        assert counts[0] < 0.5 * counts[1]


@pytest.mark.parametrize("metric", ["euclidean", "missing"])
def test_hinted_search_equals_brute_force_from_any_start(metric):
    """A hint only chooses where the search starts: a wrong or random hint, or none, gives
    the same cells."""
    som = _map("rect", False, True, shape=(34, 41))
    X = _data(600, 5, seed=12, nan_fraction=0.2 if metric == "missing" else 0.0)
    best, _, _ = ref.bmu(X, som.weights_)
    rng = np.random.default_rng(1)
    for hint in (
        best.astype(np.int32),
        rng.integers(0, som.n_cells, len(X)).astype(np.int32),
        np.full(len(X), -1, np.int32),
    ):
        som._search = "pruned"
        prep = som._prepared_weights(som.weights_)
        xc, iv, has_missing = som._chunk(X, None, 0, len(X))
        cell, _, _ = som._bmu_chunk(xc, iv, has_missing, prep, False, hint=hint)
        np.testing.assert_array_equal(cell, best)


@pytest.mark.parametrize("trained", [True, False])
@pytest.mark.parametrize("metric", ["euclidean", "missing", "chi2"])
def test_cells_grouped_by_weight_equal_brute_force(trained, metric):
    """Groups of cells near in weight space (the index for a map not yet ordered) find
    brute force's best and second-best cells, on a trained map and on weights drawn from
    the data as a random start draws them."""
    som = _map("rect", False, trained, shape=(34, 41))
    if not trained:
        som.weights_ = _data(som.n_cells, 5, seed=21)
    X = _data(700, 5, seed=13, nan_fraction=0.2 if metric != "euclidean" else 0.0)
    iv = A = None
    if metric == "chi2":
        iv = 1 / np.random.default_rng(2).uniform(0.2, 2.0, size=X.shape) ** 2
        A = np.where(np.isfinite(X), iv, 0.0)
    elif metric == "missing":
        A = np.isfinite(X).astype(np.float64)
    index = kernels.tile_index(som.weights_, 34, 41, dtype=np.float64, grouping="weights")
    n = len(X)
    cell, second = np.empty(n, np.int64), np.empty(n, np.int64)
    d2 = np.empty(n)
    evals = kernels.bmu_tiles(
        X,
        np.zeros((0, 0)) if A is None else A,
        index,
        np.zeros(0, np.int64),
        True,
        cell,
        d2,
        second,
    )
    best, second_ref, d2_ref = ref.bmu(X, som.weights_, iv)
    np.testing.assert_array_equal(cell, best)
    np.testing.assert_array_equal(second, second_ref)
    np.testing.assert_allclose(d2, d2_ref, rtol=1e-9)
    assert evals < 0.5 * n * som.n_cells


def test_a_random_start_is_searched_by_weight_groups():
    """On weights drawn from the data (init="random" before its first epoch) blocks of the
    map prune nothing; the automatic search finds that on its sample and searches groups
    of cells near in weight space instead: brute force's cells, a fraction of the work."""
    som = _map("rect", False, False, F=5, shape=(34, 41))
    som.weights_ = _data(som.n_cells, 5, seed=21)
    X = _data(6000, 5, seed=14)
    som._search = "auto"
    som._search_counts = [0, 0]
    cells = som.predict(X)
    best, _, _ = ref.bmu(X, som.weights_)
    np.testing.assert_array_equal(cells, best)
    assert som._search_counts[0] < 0.5 * som._search_counts[1]
    out = (np.empty(len(X), np.int64), np.empty(len(X)), np.empty(len(X), np.int64))
    evals = {}
    for grouping in ("lattice", "weights"):
        index = kernels.tile_index(som.weights_, 34, 41, dtype=np.float64, grouping=grouping)
        no_hint = np.zeros(0, np.int64)
        evals[grouping] = kernels.bmu_tiles(X, np.zeros((0, 0)), index, no_hint, False, *out)
        np.testing.assert_array_equal(out[0], best)
    assert evals["lattice"] > 0.9 * len(X) * som.n_cells
    assert evals["weights"] < 0.5 * evals["lattice"]
