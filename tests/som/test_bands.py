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


def test_vega_bands_carry_their_published_offsets_to_ab():
    # Blanton & Roweis 2007 (2MASS), Jarrett et al. 2011 (WISE), Hewett et al. 2006 (WFCAM)
    published = {
        "J_2mass": 0.91,
        "H_2mass": 1.39,
        "Ks_2mass": 1.85,
        "W1": 2.699,
        "W2": 3.339,
        "W3": 5.174,
        "W4": 6.620,
        "J_wfcam": 0.938,
        "H_wfcam": 1.379,
        "K_wfcam": 1.900,
    }
    for name, offset in published.items():
        band = REGISTRY.get(name)
        assert band.system == "Vega" and band.ab_offset("Vega") == offset, name
    assert REGISTRY.get("W1_wise").ab_offset("Vega") == 2.699  # through an alias
    # SDSS: asinh magnitudes, u_AB = u - 0.04, z_AB = z + 0.02
    assert REGISTRY.get("u_sdss").system == "SDSS"
    assert REGISTRY.get("u_sdss").ab_offset("SDSS") == -0.04
    assert REGISTRY.get("z_sdss").ab_offset("SDSS") == 0.02
    # AB by default for every other built-in band; VISTA knows its Vega offsets (CASU)
    for band in REGISTRY:
        vega_or_sdss = band.name in published or band.name.endswith(("sdss", "_wfcam"))
        if not vega_or_sdss:
            assert band.system == "AB", band.name
        assert band.ab_offset("AB") == 0.0
    assert REGISTRY.get("Ks").ab_offset("Vega") == 1.827
    assert REGISTRY.get("g").ab_offset("Vega") is None  # unknown: never guessed
    assert REGISTRY.get("W1").to_dict()["ab_offsets"] == {"Vega": 2.699}


def test_a_catalogue_declares_its_magnitude_system_in_a_copy():
    reg = REGISTRY.with_bands(
        [
            {"name": "J", "system": "vega"},
            {"name": "W1", "system": "AB"},
            {"name": "NB816", "wavelength": 8160, "system": "Vega", "ab_offset": 0.45},
        ]
    )
    assert reg.get("J").system == "Vega" and reg.get("J").system_declared
    assert reg.get("J").ab_offset("Vega") == 0.916
    assert reg.get("W1").system == "AB" and REGISTRY.get("W1").system == "Vega"
    assert reg.get("NB816").ab_offset("Vega") == 0.45
    assert not REGISTRY.get("J").system_declared
    with pytest.raises(BandError, match="ab_offset"):
        REGISTRY.with_bands([{"name": "g", "system": "Vega"}])  # no offset known
    with pytest.raises(BandError, match="not one of"):
        REGISTRY.with_bands([{"name": "g", "system": "ST"}])
    with pytest.raises(BandError, match="system"):
        REGISTRY.with_bands([{"name": "g"}])  # a known band declared for nothing
    with pytest.raises(BandError, match="non-AB"):
        REGISTRY.with_bands([{"name": "g", "system": "AB", "ab_offset": 0.1}])
