"""Redshift calibration through a self-organising map (Masters et al. 2015, C3R2, DES SOMPZ).

Pure functions over numpy arrays and pandas frames. Nothing here trains a map, and only
:func:`fuzzy_redshift` applies one: every other input is a *cell assignment*, an integer in
``0 .. n_cells - 1`` (row-major, ``cell = row * n_cols + col``) or ``-1`` for a source that
has no cell, which every function here ignores.

The pieces, in the order a calibration uses them:

- per-cell statistics and p(z|cell) histograms: :func:`cell_statistics`, :func:`cell_pz`;
- spectroscopic coverage of the map and its gaps: :func:`cell_spec_counts`,
  :func:`covered_cells`, :func:`coverage_summary`, :func:`gaps`;
- spectroscopic targets for the gaps, C3R2-style: :func:`select_targets`;
- the follow-up loop: a success rate learned from campaigns' outcomes, the cost of a secure
  redshift, the next campaign by expected coverage gained per hour, forecasts and simulated
  campaigns: :func:`fit_success_model`, :func:`plan_campaign`,
  :func:`expected_coverage_gain`, :func:`simulate_campaigns` (:mod:`~som.calibration.followup`);
- cells without spectroscopy borrowing from the nearest labelled cell on the map:
  :func:`fill_unlabelled_cells`;
- the redshift distribution of a sample: :func:`nz`;
- the Masters et al. (2015) spectroscopic-sampling experiment: :func:`sampling_experiment`,
  :func:`first_passing_n`;
- cells grouped by hierarchical clustering, KiDS's quality control of the groups and the gold
  sample that survives it (Wright et al. 2020): :func:`group_cells`, :func:`choose_n_groups`,
  :func:`quality_control`, :func:`gold_selection`;
- a per-galaxy redshift from the labelled cells around its best cell, weighted by fuzzy
  membership: :func:`fuzzy_redshift` (the one function here that applies a map: it needs
  the galaxy's distance to several cells' weights, which a cell assignment has lost).

Conventions: redshifts are plain floats, magnitudes AB, weights non-negative floats
(``None`` means every row weighs 1). Histogram bins are given as edges, strictly increasing;
as in :func:`numpy.histogram` a value equal to the last edge falls in the last bin and
values outside the edges are not counted.

Modules by job, every public name re-exported here: :mod:`~som.calibration.cells` (per-cell
statistics and p(z), spectroscopic counts, fuzzy redshift, filling unlabelled cells),
:mod:`~som.calibration.coverage` (coverage, gaps, targets), :mod:`~som.calibration.nofz`
(n(z) of a sample), :mod:`~som.calibration.experiment` (the sampling experiment),
:mod:`~som.calibration.groups` (cell groups, quality control, gold selection).
"""

from som.calibration.cells import (
    NMAD_SCALE,
    FilledCells,
    cell_pz,
    cell_spec_counts,
    cell_statistics,
    covered_cells,
    fill_unlabelled_cells,
    fuzzy_redshift,
    map_spacing2,
)
from som.calibration.coverage import (
    HISTORY_MAG_EDGES,
    CoverageSummary,
    cell_mag_histogram,
    coverage_summary,
    gaps,
    history_mag_bins,
    select_targets,
)
from som.calibration.experiment import first_passing_n, sampling_experiment
from som.calibration.followup import (
    COMPARABLE_DEPTH,
    ExposureModel,
    SuccessModel,
    expected_coverage_gain,
    failed_at_depth,
    fit_success_model,
    logistic_rate,
    plan_campaign,
    simulate_campaigns,
)
from som.calibration.groups import (
    GoldSelection,
    NGroupsChoice,
    QualityControl,
    choose_n_groups,
    gold_selection,
    group_cells,
    quality_control,
)
from som.calibration.nofz import MEAN_Z_REQUIREMENT, NzResult, nz

__all__ = [
    "COMPARABLE_DEPTH",
    "HISTORY_MAG_EDGES",
    "cell_mag_histogram",
    "history_mag_bins",
    "MEAN_Z_REQUIREMENT",
    "ExposureModel",
    "SuccessModel",
    "expected_coverage_gain",
    "failed_at_depth",
    "fit_success_model",
    "logistic_rate",
    "plan_campaign",
    "simulate_campaigns",
    "NMAD_SCALE",
    "CoverageSummary",
    "FilledCells",
    "GoldSelection",
    "NGroupsChoice",
    "NzResult",
    "QualityControl",
    "cell_pz",
    "cell_spec_counts",
    "cell_statistics",
    "choose_n_groups",
    "coverage_summary",
    "covered_cells",
    "fill_unlabelled_cells",
    "first_passing_n",
    "fuzzy_redshift",
    "gaps",
    "gold_selection",
    "group_cells",
    "map_spacing2",
    "nz",
    "quality_control",
    "sampling_experiment",
    "select_targets",
]
