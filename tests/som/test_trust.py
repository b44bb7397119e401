"""How far to trust an assignment: training distances, percentiles, outside_training,
skip_empty (issue 10, items 6 and 7)."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from som import SOM, SOMError
from som.trust import DistanceDistribution, default_min_features, outside_training

F = 4


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, F))
    return SOM(8, 8, n_epochs=5, random_state=0).fit(X), X


def _binomial_band(n, p=0.005, tail=1e-4):
    return binom.ppf(tail, n, p) / n, binom.ppf(1 - tail, n, p) / n


def test_heldout_rows_are_flagged_at_the_chosen_rate_shifted_ones_far_more(trained):
    som, X = trained
    n = 40_000
    held = np.random.default_rng(1).normal(size=(n, F))
    a = som.assign(held)
    assert a.percentile.dtype == np.float32 and np.all((a.percentile >= 0) & (a.percentile <= 100))
    lo, hi = _binomial_band(n)
    assert lo <= np.mean(a.percentile > 99.5) <= hi
    assert lo <= np.mean(som.outside_training(a)) <= hi
    # about uniform: every decile holds about a tenth of the rows
    deciles = np.histogram(a.percentile, bins=np.linspace(0, 100, 11))[0] / n
    assert np.all(np.abs(deciles - 0.1) < 0.015)
    shifted = som.assign(held + 1.5)
    assert np.mean(som.outside_training(shifted)) > 0.1
    assert np.median(shifted.percentile) > 90


def test_n_features_percentile_and_flags_of_incomplete_rows(trained):
    som, _ = trained
    X = np.zeros((5, F))
    X[1, 1:] = np.nan  # one feature
    X[2, 2:] = np.nan  # two
    X[3] = np.nan  # none
    X[4] = 50.0  # far from everything
    with pytest.raises(SOMError, match="row 3: no usable feature"):
        som.assign(X)
    a = som.assign(X, skip_empty=True)
    np.testing.assert_array_equal(a.n_features, [4, 1, 2, 0, 4])
    assert a.cell[3] == -1 and np.isnan(a.percentile[3]) and a.n_skipped == 1
    assert a.percentile[4] == 100.0
    assert default_min_features(F) == 2
    np.testing.assert_array_equal(som.outside_training(a), [False, True, False, True, True])
    np.testing.assert_array_equal(
        som.outside_training(a, min_features=3), [False, True, True, True, True]
    )
    np.testing.assert_array_equal(outside_training(a, max_percentile=None), [0, 1, 0, 1, 0])
    # an array is assigned first, rows without features flagged rather than refused
    np.testing.assert_array_equal(som.outside_training(X), som.outside_training(a))
    assert som.assign(X, allow_empty=True).n_skipped == 1  # the older name still works


@pytest.mark.parametrize("F_,expected", [(1, 1), (2, 2), (4, 2), (5, 3), (6, 3), (7, 4)])
def test_default_min_features_is_half_at_least_two(F_, expected):
    assert default_min_features(F_) == expected


def test_distribution_is_mergeable_and_interpolates_percentiles():
    d = np.random.default_rng(2).lognormal(0.0, 0.7, size=50_000)
    whole = DistanceDistribution.empty("euclidean", 3)
    whole.add(d, np.full(d.size, 3))
    a, b = DistanceDistribution.empty("euclidean", 3), DistanceDistribution.empty("euclidean", 3)
    a.add(d[:17_000], np.full(17_000, 3))
    b.add(d[17_000:], np.full(d.size - 17_000, 3))
    assert a + b == whole and whole.n == d.size and whole.n_skipped == 0
    for q in (0.1, 0.5, 0.9, 0.995):
        assert whole.quantile(q) == pytest.approx(np.quantile(d, q), rel=0.012)
    exact = 100 * np.searchsorted(np.sort(d), [0.5, 1.0, 3.0]) / d.size
    assert whole.percentile(np.array([0.5, 1.0, 3.0])) == pytest.approx(exact, abs=0.05)
    assert whole.percentile(np.array([0.0, 1e9]))[[0, 1]].tolist() == [0.0, 100.0]
    assert np.isnan(whole.percentile(np.array([np.nan]))[0])
    with pytest.raises(ValueError, match="merge"):
        whole.merge(DistanceDistribution.empty("chi2", 3))
    back = DistanceDistribution.from_dict(json.loads(json.dumps(whole.to_dict())))
    assert back == whole


def test_save_load_keeps_the_distribution_old_files_still_load(trained, tmp_path):
    som, X = trained
    back = SOM.load(som.save(tmp_path / "map.som"))
    assert back.training_distances_ == som.training_distances_
    held = np.random.default_rng(3).normal(size=(1000, F))
    np.testing.assert_array_equal(back.assign(held).percentile, som.assign(held).percentile)

    # a file written before the distances were recorded: no key in meta.json
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(som.to_bytes())) as src, zipfile.ZipFile(buf, "w") as dst:
        meta = json.loads(src.read("meta.json"))
        del meta["training_distances"], meta["n_skipped"]
        dst.writestr("meta.json", json.dumps(meta))
        dst.writestr("weights.npy", src.read("weights.npy"))
    old = SOM.from_bytes(buf.getvalue())
    assert old.training_distances_ is None and old.n_skipped_ == 0
    a = old.assign(held)
    np.testing.assert_array_equal(a.cell, som.assign(held).cell)
    assert np.isnan(a.percentile).all()
    with pytest.raises(ValueError, match="no record of its training distances"):
        old.outside_training(a)
    assert not old.outside_training(a, max_percentile=None).any()


def test_fit_chunks_records_what_fit_records_from_the_same_start():
    X = np.random.default_rng(1).normal(size=(3000, 3))

    def parts():
        return (X[i : i + 700] for i in range(0, len(X), 700))

    streamed = SOM(5, 5, random_state=2, n_epochs=4).fit_chunks(parts)
    ref = SOM(5, 5, random_state=2, n_epochs=4)
    ref._start(X[:700], ref._rng())
    for sigma in ref.sigma_schedule(4):
        S, N, _ = ref.batch_sums(X)
        ref.apply_batch_sums(S, N, sigma)
    ref._finish([(X, None, None)])
    assert streamed.training_distances_.n == len(X)
    assert streamed.training_distances_ == ref.training_distances_
    assert streamed.quality_ == pytest.approx(ref.quality_)


def test_partial_fit_adds_each_part():
    rng = np.random.default_rng(8)
    X1, X2 = rng.uniform(size=(2000, 2)), rng.uniform(size=(1500, 2))
    X2[:3] = np.nan
    som = SOM(6, 6, n_epochs=5, random_state=8).partial_fit(X1)
    assert som.training_distances_.n == 2000
    som.partial_fit(X2, skip_empty=True)
    assert som.training_distances_.n == 3497 and som.n_skipped_ == 3
    assert som.quality_["n_rows_trained"] == 1497


@pytest.mark.parametrize("method", ["batch", "online"])
def test_skip_empty_training_leaves_empty_rows_out_and_counts_them(method):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 3))
    empty = np.array([5, 77, 300])
    Xe = X.copy()
    Xe[empty] = np.nan
    kw = dict(n_epochs=3, random_state=4, method=method, init="random")
    with pytest.raises(SOMError, match="row 5: no usable feature"):
        SOM(4, 4, **kw).fit(Xe)
    som = SOM(4, 4, **kw).fit(Xe, skip_empty=True)
    assert som.n_skipped_ == 3 and som.quality_["n_rows_skipped"] == 3
    assert som.quality_["n_rows_trained"] == 597
    assert som.training_distances_.n == 597 and som.training_distances_.n_skipped == 3
    if method == "batch":
        # the same map as training on the other rows alone
        alone = SOM(4, 4, **kw).fit(np.delete(X, empty, axis=0))
        np.testing.assert_allclose(som.weights_, alone.weights_, rtol=1e-12, atol=1e-12)
        chunks = SOM(4, 4, **kw).fit_chunks(lambda: iter([Xe]), skip_empty=True)
        assert chunks.n_skipped_ == 3
    cells = som.predict(Xe, skip_empty=True)
    assert (cells == -1).sum() == 3 and (cells[empty] == -1).all()
    with pytest.raises(SOMError, match="row 5"):
        som.predict(Xe)
    assert SOM.from_bytes(som.to_bytes()).n_skipped_ == 3


# ---------------------------------------------------------------- the acceptance check
_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
_ZCOSMOS = _DATA / "zcosmos_bright20k_cosmos_photometry.csv"


@pytest.mark.skipif(not _ZCOSMOS.exists(), reason=f"zCOSMOS-bright data not found at {_ZCOSMOS}")
def test_zcosmos_map_flags_high_redshift_mock_galaxies_far_more_than_its_own():
    path = Path(__file__).resolve().parents[2] / "bench" / "validate_trust.py"
    spec = importlib.util.spec_from_file_location("validate_trust", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run(_ZCOSMOS, rows=30, cols=30, n_epochs=30, sigma_end=1.0, seed=1, n_mock=60_000)
    print(r)
    lo, hi = _binomial_band(r["n_heldout"], tail=1e-3)
    # the held-out half, on its distances: about the chosen 0.5%
    assert lo <= r["heldout_beyond_percentile"] <= hi
    # the mock's z > 2.5 galaxies: flagged far more often than zCOSMOS itself
    assert r["mock_high_z_flagged"] > 10 * r["heldout_flagged"]
    assert r["mock_high_z_flagged"] > 0.25
