"""The Masters et al. (2015) spectroscopic-sampling experiment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from som.calibration._arrays import as_cells, as_edges, as_float, bin_index, check_n_cells
from som.calibration.cells import cell_statistics
from som.calibration.nofz import MEAN_Z_REQUIREMENT

_STRATEGIES = ("random", "systematic", "uniform")


# --------------------------------------------------------------------------------------
# 6. the Masters et al. (2015) spectroscopic-sampling experiment
# --------------------------------------------------------------------------------------


def _spread_order(
    cells: np.ndarray, n_cells: int, n_take: int, rng: np.random.Generator, uniform: bool
) -> np.ndarray:
    """Indices of ``n_take`` galaxies, the first a random galaxy from each occupied cell,
    most populated cells first (ties in random order), as a gap-filling survey would take
    them. After that, ``uniform`` keeps going round the cells in the same order (a second
    from every cell before a third from any); otherwise the rest are drawn at random from
    the galaxies not yet taken, i.e. in proportion to occupation."""
    u = rng.random(len(cells))
    by_cell = np.lexsort((u, cells))
    sorted_cells = cells[by_cell]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_cells)) + 1]
    sizes = np.diff(np.r_[starts, len(sorted_cells)])
    rank = np.arange(len(cells)) - np.repeat(starts, sizes)
    occupation = np.bincount(cells, minlength=n_cells)
    cell_position = np.empty(n_cells, dtype=np.int64)
    cell_position[np.lexsort((rng.random(n_cells), -occupation))] = np.arange(n_cells)
    if uniform:
        key = rank * n_cells + cell_position[sorted_cells]
    else:
        later = rank > 0
        key = cell_position[sorted_cells]
        key[later] = n_cells + rng.permutation(int(later.sum()))
    # Only the first n_take are needed: a partition is O(N) where a full sort is not.
    n_take = min(n_take, len(key))
    part = np.argpartition(key, n_take - 1)[:n_take]
    return by_cell[part[np.argsort(key[part])]]


def sampling_experiment(
    cells: Any,
    z_true: Any,
    n_cells: int,
    tomo_edges: Any,
    n_spec_list: Sequence[int],
    *,
    bin_z: Any = None,
    strategy: str | Sequence[str] = "random",
    n_realisations: int = 100,
    random_state: Any = None,
) -> pd.DataFrame:
    """How many spectra calibrate tomographic mean redshifts? (Masters et al. 2015, sec. 6).

    The photometric sample is every assigned galaxy, with true redshifts ``z_true``.
    Tomographic bins are ``tomo_edges`` over ``bin_z`` (e.g. a photo-z column); by default
    ``bin_z`` is the SOM photo-z, the median ``z_true`` of each galaxy's cell, so that every
    bin is a union of cells.

    For each realisation and each ``N`` in ``n_spec_list`` a spectroscopic sample of ``N``
    galaxies (true redshifts known) is drawn:

    - ``"random"``: ``N`` galaxies at random from the whole sample, as a survey ignoring the
      map would;
    - ``"systematic"``: spectra spread over the map, as Masters et al. propose: a random
      galaxy from each of the ``N`` most populated cells (ties in random order, like
      :func:`select_targets`); once every occupied cell has one, the rest at random from
      the remaining galaxies, so that extra spectra follow the occupation (as existing
      surveys plus C3R2-style gap filling would);
    - ``"uniform"``: as ``"systematic"`` but always round the cells, a second from every
      cell before a third from any. Beyond one per cell this spends spectra on sparsely
      occupied cells and does worse than occupation-proportional sampling when the
      within-cell scatter dominates: it is here to show that.

    Samples for the ``N`` of one realisation are nested (prefixes of one draw), which keeps
    the trend with ``N`` smooth. Each bin's mean redshift is then estimated through the map,
    ``Σ_c w_bc <z_spec>_c / Σ_c w_bc`` over cells holding spectra (``w_bc`` = galaxies of bin
    ``b`` in cell ``c``; cells without spectra dropped), and compared with the true mean of the
    bin.

    Returns one row per (strategy, n_spec, tomo_bin): ``z_lo``, ``z_hi``, ``n_galaxies``,
    ``z_mean_true``, ``bias_mean`` and ``bias_std`` (over realisations), ``bias_rms``,
    ``requirement = 0.002 (1 + z_mean_true)``, ``passes_fraction`` (share of realisations with
    ``|bias| <= requirement``; a realisation with no spectrum in the bin's cells fails),
    ``uncovered_fraction_mean`` (mean share of the bin's galaxies in cells without spectra)
    and ``n_realisations``. Empty tomographic bins are left out.
    """
    n_cells = check_n_cells(n_cells)
    c = as_cells(cells, n_cells, "cells")
    zt = as_float(z_true, len(c), "z_true", "cells")
    edges = as_edges(tomo_edges, "tomo_edges")
    strategies = [strategy] if isinstance(strategy, str) else list(strategy)
    for s in strategies:
        if s not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}, got {s!r}")
    if (
        isinstance(n_realisations, bool)
        or not isinstance(n_realisations, (int, np.integer))
        or n_realisations < 1
    ):
        raise ValueError(f"n_realisations must be a positive integer, got {n_realisations!r}")

    assigned = c >= 0
    bad = assigned & ~np.isfinite(zt)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"z_true must be finite for assigned galaxies; row {row} is {zt[row]}")
    if bin_z is None:
        stats = cell_statistics(c, zt, n_cells)
        bz_all = np.full(len(c), np.nan)
        bz_all[assigned] = stats["z_median"].to_numpy()[c[assigned]]
    else:
        bz_all = as_float(bin_z, len(c), "bin_z", "cells")
    ca, za, bza = c[assigned], zt[assigned], bz_all[assigned]
    n_gal = len(ca)

    ns = np.asarray(list(n_spec_list))
    if ns.ndim != 1 or len(ns) == 0 or not np.issubdtype(ns.dtype, np.integer):
        raise ValueError("n_spec_list must be a non-empty sequence of integers")
    if ns.min() < 1 or ns.max() > n_gal:
        raise ValueError(
            f"n_spec_list values must be in 1..{n_gal} (the number of assigned galaxies)"
        )
    ns = np.unique(ns)

    tomo = bin_index(bza, edges)
    n_tomo = len(edges) - 1
    inb = tomo >= 0
    # W[b, c]: galaxies of tomographic bin b in cell c.
    W = (
        np.bincount(tomo[inb] * n_cells + ca[inb], minlength=n_tomo * n_cells)
        .reshape(n_tomo, n_cells)
        .astype(np.float64)
    )
    n_in_bin = W.sum(axis=1)
    true_mean = np.bincount(tomo[inb], weights=za[inb], minlength=n_tomo) / np.where(
        n_in_bin > 0, n_in_bin, 1
    )
    bins_kept = np.flatnonzero(n_in_bin > 0)

    rng = np.random.default_rng(random_state)
    rows = []
    n_max = int(ns.max())
    for strat in strategies:
        bias = np.full((n_realisations, len(ns), n_tomo), np.nan)
        unc = np.full((n_realisations, len(ns), n_tomo), np.nan)
        for r in range(n_realisations):
            if strat == "random":
                draw = rng.choice(n_gal, size=n_max, replace=False)
            else:
                draw = _spread_order(ca, n_cells, n_max, rng, uniform=strat == "uniform")
            cnt = np.zeros(n_cells)
            zsum = np.zeros(n_cells)
            done = 0
            for j, n in enumerate(ns):
                new = draw[done:n]
                cnt += np.bincount(ca[new], minlength=n_cells)
                zsum += np.bincount(ca[new], weights=za[new], minlength=n_cells)
                done = n
                cov = cnt > 0
                mean_c = np.where(cov, zsum / np.where(cov, cnt, 1), 0.0)
                w_cov = W @ cov.astype(np.float64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    est = (W @ mean_c) / w_cov
                    unc[r, j] = 1.0 - w_cov / n_in_bin
                est[w_cov == 0] = np.nan
                bias[r, j] = est - true_mean
        for j, n in enumerate(ns):
            for b in bins_kept:
                bb = bias[:, j, b]
                finite = np.isfinite(bb)
                req = MEAN_Z_REQUIREMENT * (1.0 + true_mean[b])
                rows.append(
                    {
                        "strategy": strat,
                        "n_spec": int(n),
                        "tomo_bin": int(b),
                        "z_lo": edges[b],
                        "z_hi": edges[b + 1],
                        "n_galaxies": int(n_in_bin[b]),
                        "z_mean_true": true_mean[b],
                        "bias_mean": float(bb[finite].mean()) if finite.any() else np.nan,
                        "bias_std": float(bb[finite].std(ddof=1)) if finite.sum() > 1 else np.nan,
                        "bias_rms": float(np.sqrt(np.mean(bb[finite] ** 2)))
                        if finite.any()
                        else np.nan,
                        "requirement": req,
                        "passes_fraction": float(np.mean(finite & (np.abs(bb) <= req))),
                        "uncovered_fraction_mean": float(np.mean(unc[:, j, b])),
                        "n_realisations": n_realisations,
                    }
                )
    return pd.DataFrame(rows)


def first_passing_n(df: pd.DataFrame, min_pass_fraction: float = 0.68) -> pd.DataFrame:
    """Smallest number of spectra meeting the mean-redshift requirement, per strategy and bin.

    ``df`` is the output of :func:`sampling_experiment`. A bin passes at ``N`` when at least
    ``min_pass_fraction`` of the realisations have ``|bias| <= requirement`` (0.68: the bias
    is within the requirement at about one sigma). ``first_n`` is the smallest tested ``N``
    from which the bin passes at *every* larger tested ``N`` too, so a lucky small ``N`` does
    not count; ``<NA>`` when the largest tested ``N`` fails. A strategy as a whole needs the
    largest ``first_n`` over its bins.
    """
    for col in ("strategy", "n_spec", "tomo_bin", "passes_fraction"):
        if col not in df.columns:
            raise ValueError(f"df is missing column {col!r}")
    if not 0 < min_pass_fraction <= 1:
        raise ValueError(f"min_pass_fraction must be in (0, 1], got {min_pass_fraction!r}")
    out = []
    for (strat, b), g in df.groupby(["strategy", "tomo_bin"], sort=True):
        g = g.sort_values("n_spec")
        ok = g["passes_fraction"].to_numpy() >= min_pass_fraction
        # Passing from index i onwards: every later entry passes too.
        tail_ok = np.flip(np.logical_and.accumulate(np.flip(ok)))
        idx = np.flatnonzero(tail_ok)
        first = int(g["n_spec"].to_numpy()[idx[0]]) if len(idx) else pd.NA
        out.append({"strategy": strat, "tomo_bin": int(b), "first_n": first})
    result = pd.DataFrame(out, columns=["strategy", "tomo_bin", "first_n"])
    result["first_n"] = result["first_n"].astype("Int64")
    return result
