"""Deep/wide SOM redshift calibration (DES SOMPZ: Buchs+2019, Myles+2021, Campos+2024).

Two maps: a *deep* map (c, many low-noise bands) and a *wide* map (ĉ, the survey's own
noisy bands). Every input is a cell assignment (int, ``-1`` = none, ignored), as in
:mod:`som.calibration`; nothing here trains or applies a map.

    n(z|b) = Σ_{ĉ ∈ b} p(ĉ|b) Σ_c p(z|c) p(c|ĉ)

The pieces: :func:`transfer_matrix` (p(c|ĉ) from a transfer catalogue),
:func:`redshift_in_cells` (p(z|c) from spectra), :func:`wide_occupation` (p(ĉ)),
:func:`wide_cell_redshift` and :func:`assign_bins` (tomographic bins by a wide cell's mean
or modal redshift, or by a galaxy's photo-z), :func:`spec_bin_fractions` (a spectrum's bin
membership from its galaxy's injections), :func:`deep_wide_nz` (bin-conditioned n(z) per
bin) and :func:`nz_ensemble` (realisations: bootstrap over spectra or deep galaxies, or a
3sDir-like Dirichlet draw).

Modules by job, every public name re-exported here: :mod:`~som.deepwide.cells` (the pieces
and input checks), :mod:`~som.deepwide.nz` (bin-conditioned n(z) per bin),
:mod:`~som.deepwide.ensemble` (realisations and their summaries),
:mod:`~som.deepwide.pipeline` (:class:`DeepWideCalibration`: features, both maps and the
n(z) from catalogues), :mod:`~som.deepwide.saved` (a fitted calibration saved and loaded),
:mod:`~som.deepwide.injection` (:func:`inject_wide_noise`: a transfer catalogue from any
deep catalogue, its galaxies re-observed at the wide survey's depth).
"""

from som.deepwide.cells import (
    CellRedshifts,
    assign_bins,
    redshift_in_cells,
    spec_bin_fractions,
    transfer_matrix,
    wide_cell_redshift,
    wide_occupation,
)
from som.deepwide.ensemble import METHODS, DeepWideEnsemble, nz_ensemble
from som.deepwide.injection import inject_wide_noise
from som.deepwide.nz import DeepWideNz, deep_wide_nz
from som.deepwide.pipeline import DeepWideCalibration

__all__ = [
    "METHODS",
    "DeepWideEnsemble",
    "nz_ensemble",
    "CellRedshifts",
    "DeepWideCalibration",
    "DeepWideNz",
    "assign_bins",
    "deep_wide_nz",
    "inject_wide_noise",
    "redshift_in_cells",
    "spec_bin_fractions",
    "transfer_matrix",
    "wide_cell_redshift",
    "wide_occupation",
]
