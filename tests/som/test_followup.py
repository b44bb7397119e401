"""som.calibration.followup: the success model, failures at depth, campaign planning,
expected coverage and simulated campaigns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from som.calibration.followup import (
    ExposureModel,
    SuccessModel,
    expected_coverage_gain,
    failed_at_depth,
    fit_success_model,
    logistic_rate,
    plan_campaign,
    simulate_campaigns,
)


def _logit(p):
    return np.log(p / (1 - p))


def test_the_fitted_curve_recovers_the_true_one_within_its_errors():
    rng = np.random.default_rng(3)
    pulls = []
    grid = np.array([21.5, 22.5, 23.0, 23.5, 24.0])
    for _ in range(40):
        mag = rng.uniform(20.5, 24.5, 600)
        secure = rng.random(600) < logistic_rate(mag, 23.0, 0.6)
        model = fit_success_model(mag, secure)
        sigma = model.logit_error(grid)
        pulls.append((model.logit(grid) - _logit(logistic_rate(grid, 23.0, 0.6))) / sigma)
    pulls = np.asarray(pulls)
    # The errors are honest: pulls scatter with unit width around zero.
    assert abs(pulls.mean()) < 0.35
    assert 0.7 < pulls.std() < 1.3
    low, high = model.rate_interval(grid)
    assert np.all((low < model.rate(grid)) & (model.rate(grid) < high))


def test_cell_offsets_follow_the_cells_that_fail_and_shrink_where_few():
    rng = np.random.default_rng(4)
    n = 4000
    cells = rng.integers(0, 4, n)
    mag = rng.uniform(21, 24, n)
    hard = np.array([0.0, 0.0, -1.5, 0.0])  # cell 2 is harder at any magnitude
    p = 1 / (1 + np.exp(-(_logit(logistic_rate(mag, 22.8, 0.5)) + hard[cells])))
    secure = rng.random(n) < p
    model = fit_success_model(mag, secure, cells, 5)
    assert model.cell_offset[2] < model.cell_offset[[0, 1, 3]].min() - 1.0
    assert model.cell_n_outcomes[4] == 0 and model.cell_offset[4] == 0.0
    assert model.rate([22.8], [2])[0] < model.rate([22.8], [0])[0]
    few = fit_success_model([22.0, 22.1], [False, False], [0, 0], 1, cell_prior_sigma=1.0)
    assert -1.5 < few.cell_offset[0] < 0


def test_weights_count_an_attempt_as_that_many():
    """Half weight everywhere: the same curve, twice the covariance (a weight scales the
    information, not the estimate); weight 0 leaves an attempt out; an integer weight is
    the attempt repeated."""
    rng = np.random.default_rng(8)
    mag = rng.uniform(21, 24.5, 3000)
    secure = rng.random(3000) < logistic_rate(mag, 22.6, 0.45)
    full = fit_success_model(mag, secure)
    half = fit_success_model(mag, secure, weights=np.full(3000, 0.5))
    np.testing.assert_allclose(half.coef, full.coef, atol=2e-3)
    np.testing.assert_allclose(half.cov, 2 * full.cov, rtol=0.02)
    first = fit_success_model(mag[:2000], secure[:2000])
    zeroed = fit_success_model(mag, secure, weights=np.r_[np.ones(2000), np.zeros(1000)])
    grid = np.linspace(21, 24.5, 8)  # the pivots differ (medians of what is given)
    np.testing.assert_allclose(zeroed.logit(grid), first.logit(grid), atol=1e-5)
    twice = fit_success_model(np.r_[mag, mag], np.r_[secure, secure])
    doubled = fit_success_model(mag, secure, weights=np.full(3000, 2.0))
    np.testing.assert_allclose(doubled.coef, twice.coef, atol=1e-8)
    np.testing.assert_allclose(doubled.cov, twice.cov, rtol=1e-8)
    with pytest.raises(ValueError, match=">= 0"):
        fit_success_model([22.0, 23.0], [True, False], weights=[1.0, -1.0])


def test_without_outcomes_every_target_succeeds():
    model = fit_success_model([], [])
    assert not model.fitted and np.all(model.rate([20, 25]) == 1.0)
    exposure = ExposureModel(ref_mag=22.0, ref_hours=2.0, slope=0.4, overhead_hours=0.25)
    np.testing.assert_allclose(model.hours_per_secure([23.0], exposure), 2 * 10**0.4 + 0.25)
    with pytest.raises(ValueError, match="row 1"):
        fit_success_model([22.0, np.nan], [True, False])
    with pytest.raises(ValueError, match="boolean"):
        fit_success_model([22.0], [2])


def test_a_failure_is_comparable_unless_the_new_exposure_is_more_than_twice_as_deep():
    exposure = ExposureModel()
    mag = np.array([22.5, 22.5, 22.5, 22.5])
    spent = np.array([1.0, 0.6, 0.49, np.nan])  # planned: 1 h each
    np.testing.assert_array_equal(failed_at_depth(mag, spent, exposure), [True, True, False, False])


def test_expected_coverage_gain_matches_monte_carlo():
    rng = np.random.default_rng(5)
    cells = np.array([0, 0, 1, 2, 2, 2])
    p = np.array([0.5, 0.3, 0.9, 0.2, 0.6, 0.4])
    w = np.array([0.5, 0.2, 0.2, 0.1])
    need = np.array([1, 1, 2, 0])  # cell 3 is covered already
    gain, n_new = expected_coverage_gain(cells, p, w, need)
    draws = rng.random((100_000, len(p))) < p
    got = np.stack([draws[:, cells == c].sum(axis=1) for c in range(4)], axis=1)
    covered = got >= np.where(need > 0, need, 10**9)
    assert gain == pytest.approx((covered * w).sum(axis=1).mean(), abs=0.003)
    assert n_new == pytest.approx(covered.sum(axis=1).mean(), abs=0.01)
    two_of_three = 0.2 * 0.6 + 0.2 * 0.4 + 0.6 * 0.4 - 2 * 0.2 * 0.6 * 0.4
    assert gain == pytest.approx(0.5 * (1 - 0.5 * 0.7) + 0.2 * 0.9 + 0.2 * two_of_three)


def _sources(n=400, n_cells=20, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "cell": rng.integers(0, n_cells, n),
            "distance": rng.random(n),
            "mag_i": rng.uniform(20, 25, n),
        }
    )


@pytest.mark.parametrize("strategy", ["c3r2", "expected_gain", "brightest", "random"])
def test_every_strategy_keeps_to_the_budget_and_leaves_out_what_it_is_told(strategy):
    sources = _sources()
    covered = np.zeros(20, bool)
    covered[:5] = True
    weight = np.bincount(sources["cell"], minlength=20) / len(sources)
    exclude = sources["mag_i"].to_numpy() < 21
    out = plan_campaign(
        sources,
        covered,
        weight,
        strategy=strategy,
        budget_hours=30,
        per_cell=2,
        exclude=exclude,
        mag_column="mag_i",
        random_state=1,
    )
    assert len(out) > 0 and out["cumulative_hours"].iloc[-1] <= 30
    np.testing.assert_allclose(out["cumulative_hours"], np.cumsum(out["exposure_hours"]))
    assert not set(out["id"]) & set(sources.loc[exclude, "id"])
    assert not covered[out["cell"]].any()
    assert out.groupby("cell").size().max() <= 2
    assert list(out["priority"]) == list(range(1, len(out) + 1))


def test_expected_gain_prefers_likely_cheap_targets_in_populated_cells():
    sources = pd.DataFrame(
        {
            "id": [0, 1, 2],
            "cell": [0, 1, 2],
            "distance": [0.1, 0.1, 0.1],
            "mag_i": [24.5, 21.0, 21.0],
        }
    )
    weight = np.array([0.5, 0.3, 0.2])
    model = fit_success_model(
        np.r_[np.full(50, 21.0), np.full(50, 24.5)], np.r_[np.ones(50), np.zeros(50)] > 0
    )
    out = plan_campaign(sources, np.zeros(3, bool), weight, strategy="expected_gain", success=model)
    assert list(out["id"][:2]) == [1, 2]  # the faint target in the big cell rarely pays
    c3r2 = plan_campaign(sources, np.zeros(3, bool), weight, strategy="c3r2")
    assert list(c3r2["id"]) == [0, 1, 2]  # by cell population alone


def test_simulated_campaigns_are_reproducible_and_learning_pays_off():
    rng = np.random.default_rng(8)
    n, n_cells = 6000, 150
    cells = rng.integers(0, n_cells, n)
    # Cells hold galaxies of similar brightness, as on a colour map.
    mags = rng.uniform(20.5, 25.0, n_cells)[cells] + rng.normal(0, 0.4, n)
    distance = rng.random(n)

    def truth(m):
        return logistic_rate(m, 23.0, 0.4)

    kwargs = dict(budget_hours=40, n_campaigns=3, random_state=2)
    runs = {
        s: simulate_campaigns(s, cells, mags, distance, n_cells, cells[:0], truth, **kwargs)
        for s in ("expected_gain", "random")
    }
    again = simulate_campaigns(
        "expected_gain", cells, mags, distance, n_cells, cells[:0], truth, **kwargs
    )
    pd.testing.assert_frame_equal(runs["expected_gain"], again)
    assert (runs["expected_gain"]["hours"] <= 40 + 1e-9).all()
    assert runs["expected_gain"]["gained"].sum() > runs["random"]["gained"].sum()
    assert list(runs["random"].columns) == [
        "campaign",
        "strategy",
        "n_targets",
        "n_secure",
        "hours",
        "fraction_covered",
        "gained",
        "gained_per_hour",
        "forecast_gain",
    ]


def test_unfitted_model_dict_is_json_ready():
    d = SuccessModel().to_dict()
    assert d["fitted"] is False and d["cells"] == []
