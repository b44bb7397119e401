"""A COSMOS-like mock galaxy catalogue: somcal's embedded default data.

``make_mock(n)`` draws galaxies with COSMOS-like i-band counts, a magnitude-dependent
redshift distribution and a type mix that turns bluer at faint magnitudes and high
redshift; it gives each one a COSMOS SED template (Ilbert et al. 2009) with Calzetti
(2000) dust and Madau (1995) intergalactic absorption, observes it through CFHT u*,
HSC g r i z and UltraVISTA (or Euclid NISP) Y J H at COSMOS depths, and imitates a
reference 30-band photo-z and a zCOSMOS-like spectroscopic selection.

Everything it needs ships in ``som/data`` (see ``som/data/LICENSES.md``). The synthetic
colours are computed once per process on a grid of template x E(B-V) x redshift and
interpolated in redshift, so 10^6 galaxies take seconds.

Conventions: wavelengths in Angstrom; SEDs are f_lambda (arbitrary scale); magnitudes
are AB; fluxes are in microjansky (AB zero point 23.9).

Modules: :mod:`~som.mock.parameters` (every number the mock is built from),
:mod:`~som.mock.files` (the packaged filters, templates, type mix and success grid),
:mod:`~som.mock.sed` (dust, intergalactic absorption, synthetic magnitudes) and
:mod:`~som.mock.catalogue` (:func:`make_mock`, :func:`write_mock`) and
:mod:`~som.mock.wide` (the wide side: :func:`observe_wide` re-observes the galaxies in
LSST-like or Euclid-like bands, :func:`transfer_catalogue` injects them Balrog-like);
every public name is re-exported here.
"""

from som.mock.catalogue import (
    MIX_I_MAX,
    MIX_Z_RANGE,
    deep_success_rate,
    make_mock,
    median_z_of_i,
    write_mock,
)
from som.mock.files import (
    Filter,
    SuccessGrid,
    Templates,
    TypeMix,
    load_filters,
    load_success_grid,
    load_templates,
    load_type_mix,
    luminosity_proxy,
    read_success_grid,
)
from som.mock.parameters import (
    BAND_NAMES,
    BANDS,
    BRIGHT_WRONG_Z_MAX,
    COUNT_SLOPE,
    DATA_DIR,
    DEC_RANGE,
    DEEP_I_RANGE,
    DEEP_SAMPLING,
    DEEP_Z_RANGE,
    DEPTHS,
    DETECTION_SNR,
    EARLY,
    EBV_GRID,
    I_RANGE,
    MAG_ERROR_FLOOR,
    NIR_OPTIONS,
    RA_RANGE,
    SPEC_Z_SIGMA,
    SPIRAL,
    STARBURST,
    Z_GRID,
    Z_MAX,
    Z_MEDIAN_ANCHORS,
    ZCOSMOS_I_RANGE,
    ZCOSMOS_SAMPLING,
    band_names,
)
from som.mock.sed import (
    CALZETTI_RV,
    ab_magnitude,
    calzetti_k,
    madau_transmission,
)
from som.mock.wide import (
    TRUTH_COLUMNS,
    WIDE_BANDS,
    WIDE_DEPTHS,
    WIDE_PRESETS,
    load_wide_filters,
    lsst_depths,
    observe_wide,
    transfer_catalogue,
    wide_band_names,
    wide_true_flux,
)

__all__ = [
    "BANDS",
    "BAND_NAMES",
    "BRIGHT_WRONG_Z_MAX",
    "CALZETTI_RV",
    "COUNT_SLOPE",
    "DATA_DIR",
    "DEC_RANGE",
    "DEEP_I_RANGE",
    "DEEP_SAMPLING",
    "DEEP_Z_RANGE",
    "DEPTHS",
    "DETECTION_SNR",
    "EARLY",
    "EBV_GRID",
    "I_RANGE",
    "MAG_ERROR_FLOOR",
    "MIX_I_MAX",
    "MIX_Z_RANGE",
    "NIR_OPTIONS",
    "RA_RANGE",
    "SPEC_Z_SIGMA",
    "SPIRAL",
    "STARBURST",
    "TRUTH_COLUMNS",
    "WIDE_BANDS",
    "WIDE_DEPTHS",
    "WIDE_PRESETS",
    "ZCOSMOS_I_RANGE",
    "ZCOSMOS_SAMPLING",
    "Z_GRID",
    "Z_MAX",
    "Z_MEDIAN_ANCHORS",
    "Filter",
    "SuccessGrid",
    "Templates",
    "TypeMix",
    "ab_magnitude",
    "band_names",
    "calzetti_k",
    "load_filters",
    "load_success_grid",
    "load_templates",
    "load_type_mix",
    "load_wide_filters",
    "luminosity_proxy",
    "madau_transmission",
    "deep_success_rate",
    "make_mock",
    "median_z_of_i",
    "lsst_depths",
    "observe_wide",
    "read_success_grid",
    "transfer_catalogue",
    "wide_band_names",
    "wide_true_flux",
    "write_mock",
]
