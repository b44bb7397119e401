"""Tests of som.calibration on small synthetic inputs whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from som.calibration import (
    NMAD_SCALE,
    cell_pz,
    cell_spec_counts,
    cell_statistics,
    coverage_summary,
    covered_cells,
    first_passing_n,
    gaps,
    nz,
    sampling_experiment,
    select_targets,
)

# ---------------------------------------------------------------------------- helpers


def weighted_median_reference(x: np.ndarray, w: np.ndarray) -> float:
    """Plain-loop weighted median with the midpoint convention (independent of the module)."""
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    half = w.sum() / 2
    running = 0.0
    for i in range(len(x)):
        running += w[i]
        if np.isclose(running, half, rtol=1e-12, atol=0):
            return 0.5 * (x[i] + x[i + 1])
        if running > half:
            return float(x[i])
    raise AssertionError("unreachable")


def toy_map(
    rng: np.random.Generator, n_cells: int = 40, n_gal: int = 20_000, scatter: float = 0.08
):
    """Cells with distinct mean redshifts, a redshift scatter within each and very uneven
    occupation."""
    cell_mu = np.linspace(0.2, 1.6, n_cells)
    occupation = rng.dirichlet(np.full(n_cells, 0.7))
    cells = rng.choice(n_cells, size=n_gal, p=occupation)
    z = np.clip(cell_mu[cells] + rng.normal(0, scatter, n_gal), 0.0, None)
    return cells, z


# ----------------------------------------------------------------- cell_statistics


def test_cell_statistics_match_numpy_per_cell():
    rng = np.random.default_rng(1)
    n_cells = 7
    cells = rng.integers(-1, n_cells - 1, 500)  # the last cell stays empty
    z = rng.gamma(2.0, 0.4, 500)
    z[rng.random(500) < 0.1] = np.nan
    st = cell_statistics(cells, z, n_cells)

    assert list(st.index) == list(range(n_cells))
    assert st.index.name == "cell"
    assigned = cells >= 0
    for c in range(n_cells - 1):
        in_cell = cells == c
        zc = z[in_cell & np.isfinite(z)]
        row = st.loc[c]
        assert row["count"] == in_cell.sum()
        assert row["count_z"] == len(zc)
        assert row["fraction"] == pytest.approx(in_cell.sum() / assigned.sum())
        assert row["z_mean"] == pytest.approx(zc.mean(), rel=1e-12)
        assert row["z_median"] == pytest.approx(np.median(zc), rel=1e-12)
        assert row["z_std"] == pytest.approx(zc.std(), rel=1e-12)
        expected_nmad = NMAD_SCALE * np.median(np.abs(zc - np.median(zc)))
        assert row["z_nmad"] == pytest.approx(expected_nmad, rel=1e-12)
        assert row["z_min"] == zc.min()
        assert row["z_max"] == zc.max()

    empty = st.loc[n_cells - 1]
    assert empty["count"] == 0 and empty["weight"] == 0 and empty["fraction"] == 0
    for col in ("z_mean", "z_median", "z_std", "z_nmad", "z_min", "z_max"):
        assert np.isnan(empty[col])
    assert st["fraction"].sum() == pytest.approx(1.0)


def test_cell_statistics_match_pandas_groupby_with_ties():
    rng = np.random.default_rng(2)
    n_cells = 30
    cells = rng.integers(0, n_cells, 20_000)
    z = np.round(rng.random(20_000), 2)  # many exact ties and even-sized cells
    st = cell_statistics(cells, z, n_cells)
    g = pd.Series(z).groupby(cells)
    np.testing.assert_allclose(st["z_median"], g.median(), rtol=1e-14)
    np.testing.assert_allclose(st["z_mean"], g.mean(), rtol=1e-12)
    np.testing.assert_allclose(st["z_std"], g.std(ddof=0), rtol=1e-9)
    mad = g.apply(lambda s: np.median(np.abs(s - s.median())))
    np.testing.assert_allclose(st["z_nmad"], NMAD_SCALE * mad, rtol=1e-14)


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(3)
    n_cells = 5
    cells = rng.integers(-1, n_cells, 300)
    z = np.round(rng.random(300), 1)
    w = rng.integers(0, 4, 300)  # zero weights included
    weighted = cell_statistics(cells, z, n_cells, weights=w.astype(float))
    repeated = cell_statistics(np.repeat(cells, w), np.repeat(z, w), n_cells)
    for col in ("weight", "fraction", "z_mean", "z_median", "z_std", "z_nmad"):
        np.testing.assert_allclose(weighted[col], repeated[col], rtol=1e-12, err_msg=col)
    # count is rows, not weight: zero-weight rows occupy the cell but carry no redshift
    assert weighted["count"].sum() == (cells >= 0).sum()


def test_weighted_median_and_nmad_against_reference():
    rng = np.random.default_rng(4)
    n_cells = 6
    cells = rng.integers(0, n_cells, 400)
    z = rng.random(400)
    w = rng.uniform(0.1, 3.0, 400)
    st = cell_statistics(cells, z, n_cells, weights=w)
    for c in range(n_cells):
        m = cells == c
        med = weighted_median_reference(z[m], w[m])
        assert st.loc[c, "z_median"] == pytest.approx(med, rel=1e-14)
        nmad = NMAD_SCALE * weighted_median_reference(np.abs(z[m] - med), w[m])
        assert st.loc[c, "z_nmad"] == pytest.approx(nmad, rel=1e-14)
        assert st.loc[c, "z_mean"] == pytest.approx(np.average(z[m], weights=w[m]))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"cells": [0, 1, 5], "z": [0.1, 0.2, 0.3]}, "cells"),
        ({"cells": [0, 1, -2], "z": [0.1, 0.2, 0.3]}, "cells"),
        ({"cells": [0, 1.5, 2], "z": [0.1, 0.2, 0.3]}, "cells"),
        ({"cells": [0, 1, 2], "z": [0.1, 0.2]}, "z"),
        ({"cells": [0, 1, 2], "z": [0.1, 0.2, 0.3], "weights": [1, -1, 1]}, "weights"),
        ({"cells": [0, 1, 2], "z": [0.1, 0.2, 0.3], "weights": [1, 1]}, "weights"),
    ],
)
def test_cell_statistics_bad_input_names_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        cell_statistics(n_cells=5, **kwargs)


# ------------------------------------------------------------------------- cell_pz


def test_cell_pz_rows_are_unit_area_histograms():
    rng = np.random.default_rng(5)
    n_cells = 4
    cells = rng.integers(-1, 3, 600)  # cell 3 empty
    z = rng.uniform(-0.2, 2.2, 600)  # some outside the bins
    w = rng.uniform(0.5, 2, 600)
    bins = np.array([0.0, 0.3, 0.5, 1.0, 2.0])
    raw = cell_pz(cells, z, n_cells, bins, weights=w, normalise=False)
    dens = cell_pz(cells, z, n_cells, bins, weights=w)
    assert raw.shape == dens.shape == (n_cells, 4)
    for c in range(3):
        m = cells == c
        np.testing.assert_allclose(raw[c], np.histogram(z[m], bins, weights=w[m])[0])
        np.testing.assert_allclose(
            dens[c], np.histogram(z[m], bins, weights=w[m], density=True)[0], rtol=1e-12
        )
        assert dens[c] @ np.diff(bins) == pytest.approx(1.0)
    assert np.all(dens[3] == 0) and np.all(raw[3] == 0)
    with pytest.raises(ValueError, match="bins"):
        cell_pz(cells, z, n_cells, [0.0, 1.0, 0.5])


# ------------------------------------------------------------------------ coverage


def test_spec_counts_and_coverage_with_k_and_secure():
    spec_cells = np.array([0, 0, 0, 1, 1, 2, 3, -1, 3])
    secure = np.array([True, True, False, True, False, True, False, True, False])
    np.testing.assert_array_equal(cell_spec_counts(spec_cells, 5), [3, 2, 1, 2, 0])
    np.testing.assert_array_equal(cell_spec_counts(spec_cells, 5, secure), [2, 1, 1, 0, 0])
    np.testing.assert_array_equal(
        covered_cells(spec_cells, 5, secure, k=1), [True, True, True, False, False]
    )
    np.testing.assert_array_equal(
        covered_cells(spec_cells, 5, secure, k=2), [True, False, False, False, False]
    )
    np.testing.assert_array_equal(
        covered_cells(spec_cells, 5, k=2), [True, True, False, True, False]
    )
    with pytest.raises(ValueError, match="k must"):
        covered_cells(spec_cells, 5, k=0)
    with pytest.raises(ValueError, match="secure"):
        covered_cells(spec_cells, 5, secure=secure[:-1])
    with pytest.raises(ValueError, match="spec_cells"):
        cell_spec_counts([0, 7], 5)


def test_coverage_summary_counts_and_breakdowns():
    covered = np.array([True, False, True, False, False])  # cell 4 is empty
    phot_cells = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, -1])
    w = np.array([1, 1, 1, 2, 2, 1, 0.5, 0.5, 0.5, 0.5, 9.0])
    mags = np.array([20, 21, 22, 22, 23, 23, 24, 24, 24, np.nan, 20.0])
    z = np.array([0.1, 0.2, 0.3, 0.9, 1.1, 0.5, 1.5, 1.5, 1.5, 1.5, 0.1])
    s = coverage_summary(
        phot_cells,
        covered,
        weights=w,
        mags=mags,
        mag_bins=[19, 21.5, 23.5, 25],
        z=z,
        z_bins=[0, 1, 2],
    )
    assert s.n_cells == 5
    assert s.n_cells_occupied == 4
    assert s.n_cells_covered == 2
    assert s.n_cells_occupied_covered == 2
    assert s.fraction_cells_covered == pytest.approx(2 / 5)
    assert s.fraction_occupied_cells_covered == pytest.approx(2 / 4)
    # covered weight 3 + 1 out of 3 + 4 + 1 + 2 (the unassigned row is ignored)
    assert s.fraction_galaxies_covered == pytest.approx(4 / 10)
    assert s.n_galaxies == 10 and s.n_unassigned == 1

    bm = s.by_magnitude
    assert list(bm["bin_lo"]) == [19, 21.5, 23.5]
    assert list(bm["n_galaxies"]) == [2, 4, 3]  # the NaN magnitude is left out
    # bin 21.5-23.5: rows 2 (w1, cov), 3 (w2), 4 (w2), 5 (w1, cov)
    assert bm["fraction_covered"].tolist() == pytest.approx([1.0, 2 / 6, 0.0])
    bz = s.by_redshift
    assert list(bz["n_galaxies"]) == [5, 5]
    # z < 1: rows 0-2 (cell 0) and 5 (cell 2) are covered, row 3 (w 2, cell 1) is not
    assert bz["fraction_covered"].tolist() == pytest.approx([4 / 6, 0.0])

    d = s.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["by_magnitude"][1]["n_galaxies"] == 4

    plain = coverage_summary(phot_cells, covered)
    assert plain.by_magnitude is None and plain.by_redshift is None
    assert plain.fraction_galaxies_covered == pytest.approx(4 / 10)
    with pytest.raises(ValueError, match="mags"):
        coverage_summary(phot_cells, covered, mags=mags[:-1])
    with pytest.raises(ValueError, match="covered"):
        coverage_summary(phot_cells, [1, 0, 1, 0, 0])


def test_gaps_are_ranked_by_galaxies_held():
    covered = np.array([True, False, False, False, False, False])
    phot_cells = np.array([0] * 5 + [1] * 2 + [2] * 6 + [3] * 2 + [5] * 1)  # cell 4 empty
    z = np.linspace(0.1, 1.5, len(phot_cells))
    stats = cell_statistics(phot_cells, z, 6)
    g = gaps(phot_cells, covered, 6, cell_stats=stats)
    assert list(g["cell"]) == [2, 1, 3, 5]  # 1 and 3 tie on 2 galaxies: lower index first
    assert list(g["n_galaxies"]) == [6, 2, 2, 1]
    assert g["fraction"].tolist() == pytest.approx([6 / 16, 2 / 16, 2 / 16, 1 / 16])
    assert g["cumulative_fraction"].tolist() == pytest.approx([6 / 16, 8 / 16, 10 / 16, 11 / 16])
    assert g["z_median"].tolist() == pytest.approx(stats.loc[[2, 1, 3, 5], "z_median"].tolist())
    weighted = gaps(phot_cells, covered, 6, weights=np.where(phot_cells == 5, 100.0, 1.0))
    assert weighted["cell"].iloc[0] == 5
    with pytest.raises(ValueError, match="n_cells"):
        gaps(phot_cells, covered, 7)


# ------------------------------------------------------------------------- targets


def _target_fixture():
    # Cell 0 covered; uncovered cells hold 100 (cell 2), 50 (cell 1), 30 (cell 4), 10 (cell 3).
    phot_cells = np.repeat([0, 1, 2, 3, 4], [80, 50, 100, 10, 30])
    phot_z = np.repeat([0.3, 0.6, 0.9, 1.2, 1.5], [80, 50, 100, 10, 30])
    stats = cell_statistics(phot_cells, phot_z, 5)
    covered = np.array([True, False, False, False, False])
    sources = pd.DataFrame(
        {
            "id": ["c0a", "c1a", "c1b", "c1c", "c2a", "c2b", "c2c", "c3a", "c4a", "c4b"],
            "cell": [0, 1, 1, 1, 2, 2, 2, 3, 4, 4],
            "distance": [0.0, 0.5, 0.1, 0.3, 0.2, 0.2, 0.9, 0.4, 0.7, 0.05],
            "mag_i": [20.0, 22.0, 24.5, 21.0, 23.0, 22.5, 21.0, 22.5, 21.5, 23.5],
            "mag_r": [20.5, 22.5, 25.0, 21.5, 23.5, 23.0, 21.5, 23.0, 22.0, 24.0],
            "ra": np.arange(10.0),
            "dec": -np.arange(10.0),
            "unrelated": np.arange(10),
        }
    )
    return sources, covered, stats


def test_targets_round_robin_order_and_columns():
    sources, covered, stats = _target_fixture()
    t = select_targets(sources, covered, stats, per_cell=2)
    # round 1 in cell order 2,1,4,3: closest first (c2a/c2b tie at 0.2 -> brighter c2b)
    # round 2: second-closest of cells 2, 1, 4 (cell 3 has one source)
    assert list(t["id"]) == ["c2b", "c1b", "c4b", "c3a", "c2a", "c1c", "c4a"]
    assert list(t["priority"]) == list(range(1, 8))
    assert "c0a" not in set(t["id"])  # covered cell
    assert list(t.columns) == [
        "priority", "id", "ra", "dec", "mag_i", "mag_r", "cell", "distance",
        "cell_n_galaxies", "z_expected", "z_spread", "exposure_hours", "cumulative_hours",
    ]  # fmt: skip
    assert list(t["cell_n_galaxies"][:4]) == [100, 50, 30, 10]
    assert t["z_expected"].tolist()[:4] == pytest.approx([0.9, 0.6, 1.5, 1.2])
    assert t["ra"].tolist()[0] == 5.0  # carried with its row

    one = select_targets(sources, covered, stats)
    assert list(one["id"]) == ["c2b", "c1b", "c4b", "c3a"]


def test_targets_magnitude_limit_and_ranking_without_stats():
    sources, covered, _ = _target_fixture()
    t = select_targets(sources, covered, mag_limit=23.0)
    # c1b (24.5) and c4b (23.5) are too faint: the next-closest in their cells step in.
    # Without cell_stats cells rank by rows in `sources`: cells 1 and 2 hold 3, cell 4 two.
    assert list(t["id"]) == ["c1c", "c2b", "c4a", "c3a"]
    assert t["z_expected"].isna().all()
    assert (t["mag_i"] <= 23.0).all()


def test_targets_budgets_in_targets_and_hours():
    sources, covered, stats = _target_fixture()
    full = select_targets(sources, covered, stats, per_cell=3, exposure_slope=0.8)
    expected_hours = 10 ** (0.8 * (full["mag_i"] - 22.5))
    np.testing.assert_allclose(full["exposure_hours"], expected_hours)
    np.testing.assert_allclose(full["cumulative_hours"], np.cumsum(expected_hours))

    assert list(select_targets(sources, covered, stats, budget_targets=3)["id"]) == [
        "c2b", "c1b", "c4b",
    ]  # fmt: skip
    # c2b 1.0 h, c1b 10^(0.8*2) = 39.8 h: a 30 h budget stops after the first target
    # even though the later c3a (1 h) would fit; priority order is never broken.
    hours = select_targets(sources, covered, stats, budget_hours=30.0)
    assert list(hours["id"]) == ["c2b"]
    exact = select_targets(
        sources, covered, stats, budget_hours=float(full["cumulative_hours"].iloc[1])
    )
    assert len(exact) == 2
    with_overhead = select_targets(sources, covered, stats, overhead_hours=0.5)
    np.testing.assert_allclose(
        with_overhead["cumulative_hours"], np.cumsum(with_overhead["exposure_hours"] + 0.5)
    )
    slope04 = select_targets(sources, covered, stats, exposure_slope=0.4)
    np.testing.assert_allclose(slope04["exposure_hours"], 10 ** (0.4 * (slope04["mag_i"] - 22.5)))


def test_targets_errors_name_the_column():
    sources, covered, stats = _target_fixture()
    for col in ("id", "cell", "distance", "mag_i"):
        with pytest.raises(ValueError, match=repr(col)):
            select_targets(sources.drop(columns=col), covered, stats)
    with pytest.raises(ValueError, match="mag_z"):
        select_targets(sources, covered, stats, mag_column="mag_z")
    bad = sources.assign(cell=[0, 1, 1, 1, 2, 2, 2, 3, 4, 9])
    with pytest.raises(ValueError, match=r"sources\['cell'\].*row 9"):
        select_targets(bad, covered, stats)
    with pytest.raises(ValueError, match="cell_stats"):
        select_targets(sources, covered, stats.iloc[:3])


# ------------------------------------------------------------------------------ n(z)


def test_nz_unit_area_and_exact_when_spectra_mirror_each_cell():
    # Every cell's spectra have exactly the cell's redshift distribution, with the sample
    # holding each spectroscopic redshift m_c times: n(z) must equal the sample's histogram.
    rng = np.random.default_rng(6)
    n_cells = 12
    spec_cells, spec_z, sample_cells, sample_z = [], [], [], []
    for c in range(n_cells):
        zs = rng.uniform(0.1 * c, 0.1 * c + 0.8, rng.integers(1, 6))
        m = rng.integers(1, 40)
        spec_cells += [c] * len(zs)
        spec_z += list(zs)
        sample_cells += [c] * (len(zs) * m)
        sample_z += list(np.tile(zs, m))
    bins = np.linspace(0, 2, 21)
    r = nz(sample_cells, n_cells, spec_cells, spec_z, bins, n_boot=0, truth_z=sample_z)
    assert r.nz @ np.diff(bins) == pytest.approx(1.0)
    np.testing.assert_allclose(r.nz, np.histogram(sample_z, bins, density=True)[0], atol=1e-12)
    assert r.mean_z == pytest.approx(np.mean(sample_z), abs=1e-12)
    assert r.delta_mean_z == pytest.approx(0.0, abs=1e-12)
    assert r.requirement == pytest.approx(0.002 * (1 + np.mean(sample_z)))
    assert r.passes is True
    assert r.uncovered_fraction == 0.0
    assert r.n_spec_used == len(spec_z) and r.n_sample == len(sample_z)
    # the histogram mean differs from the unbinned mean only by binning
    assert abs(r.mean_z_hist - r.mean_z) < 0.05
    assert np.isnan(r.nz_err).all() and np.isnan(r.mean_z_err)


def test_nz_normalises_each_cell_before_weighting():
    # 90 % of the sample sits in cell 0 (z = 0.5) with one spectrum; 10 % in cell 1
    # (z = 1.5) with 50 spectra. The right answer is <z> = 0.9*0.5 + 0.1*1.5 = 0.6.
    sample_cells = np.repeat([0, 1], [900, 100])
    truth = np.repeat([0.5, 1.5], [900, 100])
    spec_cells = np.repeat([0, 1], [1, 50])
    spec_z = np.repeat([0.5, 1.5], [1, 50])
    bins = np.array([0.0, 1.0, 2.0])
    r = nz(sample_cells, 2, spec_cells, spec_z, bins, n_boot=0, truth_z=truth)
    assert r.mean_z == pytest.approx(0.6)
    assert r.mean_z_hist == pytest.approx(0.6)
    np.testing.assert_allclose(r.nz, [0.9, 0.1])
    assert r.passes

    # Weighting the raw histograms, as some public code does, multiplies each cell by its
    # number of spectra and lands far from the truth.
    raw = cell_pz(spec_cells, spec_z, 2, bins, normalise=False)
    w = np.bincount(sample_cells, minlength=2)
    raw_nz = w @ raw / (w @ raw).sum()
    raw_mean = raw_nz @ np.array([0.5, 1.5])
    assert raw_mean == pytest.approx((900 * 0.5 + 100 * 50 * 1.5) / (900 + 100 * 50))
    assert abs(raw_mean - 0.6) > 0.5


def test_nz_uncovered_cells_default_and_gold():
    # Cells 0, 1 covered; cell 2 (20 % of the weight, at high z) has no spectra.
    sample_cells = np.repeat([0, 1, 2, -1], [40, 40, 20, 7])
    truth = np.repeat([0.4, 0.6, 2.0, 9.0], [40, 40, 20, 7])
    spec_cells = np.array([0, 0, 1, 1, 2])
    spec_z = np.array([0.4, 0.4, 0.6, 0.6, 2.0])
    secure = np.array([True, True, True, True, False])  # cell 2's only spectrum is insecure
    bins = np.linspace(0, 3, 31)
    kw = dict(spec_secure=secure, n_boot=0, truth_z=truth)
    default = nz(sample_cells, 3, spec_cells, spec_z, bins, **kw)
    gold = nz(sample_cells, 3, spec_cells, spec_z, bins, gold=True, **kw)

    assert default.uncovered_fraction == pytest.approx(0.2)
    assert gold.uncovered_fraction == pytest.approx(0.2)
    np.testing.assert_allclose(default.nz, gold.nz)
    assert default.mean_z == pytest.approx(0.5)
    assert default.n_cells_covered == 2
    # default: the estimate stands for the whole assigned sample, whose true mean is 0.8
    assert default.n_sample == 100
    assert default.truth_mean_z == pytest.approx(0.8)
    assert default.passes is False
    # gold: the uncovered members are dropped, the estimate describes the other 80
    assert gold.n_sample == 80
    assert gold.sample_used.sum() == 80 and not gold.sample_used[sample_cells == 2].any()
    assert gold.truth_mean_z == pytest.approx(0.5)
    assert gold.passes is True

    # k = 3 leaves no covered cell: n(z) is undefined and says so
    with pytest.raises(ValueError, match="covered cell"):
        nz(sample_cells, 3, spec_cells, spec_z, bins, k=3)
    # counting the insecure spectrum covers cell 2
    assert nz(sample_cells, 3, spec_cells, spec_z, bins, n_boot=0).uncovered_fraction == 0.0


def test_nz_spectra_outside_bins_and_weights():
    sample_cells = np.array([0, 0, 1, 1])
    spec_cells = np.array([0, 0, 1, 1, 1])
    spec_z = np.array([0.2, 0.4, 1.2, 1.4, 5.0])
    spec_w = np.array([3.0, 1.0, 1.0, 1.0, 1.0])
    r = nz(
        sample_cells, 2, spec_cells, spec_z, [0, 2],
        sample_weights=[1, 1, 2, 2], spec_weights=spec_w, n_boot=0,
    )  # fmt: skip
    assert r.n_spec_outside_bins == 1 and r.n_spec_used == 4
    # cell 0: (3*0.2 + 0.4)/4 = 0.25 with weight 2; cell 1: 1.3 with weight 4
    assert r.mean_z == pytest.approx((2 * 0.25 + 4 * 1.3) / 6)


def test_nz_bootstrap_is_seeded_and_sized_right():
    rng = np.random.default_rng(7)
    # one cell: the bootstrap error of the mean is the standard error of its spectra
    spec_z = rng.normal(1.0, 0.2, 100)
    sample_cells = np.zeros(1000, dtype=int)
    bins = np.linspace(0, 2, 21)
    a = nz(sample_cells, 1, np.zeros(100, int), spec_z, bins, n_boot=400, random_state=11)
    b = nz(sample_cells, 1, np.zeros(100, int), spec_z, bins, n_boot=400, random_state=11)
    c = nz(sample_cells, 1, np.zeros(100, int), spec_z, bins, n_boot=400, random_state=12)
    np.testing.assert_array_equal(a.nz_err, b.nz_err)
    assert a.mean_z_err == b.mean_z_err
    assert a.mean_z_err != c.mean_z_err
    standard_error = spec_z.std(ddof=1) / np.sqrt(len(spec_z))
    assert a.mean_z_err == pytest.approx(standard_error, rel=0.15)
    assert np.all(a.nz_err >= 0) and a.nz_err.max() > 0

    # weighted sample path: reproducible, and a sample-side error appears with two cells
    cells2, z2 = toy_map(np.random.default_rng(8), n_cells=10, n_gal=2000)
    spec_idx = np.random.default_rng(9).choice(2000, 300, replace=False)
    sw = np.random.default_rng(10).uniform(0.5, 1.5, 2000)
    kw = dict(sample_weights=sw, n_boot=50, random_state=3)
    w1 = nz(cells2, 10, cells2[spec_idx], z2[spec_idx], bins, **kw)
    w2 = nz(cells2, 10, cells2[spec_idx], z2[spec_idx], bins, **kw)
    assert w1.mean_z_err == w2.mean_z_err and w1.mean_z_err > 0
    json.dumps(w1.to_dict(), allow_nan=False)


def test_nz_keeps_unit_area_realisations_and_kish_n_eff():
    cells, z = toy_map(np.random.default_rng(8), n_cells=10, n_gal=2000)
    spec_idx = np.random.default_rng(9).choice(2000, 300, replace=False)
    bins = np.linspace(0, 2, 21)
    widths = np.diff(bins)
    r = nz(cells, 10, cells[spec_idx], z[spec_idx], bins, n_boot=30, random_state=3)
    assert r.realisations.shape == (30, 20)
    np.testing.assert_allclose(r.realisations @ widths, 1.0)
    # nz_err is the spread of exactly these realisations
    np.testing.assert_allclose(r.nz_err, r.realisations.std(axis=0, ddof=1))
    assert r.n_eff == r.n_sample == 2000
    d = r.to_dict()
    assert "realisations" not in d and d["n_eff"] == 2000
    full = r.to_dict(include_realisations=True)
    assert np.array(full["realisations"]).shape == (30, 20)
    json.dumps(full, allow_nan=False)

    # Kish: (Σw)² / Σw²
    w = np.random.default_rng(10).uniform(0.0, 2.0, 2000)
    rw = nz(cells, 10, cells[spec_idx], z[spec_idx], bins, sample_weights=w, n_boot=0)
    assert rw.n_eff == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert rw.realisations is None and rw.to_dict(include_realisations=True)["realisations"] is None


def test_nz_recovers_truth_from_a_per_cell_spectroscopic_subset():
    rng = np.random.default_rng(12)
    cells, z = toy_map(rng, n_cells=40, n_gal=40_000)
    # a strongly unrepresentative spectroscopic survey: 40 % of the members of the low-z
    # half of the map, 4 % of the rest, so the raw spectroscopic mean is badly biased,
    # while within a cell the spectra are a fair draw
    pick = rng.random(len(z)) < np.where(cells < 20, 0.4, 0.04)
    bins = np.linspace(0, 2.2, 23)
    r = nz(cells, 40, cells[pick], z[pick], bins, n_boot=50, random_state=1, truth_z=z)
    assert abs(z[pick].mean() - z.mean()) > 0.2
    assert abs(r.delta_mean_z) < 3 * r.mean_z_err
    assert r.uncovered_fraction < 0.01
    # bin by bin, the reconstruction agrees with the true histogram within its errors
    hist_truth = np.histogram(z, bins, density=True)[0]
    pull = np.abs(r.nz - hist_truth) / np.hypot(r.nz_err, 0.01 * hist_truth.max())
    assert pull.max() < 4


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sample_cells": [0, 3]}, "sample_cells"),
        ({"spec_z": [0.1]}, "spec_z"),
        ({"spec_cells": [0, 1.5]}, "spec_cells"),
        ({"bins": [0.0]}, "bins"),
        ({"sample_weights": [1.0]}, "sample_weights"),
        ({"spec_weights": [1.0, np.nan]}, "spec_weights"),
        ({"spec_secure": [1, 0]}, "spec_secure"),
        ({"truth_z": [0.1, 0.2, 0.3]}, "truth_z"),
        ({"n_boot": -1}, "n_boot"),
    ],
)
def test_nz_bad_input_names_argument(kwargs, name):
    args = {
        "sample_cells": [0, 1], "n_cells": 3, "spec_cells": [0, 1], "spec_z": [0.1, 0.2],
        "bins": [0.0, 1.0], "n_boot": 0,
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        nz(**args)


# ------------------------------------------------------------ sampling experiment


def test_sampling_experiment_bias_shrinks_with_n():
    cells, z = toy_map(np.random.default_rng(13), n_cells=40, n_gal=20_000, scatter=0.03)
    n_spec = [20, 40, 400, 4000]
    strategies = ["random", "systematic", "uniform"]
    edges = [0.0, 0.7, 1.2, 2.0]
    kw = dict(strategy=strategies, n_realisations=25, random_state=5)
    df = sampling_experiment(cells, z, 40, edges, n_spec, **kw)
    assert set(df["strategy"]) == set(strategies)
    assert sorted(set(df["n_spec"])) == n_spec
    assert len(df) == 3 * 4 * 3
    assert np.allclose(df["requirement"], 0.002 * (1 + df["z_mean_true"]))
    rms = df.groupby(["strategy", "n_spec"])["bias_rms"].mean().unstack()
    passes = df.groupby(["strategy", "n_spec"])["passes_fraction"].mean().unstack()
    unc = df.groupby(["strategy", "n_spec"])["uncovered_fraction_mean"].mean().unstack()
    for strat in strategies:
        assert rms.loc[strat, 4000] < rms.loc[strat, 400] < rms.loc[strat, 40], strat
        assert passes.loc[strat, 4000] > passes.loc[strat, 40], strat
    # with as many spectra as cells, spreading them over the map covers every cell and
    # beats random sampling, which leaves the sparse cells out (the point of Masters et al.)
    assert unc.loc["systematic", 40] == 0.0 and unc.loc["random", 40] > 0.1
    assert rms.loc["systematic", 40] < 0.6 * rms.loc["random", 40]
    # past one per cell, equal numbers per cell waste spectra on sparse cells
    assert rms.loc["systematic", 400] < rms.loc["uniform", 400]

    pd.testing.assert_frame_equal(df, sampling_experiment(cells, z, 40, edges, n_spec, **kw))
    first = first_passing_n(df)
    assert list(first.columns) == ["strategy", "tomo_bin", "first_n"]
    assert len(first) == 9


def test_sampling_experiment_true_means_and_bad_input():
    cells, z = toy_map(np.random.default_rng(14), n_cells=10, n_gal=3000)
    photo_z = z + np.random.default_rng(15).normal(0, 0.05, len(z))
    edges = [0.0, 0.8, 2.0]
    df = sampling_experiment(
        cells, z, 10, edges, [3000], bin_z=photo_z, n_realisations=2, random_state=0
    )
    for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        sel = (photo_z >= lo) & (photo_z < hi)
        row = df[df["tomo_bin"] == b].iloc[0]
        assert row["z_mean_true"] == pytest.approx(z[sel].mean())
        assert row["n_galaxies"] == sel.sum()
        # every galaxy has a spectrum: the SOM estimate is the mean over its cells'
        # spectra, weighted by the bin's members per cell
        w = np.bincount(cells[sel], minlength=10)
        cell_mean = np.bincount(cells, weights=z, minlength=10) / np.bincount(cells, minlength=10)
        assert row["bias_mean"] == pytest.approx(w @ cell_mean / w.sum() - z[sel].mean())
    with pytest.raises(ValueError, match="strategy"):
        sampling_experiment(cells, z, 10, edges, [10], strategy="clever")
    with pytest.raises(ValueError, match="n_spec_list"):
        sampling_experiment(cells, z, 10, edges, [5000])
    with pytest.raises(ValueError, match="z_true"):
        sampling_experiment(cells, z[:-1], 10, edges, [10])
    with pytest.raises(ValueError, match="cells"):
        sampling_experiment(cells + 1, z, 10, edges, [10])


def test_first_passing_n_requires_passing_from_then_on():
    df = pd.DataFrame(
        {
            "strategy": ["random"] * 4 + ["systematic"] * 4,
            "tomo_bin": [0] * 8,
            "n_spec": [10, 100, 1000, 10000] * 2,
            "passes_fraction": [0.9, 0.3, 0.8, 0.95, 0.1, 0.2, 0.5, 0.6],
        }
    )
    first = first_passing_n(df)
    assert first.loc[first["strategy"] == "random", "first_n"].item() == 1000
    assert first.loc[first["strategy"] == "systematic", "first_n"].isna().all()
    assert first_passing_n(df, min_pass_fraction=0.5).loc[1, "first_n"] == 1000
    with pytest.raises(ValueError, match="passes_fraction"):
        first_passing_n(df.drop(columns="passes_fraction"))
