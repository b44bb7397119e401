"""The follow-up loop's science: how likely a target is to give a secure redshift, what a
secure redshift costs, which targets a campaign should observe, and how much coverage a
campaign is expected to add.

C3R2 (Masters et al. 2017, 2019) planned, observed, recorded failures and planned again.
Its targets fail more often the fainter they are, so an exposure estimate that assumes every
target succeeds undercounts the hours a gap costs; and a target that failed at some depth
will fail again at that depth. Everything here is pure numpy/scipy over arrays: the service
gathers the outcomes and the candidates from its ledger and calls these.

- :class:`ExposureModel`: hours to reach the redshift S/N at a magnitude (the model of
  :func:`~som.calibration.select_targets`).
- :func:`fit_success_model` → :class:`SuccessModel`: logistic success rate in magnitude with
  its covariance, and per-cell offsets shrunk towards zero where a cell has few outcomes.
- :func:`failed_at_depth`: targets not worth proposing again at the planned depth.
- :func:`plan_campaign`: the targets of the next campaign by a :class:`~som.vocabulary.
  PlanStrategy`, with each target's success probability, expected cost and expected gain.
- :func:`expected_coverage_gain`: the expected newly covered fraction of the sample.
- :func:`simulate_campaigns`: campaigns observed against a known success curve (the mock's),
  to compare strategies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from som.calibration.coverage import select_targets
from som.vocabulary import PlanStrategy

__all__ = [
    "COMPARABLE_DEPTH",
    "ExposureModel",
    "SuccessModel",
    "expected_coverage_gain",
    "failed_at_depth",
    "fit_success_model",
    "logistic_rate",
    "plan_campaign",
    "simulate_campaigns",
]

#: A failed target is proposed again only when the new exposure is more than this many
#: times the exposure it already failed with: S/N grows as √t, so twice the time is ~1.4×
#: the S/N, the least that makes a second attempt differ from the first.
COMPARABLE_DEPTH = 2.0

# Weakly informative Gaussian prior (σ in logit units) on the intercept and slope: keeps
# the fit finite when every outcome so far is a success (or a failure), and is negligible
# against a few dozen outcomes.
_COEF_PRIOR_SIGMA = 5.0


def logistic_rate(mag: Any, m50: float, width: float) -> np.ndarray:
    """A success rate falling with magnitude: 1/2 at ``m50``, from ~73% to ~27% over
    ``m50 ± width``. The shape of spectroscopic success rates against magnitude (e.g. the
    zCOSMOS and C3R2 completeness curves)."""
    x = (np.asarray(mag, dtype=np.float64) - m50) / width
    return _sigmoid(-x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warning for large |x|
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


@dataclass(frozen=True)
class ExposureModel:
    """Hours on one target to reach the S/N of a redshift: ``ref_hours`` at ``ref_mag``,
    times ``10**(slope * (mag - ref_mag))`` (0.8: background-limited, 0.4: source-limited;
    see :func:`~som.calibration.select_targets`), plus ``overhead_hours`` per target."""

    ref_mag: float = 22.5
    ref_hours: float = 1.0
    slope: float = 0.8
    overhead_hours: float = 0.0

    def __post_init__(self) -> None:
        if not (self.ref_hours > 0):
            raise ValueError(f"ref_hours must be > 0, got {self.ref_hours!r}")
        if not (self.overhead_hours >= 0):
            raise ValueError(f"overhead_hours must be >= 0, got {self.overhead_hours!r}")
        if not np.isfinite(self.ref_mag) or not np.isfinite(self.slope):
            raise ValueError("ref_mag and slope must be finite")

    def hours(self, mag: Any) -> np.ndarray:
        """Exposure (without overhead) at each magnitude."""
        m = np.asarray(mag, dtype=np.float64)
        return self.ref_hours * 10.0 ** (self.slope * (m - self.ref_mag))

    def cost(self, mag: Any) -> np.ndarray:
        """Telescope hours of one attempt: exposure plus overhead."""
        return self.hours(mag) + self.overhead_hours

    def as_dict(self) -> dict[str, float]:
        return {
            "ref_mag": self.ref_mag,
            "ref_hours": self.ref_hours,
            "slope": self.slope,
            "overhead_hours": self.overhead_hours,
        }


@dataclass
class SuccessModel:
    """P(secure redshift | magnitude, cell) = σ(a + b (mag − pivot) + δ_cell).

    ``coef`` = (a, b) with covariance ``cov`` (inverse Hessian of the penalised likelihood);
    ``cell_offset`` δ per cell (0 for a cell without outcomes) with ``cell_offset_error``:
    each a one-parameter fit given (a, b) under a N(0, ``cell_prior_sigma``²) prior, so a
    cell with two failures is pulled down a little and one with twenty a lot.
    ``fitted`` False is the model of no outcomes: every target succeeds (the assumption of
    an exposure estimate without a success model), with no uncertainty claimed.
    """

    pivot: float = 0.0
    coef: np.ndarray = field(default_factory=lambda: np.zeros(2))
    cov: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    n_outcomes: int = 0
    n_secure: int = 0
    mag_range: tuple[float, float] = (np.nan, np.nan)
    cell_offset: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cell_offset_error: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cell_n_outcomes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cell_prior_sigma: float = 1.0
    fitted: bool = False

    def _offsets(self, cells: Any, n: int) -> np.ndarray:
        if cells is None or len(self.cell_offset) == 0:
            return np.zeros(n)
        c = np.asarray(cells, dtype=np.int64)
        inside = (c >= 0) & (c < len(self.cell_offset))
        return np.where(inside, self.cell_offset[np.where(inside, c, 0)], 0.0)

    def logit(self, mag: Any, cells: Any = None) -> np.ndarray:
        m = np.atleast_1d(np.asarray(mag, dtype=np.float64))
        return self.coef[0] + self.coef[1] * (m - self.pivot) + self._offsets(cells, len(m))

    def rate(self, mag: Any, cells: Any = None) -> np.ndarray:
        """Probability of a secure redshift at each magnitude (in each cell)."""
        m = np.atleast_1d(np.asarray(mag, dtype=np.float64))
        if not self.fitted:
            return np.ones(len(m))
        return _sigmoid(self.logit(m, cells))

    def logit_error(self, mag: Any) -> np.ndarray:
        """Standard error of the magnitude curve's logit (delta method on ``cov``)."""
        m = np.atleast_1d(np.asarray(mag, dtype=np.float64))
        g = np.stack([np.ones_like(m), m - self.pivot], axis=1)
        return np.sqrt(np.einsum("ij,jk,ik->i", g, self.cov, g))

    def rate_interval(self, mag: Any, n_sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper rate at ±``n_sigma`` on the logit scale (stays inside 0..1)."""
        m = np.atleast_1d(np.asarray(mag, dtype=np.float64))
        if not self.fitted:
            return np.ones(len(m)), np.ones(len(m))
        centre, err = self.logit(m), self.logit_error(m)
        return _sigmoid(centre - n_sigma * err), _sigmoid(centre + n_sigma * err)

    def hours_per_secure(self, mag: Any, exposure: ExposureModel, cells: Any = None) -> np.ndarray:
        """Expected telescope hours per secure redshift: an attempt's cost over its success
        probability (the attempts that fail are paid for too)."""
        p = self.rate(mag, cells)
        with np.errstate(divide="ignore"):
            return np.where(p > 0, exposure.cost(mag) / p, np.inf)

    def curve(self, mags: Any) -> pd.DataFrame:
        """The magnitude curve on a grid: ``mag``, ``rate``, ``rate_low``, ``rate_high`` (±1σ)."""
        m = np.atleast_1d(np.asarray(mags, dtype=np.float64))
        low, high = self.rate_interval(m)
        return pd.DataFrame({"mag": m, "rate": self.rate(m), "rate_low": low, "rate_high": high})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (cells with outcomes only)."""
        with_data = np.flatnonzero(self.cell_n_outcomes > 0)
        return {
            "fitted": self.fitted,
            "pivot_mag": float(self.pivot),
            "intercept": float(self.coef[0]),
            "slope": float(self.coef[1]),
            "covariance": self.cov.tolist(),
            "n_outcomes": int(self.n_outcomes),
            "n_secure": int(self.n_secure),
            "mag_min": float(self.mag_range[0]),
            "mag_max": float(self.mag_range[1]),
            "cell_prior_sigma": float(self.cell_prior_sigma),
            "cells": [
                {
                    "cell": int(c),
                    "n_outcomes": int(self.cell_n_outcomes[c]),
                    "offset": float(self.cell_offset[c]),
                    "offset_error": float(self.cell_offset_error[c]),
                }
                for c in with_data
            ],
        }


def fit_success_model(
    mag: Any,
    secure: Any,
    cells: Any = None,
    n_cells: int | None = None,
    *,
    weights: Any = None,
    cell_prior_sigma: float = 1.0,
    max_iter: int = 100,
) -> SuccessModel:
    """Fit the success rate of observed targets against magnitude (and cell).

    ``mag``: each observed target's magnitude; ``secure``: True for a secure redshift, False
    for a failure (targets not observed carry no information and must be left out).
    ``cells`` (with ``n_cells``) adds per-cell offsets. Logistic regression by Newton's
    method with a weak N(0, 5²) prior on both coefficients, so the fit exists even when every
    outcome agrees; the covariance is the inverse of the penalised Hessian. With no outcome
    at all the returned model is unfitted (every target succeeds).

    ``weights`` (default 1 each) counts an attempt as that many: the likelihood is
    Π p^(w t) (1−p)^(w (1−t)), so attempts of one kind weighted w < 1 shape the curve as much
    as before but tighten it as if there were w times as many (its covariance is the
    inverse of the weighted Hessian). A weight of 0 leaves an attempt out.
    """
    m = np.asarray(mag, dtype=np.float64).ravel()
    y = np.asarray(secure).ravel()
    if len(m) != len(y):
        raise ValueError(f"mag has {len(m)} values and secure {len(y)}")
    w = np.ones(len(m)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if len(w) != len(m):
        raise ValueError(f"weights has {len(w)} values and mag {len(m)}")
    if len(w) and not (np.isfinite(w).all() and w.min() >= 0):
        raise ValueError(f"weights must be finite and >= 0 (row {int(np.argmin(w))})")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("secure must be boolean (True: secure, False: failed)")
        y = y.astype(bool)
    bad = np.flatnonzero(~np.isfinite(m))
    if len(bad):
        raise ValueError(f"mag is not finite at row {int(bad[0])}")
    if not (cell_prior_sigma > 0):
        raise ValueError(f"cell_prior_sigma must be > 0, got {cell_prior_sigma!r}")
    if cells is not None:
        c = np.asarray(cells, dtype=np.int64).ravel()
        if len(c) != len(m):
            raise ValueError(f"cells has {len(c)} values and mag {len(m)}")
        if n_cells is None:
            raise ValueError("n_cells is needed with cells")
        if len(c) and (c.min() < 0 or c.max() >= n_cells):
            raise ValueError(f"cells must lie in 0..{n_cells - 1}")
    if len(m) == 0:
        n = n_cells or 0
        return SuccessModel(
            cell_offset=np.zeros(n),
            cell_offset_error=np.full(n, cell_prior_sigma),
            cell_n_outcomes=np.zeros(n, np.int64),
            cell_prior_sigma=cell_prior_sigma,
        )

    pivot = float(np.median(m))
    X = np.stack([np.ones_like(m), m - pivot], axis=1)
    t = y.astype(np.float64)
    prior = np.eye(2) / _COEF_PRIOR_SIGMA**2
    beta = np.zeros(2)
    for _ in range(max_iter):
        p = _sigmoid(X @ beta)
        grad = X.T @ (w * (t - p)) - prior @ beta
        hess = X.T @ (X * (w * p * (1 - p))[:, None]) + prior
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    p = _sigmoid(X @ beta)
    hess = X.T @ (X * (w * p * (1 - p))[:, None]) + prior
    cov = np.linalg.inv(hess)

    n = int(n_cells) if cells is not None else 0
    offset = np.zeros(n)
    offset_err = np.full(n, cell_prior_sigma)
    counts = np.zeros(n, np.int64)
    if cells is not None:
        c = np.asarray(cells, dtype=np.int64).ravel()
        counts = np.bincount(c, minlength=n)
        base = X @ beta
        inv_var = 1.0 / cell_prior_sigma**2
        for _ in range(max_iter):
            q = _sigmoid(base + offset[c])
            grad = np.bincount(c, weights=w * (t - q), minlength=n) - offset * inv_var
            curv = np.bincount(c, weights=w * q * (1 - q), minlength=n) + inv_var
            step = grad / curv
            offset = offset + step
            if np.max(np.abs(step)) < 1e-10:
                break
        q = _sigmoid(base + offset[c])
        offset_err = 1.0 / np.sqrt(np.bincount(c, weights=w * q * (1 - q), minlength=n) + inv_var)

    return SuccessModel(
        pivot=pivot,
        coef=beta,
        cov=cov,
        n_outcomes=len(m),
        n_secure=int(y.sum()),
        mag_range=(float(m.min()), float(m.max())),
        cell_offset=offset,
        cell_offset_error=offset_err,
        cell_n_outcomes=counts,
        cell_prior_sigma=cell_prior_sigma,
        fitted=True,
    )


def failed_at_depth(
    mag: Any, failed_hours: Any, exposure: ExposureModel, comparable: float = COMPARABLE_DEPTH
) -> np.ndarray:
    """True where a target failed with ``failed_hours`` of exposure and the planned
    exposure at its magnitude is not more than ``comparable`` times that: proposing it
    again would repeat the failure. NaN ``failed_hours`` (never failed) is False."""
    spent = np.asarray(failed_hours, dtype=np.float64)
    planned = exposure.hours(mag)
    with np.errstate(invalid="ignore"):
        return np.isfinite(spent) & (planned <= comparable * spent)


def _poisson_binomial_at_least(p: np.ndarray, need: int) -> float:
    """P(at least ``need`` successes among independent trials with probabilities ``p``)."""
    if need <= 0:
        return 1.0
    dist = np.zeros(len(p) + 1)
    dist[0] = 1.0
    for q in p:
        dist[1:] = dist[1:] * (1 - q) + dist[:-1] * q
        dist[0] *= 1 - q
    return float(dist[need:].sum())


def expected_coverage_gain(
    cells: Any, p_success: Any, cell_weight: Any, need: Any = 1
) -> tuple[float, float]:
    """Expected (newly covered fraction of the sample, newly covered cells) if targets in
    ``cells`` each succeed independently with ``p_success``. ``cell_weight`` is every cell's
    share of the sample; ``need`` (scalar or per cell) the secure spectra a cell still lacks
    to be covered (0 for a covered cell, which gains nothing)."""
    c = np.asarray(cells, dtype=np.int64)
    p = np.asarray(p_success, dtype=np.float64)
    w = np.asarray(cell_weight, dtype=np.float64)
    need_arr = np.broadcast_to(np.asarray(need, dtype=np.int64), w.shape)
    gain = n_new = 0.0
    if len(c) == 0:
        return gain, n_new
    order = np.argsort(c, kind="stable")
    c, p = c[order], p[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    for s, e in zip(starts, np.r_[starts[1:], len(c)], strict=True):
        cell = c[s]
        if need_arr[cell] <= 0:
            continue
        prob = _poisson_binomial_at_least(p[s:e], int(need_arr[cell]))
        gain += w[cell] * prob
        n_new += prob
    return float(gain), float(n_new)


def plan_campaign(
    sources: pd.DataFrame,
    covered: Any,
    cell_weight: Any,
    *,
    strategy: PlanStrategy | str = PlanStrategy.expected_gain,
    success: SuccessModel | None = None,
    exposure: ExposureModel | None = None,
    budget_hours: float | None = None,
    budget_targets: int | None = None,
    mag_column: str = "mag_i",
    mag_limit: float | None = None,
    per_cell: int = 1,
    exclude: Any = None,
    cell_stats: pd.DataFrame | None = None,
    random_state: int | None = None,
) -> pd.DataFrame:
    """The targets of the next campaign, best first.

    ``sources`` as for :func:`~som.calibration.select_targets` (``id``, ``cell``,
    ``distance``, ``mag_column``); ``exclude`` marks rows never to propose (already observed,
    or :func:`failed_at_depth`); ``cell_weight`` each cell's share of the sample.

    Strategies (:class:`~som.vocabulary.PlanStrategy`), all taking up to ``per_cell``
    candidates per uncovered cell: closest to its weight vector first for ``c3r2``, fewest
    expected hours per secure redshift first for ``expected_gain``, brightest first for
    ``brightest``, at random for ``random``:

    - ``c3r2``: :func:`~som.calibration.select_targets`' order (most populated cells first,
      round-robin over cells);
    - ``expected_gain``: by expected coverage gained per hour, ``w_cell · p · Π(1 − p_earlier
      in the cell) / cost``: a faint target in a cell where targets fail is worth less
      than its cell's weight suggests, and a second target only what the first may miss;
    - ``brightest``: cheapest first;
    - ``random``: a random order (``random_state``), the baseline.

    ``c3r2`` stops at the first target beyond the budget, as
    :func:`~som.calibration.select_targets` does; the others fill it, skipping a target that
    does not fit the hours left.

    Adds to :func:`~som.calibration.select_targets`' columns ``p_success``,
    ``hours_per_secure`` (cost / p) and ``expected_gain`` (each target's term above).
    """
    strategy = PlanStrategy(strategy)
    exposure = exposure or ExposureModel()
    success = success or SuccessModel()
    w = np.asarray(cell_weight, dtype=np.float64)
    keep = np.ones(len(sources), dtype=bool)
    if exclude is not None:
        keep &= ~np.asarray(exclude, dtype=bool)
    pool = sources.loc[keep].reset_index(drop=True)
    model_kwargs = {
        "exposure_ref_mag": exposure.ref_mag,
        "exposure_ref_hours": exposure.ref_hours,
        "exposure_slope": exposure.slope,
        "overhead_hours": exposure.overhead_hours,
    }
    if strategy is PlanStrategy.c3r2:
        out = select_targets(
            pool,
            covered,
            cell_stats,
            budget_targets=budget_targets,
            budget_hours=budget_hours,
            mag_column=mag_column,
            mag_limit=mag_limit,
            per_cell=per_cell,
            **model_kwargs,
        )
        return _with_expectations(out, w, success, exposure, mag_column)

    # Every uncovered candidate, per_cell per cell in the strategy's within-cell order, with
    # no budget yet: select_targets validates the input and computes the shared columns.
    if strategy is PlanStrategy.random:
        rng = np.random.default_rng(random_state)
        pool = pool.assign(distance=rng.permutation(len(pool)).astype(np.float64))
    elif strategy is PlanStrategy.brightest:
        pool = pool.assign(distance=pool[mag_column].to_numpy(dtype=np.float64))
    else:
        # Coverage is counted per cell, and the map already says a cell's members share
        # their colours: within a cell, the member with the cheapest expected secure
        # redshift is the one to try first.
        pool_mags = pool[mag_column].to_numpy(dtype=np.float64)
        per_secure = success.hours_per_secure(pool_mags, exposure, pool["cell"].to_numpy())
        pool = pool.assign(distance=np.where(np.isfinite(pool_mags), per_secure, np.nan))
    every = select_targets(
        pool,
        covered,
        cell_stats,
        mag_column=mag_column,
        mag_limit=mag_limit,
        per_cell=per_cell,
        **model_kwargs,
    )
    every = _with_expectations(every, w, success, exposure, mag_column)
    if strategy is PlanStrategy.expected_gain:
        per_hour = every["expected_gain"].to_numpy() / exposure.cost(every[mag_column].to_numpy())
        order = np.lexsort((every["priority"].to_numpy(), -per_hour))
    elif strategy is PlanStrategy.brightest:
        order = np.lexsort((every["priority"].to_numpy(), every[mag_column].to_numpy()))
    else:
        order = np.random.default_rng(random_state).permutation(len(every))
    every = every.iloc[order].reset_index(drop=True)
    if len(every):
        # Distances were replaced by the ordering key above; the real ones are reported.
        every["distance"] = sources.set_index("id").loc[every["id"], "distance"].to_numpy()
    # Unlike c3r2's strict cut, these fill the budget: a target that does not fit is
    # skipped and cheaper ones after it still go in (their order is by value, not a queue).
    cost = exposure.cost(every[mag_column].to_numpy())
    take = np.zeros(len(every), dtype=bool)
    spent = 0.0
    limit = np.inf if budget_hours is None else budget_hours * (1 + 1e-12)
    max_n = len(every) if budget_targets is None else int(budget_targets)
    for i, hours in enumerate(cost):
        if take.sum() >= max_n:
            break
        if spent + hours <= limit:
            take[i] = True
            spent += hours
    every = every.loc[take].reset_index(drop=True)
    n_take = len(every)
    every["priority"] = np.arange(1, n_take + 1)
    every["cumulative_hours"] = np.cumsum(cost[take])
    return every


def _with_expectations(
    frame: pd.DataFrame,
    cell_weight: np.ndarray,
    success: SuccessModel,
    exposure: ExposureModel,
    mag_column: str,
) -> pd.DataFrame:
    """Success probability, hours per secure redshift and each target's expected gain, in
    the frame's order (earlier targets of a cell are the ones a later one can only add to)."""
    mags = frame[mag_column].to_numpy(dtype=np.float64)
    cells = frame["cell"].to_numpy(dtype=np.int64)
    p = success.rate(mags, cells) if len(frame) else np.zeros(0)
    frame = frame.copy()
    frame["p_success"] = p
    frame["hours_per_secure"] = success.hours_per_secure(mags, exposure, cells)
    # The chance that every earlier target of the same cell failed.
    still_open = np.ones(len(frame))
    missed: dict[int, float] = {}
    for i, (c, q) in enumerate(zip(cells, p, strict=True)):
        still_open[i] = missed.get(int(c), 1.0)
        missed[int(c)] = still_open[i] * (1.0 - q)
    weight = cell_weight[cells] if len(frame) else np.zeros(0)
    frame["expected_gain"] = weight * p * still_open
    return frame


def simulate_campaigns(
    strategy: PlanStrategy | str,
    cells: np.ndarray,
    mags: np.ndarray,
    distance: np.ndarray,
    n_cells: int,
    secure_cells: np.ndarray,
    true_rate: Callable[[np.ndarray], np.ndarray],
    *,
    budget_hours: float,
    n_campaigns: int = 5,
    k: int = 1,
    exposure: ExposureModel | None = None,
    per_cell: int = 1,
    mag_limit: float | None = None,
    random_state: int | None = None,
) -> pd.DataFrame:
    """Observe ``n_campaigns`` campaigns of ``budget_hours`` each, planned by ``strategy``,
    with outcomes drawn from ``true_rate(mag)``; every campaign learns from the outcomes
    before it (``expected_gain`` refits the success model; every strategy skips targets
    already observed).

    ``cells``, ``mags``, ``distance``: the photometric sample (cell −1: unassigned);
    ``secure_cells``: cells of the secure spectra that exist before the first campaign.
    Returns one row per campaign: ``campaign``, ``strategy``, ``n_targets``, ``n_secure``,
    ``hours``, ``fraction_covered`` (of the sample, after it), ``gained`` and
    ``gained_per_hour`` (fraction of the sample newly covered, per hour), and
    ``forecast_gain`` (what :func:`expected_coverage_gain` expected of the plan).
    """
    strategy = PlanStrategy(strategy)
    exposure = exposure or ExposureModel()
    rng = np.random.default_rng(random_state)
    cells = np.asarray(cells, dtype=np.int64)
    mags = np.asarray(mags, dtype=np.float64)
    assigned = cells >= 0
    n_sample = np.bincount(cells[assigned], minlength=n_cells).astype(np.float64)
    weight = n_sample / max(n_sample.sum(), 1.0)
    n_secure = np.bincount(np.asarray(secure_cells, np.int64), minlength=n_cells)
    observed = np.zeros(len(cells), dtype=bool)
    frame = pd.DataFrame(
        {"id": np.arange(len(cells)), "cell": cells, "distance": distance, "mag": mags}
    )
    seen_mag: list[np.ndarray] = []
    seen_ok: list[np.ndarray] = []
    seen_cell: list[np.ndarray] = []
    cell_stats = pd.DataFrame(
        {"count": n_sample, "z_median": np.nan, "z_nmad": np.nan}, index=np.arange(n_cells)
    )
    rows = []
    for campaign in range(1, n_campaigns + 1):
        covered = n_secure >= k
        model = None
        if strategy is PlanStrategy.expected_gain and seen_mag:
            model = fit_success_model(
                np.concatenate(seen_mag),
                np.concatenate(seen_ok),
                np.concatenate(seen_cell),
                n_cells,
            )
        plan = plan_campaign(
            frame,
            covered,
            weight,
            strategy=strategy,
            success=model,
            exposure=exposure,
            budget_hours=budget_hours,
            mag_column="mag",
            mag_limit=mag_limit,
            per_cell=per_cell,
            exclude=observed,
            cell_stats=cell_stats,
            random_state=int(rng.integers(2**31)),
        )
        ids = plan["id"].to_numpy(dtype=np.int64)
        p_true = true_rate(mags[ids])
        forecast, _ = expected_coverage_gain(
            cells[ids], p_true, weight, np.maximum(k - n_secure, 0)
        )
        ok = rng.random(len(ids)) < p_true
        before = float(weight[covered].sum())
        n_secure += np.bincount(cells[ids[ok]], minlength=n_cells)
        observed[ids] = True
        seen_mag.append(mags[ids])
        seen_ok.append(ok)
        seen_cell.append(cells[ids])
        after = float(weight[n_secure >= k].sum())
        hours = float(exposure.cost(mags[ids]).sum())
        rows.append(
            {
                "campaign": campaign,
                "strategy": str(strategy),
                "n_targets": len(ids),
                "n_secure": int(ok.sum()),
                "hours": hours,
                "fraction_covered": after,
                "gained": after - before,
                "gained_per_hour": (after - before) / hours if hours > 0 else 0.0,
                "forecast_gain": forecast,
            }
        )
    return pd.DataFrame(rows)
