"""The band registry: names are case-sensitive, aliases resolve, order is by wavelength."""

from __future__ import annotations

import numpy as np
import pytest

from som.bands import REGISTRY, BandError, pivot_wavelength


def test_case_matters_and_lsst_y_is_not_vista_y():
    assert REGISTRY.get("y").wavelength < REGISTRY.get("Y").wavelength
    assert REGISTRY.get("y_lsst").name == "y_lsst"
    assert REGISTRY.get("y").name != REGISTRY.get("Y").name


def test_built_ins_cover_the_surveys_a_calibration_team_meets():
    for name in [
        "u",
        "g",
        "r",
        "i",
        "z",
        "y",
        "Y",
        "J",
        "H",
        "Ks",
        "Z",
        "VIS",
        "YE",
        "JE",
        "HE",
        "u_lsst",
        "y_lsst",
        "g_des",
        "Y_des",
        "u_kids",
        "i_kids",
    ]:
        assert name in REGISTRY
    assert REGISTRY.canonical("IE") == "VIS" and REGISTRY.canonical("Y_E") == "YE"


def test_resolve_orders_by_wavelength_and_refuses_one_filter_twice():
    assert REGISTRY.ordered_names(["Ks", "u", "IE", "y_lsst", "J"]) == [
        "u",
        "VIS",
        "y_lsst",
        "J",
        "Ks",
    ]
    with pytest.raises(BandError, match="same filter"):
        REGISTRY.resolve(["VIS", "IE"])


def test_unknown_band_suggests_the_nearest_names():
    with pytest.raises(BandError) as info:
        REGISTRY.get("K")
    assert "Ks" in info.value.suggestions and "did you mean" in str(info.value)
    assert REGISTRY.suggest("Y_lsst")[0] == "y_lsst"
    assert {"y", "Y", "y_lsst"} <= set(REGISTRY.suggest("y", n=5))


def test_declared_bands_live_in_a_copy_and_need_a_wavelength():
    reg = REGISTRY.with_bands([{"name": "NB816", "wavelength": 8160}])
    assert "NB816" in reg and "NB816" not in REGISTRY
    assert reg.ordered_names(["NB816", "i", "z"]) == ["i", "NB816", "z"]
    with pytest.raises(BandError, match="effective"):
        REGISTRY.with_bands([{"name": "NB921"}])
    with pytest.raises(BandError, match="already"):
        REGISTRY.with_bands([{"name": "Y", "wavelength": 9000}])
    with pytest.raises(BandError, match="Ångström"):
        REGISTRY.with_bands([{"name": "X1", "wavelength": 0.9}])  # µm, not Å


def test_pivot_wavelength_of_a_top_hat_and_from_a_filter_file(tmp_path):
    lam = np.linspace(5000, 6000, 1001)
    t = np.ones_like(lam)
    expected = np.sqrt(np.trapezoid(lam, lam) / np.trapezoid(1 / lam, lam))
    assert pivot_wavelength(lam, t) == pytest.approx(expected)
    path = tmp_path / "nb.res"
    np.savetxt(path, np.column_stack([lam, t]), header="lambda T")
    reg = REGISTRY.with_bands([{"name": "top", "filter_curve": str(path)}])
    assert reg.get("top").wavelength == pytest.approx(expected)
