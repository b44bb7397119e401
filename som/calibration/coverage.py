"""Spectroscopic coverage of the map, its gaps, and C3R2-style targets for the gaps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from som.calibration._arrays import (
    as_cells,
    as_covered,
    as_float,
    as_weights,
    bin_index,
    check_n_cells,
    edges_from,
    json_safe,
)
from som.calibration.cells import STAT_COLUMNS


@dataclass
class CoverageSummary:
    """How much of a photometric sample sits in spectroscopically covered cells.

    ``fraction_cells_covered`` is over all cells of the map; ``fraction_occupied_cells_covered``
    over the cells the sample occupies; ``fraction_galaxies_covered`` is the (weighted) share
    of the assigned sample living in covered cells. ``by_magnitude`` / ``by_redshift`` hold,
    per bin (``bin_lo``, ``bin_hi``): ``n_galaxies``, ``weight``, ``n_galaxies_covered``,
    ``weight_covered`` and ``fraction_covered`` (weighted; NaN for an empty bin), or are None
    when no magnitudes / redshifts were given. Unassigned galaxies are counted only in
    ``n_unassigned``.
    """

    n_cells: int
    n_cells_occupied: int
    n_cells_covered: int
    n_cells_occupied_covered: int
    fraction_cells_covered: float
    fraction_occupied_cells_covered: float
    fraction_galaxies_covered: float
    n_galaxies: int
    n_unassigned: int
    by_magnitude: pd.DataFrame | None = None
    by_redshift: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (frames as lists of records, NaN as None)."""
        out = {
            name: getattr(self, name)
            for name in (
                "n_cells",
                "n_cells_occupied",
                "n_cells_covered",
                "n_cells_occupied_covered",
                "fraction_cells_covered",
                "fraction_occupied_cells_covered",
                "fraction_galaxies_covered",
                "n_galaxies",
                "n_unassigned",
            )
        }
        out["by_magnitude"] = None if self.by_magnitude is None else self.by_magnitude
        out["by_redshift"] = None if self.by_redshift is None else self.by_redshift
        return json_safe(out)


