"""The redshift distribution n(z) of a sample calibrated through the map.

Named `nofz` rather than `nz` so the module does not share a name with the function
:func:`nz` that `som.calibration` re-exports (`import som.calibration.nz` would then give
the function).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from som.calibration._arrays import (
    as_cells,
    as_edges,
    as_float,
    as_mask,
    as_weights,
    bin_index,
    cell_bin_counts,
    check_n_cells,
    group_order,
    json_safe,
)

#: Mean-redshift requirement of Euclid/LSST-class weak lensing: |Δ<z>| ≤ 0.002 (1 + <z>).
MEAN_Z_REQUIREMENT = 0.002


# --------------------------------------------------------------------------------------
# 5. n(z) of a sample
# --------------------------------------------------------------------------------------


@dataclass
class NzResult:
    """The redshift distribution of a sample calibrated through the map (see :func:`nz`).

    ``nz`` is a density over ``bins`` with unit area; ``nz_err`` its bootstrap standard
    deviation per bin (NaN without bootstrap). ``mean_z`` is computed from the spectra
    themselves (no binning), ``mean_z_hist`` from the histogram's bin centres; ``mean_z_err``
    is the bootstrap standard deviation of ``mean_z``. ``truth_mean_z``, ``delta_mean_z =
    mean_z - truth_mean_z``, ``requirement = 0.002 (1 + truth_mean_z)`` and ``passes =
    |delta_mean_z| <= requirement`` are filled only when true redshifts were given.
    ``sample_used`` marks the sample members the estimate describes (all assigned members,
    or only those in covered cells with ``gold``) and ``n_sample`` counts them;
    ``n_spec_used`` counts the spectra behind the estimate (in covered cells holding sample
    weight), ``n_spec_outside_bins`` the otherwise usable spectra outside ``bins``;
    ``n_cells_covered`` the cells with at least ``k`` usable spectra.

    ``realisations`` holds the bootstrap n(z), shape ``(n_boot, len(bins) - 1)``, each a
    unit-area density over ``bins`` like ``nz`` (None without bootstrap): RAIL's summarizers
    hand these on as the n(z) ensemble. ``n_eff`` is Kish's effective number of the sample
    used, ``(Σ w)² / Σ w²`` over ``sample_used`` (``n_sample`` when unweighted).
    """

    bins: np.ndarray
    nz: np.ndarray
    nz_err: np.ndarray
    mean_z: float
    mean_z_err: float
    mean_z_hist: float
    uncovered_fraction: float
    n_sample: int
    n_spec_used: int
    n_spec_outside_bins: int
    n_cells_covered: int
    k: int
    gold: bool
    n_boot: int
    truth_mean_z: float | None = None
    delta_mean_z: float | None = None
    requirement: float | None = None
    passes: bool | None = None
    n_eff: float | None = None
    realisations: np.ndarray | None = field(default=None, repr=False)
    sample_used: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self, include_realisations: bool = False) -> dict[str, Any]:
        """JSON-ready dict (arrays as lists, NaN as None; ``sample_used`` left out, and
        ``realisations`` unless ``include_realisations``: n_boot × n_z numbers would swamp
        an answer that is otherwise a few hundred)."""
        out = {
            "bins": self.bins,
            "nz": self.nz,
            "nz_err": self.nz_err,
            "mean_z": self.mean_z,
            "mean_z_err": self.mean_z_err,
            "mean_z_hist": self.mean_z_hist,
            "uncovered_fraction": self.uncovered_fraction,
            "n_sample": self.n_sample,
            "n_spec_used": self.n_spec_used,
            "n_spec_outside_bins": self.n_spec_outside_bins,
            "n_cells_covered": self.n_cells_covered,
            "k": self.k,
            "gold": self.gold,
            "n_boot": self.n_boot,
            "truth_mean_z": self.truth_mean_z,
            "delta_mean_z": self.delta_mean_z,
            "requirement": self.requirement,
            "passes": self.passes,
            "n_eff": self.n_eff,
        }
        if include_realisations:
            out["realisations"] = self.realisations
        return json_safe(out)


def _nz_from_cells(
    w_cov: np.ndarray, hist: np.ndarray, mean_c: np.ndarray, widths: np.ndarray
) -> tuple[np.ndarray, float]:
    """n(z) and mean z from covered-cell weights ``(C,)``, raw histograms ``(C, B)`` and
    per-cell mean spectroscopic z ``(C,)``.

    Each histogram is made a unit-area density *before* weighting: weighting raw histograms
    would weight every cell by its number of spectra as well as by its share of the sample.
    """
    total = w_cov.sum()
    if total <= 0:
        return np.full(hist.shape[1], np.nan), float("nan")
    # Σ_c w_c H_c / (S_c Δz) without forming the normalised (C, B) matrix; every covered
    # cell has S_c > 0 (at least k spectra with weight > 0 inside the bins).
    n_of_z = ((w_cov / hist.sum(axis=1)) @ hist) / widths / total
    return n_of_z, float(w_cov @ mean_c / total)


def nz(
    sample_cells: Any,
    n_cells: int,
    spec_cells: Any,
    spec_z: Any,
    bins: Any,
    *,
    sample_weights: Any = None,
    sample_counts: Any = None,
    spec_weights: Any = None,
    spec_secure: Any = None,
    k: int = 1,
    gold: bool = False,
    n_boot: int = 200,
    random_state: Any = None,
    truth_z: Any = None,
) -> NzResult:
    """Redshift distribution of a sample through the map: n(z) = Σ_c w_c p(z|c) / Σ_c w_c.

    ``w_c`` is the sample's (weighted) number of members in cell ``c``; ``p(z|c)`` the
    histogram of the cell's spectra (weighted by ``spec_weights``), each normalised to unit
    area before it is weighted. Spectra used: secure (``spec_secure``), assigned, finite
    redshift inside ``bins``, weight > 0; spectra outside the bins are counted in
    ``n_spec_outside_bins`` and otherwise ignored, so choose bins spanning the redshifts of
    interest. A cell is covered when it holds at least ``k`` used spectra.

    Uncovered cells, whose share of the sample weight is reported as ``uncovered_fraction``:

    - ``gold=False`` (default): the estimate stands for the *whole* assigned sample. The
      covered cells are renormalised to unit total weight, which assumes the uncovered part
      of the sample has the same n(z) as the covered part; this assumption is what
      ``uncovered_fraction`` quantifies. ``truth_z`` is compared over the whole sample, so
      the bias it reports includes the cost of that assumption.
    - ``gold=True`` (KiDS "gold" selection): sample members in uncovered cells are removed
      from the sample. The n(z) numbers are the same, but they describe the smaller gold
      sample (``sample_used``, ``n_sample``); the bootstrap resamples and ``truth_z`` is
      compared over the gold sample only.

    The mean redshift ``mean_z`` is the weighted mean of the per-cell mean spectroscopic
    redshifts (``Σ_c w_c <z_spec>_c / Σ_c w_c``), free of binning; ``mean_z_hist`` is the
    mean of the histogram.

    Bootstrap (``n_boot`` > 0): every realisation resamples with replacement the sample
    (whole or gold) and, independently within every covered cell, that cell's spectra, all
    from one ``numpy.random.Generator`` seeded by ``random_state``. A cell with one spectrum
    contributes no spectroscopic variance, a known limit of the bootstrap with few spectra.
    ``nz_err`` and ``mean_z_err`` are the standard deviations (ddof=1) over realisations.
    Unweighted, the sample is resampled as a multinomial draw of cell counts (cost per
    realisation independent of the sample size); weighted, member by member (about 0.2 s
    per realisation per 10^7 members).

    ``sample_counts`` (``(n_cells,)`` members per cell, with ``sample_cells=None``) gives
    the sample as an occupation instead of one entry per member (``som.occupation``: a
    survey of 10^9 galaxies): the same n(z), counts and bootstrap as the unweighted sample
    with those members, without the members.

    ``truth_z`` (true redshift of every sample member, e.g. in a simulation) gives
    ``delta_mean_z``, ``requirement = 0.002 (1 + <z_true>)`` and ``passes``.

    Raises ValueError for mismatched lengths, out-of-range cells, or when no sample weight
    lies in a covered cell (n(z) would be undefined).
    """
    n_cells = check_n_cells(n_cells)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    edges = as_edges(bins, "bins")
    widths = np.diff(edges)
    n_bins = len(widths)

    by_count = sample_counts is not None
    if by_count:
        if sample_cells is not None or sample_weights is not None or truth_z is not None:
            raise ValueError("sample_counts replaces sample_cells, sample_weights and truth_z")
        per_cell = np.asarray(sample_counts)
        if per_cell.shape != (n_cells,) or not np.issubdtype(per_cell.dtype, np.integer):
            raise ValueError(f"sample_counts must be {n_cells} integers (one per cell)")
        if (per_cell < 0).any():
            raise ValueError(f"sample_counts: cell {int(np.argmax(per_cell < 0))} is negative")
        # one entry per occupied cell, weighted by its members; a member stays a unit
        sample_cell = np.flatnonzero(per_cell > 0)
        sample_w = per_cell[sample_cell].astype(np.float64)
    else:
        sample_cell = as_cells(sample_cells, n_cells, "sample_cells")
        sample_w = as_weights(sample_weights, len(sample_cell), "sample_weights", "sample_cells")
    spec_cell = as_cells(spec_cells, n_cells, "spec_cells")
    z_spec = as_float(spec_z, len(spec_cell), "spec_z", "spec_cells")
    spec_w = as_weights(spec_weights, len(spec_cell), "spec_weights", "spec_cells")
    secure = as_mask(spec_secure, len(spec_cell), "spec_secure", "spec_cells")
    truth = (
        None if truth_z is None else as_float(truth_z, len(sample_cell), "truth_z", "sample_cells")
    )

    spec_bin = bin_index(z_spec, edges)
    candidate = secure & (spec_cell >= 0) & np.isfinite(z_spec) & (spec_w > 0)
    used = candidate & (spec_bin >= 0)
    n_outside = int((candidate & (spec_bin < 0)).sum())
    counts = np.bincount(spec_cell[used], minlength=n_cells)
    covered = counts >= k

    assigned = sample_cell >= 0
    w_cell = np.bincount(sample_cell[assigned], weights=sample_w[assigned], minlength=n_cells)
    total_w = w_cell.sum()
    if total_w <= 0:
        raise ValueError("sample_cells: no sample member with weight > 0 is assigned to a cell")
    uncovered_fraction = float(w_cell[~covered].sum() / total_w)
    cov_idx = np.flatnonzero(covered & (w_cell > 0))
    if len(cov_idx) == 0:
        raise ValueError(
            "no sample weight falls in a covered cell: n(z) is undefined "
            f"(k={k}, {int(covered.sum())} covered cells)"
        )

    population = assigned.copy()
    if gold:
        population[assigned] &= covered[sample_cell[assigned]]

    # Compress to the covered cells that carry sample weight: C rows instead of n_cells.
    to_c = np.full(n_cells, -1, dtype=np.int64)
    to_c[cov_idx] = np.arange(len(cov_idx))
    in_cov = np.zeros(len(spec_cell), dtype=bool)
    in_cov[used] = to_c[spec_cell[used]] >= 0
    spec_rows = np.flatnonzero(in_cov)
    s_c = to_c[spec_cell[spec_rows]]
    order = np.argsort(s_c, kind="stable")
    spec_rows, s_c = spec_rows[order], s_c[order]
    s_z, s_w, s_b = z_spec[spec_rows], spec_w[spec_rows], spec_bin[spec_rows]
    n_c = len(cov_idx)

    def cell_hist_mean(zz, ww, bb):
        hist = cell_bin_counts(s_c, bb, ww, n_c, n_bins)
        mean_c = np.bincount(s_c, weights=ww * zz, minlength=n_c) / np.bincount(
            s_c, weights=ww, minlength=n_c
        )
        return hist, mean_c

    hist, mean_c = cell_hist_mean(s_z, s_w, s_b)
    n_of_z, mean_z = _nz_from_cells(w_cell[cov_idx], hist, mean_c, widths)
    centres = 0.5 * (edges[:-1] + edges[1:])
    mean_z_hist = float(np.sum(n_of_z * widths * centres))

    nz_err = np.full(n_bins, np.nan)
    mean_z_err = float("nan")
    boot_nz = None
    if n_boot > 0:
        rng = np.random.default_rng(random_state)
        pop_cells = sample_cell[population]
        pop_w = sample_w[population]
        unweighted = sample_weights is None
        if by_count:
            pop_counts = np.bincount(pop_cells, weights=pop_w, minlength=n_cells).astype(np.int64)
            n_pop = int(pop_counts.sum())
        else:
            n_pop = len(pop_cells)
            pop_counts = np.bincount(pop_cells, minlength=n_cells)
        pvals = pop_counts / n_pop
        if not unweighted:
            # Members sorted by cell, so a resample's multiplicities sum per cell by reduceat:
            # several times faster on 10^7 rows than gathering cells and weights per draw.
            pop_occ = np.flatnonzero(pop_counts)
            pop_starts = np.cumsum(pop_counts[pop_occ]) - pop_counts[pop_occ]
            pop_w_sorted = pop_w[group_order(pop_cells, n_cells)]
            idx_dtype = np.int32 if n_pop < np.iinfo(np.int32).max else np.int64
        starts = np.searchsorted(s_c, np.arange(n_c))
        sizes = np.bincount(s_c, minlength=n_c)
        row_start, row_size = starts[s_c], sizes[s_c]
        boot_nz = np.empty((n_boot, n_bins))
        boot_mean = np.empty(n_boot)
        for i in range(n_boot):
            if unweighted:
                # Resampling N unit-weight members is a multinomial draw of cell counts.
                w_b = rng.multinomial(n_pop, pvals).astype(np.float64)
            else:
                multiplicity = np.bincount(
                    rng.integers(0, n_pop, n_pop, dtype=idx_dtype), minlength=n_pop
                )
                w_b = np.zeros(n_cells)
                w_b[pop_occ] = np.add.reduceat(pop_w_sorted * multiplicity, pop_starts)
            j = row_start + (rng.random(len(s_c)) * row_size).astype(np.int64)
            h_b, m_b = cell_hist_mean(s_z[j], s_w[j], s_b[j])
            boot_nz[i], boot_mean[i] = _nz_from_cells(w_b[cov_idx], h_b, m_b, widths)
        if n_boot > 1:
            nz_err = np.nanstd(boot_nz, axis=0, ddof=1)
            mean_z_err = float(np.nanstd(boot_mean, ddof=1))

    pop_weights = sample_w[population]
    sum_w2 = float(np.sum(pop_weights**2))
    n_eff = float(np.sum(pop_weights) ** 2 / sum_w2) if sum_w2 > 0 else 0.0
    n_sample = int(population.sum())
    if by_count:  # unit-weight members: N_eff is their number
        n_eff = n_sample = int(pop_weights.sum())

    truth_mean = delta = requirement = passes = None
    if truth is not None:
        t, tw = truth[population], sample_w[population]
        bad = ~np.isfinite(t)
        if bad.any():
            row = int(np.flatnonzero(population)[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"truth_z must be finite for the sample used; row {row} is {truth[row]}"
            )
        truth_mean = float(np.sum(tw * t) / np.sum(tw))
        delta = mean_z - truth_mean
        requirement = MEAN_Z_REQUIREMENT * (1.0 + truth_mean)
        passes = bool(abs(delta) <= requirement)

    return NzResult(
        bins=edges,
        nz=n_of_z,
        nz_err=nz_err,
        mean_z=mean_z,
        mean_z_err=mean_z_err,
        mean_z_hist=mean_z_hist,
        uncovered_fraction=uncovered_fraction,
        n_sample=n_sample,
        n_spec_used=len(spec_rows),
        n_spec_outside_bins=n_outside,
        n_cells_covered=int(covered.sum()),
        k=int(k),
        gold=bool(gold),
        n_boot=int(n_boot),
        truth_mean_z=truth_mean,
        delta_mean_z=delta,
        requirement=requirement,
        passes=passes,
        n_eff=n_eff,
        realisations=boot_nz,
        sample_used=population,
    )
