"""Tests for som.catalogs: file formats round trip, errors naming the file, zCOSMOS reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from som.catalogs import (
    ZCOSMOS_ALL_BANDS,
    ZCOSMOS_BANDS,
    CatalogError,
    read_table,
    read_zcosmos,
    write_table,
    zcosmos_secure,
)
from som.photometry import ColourFeatures, PhotometryError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ZCOSMOS = DATA / "real" / "zcosmos_bright20k_cosmos_photometry.csv"
DC2 = DATA / "mocks" / "test_dc2_training_9816.hdf5"


def sample_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 25
    return pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + n, dtype=np.int64),
            "ra": rng.uniform(149.4, 150.8, n),
            "mag_g": np.where(np.arange(n) % 7 == 3, np.nan, rng.normal(23.0, 1.0, n)),
            "flux_i": rng.lognormal(1.0, 1.0, n).astype(np.float32),
            "name": [f"src{i}" for i in range(n)],
        }
    )


@pytest.mark.parametrize(
    "filename",
    [
        "cat.fits",
        "cat.FITS",
        "cat.fits.gz",
        "cat.parquet",
        "cat.csv",
        "cat.ecsv",
        "cat.vot",
        "cat.hdf5",
    ],
)
def test_write_read_round_trip(tmp_path, filename):
    df = sample_frame()
    df.attrs["units"] = {"ra": "deg", "flux_i": "uJy"}
    path = write_table(df, tmp_path / filename)
    back = read_table(path)
    if filename.endswith(".csv"):
        # Text has no float32: the shortest float32 repr comes back as float64 and must
        # round to the same float32.
        assert back["flux_i"].dtype == np.float64
        np.testing.assert_array_equal(back["flux_i"].astype(np.float32), df["flux_i"])
        back["flux_i"] = back["flux_i"].astype(np.float32)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    if not filename.endswith((".csv", ".parquet")):
        assert back.attrs["units"] == {"ra": "deg", "flux_i": "uJy"}


def test_explicit_format_and_unknown_suffix(tmp_path):
    df = sample_frame()
    path = write_table(df, tmp_path / "cat.data", format="parquet")
    pd.testing.assert_frame_equal(read_table(path, format="PARQUET"), df)
    with pytest.raises(CatalogError, match="cannot tell the table format") as info:
        read_table(path)
    assert info.value.source == str(path)
    with pytest.raises(CatalogError, match="unknown format 'xls'"):
        read_table(path, format="xls")


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fits"):
        read_table(tmp_path / "nope.fits")
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"this is not a FITS file at all" * 10)
    with pytest.raises(CatalogError) as info:
        read_table(broken)
    assert str(info.value).startswith(str(broken) + ": cannot read as fits")
    assert isinstance(info.value, PhotometryError)
    bad_parquet = tmp_path / "x.parquet"
    bad_parquet.write_text("id,mag\n1,2\n")
    with pytest.raises(CatalogError, match="x.parquet: cannot read as parquet"):
        read_table(bad_parquet)


def test_write_refuses_to_overwrite(tmp_path):
    path = write_table(sample_frame(), tmp_path / "a.parquet")
    with pytest.raises(CatalogError, match="exists"):
        write_table(sample_frame(), path)
    write_table(sample_frame().iloc[:3], path, overwrite=True)
    assert len(read_table(path)) == 3


def test_fits_byte_strings_become_str_and_multidim_is_refused(tmp_path):
    from astropy.table import Table

    t = Table({"name": np.array([b"a", b"bb"]), "x": [1.0, 2.0]})
    t.write(tmp_path / "s.fits")
    df = read_table(tmp_path / "s.fits")
    assert df["name"].tolist() == ["a", "bb"]
    Table({"v": np.zeros((2, 3))}).write(tmp_path / "v.fits")
    with pytest.raises(CatalogError, match="multidimensional") as info:
        read_table(tmp_path / "v.fits")
    assert info.value.column == "v"


def test_hdf5_one_dataset_per_column(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "cols.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("photometry")
        g["id"] = np.arange(4)
        g["mag_u"] = np.array([20.0, 21.0, 99.0, 22.0], dtype=">f4")  # big-endian on disk
    df = read_table(path)
    assert list(df.columns) == ["id", "mag_u"]
    assert df["mag_u"].dtype == np.dtype("float32") and df["mag_u"].dtype.isnative
    np.testing.assert_array_equal(df["mag_u"], [20.0, 21.0, 99.0, 22.0])
    with h5py.File(path, "a") as f:
        f["photometry/short"] = np.arange(3)
    with pytest.raises(CatalogError, match="different lengths"):
        read_table(path)


def test_dc2_mock_reads_and_featurises():
    if not DC2.exists():
        pytest.skip(f"shared reference data not present at {DC2}")
    df = read_table(DC2)
    assert len(df) == 10225
    bands = ("u", "g", "r", "i", "z", "y")
    cf = ColourFeatures(
        bands=bands, value_template="mag_{band}_lsst", error_template="mag_err_{band}_lsst"
    )
    X, E = cf.fit_transform(df, source=DC2.name)
    assert X.shape == (10225, 5)
    undetected = (df["mag_u_lsst"] == 99) | (df["mag_g_lsst"] == 99)
    np.testing.assert_array_equal(np.isnan(X[:, 0]), undetected)
    assert undetected.sum() > 700
    np.testing.assert_array_equal(np.isnan(X), np.isnan(E))


# ------------------------------------------------------------------------------------ zCOSMOS


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
    assert np.isnan(df.loc[1, "mag_i"]) and np.isnan(df.loc[2, "mag_Ks"])
    assert df.loc[2, "mag_J"] == pytest.approx(23.2)
    raw = pd.read_csv(path).drop(columns=["zpec"])
    raw.to_csv(tmp_path / "nozpec.csv", index=False)
    with pytest.raises(
        CatalogError, match=r"nozpec.csv: not a zCOSMOS x COSMOS table: missing columns \['zpec'\]"
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
    cf = ColourFeatures(bands=ZCOSMOS_BANDS, magnitude_band="i")
    X, E = cf.fit_transform(df, source=ZCOSMOS.name)
    assert cf.feature_names_ == ["u-g", "g-r", "r-i", "i-z", "z-J", "J-Ks", "i"]
    assert np.isfinite(X).all(axis=1).sum() > 15000
    np.testing.assert_array_equal(np.isnan(X), np.isnan(E))
