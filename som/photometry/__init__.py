"""Photometry to SOM features: colours of adjacent bands, masks, errors and normalisation.

The SOM is trained on colours (u-g, g-r, ...), optionally with one magnitude, because colours
track redshift and galaxy type while being independent of distance (Masters et al. 2015).
This module turns a catalogue of magnitudes or fluxes into the feature matrix ``X`` and its
errors ``E``, and stores the normalisation with the map so a map applied later transforms
new inputs bit-for-bit like its training set.

Missing photometry is masked (NaN in ``X``), never replaced by a number: NaN, +-inf, catalogue
sentinels (99, -99, -99.9 by default) and non-positive fluxes are all "missing", and a colour
is missing when either of its bands is. ``E`` is finite exactly where ``X`` is finite.

Modules: :mod:`~som.photometry.units` (units, fluxes to magnitudes),
:mod:`~som.photometry.cleaning` (sentinels, parsing, :func:`clean_band`),
:mod:`~som.photometry.features` (:class:`ColourFeatures`), :mod:`~som.photometry.systems`
(magnitude systems to AB, Galactic extinction), :mod:`~som.photometry.errors`
(:class:`PhotometryError`); every public name is re-exported here.
"""

from som.photometry.cleaning import (
    BLANK_TEXT,
    FLUX_SENTINELS,
    INVALID,
    MAG_RANGE,
    MAG_SENTINELS,
    MEASURED,
    MISSING,
    NEGATIVE_ERROR_POLICIES,
    NO_ERROR,
    STATUS_NAMES,
    UNDETECTED,
    CleanBand,
    check_plausible,
    clean_band,
    column_as_float64,
    near_sentinels,
    parse_numbers,
)
from som.photometry.errors import PhotometryError
from som.photometry.features import ColourFeatures, parse_colour
from som.photometry.systems import (
    EXTINCTION_KINDS,
    MAX_EXTINCTION,
    deredden,
    extinction_mag,
    luptitudes_to_pogson,
    to_ab,
)
from som.photometry.units import (
    AB_ZEROPOINT_JY,
    column_mag_system,
    column_unit_kind,
    flux_to_mag,
    flux_unit_in_jy,
)

__all__ = [
    "AB_ZEROPOINT_JY",
    "BLANK_TEXT",
    "EXTINCTION_KINDS",
    "MAX_EXTINCTION",
    "FLUX_SENTINELS",
    "INVALID",
    "MAG_RANGE",
    "MAG_SENTINELS",
    "MEASURED",
    "MISSING",
    "NEGATIVE_ERROR_POLICIES",
    "NO_ERROR",
    "STATUS_NAMES",
    "UNDETECTED",
    "CleanBand",
    "ColourFeatures",
    "PhotometryError",
    "check_plausible",
    "clean_band",
    "extinction_mag",
    "column_as_float64",
    "column_mag_system",
    "deredden",
    "column_unit_kind",
    "flux_to_mag",
    "flux_unit_in_jy",
    "luptitudes_to_pogson",
    "near_sentinels",
    "parse_colour",
    "parse_numbers",
    "to_ab",
]
