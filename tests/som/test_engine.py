"""The SOM engine: kernels against the numpy reference, geometry, training, I/O, errors."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from som import SOM, Grid, MapFormatError, SOMError
from som.estimator import FORMAT_VERSION
from tests.som import reference as ref


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(42)


def _fitted(n_rows=6, n_cols=7, F=5, n=400, seed=0, **kw):
    X = np.random.default_rng(seed).normal(size=(n, F))
    return SOM(n_rows, n_cols, n_epochs=3, random_state=seed, **kw).fit(X), X


# ---------------------------------------------------------------- kernels vs reference
@pytest.mark.parametrize("F,dtype", [(1, np.float32), (7, np.float32), (3, np.float64)])
def test_dense_bmu_matches_reference(dtype, F, rng):
    som, _ = _fitted(F=F, dtype=dtype)
    X = rng.normal(size=(777, F))  # not a multiple of the row block or tile
    a = som.assign(X, return_second=True)
    best, second, d2 = ref.bmu(X, som.weights_)
    # identical up to exact ties: where cells differ, the distances must tie
    W = som.weights_
    dd = ((X - W[a.cell]) ** 2).sum(1)
    assert np.allclose(dd, d2, rtol=1e-4, atol=1e-5)
    assert np.mean(a.cell == best) > 0.99
    assert np.allclose(a.distance**2, d2, rtol=1e-4, atol=1e-5)
    d2_second_ref = ((X - W[second]) ** 2).sum(1)
    d2_second = ((X - W[a.second]) ** 2).sum(1)
    assert np.allclose(d2_second, d2_second_ref, rtol=1e-3, atol=1e-5)
    assert np.all(a.second != a.cell)


def test_masked_and_chi2_bmu_match_reference(rng):
    som, _ = _fitted(F=4, distance="euclidean")
    X = rng.normal(size=(300, 4))
    X[rng.uniform(size=X.shape) < 0.25] = np.nan
    X[np.isnan(X).all(1), 0] = 0.5  # every row keeps at least one feature
    a = som.assign(X)
    best, _, d2 = ref.bmu(X, som.weights_)
    assert np.mean(a.cell == best) > 0.99
    assert np.allclose(a.distance**2, d2, rtol=1e-4, atol=1e-6)

    err = rng.uniform(0.1, 2.0, size=X.shape)
    chi = SOM(6, 7, distance="chi2")
    chi.weights_, chi.n_features_in_ = som.weights_, 4
    ac = chi.assign(X, errors=err)
    bc, _, d2c = ref.bmu(X, som.weights_, inv_var=1 / err**2)
    assert np.mean(ac.cell == bc) > 0.99
    assert np.allclose(ac.distance**2, d2c, rtol=1e-4, atol=1e-6)


def test_missing_and_chi2_distance_by_hand():
    som = SOM(1, 2, distance="chi2", dtype=np.float64)
    som.weights_ = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    som.n_features_in_ = 3
    x = np.array([[1.0, np.nan, 1.0]])
    e = np.array([[0.5, 1.0, 2.0]])
    a = som.assign(x, errors=e)
    # cell 0: (1/0.25 * 1 + 1/4 * 1) * 3/2 = 6.375 ; cell 1: (0 + 1/4 * 4) * 3/2 = 1.5
    assert a.cell[0] == 1
    assert a.distance[0] ** 2 == pytest.approx(1.5)
    eu = SOM(1, 2, dtype=np.float64)
    eu.weights_, eu.n_features_in_ = som.weights_, 3
    a = eu.assign(x)
    # cell 0: (1 + 1) * 3/2 = 3 ; cell 1: (0 + 4) * 3/2 = 6
    assert a.cell[0] == 0 and a.distance[0] ** 2 == pytest.approx(3.0)


@pytest.mark.parametrize(
    "lattice,periodic", [("rect", False), ("hex", False), ("hex", True), ("rect", True)]
)
@pytest.mark.parametrize("neighbourhood", ["gaussian", "bubble"])
def test_batch_update_matches_reference(lattice, periodic, neighbourhood, rng):
    X = rng.normal(size=(500, 3))
    X[rng.uniform(size=X.shape) < 0.1] = np.nan
    X[np.isnan(X).all(1), 1] = 0.0
    w = rng.uniform(0.5, 2.0, size=500)
    som = SOM(
        6,
        8,
        lattice=lattice,
        periodic=periodic,
        neighbourhood=neighbourhood,
        dtype=np.float64,
        random_state=1,
        n_epochs=2,
    ).fit(X, sample_weight=w)
    W0 = som.weights_.copy()
    for sigma in (0.7, 1.5, 3.0, 20.0):
        som.weights_ = W0.copy()
        S, N, _ = som.batch_sums(X, sample_weight=w)
        som.apply_batch_sums(S, N, sigma)
        expected = ref.batch_update(X, W0, som.grid, sigma, neighbourhood, sample_weight=w)
        np.testing.assert_allclose(som.weights_, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- geometry
def test_hex_interior_cells_have_six_neighbours_at_distance_one():
    g = Grid(8, 9, "hex", periodic=False)
    for r in range(1, 7):
        for c in range(1, 8):
            cell = r * 9 + c
            nb = g.neighbours(cell)
            assert len(nb) == 6
            assert np.allclose(g.distance(cell, nb), 1.0)
    # a corner of an even row has 2 neighbours, the end of an odd row 3
    assert len(g.neighbours(0)) == 2
    assert len(g.neighbours(1 * 9 + 8)) == 3


@pytest.mark.parametrize("lattice,expected", [("rect", 4), ("hex", 6)])
def test_torus_has_no_edges(lattice, expected):
    g = Grid(6, 10, lattice, periodic=True)
    counts = [len(g.neighbours(c)) for c in range(g.n_cells)]
    assert counts == [expected] * g.n_cells
    i, j = g.neighbour_pairs()
    assert np.allclose(g.distance(i, j), 1.0)
    # wrap distances: the two ends of a row are neighbours, a torus is symmetric
    assert g.distance(0, 9) == pytest.approx(1.0)
    assert g.distance(0, 5 * 10) == pytest.approx(1.0)
    d = g.distance(np.arange(60)[:, None], np.arange(60)[None, :])
    assert np.allclose(d, d.T)
    assert d.max() <= np.hypot(5, 3 * g.row_spacing) + 1e-9


def test_rect_planar_edges_and_distances():
    g = Grid(3, 4)
    assert len(g.neighbours(0)) == 2 and len(g.neighbours(5)) == 4
    assert g.distance(0, 11) == pytest.approx(np.hypot(2, 3))
    table = g.offset_distance_table()
    assert table.shape == (2, 5, 7) and table[0, 2, 3] == 0.0


def test_odd_rows_torus_hex_is_refused():
    with pytest.raises(ValueError, match="even number of rows"):
        Grid(5, 6, "hex", periodic=True)


# ---------------------------------------------------------------- training behaviour
@pytest.mark.parametrize("lattice", ["rect", "hex"])
def test_uniform_square_comes_out_ordered(lattice):
    X = np.random.default_rng(3).uniform(size=(4000, 2))
    som = SOM(15, 15, lattice=lattice, n_epochs=15, random_state=3).fit(X)
    assert som.topographic_error(X) < 0.05
    assert som.quality_["occupied_cells"] == 225
    # the map spans the square: corners of the map near corners of the data
    W = som.get_weights()
    corners = np.array([W[0, 0], W[0, -1], W[-1, 0], W[-1, -1]])
    assert np.all(np.min(np.abs(corners - 0.5), axis=0) > 0.3)


def test_torus_orders_data_living_on_a_torus():
    a = np.random.default_rng(5).uniform(0, 2 * np.pi, (4000, 2))
    X = np.column_stack([np.cos(a[:, 0]), np.sin(a[:, 0]), np.cos(a[:, 1]), np.sin(a[:, 1])])
    som = SOM(
        16,
        16,
        lattice="hex",
        periodic=True,
        init="random",
        sigma_start=5,
        sigma_end=1.0,  # written for the former default; the wrap is under test, not it
        n_epochs=20,
        random_state=5,
    ).fit(X)
    assert som.topographic_error(X) < 0.05


def test_online_training_orders_the_map():
    X = np.random.default_rng(4).uniform(size=(3000, 2))
    som = SOM(8, 8, method="online", n_epochs=3, sigma_start=4, random_state=4).fit(X)
    assert som.topographic_error(X) < 0.05
    assert som.quantization_error(X) < 0.1


def test_same_seed_same_weights_other_seed_differs():
    X = np.random.default_rng(0).normal(size=(1000, 4))
    for init in ("pca", "random"):
        a = SOM(5, 6, init=init, random_state=11, n_epochs=3).fit(X).weights_
        b = SOM(5, 6, init=init, random_state=11, n_epochs=3).fit(X).weights_
        np.testing.assert_array_equal(a, b)
    c = SOM(5, 6, init="random", random_state=12, n_epochs=3).fit(X).weights_
    assert not np.allclose(a, c)


def test_chunked_training_equals_in_memory(tmp_path):
    X = np.random.default_rng(1).normal(size=(3000, 3))
    full = SOM(5, 5, random_state=2, n_epochs=4, chunk_size=100_000).fit(X)
    small_chunks = SOM(5, 5, random_state=2, n_epochs=4, chunk_size=257).fit(X)
    np.testing.assert_allclose(small_chunks.weights_, full.weights_, rtol=1e-9, atol=1e-9)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    from_memmap = SOM(5, 5, random_state=2, n_epochs=4, chunk_size=500).fit(mm)
    np.testing.assert_allclose(from_memmap.weights_, full.weights_, rtol=1e-9, atol=1e-9)

    def parts():
        return (X[i : i + 700] for i in range(0, len(X), 700))

    streamed = SOM(5, 5, random_state=2, n_epochs=4).fit_chunks(parts)
    # initialisation sees only the first chunk, so compare against the same start
    ref_som = SOM(5, 5, random_state=2, n_epochs=1)
    ref_som._start(X[:700], ref_som._rng())
    for sigma in ref_som.sigma_schedule(4):
        S, N, _ = ref_som.batch_sums(X)
        ref_som.apply_batch_sums(S, N, sigma)
    np.testing.assert_allclose(streamed.weights_, ref_som.weights_, rtol=1e-9, atol=1e-9)


def test_partial_fit_refines_without_unfolding():
    rng = np.random.default_rng(8)
    X1, X2 = rng.uniform(size=(2000, 2)), rng.uniform(size=(2000, 2))
    som = SOM(10, 10, n_epochs=10, random_state=8).partial_fit(X1)
    qe_before = som.quantization_error(X2)
    te_before = som.topographic_error(X2)
    som.partial_fit(X2, n_epochs=2)
    assert som.quantization_error(X2) <= qe_before + 1e-9
    # refining at the final radius must not unfold the map (unfolding gives TE ~ 0.3+)
    assert som.topographic_error(X2) < te_before + 0.05


def test_sample_weight_pulls_the_map():
    X = np.r_[np.zeros((500, 1)), np.ones((500, 1))]
    w = np.r_[np.full(500, 9.0), np.ones(500)]
    som = SOM(1, 1, n_epochs=2, random_state=0).fit(X, sample_weight=w)
    assert som.weights_[0, 0] == pytest.approx(0.1, abs=1e-6)


def test_sigma_schedules():
    s = SOM(10, 20, sigma_start=8, sigma_end=1, n_epochs=4)
    np.testing.assert_allclose(s.sigma_schedule(), [8, 4, 2, 1])
    s.schedule = "linear"
    np.testing.assert_allclose(s.sigma_schedule(), [8, 5.6666667, 3.3333333, 1])
    assert SOM(10, 20).sigma_schedule()[0] == 5.0


def test_progress_is_reported():
    seen = []
    SOM(4, 4, n_epochs=3, random_state=0).fit(
        np.random.default_rng(0).normal(size=(200, 2)), progress=lambda f, m: seen.append(f)
    )
    assert seen == pytest.approx([1 / 3, 2 / 3, 1.0])


# ---------------------------------------------------------------- quality and maps
def test_quality_metrics_and_maps():
    # rectangular: the U-matrix check below lists a rect cell's four neighbours (the
    # lattice was the default when this was written)
    som, X = _fitted(F=3, n=1000, lattice="rect")
    a = som.assign(X, return_second=True)
    assert som.quantization_error(X) == pytest.approx(
        np.mean(np.linalg.norm(X - som.weights_[a.cell], axis=1)), rel=1e-5
    )
    te = np.mean(som.grid.distance(a.cell, a.second) > 1 + 1e-6)
    assert som.topographic_error(X) == pytest.approx(te)
    occ = som.occupation(X)
    assert occ.shape == (6, 7) and occ.sum() == 1000
    umat = som.distance_map()
    i, j = 2 * 7 + 3, [1 * 7 + 3, 3 * 7 + 3, 2 * 7 + 2, 2 * 7 + 4]
    expected = np.mean(np.linalg.norm(som.weights_[j] - som.weights_[i], axis=1))
    assert umat[2, 3] == pytest.approx(expected)
    assert som.winner(X[0]) == divmod(int(a.cell[0]), 7)
    np.testing.assert_array_equal(som.transform(X[:5])[:, 0], a.cell[:5])


# ---------------------------------------------------------------- persistence
def test_save_load_predict_identical(tmp_path):
    som, X = _fitted(lattice="hex", periodic=True, n_rows=6)
    path = som.save(tmp_path / "map.som")
    back = SOM.load(path)
    np.testing.assert_array_equal(back.predict(X), som.predict(X))
    np.testing.assert_array_equal(back.weights_, som.weights_)
    assert back.grid == som.grid and back.quality_ == som.quality_
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["meta.json", "weights.npy"]


def test_corrupt_truncated_and_newer_files_are_refused(tmp_path):
    som, _ = _fitted()
    data = som.to_bytes()
    with pytest.raises(MapFormatError, match="not a readable"):
        SOM.from_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[60] ^= 0xFF
    with pytest.raises(MapFormatError):
        SOM.from_bytes(bytes(flipped))
    with pytest.raises(MapFormatError, match="cannot read"):
        SOM.load(tmp_path / "missing.som")
    import io
    import json

    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        meta = json.loads(src.read("meta.json"))
        meta["format_version"] = FORMAT_VERSION + 1
        dst.writestr("meta.json", json.dumps(meta))
        dst.writestr("weights.npy", src.read("weights.npy"))
    with pytest.raises(MapFormatError, match="newer"):
        SOM.from_bytes(buf.getvalue())


# ---------------------------------------------------------------- bad input
def test_bad_input_says_what_and_where():
    som, _ = _fitted(F=3)
    with pytest.raises(SOMError, match="trained on 3 features, the input has 4"):
        som.predict(np.zeros((2, 4)))
    with pytest.raises(SOMError, match="empty"):
        som.predict(np.zeros((0, 3)))
    with pytest.raises(SOMError, match="2-D"):
        som.predict(np.zeros(3))
    X = np.zeros((10, 3))
    X[7] = np.nan
    with pytest.raises(SOMError, match="row 7: no usable feature"):
        som.predict(X)
    assert som.assign(X, allow_empty=True).cell[7] == -1
    X = np.zeros((10, 3))
    X[4, 2] = np.inf
    with pytest.raises(SOMError, match="row 4, feature 2: infinite"):
        som.predict(X)
    with pytest.raises(SOMError, match="numeric"):
        som.predict(np.array([["a", "b", "c"]]))
    with pytest.raises(SOMError, match="chi2.*errors"):
        SOM(2, 2, distance="chi2").fit(np.zeros((5, 2)))
    with pytest.raises(SOMError, match="row 1, feature 0: error must be positive"):
        SOM(2, 2, distance="chi2").fit(
            np.ones((5, 2)), errors=np.array([[1, 1], [0, 1], [1, 1], [1, 1], [1, 1]], float)
        )
    with pytest.raises(SOMError, match="row 2: sample weight"):
        SOM(2, 2).fit(np.ones((5, 2)), sample_weight=[1, 1, -1, 1, 1])
    with pytest.raises(ValueError, match="lattice"):
        SOM(2, 2, lattice="tri").fit(np.ones((5, 2)))
    with pytest.raises(RuntimeError, match="not fitted"):
        SOM(2, 2).predict(np.ones((5, 2)))
