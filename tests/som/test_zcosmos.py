"""Tests for som.zcosmos: the secure-class rule and the zCOSMOS-bright x COSMOS reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from som.photometry import ColourFeatures
from som.tables import CatalogueError
from som.zcosmos import ZCOSMOS_ALL_BANDS, ZCOSMOS_BANDS, read_zcosmos, zcosmos_secure

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ZCOSMOS = DATA / "real" / "zcosmos_bright20k_cosmos_photometry.csv"


def test_secure_rule():
    cc = np.array(
        [3.5, 14.5, 23.1, 4.1, 3.1, 24.4, 9.5, 9.3, 2.5, 1.5, 18.5, 0.0, 5.0, np.nan, -3.5]
    )
    expected = [True] * 6 + [False] * 9
    np.testing.assert_array_equal(zcosmos_secure(cc), expected)


def _zcosmos_like_csv(tmp_path) -> Path:
    stems = ["u", "b", "v", "g", "r", "i", "z", "j", "k"]
    row = {"id_zcosmos": 1, "zpec": 0.5, "cc": 3.5, "alpha": 150.0, "delta": 2.0}
    rows = []
    for k in range(3):
        r = dict(row, id_zcosmos=k + 1)
        for s in stems:
            r[f"{s}_photzi25"] = 23.0 + 0.1 * k
            r[f"e{s}_photzi25"] = 0.05
        rows.append(r)
    rows[0]["u_photzi25"], rows[0]["eu_photzi25"] = 26.0, -1.0  # upper limit
    rows[1]["i_photzi25"], rows[1]["ei_photzi25"] = -99.9, -99.9
    rows[2]["k_photzi25"], rows[2]["ek_photzi25"] = -99.0, -99.0
    rows[2]["cc"] = 9.5
    path = tmp_path / "mini.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_read_zcosmos_on_a_synthetic_file(tmp_path):
    path = _zcosmos_like_csv(tmp_path)
    df = read_zcosmos(path)
    expected = ["id", "ra", "dec", "z_spec", "z_quality", "secure"]
    for b in ZCOSMOS_ALL_BANDS:
        expected += [f"mag_{b}", f"magerr_{b}"]
    assert list(df.columns) == expected
    assert df["id"].dtype == np.int64 and df["secure"].dtype == bool
    assert df["secure"].tolist() == [True, True, False]
    assert np.isnan(df.loc[0, "mag_u"]) and np.isnan(df.loc[0, "magerr_u"])  # upper limit
    assert np.isnan(df.loc[1, "mag_i_subaru"]) and np.isnan(df.loc[2, "mag_Ks_wircam"])
    assert df.loc[2, "mag_J_wfcam"] == pytest.approx(23.2)
    # The mock's names, asked for by name, hold the same values.
    mock_named = read_zcosmos(path, band_names="mock")
    assert mock_named.loc[2, "mag_J"] == pytest.approx(23.2)
    np.testing.assert_array_equal(mock_named["mag_g"], df["mag_g_subaru"])
    with pytest.raises(ValueError, match="band_names"):
        read_zcosmos(path, band_names="hsc")
    raw = pd.read_csv(path).drop(columns=["zpec"])
    raw.to_csv(tmp_path / "nozpec.csv", index=False)
    with pytest.raises(
        CatalogueError,
        match=r"nozpec.csv: not a zCOSMOS x COSMOS table: missing columns \['zpec'\]",
    ):
        read_zcosmos(tmp_path / "nozpec.csv")


def test_read_zcosmos_real_file():
    if not ZCOSMOS.exists():
        pytest.skip(f"shared reference data not present at {ZCOSMOS}")
    df = read_zcosmos(ZCOSMOS)
    assert len(df) == 17358
    assert int(df["secure"].sum()) == 11934
    assert df["id"].is_unique
    assert df["z_spec"].between(0.0, 2.6).all()
    assert 0.50 < df["z_spec"].median() < 0.56
    assert df["ra"].between(149.0, 151.5).all() and df["dec"].between(1.4, 3.1).all()
    for b in ZCOSMOS_ALL_BANDS:
        mag, err = df[f"mag_{b}"], df[f"magerr_{b}"]
        assert (mag.isna() == err.isna()).all(), b
        assert mag.dropna().between(10.0, 35.0).all(), b  # no -99/-99.9/99 left
        assert (err.dropna() >= 0).all(), b
        assert mag.notna().mean() > 0.9, b
    # 202 rows have no COSMOS counterpart at all
    assert int(df[[f"mag_{b}" for b in ZCOSMOS_ALL_BANDS]].isna().all(axis=1).sum()) == 202
    cf = ColourFeatures(bands=ZCOSMOS_BANDS, magnitude_band="i_subaru")
    X, E = cf.fit_transform(df, source=ZCOSMOS.name)
    assert cf.feature_names_ == [
        "u-g_subaru",
        "g_subaru-r_subaru",
        "r_subaru-i_subaru",
        "i_subaru-z_subaru",
        "z_subaru-J_wfcam",
        "J_wfcam-Ks_wircam",
        "i_subaru",
    ]
    assert np.isfinite(X).all(axis=1).sum() > 15000
    np.testing.assert_array_equal(np.isnan(X), np.isnan(E))
