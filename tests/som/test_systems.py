"""Magnitude systems and Galactic extinction in the photometry library."""

from __future__ import annotations

import math

import numpy as np
import pytest

from som.photometry import (
    MEASURED,
    MISSING,
    UNDETECTED,
    clean_band,
    column_mag_system,
    deredden,
    extinction_mag,
    luptitudes_to_pogson,
    to_ab,
)

B_R = 1.2e-10  # SDSS r softening, maggies


def test_luptitudes_become_pogson_magnitudes_and_errors():
    mag = np.array([15.0, 20.0, 22.5, 24.0])
    f = 10 ** (-0.4 * mag)
    sigma_f = 0.1 * f
    # the asinh magnitudes of these fluxes, via the library's own asinh path
    lup = clean_band(f, sigma_f, kind="flux", flux_unit="maggy", softening=B_R, check=False)
    pogson, err, nonpositive = luptitudes_to_pogson(lup.mag, lup.magerr, B_R)
    np.testing.assert_allclose(pogson, mag, atol=1e-9)
    np.testing.assert_allclose(err, 2.5 / math.log(10) * 0.1, rtol=1e-9)
    assert not nonpositive.any()
    # bright: the two scales agree; faint: the luptitude is brighter than Pogson's
    assert abs(lup.mag[0] - 15.0) < 1e-6 and lup.mag[3] < 24.0
    neg = clean_band(
        np.array([-1e-10]), np.array([1e-10]), kind="flux", flux_unit="maggy", softening=B_R
    )
    _, _, nonpositive = luptitudes_to_pogson(neg.mag, neg.magerr, B_R)
    assert nonpositive.all()


def test_to_ab_adds_the_offset_once_and_marks_negative_fluxes_undetected():
    mag = np.array([15.0, np.nan])
    err = np.array([0.1, np.nan])
    status = np.array([MEASURED, 1], dtype=np.uint8)
    out, e, st = to_ab(mag, err, status, 2.699)
    assert out[0] == pytest.approx(17.699) and np.isnan(out[1]) and e[0] == 0.1
    same = to_ab(mag, err, status)  # AB: nothing to do, the same arrays
    assert same[0] is mag and same[2] is status
    lup = -2.5 / math.log(10) * (math.asinh(-1e-11 / (2 * B_R)) + math.log(B_R))
    out, _, st = to_ab(np.array([lup]), np.array([0.3]), np.array([MEASURED]), 0.0, B_R)
    assert st[0] == UNDETECTED and np.isnan(out[0])


def test_extinction_columns_in_magnitudes_or_transmission():
    a, bad = extinction_mag(np.array([0.1, -0.1, np.nan, 7.0]), "mag")
    assert a[0] == 0.1 and bad.tolist() == [False, True, True, False]
    a, bad = extinction_mag(np.array([1.0, 0.5, 0.0, 1.2]), "transmission")
    assert a[0] == 0.0 and a[1] == pytest.approx(2.5 * math.log10(2))
    assert bad.tolist() == [False, False, True, True]
    with pytest.raises(ValueError):
        extinction_mag(np.zeros(1), "ebv")


@pytest.mark.parametrize(
    "unit, system",
    [
        ("mag(AB)", "AB"),
        ("ABmag", "AB"),
        ("AB", "AB"),
        ("mag_AB", "AB"),
        ("VEGAmag", "Vega"),
        ("mag (Vega)", "Vega"),
        ("mag", None),
        (None, None),
        ("uJy", None),
        ("Jy/beam", None),
    ],
)
def test_a_units_text_names_a_magnitude_system_only_when_it_says_one(unit, system):
    assert column_mag_system(unit) == system


def test_deredden_subtracts_a_b_and_drops_a_band_behind_too_much_dust():
    mag = np.array([20.0, 21.0, 22.0, np.nan, 23.0])
    err = np.full(5, 0.1)
    status = np.array([MEASURED, MEASURED, MEASURED, MISSING, MEASURED], dtype=np.uint8)
    values = np.array([0.2, 7.5, -1.0, np.nan, 0.0])
    out, e, st, bad = deredden(mag, err, status, values, "mag")
    assert out[0] == pytest.approx(19.8) and out[4] == 23.0
    assert st[1] == MISSING and np.isnan(out[1]) and np.isnan(e[1])  # A = 7.5 > 6
    assert bad.tolist() == [False, False, True, False, False]  # missing band: no error
    # a transmission of 0.5 is a flux / 0.5: 0.753 mag brighter
    out, _, _, _ = deredden(mag[:1], err[:1], status[:1], np.array([0.5]), "transmission")
    assert out[0] == pytest.approx(20.0 - 2.5 * math.log10(2))