def _coverage_by_bin(
    values: np.ndarray, edges: np.ndarray, in_covered: np.ndarray, w: np.ndarray
) -> pd.DataFrame:
    n_bins = len(edges) - 1
    b = bin_index(values, edges)
    inside = b >= 0
    bi, cov, wi = b[inside], in_covered[inside], w[inside]
    n_gal = np.bincount(bi, minlength=n_bins)
    weight = np.bincount(bi, weights=wi, minlength=n_bins)
    n_cov = np.bincount(bi[cov], minlength=n_bins)
    w_cov = np.bincount(bi[cov], weights=wi[cov], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(weight > 0, w_cov / weight, np.nan)
    return pd.DataFrame(
        {
            "bin_lo": edges[:-1],
            "bin_hi": edges[1:],
            "n_galaxies": n_gal,
            "weight": weight,
            "n_galaxies_covered": n_cov,
            "weight_covered": w_cov,
            "fraction_covered": frac,
        }
    )


def coverage_summary(
    phot_cells: Any,
    covered: Any,
    weights: Any = None,
    mags: Any = None,
    mag_bins: Any = None,
    z: Any = None,
    z_bins: Any = None,
) -> CoverageSummary:
    """Summarise the spectroscopic coverage of a photometric sample.

    ``covered`` is the per-cell boolean from :func:`covered_cells` (its length is the number
    of cells). ``mags`` / ``z`` (one per photometric source; NaN sources are left out of the
    breakdown) give the breakdown by magnitude / redshift; their bins are edges, or a number
    of equal bins over the finite values (default 10).
    """
    cov = as_covered(covered)
    n_cells = len(cov)
    c = as_cells(phot_cells, n_cells, "phot_cells")
    w = as_weights(weights, len(c), "weights", "phot_cells")
    assigned = c >= 0
    ca, wa = c[assigned], w[assigned]
    count = np.bincount(ca, minlength=n_cells)
    occ_w = np.bincount(ca, weights=wa, minlength=n_cells)
    occupied = count > 0
    total_w = occ_w.sum()
    in_cov = np.zeros(len(c), dtype=bool)
    in_cov[assigned] = cov[ca]

    def breakdown(values: Any, bins: Any, name: str, bins_name: str) -> pd.DataFrame | None:
        if values is None:
            if bins is not None and not isinstance(bins, (int, np.integer)):
                raise ValueError(f"{bins_name} given without {name}")
            return None
        v = as_float(values, len(c), name, "phot_cells")
        edges = edges_from(bins, v[assigned], bins_name)
        return _coverage_by_bin(v[assigned], edges, in_cov[assigned], wa)

    n_occ = int(occupied.sum())
    n_occ_cov = int((occupied & cov).sum())
    return CoverageSummary(
        n_cells=n_cells,
        n_cells_occupied=n_occ,
        n_cells_covered=int(cov.sum()),
        n_cells_occupied_covered=n_occ_cov,
        fraction_cells_covered=float(cov.sum() / n_cells),
        fraction_occupied_cells_covered=float(n_occ_cov / n_occ) if n_occ else float("nan"),
        fraction_galaxies_covered=float(occ_w[cov].sum() / total_w)
        if total_w > 0
        else float("nan"),
        n_galaxies=int(assigned.sum()),
        n_unassigned=int((~assigned).sum()),
        by_magnitude=breakdown(mags, mag_bins, "mags", "mag_bins"),
        by_redshift=breakdown(z, z_bins, "z", "z_bins"),
    )


def _check_cell_stats(cell_stats: pd.DataFrame, n_cells: int, columns: Sequence[str]) -> None:
    if not isinstance(cell_stats, pd.DataFrame):
        raise ValueError("cell_stats must be the DataFrame returned by cell_statistics")
    if len(cell_stats) != n_cells:
        raise ValueError(f"cell_stats has {len(cell_stats)} rows but the map has {n_cells} cells")
    for col in columns:
        if col not in cell_stats.columns:
            raise ValueError(f"cell_stats is missing column {col!r}")


def gaps(
    phot_cells: Any,
    covered: Any,
    n_cells: int,
    weights: Any = None,
    cell_stats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Occupied but uncovered cells, most populated (by weight) first.

    Columns: ``cell``, ``n_galaxies``, ``weight``, ``fraction`` (share of the assigned
    sample's weight in that cell), ``cumulative_fraction`` (share held by this gap and all
    larger ones: how much of the sample filling the first N gaps would cover). With
    ``cell_stats`` (e.g. photo-z statistics from :func:`cell_statistics`) its redshift
    columns are joined on. Ties are broken by cell index.
    """
    n_cells = check_n_cells(n_cells)
    cov = as_covered(covered, n_cells)
    c = as_cells(phot_cells, n_cells, "phot_cells")
    w = as_weights(weights, len(c), "weights", "phot_cells")
    if cell_stats is not None:
        _check_cell_stats(cell_stats, n_cells, STAT_COLUMNS)
    assigned = c >= 0
    count = np.bincount(c[assigned], minlength=n_cells)
    occ_w = np.bincount(c[assigned], weights=w[assigned], minlength=n_cells)
    total = occ_w.sum()
    gap = np.flatnonzero((count > 0) & ~cov)
    # lexsort sorts by the last key first: weight descending, then cell ascending.
    gap = gap[np.lexsort((gap, -occ_w[gap]))]
    frac = occ_w[gap] / total if total > 0 else np.full(len(gap), np.nan)
    out = pd.DataFrame(
        {
            "cell": gap,
            "n_galaxies": count[gap],
            "weight": occ_w[gap],
            "fraction": frac,
            "cumulative_fraction": np.cumsum(frac),
        }
    )
    if cell_stats is not None:
        for col in STAT_COLUMNS:
            out[col] = cell_stats[col].to_numpy()[gap]
    return out


# --------------------------------------------------------------------------------------
# 4. spectroscopic targets for the gaps (C3R2)
# --------------------------------------------------------------------------------------


def select_targets(
    sources: pd.DataFrame,
    covered: Any,
    cell_stats: pd.DataFrame | None = None,
    *,
    budget_targets: int | None = None,
    budget_hours: float | None = None,
    mag_column: str = "mag_i",
    mag_limit: float | None = None,
    per_cell: int = 1,
    exposure_ref_mag: float = 22.5,
    exposure_ref_hours: float = 1.0,
    exposure_slope: float = 0.8,
    overhead_hours: float = 0.0,
) -> pd.DataFrame:
    """Rank spectroscopic targets that fill the map's gaps, in the manner of C3R2.

    ``sources`` needs columns ``id``, ``cell`` and ``distance`` (distance of the source to its
    cell's weight vector) and ``mag_column``; ``ra``, ``dec`` and every ``mag_*`` column are
    carried through. ``covered`` is the per-cell boolean of :func:`covered_cells`.

    Rules, in order:

    1. only sources in uncovered cells, with a finite ``distance`` and magnitude, and (with
       ``mag_limit``) ``mag <= mag_limit`` are candidates;
    2. cells are ranked by the galaxies they hold, most first: ``cell_stats['count']`` when
       given (the whole photometric sample), else the number of rows of ``sources`` in the
       cell; ties by cell index;
    3. within a cell candidates are ranked by ``distance`` (closest to the weight vector is
       most representative of the cell), ties by magnitude (brighter is cheaper), then by
       row order of ``sources``;
    4. round-robin: the best candidate of every cell, in cell rank, before the second of
       any cell, up to ``per_cell`` per cell;
    5. the list stops at the first target that would exceed ``budget_targets`` or
       ``budget_hours`` (cumulative, overheads included); later, cheaper targets are not
       pulled forward, so the priority order is never broken.

    Exposure model: ``exposure_hours = exposure_ref_hours * 10**(exposure_slope * (mag -
    exposure_ref_mag))`` for the S/N reached at ``exposure_ref_mag`` in ``exposure_ref_hours``.
    The default slope 0.8 is the background-limited regime (S/N ∝ F t^½ / B^½, so t ∝ F^-2 =
    10^(0.8 Δm)), which is where C3R2's faint (i ≈ 22–25) targets are; use 0.4 for the
    source-limited regime (t ∝ F^-1). ``cumulative_hours`` adds ``overhead_hours`` per target.
    Times are per target, as if observed one at a time: multiplexing is the planner's job.

    Returns a frame, one row per target: ``priority`` (1 = first), ``id``, ``ra``, ``dec``
    (when present), the magnitude columns, ``cell``, ``distance``, ``cell_n_galaxies``,
    ``z_expected`` (the cell's ``z_median`` from ``cell_stats``, else NaN), ``z_spread``
    (the cell's ``z_nmad``, else NaN), ``exposure_hours``, ``cumulative_hours``.
    """
    if not isinstance(sources, pd.DataFrame):
        raise ValueError("sources must be a pandas DataFrame")
    for col in ("id", "cell", "distance", mag_column):
        if col not in sources.columns:
            raise ValueError(f"sources is missing column {col!r}")
    cov = as_covered(covered)
    n_cells = len(cov)
    if cell_stats is not None:
        _check_cell_stats(cell_stats, n_cells, ("count", "z_median", "z_nmad"))
    if isinstance(per_cell, bool) or not isinstance(per_cell, (int, np.integer)) or per_cell < 1:
        raise ValueError(f"per_cell must be a positive integer, got {per_cell!r}")
    if budget_targets is not None and (
        isinstance(budget_targets, bool)
        or not isinstance(budget_targets, (int, np.integer))
        or budget_targets < 0
    ):
        raise ValueError(f"budget_targets must be a non-negative integer, got {budget_targets!r}")
    if budget_hours is not None and not (budget_hours >= 0):
        raise ValueError(f"budget_hours must be >= 0, got {budget_hours!r}")
    if not (exposure_ref_hours > 0):
        raise ValueError(f"exposure_ref_hours must be > 0, got {exposure_ref_hours!r}")
    if not (overhead_hours >= 0):
        raise ValueError(f"overhead_hours must be >= 0, got {overhead_hours!r}")

    cells = as_cells(sources["cell"].to_numpy(), n_cells, "sources['cell']")
    dist = as_float(sources["distance"].to_numpy(), len(cells), "sources['distance']", "sources")
    mag = as_float(
        sources[mag_column].to_numpy(), len(cells), f"sources[{mag_column!r}]", "sources"
    )

    assigned = cells >= 0
    if cell_stats is not None:
        cell_n = cell_stats["count"].to_numpy()
    else:
        cell_n = np.bincount(cells[assigned], minlength=n_cells)

    ok = assigned & np.isfinite(dist) & np.isfinite(mag)
    ok[ok] &= ~cov[cells[ok]]
    if mag_limit is not None:
        ok &= mag <= mag_limit
    rows = np.flatnonzero(ok)
    rc, rd, rm = cells[rows], dist[rows], mag[rows]

    # Cell rank: most galaxies first, ties by cell index.
    all_cells = np.arange(n_cells)
    cell_rank = np.empty(n_cells, dtype=np.int64)
    cell_rank[np.lexsort((all_cells, -cell_n))] = all_cells

    # Rank within the cell: distance, then magnitude, then row order.
    order = np.lexsort((rows, rm, rd, rc))
    sc = rc[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sc)) + 1] if len(sc) else np.array([], int)
    sizes = np.diff(np.r_[starts, len(sc)])
    within = np.arange(len(sc)) - np.repeat(starts, sizes)
    keep = within < per_cell
    order, within, sc = order[keep], within[keep], sc[keep]
    # Round-robin: round first, then cell rank.
    rr = np.lexsort((cell_rank[sc], within))
    chosen = rows[order[rr]]

    exposure = exposure_ref_hours * 10.0 ** (exposure_slope * (mag[chosen] - exposure_ref_mag))
    cumulative = np.cumsum(exposure + overhead_hours)
    n_take = len(chosen)
    if budget_targets is not None:
        n_take = min(n_take, int(budget_targets))
    if budget_hours is not None:
        # Tolerance so that a budget equal to the sum of the chosen times is met exactly.
        n_take = min(n_take, int(np.searchsorted(cumulative, budget_hours * (1 + 1e-12), "right")))
    chosen, exposure, cumulative = chosen[:n_take], exposure[:n_take], cumulative[:n_take]

    ch_cells = cells[chosen]
    out = pd.DataFrame({"priority": np.arange(1, n_take + 1)})
    out["id"] = sources["id"].to_numpy()[chosen]
    for col in ("ra", "dec"):
        if col in sources.columns:
            out[col] = sources[col].to_numpy()[chosen]
    mag_cols = [mag_column] + [
        c
        for c in sources.columns
        if isinstance(c, str) and c.startswith("mag_") and c != mag_column
    ]
    for col in mag_cols:
        out[col] = sources[col].to_numpy()[chosen]
    out["cell"] = ch_cells
    out["distance"] = dist[chosen]
    out["cell_n_galaxies"] = np.asarray(cell_n)[ch_cells]
    if cell_stats is not None:
        out["z_expected"] = cell_stats["z_median"].to_numpy()[ch_cells]
        out["z_spread"] = cell_stats["z_nmad"].to_numpy()[ch_cells]
    else:
        out["z_expected"] = np.nan
        out["z_spread"] = np.nan
    out["exposure_hours"] = exposure
    out["cumulative_hours"] = cumulative
    return out


# ----------------------------------------------------------------------------- history
#: The magnitude bins of the coverage history, fixed so that every snapshot of every map is
#: binned alike and any two can be compared: 0.5 mag wide from 18.5 to 25.5, open at both
#: ends (brighter than 18.5 and fainter than 25.5 are the first and last bins), plus one
#: slot for galaxies without a magnitude in the band (see :func:`history_mag_bins`).
HISTORY_MAG_EDGES: tuple[float, ...] = tuple(float(e) for e in np.arange(18.5, 25.51, 0.5))


def history_mag_bins() -> list[tuple[float | None, float | None]]:
    """(low, high) of each slot of :func:`cell_mag_histogram`: None for an open end, and
    (None, None) for the last slot, galaxies without a magnitude."""
    e: list[float | None] = [None, *HISTORY_MAG_EDGES, None]
    return [*zip(e[:-1], e[1:], strict=True), (None, None)]


def cell_mag_histogram(cells: Any, mags: Any, n_cells: int) -> np.ndarray:
    """(n_cells, len(HISTORY_MAG_EDGES) + 2) galaxies per cell and history magnitude slot
    (cells < 0 left out; a NaN magnitude in the last slot)."""
    c = np.asarray(cells, dtype=np.int64).ravel()
    m = np.asarray(mags, dtype=np.float64).ravel()
    if len(c) != len(m):
        raise ValueError(f"cells has {len(c)} values and mags {len(m)}")
    n_slots = len(HISTORY_MAG_EDGES) + 2
    slot = np.where(
        np.isfinite(m), np.searchsorted(HISTORY_MAG_EDGES, m, side="right"), n_slots - 1
    )
    ok = c >= 0
    flat = np.bincount(c[ok] * n_slots + slot[ok], minlength=n_cells * n_slots)
    return flat[: n_cells * n_slots].reshape(n_cells, n_slots)
