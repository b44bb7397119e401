"""Unit texts as real survey files write them (SDSS/Legacy TUNIT, COSMOS/Euclid ECSV and
VOTable): each is read as the magnitude or flux it is, through astropy and a small table of
astronomers' spellings; what is not a photometric unit is never guessed."""

from __future__ import annotations

import pytest

from som.photometry import column_mag_system, column_unit_kind, flux_unit_in_jy

MAGGY = 3631.0


@pytest.mark.parametrize(
    "unit, system",
    [
        ("AB mag", "AB"),
        ("ABmag", "AB"),
        ("mag_AB", "AB"),
        ("mag(AB)", "AB"),
        ("AB magnitude", "AB"),
        ("magnitude", None),
        ("MAG", None),
        ("mags", None),
        ("mag", None),
        ("VEGAmag", "Vega"),
        ("mag(Vega)", "Vega"),
        ("Vega mag", "Vega"),
        ("STmag", "ST"),
        ("mag(ST)", "ST"),
    ],
)
def test_magnitude_spellings(unit, system):
    assert column_unit_kind(unit) == ("mag", None)
    assert column_mag_system(unit) == system
    with pytest.raises(ValueError):
        flux_unit_in_jy(unit)


@pytest.mark.parametrize(
    "unit, jy",
    [
        ("nanomaggies", 1e-9 * MAGGY),
        ("nanomaggy", 1e-9 * MAGGY),
        ("nmgy", 1e-9 * MAGGY),
        ("maggies", MAGGY),
        ("microJy", 1e-6),
        ("uJy", 1e-6),
        ("UJY", 1e-6),
        ("µJy", 1e-6),
        ("μJy", 1e-6),
        ("mJy", 1e-3),
        ("nJy", 1e-9),
        ("Jy", 1.0),
        ("erg/s/cm2/Hz", 1e23),
        ("erg s-1 cm-2 Hz-1", 1e23),
        ("erg/s/cm^2/Hz", 1e23),
        ("1e-29 erg/s/cm2/Hz", 1e-6),
    ],
)
def test_flux_spellings(unit, jy):
    kind, size = column_unit_kind(unit)
    assert kind == "flux" and size == pytest.approx(jy, rel=1e-12)
    assert flux_unit_in_jy(unit) == pytest.approx(jy, rel=1e-12)
    assert column_mag_system(unit) is None


@pytest.mark.parametrize(
    "unit", ["counts", "ADU", "MJY", "mag/arcsec2", "Jy/beam", "1/nanomaggies^2", "deg", "AB ST"]
)
def test_what_is_not_a_photometric_unit_is_not_guessed(unit):
    assert column_unit_kind(unit) == (None, None)
    with pytest.raises(ValueError):
        flux_unit_in_jy(unit)


def test_megajansky_is_not_read_as_millijansky():
    assert flux_unit_in_jy("MJy") == pytest.approx(1e6)


def test_colour_features_read_an_astropy_table_with_sdss_units():
    """astropy keeps ``nanomaggies`` as an UnrecognizedUnit: ColourFeatures still sees a flux
    and refuses it as a magnitude."""
    import numpy as np
    from astropy import units as u
    from astropy.table import Table

    from som.photometry import ColourFeatures, PhotometryError

    t = Table({"g": np.array([10.0, 20.0, 30.0]), "r": np.array([12.0, 25.0, 31.0])})
    for c in ("g", "r"):
        t[c].unit = u.Unit("nanomaggies", parse_strict="silent")  # as astropy reads TUNIT
    with pytest.raises(PhotometryError, match="flux"):
        ColourFeatures(["g", "r"], kind="mag", value_template="{band}", error_template=None).fit(t)
