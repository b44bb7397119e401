"""Tests for som.photometry: colours, masks, errors, flux conversion, normalisation, bad input."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, QTable, Table

from som.photometry import (
    AB_ZEROPOINT_JY,
    ColourFeatures,
    PhotometryError,
    flux_to_mag,
)

POGSON = 2.5 / math.log(10.0)


def small_mags() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mag_u": [24.0, 23.5, 99.0],
            "mag_g": [23.0, 23.1, 22.0],
            "mag_r": [22.5, 22.0, 21.7],
            "magerr_u": [0.3, 0.2, 0.1],
            "magerr_g": [0.4, 0.05, 0.1],
            "magerr_r": [0.12, 0.03, 0.02],
        }
    )


# ------------------------------------------------------------------------------------ colours


def test_colours_and_errors_match_hand_computation():
    cf = ColourFeatures(bands=("u", "g", "r"), normalise=None).fit(small_mags())
    X, E = cf.transform(small_mags())
    assert cf.feature_names_ == ["u-g", "g-r"]
    assert cf.n_features_ == 2
    assert X.dtype == np.float64 and X.shape == (3, 2)
    np.testing.assert_allclose(X[0], [1.0, 0.5], rtol=0, atol=1e-12)
    np.testing.assert_allclose(X[1], [0.4, 1.1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(E[0], [0.5, math.sqrt(0.4**2 + 0.12**2)], rtol=1e-14)
    np.testing.assert_allclose(E[1], [math.sqrt(0.2**2 + 0.05**2), math.sqrt(0.05**2 + 0.03**2)])
    # u = 99 is a sentinel: u-g is missing, g-r is not.
    assert np.isnan(X[2, 0]) and np.isnan(E[2, 0])
    np.testing.assert_allclose(X[2, 1], 0.3, atol=1e-12)
    np.testing.assert_allclose(E[2, 1], math.sqrt(0.1**2 + 0.02**2))


def test_magnitude_feature_and_error_floor():
    cf = ColourFeatures(bands=("u", "g", "r"), magnitude_band="g", normalise=None, min_error=0.1)
    X, E = cf.fit_transform(small_mags())
    assert cf.feature_names_ == ["u-g", "g-r", "g"]
    np.testing.assert_array_equal(X[:, 2], [23.0, 23.1, 22.0])
    floored = lambda e: math.sqrt(e**2 + 0.1**2)  # noqa: E731
    np.testing.assert_allclose(E[0, 2], floored(0.4))
    np.testing.assert_allclose(E[0, 0], math.sqrt(floored(0.3) ** 2 + floored(0.4) ** 2))


def test_magnitude_band_outside_the_colour_bands():
    df = small_mags().assign(mag_i=[20.0, 21.0, -99.0], magerr_i=[0.01, 0.01, 0.01])
    cf = ColourFeatures(bands=("u", "g"), magnitude_band="i", normalise=None)
    X, E = cf.fit_transform(df)
    assert cf.feature_names_ == ["u-g", "i"]
    np.testing.assert_array_equal(X[:, 1], [20.0, 21.0, np.nan])
    np.testing.assert_array_equal(E[:, 1], [0.01, 0.01, np.nan])


def _reference_features(df, bands, sentinels, with_errors):
    """Slow per-element oracle written independently of the vectorised code."""
    n = len(df)
    X = np.full((n, len(bands) - 1), np.nan)
    E = np.full((n, len(bands) - 1), np.nan)
    for i in range(n):
        mags, errs = [], []
        for b in bands:
            m = float(df[f"mag_{b}"].iloc[i])
            e = float(df[f"magerr_{b}"].iloc[i]) if with_errors else 0.0
            bad = not math.isfinite(m) or any(abs(m - s) < 1e-3 for s in sentinels)
            if with_errors:
                bad = bad or not math.isfinite(e) or any(abs(e - s) < 1e-3 for s in sentinels)
            mags.append(None if bad else m)
            errs.append(None if bad else e)
        for k in range(len(bands) - 1):
            if mags[k] is not None and mags[k + 1] is not None:
                X[i, k] = mags[k] - mags[k + 1]
                E[i, k] = math.sqrt(errs[k] ** 2 + errs[k + 1] ** 2)
    return X, E


def test_random_catalogue_against_per_row_reference():
    rng = np.random.default_rng(42)
    bands = ("u", "g", "r", "i", "z", "Y", "J", "H")
    n = 400
    data = {}
    for b in bands:
        m = rng.normal(23.0, 1.5, n)
        e = rng.uniform(0.005, 0.3, n)
        holes = rng.random(n)
        m[holes < 0.05] = 99.0
        m[(holes >= 0.05) & (holes < 0.08)] = -99.9
        m[(holes >= 0.08) & (holes < 0.10)] = np.nan
        m[(holes >= 0.10) & (holes < 0.11)] = np.inf
        e[(holes >= 0.11) & (holes < 0.13)] = -99.0  # error sentinel on a good magnitude
        data[f"mag_{b}"] = m.astype(np.float32)  # float32 on disk is the usual case
        data[f"magerr_{b}"] = e.astype(np.float32)
    df = pd.DataFrame(data)
    cf = ColourFeatures(bands=bands, normalise=None).fit(df)
    X, E = cf.transform(df)
    Xr, Er = _reference_features(df, bands, (99.0, -99.0, -99.9), with_errors=True)
    np.testing.assert_array_equal(np.isnan(X), np.isnan(Xr))
    np.testing.assert_allclose(X, Xr, rtol=0, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(E, Er, rtol=1e-12, equal_nan=True)
    assert np.isnan(X).any(axis=0).all()  # every colour has holes: the mask was exercised


def test_missing_values_and_sentinels():
    df = pd.DataFrame(
        {
            "mag_a": [20.0, np.nan, np.inf, -np.inf, 99.0, -99.0, -99.9, 20.0, 20.0],
            "mag_b": [19.0, 19.0, 19.0, 19.0, 19.0, 19.0, 19.0, 99.0000001, 28.9],
        }
    )
    # float32-stored -99.9 is -99.90000152587891 in float64: must still count as a sentinel.
    df["mag_a"] = df["mag_a"].astype(np.float32)
    cf = ColourFeatures(bands=("a", "b"), error_template=None, normalise=None).fit(df)
    X, E = cf.transform(df)
    assert E is None
    expected_missing = [False, True, True, True, True, True, True, True, False]
    np.testing.assert_array_equal(np.isnan(X[:, 0]), expected_missing)
    np.testing.assert_allclose(X[8, 0], 20.0 - 28.9, rtol=1e-6)
    # Sentinels are configurable: with none, 99 is a value, and an invalid one (a magnitude
    # beyond 50 is no measurement), named with its row rather than silently dropped.
    cf2 = ColourFeatures(bands=("a", "b"), error_template=None, normalise=None, sentinels=())
    with pytest.raises(PhotometryError, match="magnitude 99 outside") as info:
        cf2.fit_transform(df)
    assert (info.value.column, info.value.row) == ("mag_a", 4)


def test_error_sentinel_on_measured_value_masks_the_band():
    df = small_mags()
    df.loc[0, "magerr_g"] = -99.0
    df.loc[1, "magerr_r"] = np.nan
    cf = ColourFeatures(bands=("u", "g", "r"), normalise=None).fit(df)
    X, E = cf.transform(df)
    assert np.isnan(X[0]).all()  # g is in both colours
    assert np.isfinite(X[1, 0]) and np.isnan(X[1, 1])
    np.testing.assert_array_equal(np.isnan(X), np.isnan(E))


def test_input_is_not_modified():
    df = small_mags()
    before = df.copy()
    ColourFeatures(bands=("u", "g", "r")).fit_transform(df)
    pd.testing.assert_frame_equal(df, before)


# ------------------------------------------------------------------------------------ fluxes


def test_flux_to_mag_hand_values():
    mag, err = flux_to_mag(np.array([1.0, 3631e6, 0.0, -1.0, np.nan]), np.ones(5), "uJy")
    np.testing.assert_allclose(mag[0], 2.5 * math.log10(3631e6), rtol=0, atol=1e-12)
    np.testing.assert_allclose(mag[1], 0.0, atol=1e-12)
    assert np.isnan(mag[2:]).all() and np.isnan(err[2:]).all()
    np.testing.assert_allclose(err[0], POGSON)
    np.testing.assert_allclose(err[1], POGSON / 3631e6)
    assert AB_ZEROPOINT_JY == 3631.0


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("uJy", 1.0),
        ("nJy", 1e3),
        ("Jy", 1e-6),
        ("mJy", 1e-3),
        ("erg/s/cm2/Hz", 1e-29),
        ("nanomaggy", 1e3 / 3631.0),
    ],
)
def test_flux_units_give_the_same_magnitudes(unit, factor):
    f_ujy = np.array([1.0, 10.0, 1234.5])
    fe_ujy = np.array([0.1, 0.5, 3.0])
    df = pd.DataFrame(
        {
            "flux_x": f_ujy * factor,
            "flux_y": f_ujy[::-1] * factor,
            "fluxerr_x": fe_ujy * factor,
            "fluxerr_y": fe_ujy[::-1] * factor,
        }
    )
    cf = ColourFeatures(
        bands=("x", "y"),
        kind="flux",
        value_template="flux_{band}",
        error_template="fluxerr_{band}",
        flux_unit=unit,
        magnitude_band="x",
        normalise=None,
    )
    X, E = cf.fit_transform(df)
    mag_x = -2.5 * np.log10(f_ujy * 1e-6 / 3631.0)
    mag_y = -2.5 * np.log10(f_ujy[::-1] * 1e-6 / 3631.0)
    np.testing.assert_allclose(X[:, 1], mag_x, rtol=0, atol=1e-10)
    np.testing.assert_allclose(X[:, 0], mag_x - mag_y, rtol=0, atol=1e-10)
    ex = POGSON * fe_ujy / f_ujy
    ey = POGSON * fe_ujy[::-1] / f_ujy[::-1]
    np.testing.assert_allclose(E[:, 0], np.hypot(ex, ey), rtol=1e-12)
    np.testing.assert_allclose(E[:, 1], ex, rtol=1e-12)


def test_njy_zero_point_is_31_4():
    df = {"f_a": np.array([1.0]), "f_b": np.array([1.0])}
    cf = ColourFeatures(
        bands=("a", "b"),
        kind="flux",
        value_template="f_{band}",
        error_template=None,
        flux_unit="nJy",
        magnitude_band="a",
        normalise=None,
    )
    X, _ = cf.fit_transform(df)
    np.testing.assert_allclose(X[0, 1], 2.5 * math.log10(3631e9), atol=1e-12)
    assert abs(X[0, 1] - 31.4) < 1e-3


def test_non_positive_flux_is_missing_not_an_error():
    df = pd.DataFrame(
        {
            "flux_a": [10.0, 0.0, -3.0, 10.0, -99.0],
            "flux_b": [5.0, 5.0, 5.0, 5.0, 5.0],
            "fluxerr_a": [1.0, 1.0, 1.0, 1.0, -99.0],
            "fluxerr_b": [1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    cf = ColourFeatures(
        bands=("a", "b"),
        kind="flux",
        value_template="flux_{band}",
        error_template="fluxerr_{band}",
        normalise=None,
    )
    X, E = cf.fit_transform(df)
    np.testing.assert_array_equal(np.isnan(X[:, 0]), [False, True, True, False, True])
    np.testing.assert_allclose(X[0, 0], -2.5 * math.log10(10.0 / 5.0))
    np.testing.assert_array_equal(np.isnan(E), np.isnan(X))


def test_flux_column_unit_must_agree_with_flux_unit():
    t = Table({"f_a": [1.0, 2.0] * u.nJy, "f_b": [3.0, 4.0] * u.nJy})
    kw = dict(bands=("a", "b"), kind="flux", value_template="f_{band}", error_template=None)
    with pytest.raises(PhotometryError, match="nJy") as info:
        ColourFeatures(flux_unit="uJy", **kw).fit(t)
    assert info.value.column == "f_a"
    X, _ = ColourFeatures(flux_unit="nJy", **kw).fit_transform(t)
    assert np.isfinite(X).all()
    # A QTable hands out Quantities: same rule.
    qt = QTable({"f_a": [1.0, 2.0] * u.uJy, "f_b": [3.0, 4.0] * u.uJy})
    Xq, _ = ColourFeatures(flux_unit="uJy", normalise=None, **kw).fit_transform(qt)
    np.testing.assert_allclose(Xq[:, 0], -2.5 * np.log10([1 / 3, 2 / 4]))
    mags = Table({"f_a": [1.0, 2.0] * u.mag, "f_b": [3.0, 4.0] * u.mag})
    with pytest.raises(PhotometryError, match="magnitude"):
        ColourFeatures(flux_unit="uJy", **kw).fit(mags)
    with pytest.raises(PhotometryError, match="kind='flux'"):
        ColourFeatures(bands=("a", "b"), value_template="f_{band}", error_template=None).fit(t)


# ------------------------------------------------------------------------------------ normaliser


def _training_table(n=500, seed=3):
    rng = np.random.default_rng(seed)
    data = {}
    for b in ("u", "g", "r", "i"):
        m = rng.normal(23.0, 1.0, n)
        m[rng.random(n) < 0.1] = -99.0
        data[f"mag_{b}"] = m
        data[f"magerr_{b}"] = rng.uniform(0.01, 0.2, n)
    return pd.DataFrame(data)


def test_standard_normaliser_statistics():
    df = _training_table()
    raw, _ = ColourFeatures(bands=("u", "g", "r", "i"), normalise=None).fit_transform(df)
    cf = ColourFeatures(bands=("u", "g", "r", "i"), magnitude_band="r").fit(df)
    mag_r = df["mag_r"].where(df["mag_r"] != -99.0).to_numpy()
    raw = np.column_stack([raw, mag_r])
    np.testing.assert_allclose(cf.mean_, np.nanmean(raw, axis=0), rtol=1e-13)
    np.testing.assert_allclose(cf.scale_, np.nanstd(raw, axis=0), rtol=1e-13)
    np.testing.assert_array_equal(cf.n_valid_, np.isfinite(raw).sum(axis=0))
    X, E = cf.transform(df)
    np.testing.assert_allclose(np.nanmean(X, axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.nanstd(X, axis=0), 1.0, rtol=1e-12)
    _, E_raw = ColourFeatures(bands=("u", "g", "r", "i"), normalise=None).fit_transform(df)
    np.testing.assert_allclose(E[:, :3], E_raw / cf.scale_[:3], rtol=1e-15)
    np.testing.assert_allclose(cf.inverse_transform(X), raw, rtol=1e-12, equal_nan=True)


def test_round_trip_through_json_is_bit_for_bit():
    train = _training_table(seed=1)
    new = _training_table(seed=2)
    cf = ColourFeatures(bands=("u", "g", "r", "i"), magnitude_band="i", min_error=0.02).fit(train)
    d = cf.to_dict()
    assert d["type"] == "somcal.ColourFeatures" and d["version"] == 1
    loaded = ColourFeatures.from_dict(json.loads(json.dumps(d)))
    X1, E1 = cf.transform(new)
    X2, E2 = loaded.transform(new)
    assert X1.tobytes() == X2.tobytes() and E1.tobytes() == E2.tobytes()
    assert loaded.feature_names_ == cf.feature_names_
    assert loaded.to_dict() == d
    # fit_transform == fit + transform, and a second transform repeats itself exactly
    Xa, _ = ColourFeatures(bands=("u", "g", "r", "i")).fit_transform(train)
    Xb, _ = ColourFeatures(bands=("u", "g", "r", "i")).fit(train).transform(train)
    assert Xa.tobytes() == Xb.tobytes()


def test_unfitted_state():
    cf = ColourFeatures(bands=("u", "g"))
    with pytest.raises(RuntimeError, match="not fitted"):
        cf.transform(small_mags())
    d = cf.to_dict()
    assert d["fitted"] is False
    again = ColourFeatures.from_dict(json.loads(json.dumps(d)))
    with pytest.raises(RuntimeError, match="not fitted"):
        again.transform(small_mags())


def test_from_dict_rejects_bad_descriptions():
    d = ColourFeatures(bands=("u", "g", "r")).fit(small_mags()).to_dict()
    with pytest.raises(ValueError, match="version"):
        ColourFeatures.from_dict({**d, "version": 99})
    with pytest.raises(ValueError, match="type"):
        ColourFeatures.from_dict({**d, "type": "something"})
    with pytest.raises(ValueError, match="do not match"):
        ColourFeatures.from_dict({**d, "bands": ["u", "g", "z"]})
    with pytest.raises(ValueError, match="scale"):
        ColourFeatures.from_dict({**d, "scale": [1.0, 0.0]})
    with pytest.raises(ValueError, match="lacks key"):
        ColourFeatures.from_dict({k: v for k, v in d.items() if k != "kind"})


def test_fit_refuses_featureless_or_flat_training_sets():
    df = small_mags().assign(mag_u=[99.0, -99.0, np.nan])
    with pytest.raises(PhotometryError, match="'u-g' has no valid value"):
        ColourFeatures(bands=("u", "g", "r")).fit(df)
    flat = pd.DataFrame({"mag_a": [20.0, 21.0], "mag_b": [19.0, 20.0]})
    with pytest.raises(PhotometryError, match="zero spread"):
        ColourFeatures(bands=("a", "b"), error_template=None).fit(flat)
    # without normalisation a flat feature is fine
    ColourFeatures(bands=("a", "b"), error_template=None, normalise=None).fit(flat)


# ------------------------------------------------------------------------------------ bad input


def test_missing_column_names_it_and_lists_the_available_ones():
    df = small_mags().drop(columns=["mag_g"])
    with pytest.raises(PhotometryError) as info:
        ColourFeatures(bands=("u", "g", "r")).fit(df, source="cat.fits")
    err = info.value
    assert err.column == "mag_g" and err.source == "cat.fits" and err.row is None
    assert str(err).startswith("cat.fits: column 'mag_g': required value column is missing")
    assert "'mag_u'" in str(err) and "'magerr_r'" in str(err)
    # a case slip gets a hint
    upper = small_mags().rename(columns={"mag_g": "MAG_G"})
    with pytest.raises(PhotometryError, match="did you mean 'MAG_G'"):
        ColourFeatures(bands=("u", "g", "r")).fit(upper)


def test_partial_error_columns_are_an_error():
    df = small_mags().drop(columns=["magerr_r"])
    with pytest.raises(PhotometryError, match="error column missing") as info:
        ColourFeatures(bands=("u", "g", "r")).fit(df)
    assert info.value.column == "magerr_r"


def test_strings_in_numeric_column_give_row():
    df = small_mags().astype({"mag_g": object})
    df.loc[1, "mag_g"] = "23.1"  # numeric text is fine
    df.loc[2, "mag_g"] = "n/a?"
    with pytest.raises(PhotometryError) as info:
        ColourFeatures(bands=("u", "g", "r")).fit(df, source="x.csv")
    err = info.value
    assert (err.column, err.row, err.source) == ("mag_g", 2, "x.csv")
    assert "not a number: 'n/a?'" in str(err)
    # empty strings and None are missing values, "nan" too
    df.loc[2, "mag_g"] = ""
    df.loc[0, "mag_g"] = None
    X, _ = ColourFeatures(bands=("u", "g", "r"), normalise=None).fit_transform(df)
    assert np.isnan(X[[0, 2], 1]).all() and np.isclose(X[1, 1], 1.1)
    with pytest.raises(PhotometryError, match="row 1"):
        ColourFeatures(bands=("u", "g", "r")).fit({**small_mags(), "mag_u": [1.0, "x", 2.0]})


def test_negative_error_is_an_upper_limit_or_an_error_with_location():
    df = small_mags()
    df.loc[1, "magerr_g"] = -0.1
    # Default (CIGALE/LePhare convention): a negative error marks an upper limit, i.e. a
    # non-detection, so the band is missing for that row.
    X, _ = ColourFeatures(bands=("u", "g", "r"), normalise=None).fit_transform(df)
    assert np.isnan(X[1]).all() and np.isfinite(X[0]).all()
    strict = ColourFeatures(bands=("u", "g", "r"), negative_error="invalid")
    with pytest.raises(PhotometryError) as info:
        strict.fit(df, source="catalog.fits")
    err = info.value
    assert (err.column, err.row) == ("magerr_g", 1)
    assert str(err).startswith("catalog.fits: column 'magerr_g', row 1: negative error -0.1")
    # a negative error on a value that is missing anyway is ignored
    df.loc[1, "mag_g"] = -99.0
    X, _ = ColourFeatures(
        bands=("u", "g", "r"), normalise=None, negative_error="invalid"
    ).fit_transform(df)
    assert np.isnan(X[1]).all()


def test_row_is_positional_not_the_index_label():
    df = small_mags()
    df.index = [100, 50, 7]
    df.loc[7, "magerr_r"] = -1.0
    with pytest.raises(PhotometryError) as info:
        ColourFeatures(bands=("u", "g", "r"), negative_error="invalid").fit(df)
    assert info.value.row == 2


def test_empty_tables():
    empty = small_mags().iloc[:0]
    with pytest.raises(PhotometryError, match="empty table"):
        ColourFeatures(bands=("u", "g", "r")).fit(empty)
    cf = ColourFeatures(bands=("u", "g", "r")).fit(small_mags())
    X, E = cf.transform(empty)  # an empty chunk of a big catalogue is not an error
    assert X.shape == (0, 2) and E.shape == (0, 2)


def test_other_bad_inputs():
    with pytest.raises(PhotometryError, match="rows"):
        ColourFeatures(bands=("a", "b"), error_template=None).fit(
            {"mag_a": [1.0, 2.0], "mag_b": [1.0]}
        )
    with pytest.raises(PhotometryError, match="boolean"):
        ColourFeatures(bands=("a", "b"), error_template=None).fit(
            {"mag_a": [True, False], "mag_b": [1.0, 2.0]}
        )
    with pytest.raises(TypeError, match="structured"):
        ColourFeatures(bands=("a", "b")).fit(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="unsupported table type"):
        ColourFeatures(bands=("a", "b")).fit([1, 2, 3])
    dup = pd.DataFrame([[1.0, 2.0, 3.0]], columns=["mag_a", "mag_a", "mag_b"])
    with pytest.raises(PhotometryError, match="more than once"):
        ColourFeatures(bands=("a", "b"), error_template=None).fit(dup)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bands": ("u",)}, "at least two"),
        ({"bands": "ugr"}, "sequence"),
        ({"bands": ("u", "g", "u")}, "duplicates"),
        ({"kind": "counts"}, "kind"),
        ({"value_template": "mag_u"}, "band"),
        ({"kind": "flux", "flux_unit": "furlong"}, "flux_unit"),
        ({"kind": "flux", "flux_unit": "m"}, "spectral flux density"),
        ({"normalise": "minmax"}, "normalise"),
        ({"min_error": -0.1}, "min_error"),
        ({"sentinels": (np.nan,)}, "finite"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ColourFeatures(**kwargs)


def test_error_pickles_with_its_location():
    err = PhotometryError("bad", column="c", row=3, source="f.fits")
    back = pickle.loads(pickle.dumps(err))
    assert (back.column, back.row, back.source, str(back)) == ("c", 3, "f.fits", str(err))
    assert isinstance(back, ValueError)


# ------------------------------------------------------------------------------------ table types


def test_all_table_types_give_identical_features():
    df = _training_table(n=60, seed=9)
    df.loc[3, "mag_g"] = np.nan
    cols = list(df.columns)
    inputs = {
        "pandas": df,
        "astropy": Table.from_pandas(df),
        "structured": df.to_records(index=False),
        "dict": {c: df[c].to_numpy() for c in cols},
        "dict_of_lists": {c: df[c].tolist() for c in cols},
        "pandas_nullable": df.astype("Float64"),
    }
    cf = ColourFeatures(bands=("u", "g", "r", "i"), magnitude_band="i").fit(df)
    X0, E0 = cf.transform(df)
    for name, table in inputs.items():
        X, E = cf.transform(table)
        assert X.tobytes() == X0.tobytes(), name
        assert E.tobytes() == E0.tobytes(), name
        refit = ColourFeatures(bands=("u", "g", "r", "i"), magnitude_band="i").fit(table)
        assert refit.mean_.tobytes() == cf.mean_.tobytes(), name


def test_masked_values_are_missing():
    t = Table()
    t["mag_a"] = MaskedColumn([20.0, 21.0, 22.0], mask=[False, True, False])
    t["mag_b"] = [19.0, 19.5, 20.0]
    nullable = pd.DataFrame(
        {"mag_a": pd.array([20.0, None, 22.0], dtype="Float64"), "mag_b": [19.0, 19.5, 20.0]}
    )
    masked = {"mag_a": np.ma.array([20.0, 21.0, 22.0], mask=[0, 1, 0]), "mag_b": t["mag_b"].data}
    for table in (t, nullable, masked):
        X, _ = ColourFeatures(bands=("a", "b"), error_template=None, normalise=None).fit_transform(
            table
        )
        np.testing.assert_array_equal(X[:, 0], [1.0, np.nan, 2.0])


def test_byte_strings_are_parsed():
    table = {"mag_a": np.array([b"20.5", b" 21 ", b""]), "mag_b": np.array(["19.5", "20", "nan"])}
    X, _ = ColourFeatures(bands=("a", "b"), error_template=None, normalise=None).fit_transform(
        table
    )
    np.testing.assert_array_equal(X[:, 0], [1.0, 1.0, np.nan])


def test_a_colour_list_instead_of_adjacent_bands():
    df = small_mags()
    cf = ColourFeatures(bands=("u", "g", "r"), normalise=None, colours=["u-r", ("g", "r")])
    X, E = cf.fit_transform(df)
    assert cf.feature_names_ == ["u-r", "g-r"]
    ok = np.isfinite(X[:, 0])
    assert ok.sum() >= 2  # small_mags' sentinel rows leave the colour missing, nothing else
    np.testing.assert_allclose(X[ok, 0], (df["mag_u"] - df["mag_r"])[ok])
    np.testing.assert_allclose(E[ok, 0], np.hypot(df["magerr_u"], df["magerr_r"])[ok])
    again = ColourFeatures.from_dict(cf.to_dict())
    np.testing.assert_array_equal(again.transform(df)[0], X)
    # names with a '-' split where both sides are bands; unknown or repeated colours refused
    assert ColourFeatures(bands=("NB-1", "r"), colours=["NB-1-r"]).colours == (("NB-1", "r"),)
    for bad in (["u-z"], ["u-u"], ["u-g", "u-g"], []):
        with pytest.raises(ValueError):
            ColourFeatures(bands=("u", "g", "r"), colours=bad)


# ----------------------------------------------------------------------------- asinh
def _flux_table(flux: np.ndarray, err: np.ndarray, bands=("g", "r", "i")) -> pd.DataFrame:
    data = {}
    for k, b in enumerate(bands):
        data[f"flux_{b}"] = flux[:, k]
        data[f"fluxerr_{b}"] = err[:, k]
    return pd.DataFrame(data)


def _asinh_features(**kw) -> ColourFeatures:
    params = dict(
        bands=("g", "r", "i"),
        kind="flux",
        value_template="flux_{band}",
        error_template="fluxerr_{band}",
        flux_unit="uJy",
        magnitude_band="i",
        normalise=None,
        magnitudes="asinh",
    )
    params.update(kw)
    return ColourFeatures(**params)


def test_asinh_magnitudes_equal_pogson_when_bright_and_stay_finite_when_faint():
    rng = np.random.default_rng(3)
    err = np.full((400, 3), 0.05)  # uJy: sky noise of a ~27.3 mag 5-sigma depth
    bright = rng.uniform(50.0, 500.0, (200, 3))
    faint = rng.normal(0.0, 0.05, (200, 3))  # S/N ~ 1, half of them negative
    table = _flux_table(np.vstack([bright, faint]), err)
    feats = _asinh_features().fit(table)
    np.testing.assert_allclose(feats.softening_["r"], 1.042 * 0.05)
    X, E = feats.transform(table)
    pogson = _asinh_features(magnitudes="pogson").fit(table.iloc[:200])
    Xp, Ep = pogson.transform(table)
    # f >> b: the two scales agree (asinh(x) = ln 2x + 1/(4x^2) + ...)
    np.testing.assert_allclose(X[:200], Xp[:200], atol=2e-5)
    np.testing.assert_allclose(E[:200], Ep[:200], rtol=1e-4)
    # the faint half: Pogson loses every negative flux, asinh keeps them all
    assert np.isnan(Xp[200:]).any()
    assert np.isfinite(X[200:]).all() and np.isfinite(E[200:]).all()
    # the error is |dm/df| sigma: compare with a numerical derivative on one band
    b = feats.softening_["i"]
    f = np.vstack([bright, faint])[:, 2]
    h = 1e-6

    def mag(x):
        zp = 2.5 * np.log10(3631e6)  # AB zero point of a flux in uJy
        return zp - 2.5 / np.log(10) * (np.arcsinh(x / (2 * b)) + np.log(b))

    np.testing.assert_allclose(X[:, 2], mag(f), rtol=1e-12)
    np.testing.assert_allclose(E[:, 2], np.abs(mag(f + h) - mag(f - h)) / (2 * h) * 0.05, rtol=1e-5)


def test_asinh_features_save_and_load_with_their_softening():
    rng = np.random.default_rng(4)
    table = _flux_table(rng.normal(1.0, 0.5, (300, 3)), np.full((300, 3), 0.2))
    feats = _asinh_features(normalise="standard").fit(table)
    back = ColourFeatures.from_dict(feats.to_dict())
    assert back.magnitudes == "asinh" and back.softening_ == feats.softening_
    np.testing.assert_array_equal(back.transform(table)[0], feats.transform(table)[0])
    given = _asinh_features(softening={"g": 0.1, "r": 0.1, "i": 0.3}).fit(table)
    assert not hasattr(given, "softening_")
    again = ColourFeatures.from_dict(given.to_dict())
    np.testing.assert_array_equal(again.transform(table)[0], given.transform(table)[0])


def test_asinh_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match="need fluxes"):
        ColourFeatures(bands=("g", "r"), magnitudes="asinh")
    with pytest.raises(ValueError, match="magnitudes must be one of"):
        ColourFeatures(bands=("g", "r"), kind="flux", magnitudes="lupton")
    with pytest.raises(ValueError, match="softening lacks band"):
        _asinh_features(softening={"g": 0.1})
    with pytest.raises(ValueError, match=r"softening\['r'\] must be a finite flux > 0"):
        _asinh_features(softening={"g": 0.1, "r": -1.0, "i": 0.1})
    with pytest.raises(ValueError, match="applies to magnitudes='asinh' only"):
        _asinh_features(magnitudes="pogson", softening={"g": 1.0, "r": 1.0, "i": 1.0})
    table = _flux_table(np.ones((5, 3)), np.ones((5, 3)))
    with pytest.raises(PhotometryError, match="learn each band's softening"):
        _asinh_features(error_template=None).fit(table)
    table["fluxerr_r"] = -99.0
    with pytest.raises(PhotometryError, match="no positive flux error") as info:
        _asinh_features().fit(table)
    assert info.value.column == "fluxerr_r"
    with pytest.raises(RuntimeError, match="fit"):
        _asinh_features().band_magnitudes(table)
