"""The mock's wide side: the deep galaxies re-observed at a wide survey's depth, and the
Balrog-like transfer catalogue (``som.mock.wide``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from som import mock
from som.bands import REGISTRY
from som.vocabulary import WidePreset

N = 20_000


@pytest.fixture(scope="module")
def deep() -> pd.DataFrame:
    return mock.make_mock(N, seed=3, truth=True)


@pytest.fixture(scope="module", params=["lsst", "euclid"])
def preset(request) -> str:
    return request.param


def _bands(preset: str) -> tuple[str, ...]:
    return mock.wide_band_names(preset)


# ----------------------------------------------------------------------------- layout


def test_same_galaxies_same_truth(deep, preset):
    wide = mock.observe_wide(deep, preset)
    assert len(wide) == N
    np.testing.assert_array_equal(wide["id"], deep["id"])
    np.testing.assert_array_equal(wide["z_true"], deep["z_true"])
    np.testing.assert_array_equal(wide["ra"], deep["ra"])
    expected = ["id", "ra", "dec", "z_true"]
    for b in _bands(preset):
        expected += [f"flux_{b}", f"fluxerr_{b}", f"mag_{b}", f"magerr_{b}"]
    assert list(wide.columns) == expected


def test_band_names_are_registry_bands_in_wavelength_order(preset):
    names = _bands(preset)
    assert all(b in REGISTRY for b in names)
    assert REGISTRY.ordered_names(list(names)) == list(names)
    assert mock.wide_band_names("lsst") == tuple(f"{b}_lsst" for b in "ugrizy")
    assert mock.wide_band_names("euclid") == ("VIS", "YE", "JE", "HE")


def test_filters_sit_where_the_registry_says(preset):
    for band, filt in mock.load_wide_filters(preset).items():
        assert filt.pivot == pytest.approx(REGISTRY.get(band).wavelength, rel=0.025), band


def test_a_subset_keeps_its_rows_and_order(deep):
    part = deep.iloc[::-7]
    wide = mock.observe_wide(part, "lsst")
    np.testing.assert_array_equal(wide["id"], part["id"])
    full = mock.wide_true_flux(deep, "lsst")[::-7]
    np.testing.assert_allclose(mock.wide_true_flux(part, "lsst"), full)


def test_enum_preset_works():
    d = mock.make_mock(50, seed=1, truth=True)
    a = mock.observe_wide(d, WidePreset.euclid)
    pd.testing.assert_frame_equal(a, mock.observe_wide(d, "euclid"))


# ----------------------------------------------------------------------------- physics


def test_noiseless_flux_agrees_with_the_deep_photometry(deep):
    """LSST i and HSC i are nearly the same filter: the noiseless LSST i magnitude sits
    close to the deep mock's i_true (through the same templates)."""
    flux = mock.wide_true_flux(deep, "lsst")
    i_lsst = 23.9 - 2.5 * np.log10(flux[:, 3])  # i is never blanked at z <= 4
    diff = i_lsst - deep["i_true"].to_numpy()
    assert abs(np.median(diff)) < 0.05 and np.percentile(np.abs(diff), 95) < 0.2


def test_median_snr_is_five_at_the_5sigma_depth(deep, preset):
    bands = _bands(preset)
    # put every band's depth where the mock has plenty of galaxies
    depth = {b: 24.5 for b in bands}
    wide = mock.observe_wide(deep, preset, depth=depth, seed=5)
    with np.errstate(divide="ignore"):  # u is blanked by the IGM at high z
        true_mag = 23.9 - 2.5 * np.log10(mock.wide_true_flux(deep, preset))
    for k, b in enumerate(bands):
        at = np.abs(true_mag[:, k] - 24.5) < 0.05
        assert at.sum() > 300, b
        snr = wide.loc[at, f"flux_{b}"] / wide.loc[at, f"fluxerr_{b}"]
        assert np.median(snr) == pytest.approx(5.0, abs=0.25), b


def test_default_depths_are_documented_and_realised(deep, preset):
    """The error is the deep mock's: f5 / 5 of the band's depth in quadrature with the
    0.01 mag floor of the noiseless flux."""
    wide = mock.observe_wide(deep, preset)
    flux = mock.wide_true_flux(deep, preset)
    assert set(mock.WIDE_DEPTHS[preset]) == set(_bands(preset))
    for k, b in enumerate(_bands(preset)):
        sky = 10 ** (-0.4 * (mock.WIDE_DEPTHS[preset][b] - 23.9)) / 5
        expected = np.hypot(sky, 0.4 * np.log(10) * mock.MAG_ERROR_FLOOR * flux[:, k])
        np.testing.assert_allclose(wide[f"fluxerr_{b}"], expected, rtol=1e-12)
        assert wide[f"fluxerr_{b}"].min() == pytest.approx(sky, rel=0.01), b


def test_errors_scale_with_depth(deep, preset):
    b0 = _bands(preset)[0]
    shallow = {b0: mock.WIDE_DEPTHS[preset][b0] - 1.0}
    a = mock.observe_wide(deep, preset)
    s = mock.observe_wide(deep, preset, depth=shallow)
    flux = mock.wide_true_flux(deep, preset)[:, 0]
    faint = flux < 0.05 * 10 ** (-0.4 * (shallow[b0] - 23.9))
    ratio = s.loc[faint, f"fluxerr_{b0}"] / a.loc[faint, f"fluxerr_{b0}"]
    np.testing.assert_allclose(ratio, 10**0.4, rtol=5e-3)
    # other bands untouched
    b1 = _bands(preset)[1]
    np.testing.assert_array_equal(s[f"fluxerr_{b1}"], a[f"fluxerr_{b1}"])


def test_euclid_wide_is_noisier_than_the_deep_field(deep):
    """Euclid-like wide depths are shallower than the COSMOS-like deep ones (VIS vs HSC i,
    NISP vs UltraVISTA): the same galaxies get larger magnitude errors."""
    wide = mock.observe_wide(deep, "euclid")
    for w, d in (("VIS", "i"), ("YE", "Y"), ("JE", "J"), ("HE", "H")):
        both = wide[f"magerr_{w}"].notna() & deep[f"magerr_{d}"].notna()
        assert both.sum() > 1000
        ratio = wide.loc[both, f"magerr_{w}"] / deep.loc[both, f"magerr_{d}"]
        assert np.median(ratio) > 1.3, (w, d)


def test_lsst_at_year_one_depth_is_noisier_in_u_i_z_than_the_deep_field(deep):
    y1 = mock.lsst_depths(1)
    assert y1 == pytest.approx({b: m - 1.25 for b, m in mock.WIDE_DEPTHS["lsst"].items()})
    wide = mock.observe_wide(deep, "lsst", year=1)
    pd.testing.assert_frame_equal(wide, mock.observe_wide(deep, "lsst", depth=y1))
    assert mock.lsst_depths(10) == pytest.approx(mock.WIDE_DEPTHS["lsst"])
    with pytest.raises(ValueError, match=r"year must be in \(0, 10\]"):
        mock.lsst_depths(12)
    with pytest.raises(ValueError, match="'lsst' preset only"):
        mock.observe_wide(deep, "euclid", year=1)
    t = mock.transfer_catalogue(deep.iloc[:50], "lsst", 2, year=3)
    sky_i = 10 ** (-0.4 * (mock.lsst_depths(3)["i_lsst"] - 23.9)) / 5
    assert t["wide_fluxerr_i_lsst"].min() == pytest.approx(sky_i, rel=0.01)
    for w, d in (("u_lsst", "u"), ("i_lsst", "i"), ("z_lsst", "z")):
        both = wide[f"magerr_{w}"].notna() & deep[f"magerr_{d}"].notna()
        ratio = wide.loc[both, f"magerr_{w}"] / deep.loc[both, f"magerr_{d}"]
        assert np.median(ratio) > 1.2, (w, d)


def test_non_detections_follow_the_deep_mock(deep):
    wide = mock.observe_wide(deep, "lsst")
    for b in _bands("lsst"):
        flux, err, mag = wide[f"flux_{b}"], wide[f"fluxerr_{b}"], wide[f"mag_{b}"]
        assert (err > 0).all() and np.isfinite(flux).all()
        np.testing.assert_array_equal(mag.isna(), flux < 2.0 * err)
        np.testing.assert_array_equal(mag.isna(), wide[f"magerr_{b}"].isna())
        ok = mag.notna()
        np.testing.assert_allclose(mag[ok], 23.9 - 2.5 * np.log10(flux[ok]))
    assert (wide["flux_u_lsst"] < 0).any()  # negative fluxes are kept, not clipped


# ----------------------------------------------------------------------------- seeds


def test_seeded(deep):
    small = deep.iloc[:500]
    a = mock.observe_wide(small, "euclid", seed=11)
    pd.testing.assert_frame_equal(a, mock.observe_wide(small, "euclid", seed=11))
    b = mock.observe_wide(small, "euclid", seed=12)
    assert not np.allclose(a["flux_VIS"], b["flux_VIS"])
    t = mock.transfer_catalogue(small, "lsst", 3, seed=11)
    pd.testing.assert_frame_equal(t, mock.transfer_catalogue(small, "lsst", 3, seed=11))
    u = mock.transfer_catalogue(small, "lsst", 3, seed=12)
    assert not np.allclose(t["wide_flux_r_lsst"], u["wide_flux_r_lsst"])


# ----------------------------------------------------------------------------- transfer


def test_transfer_layout(deep):
    small = deep.iloc[:300]
    t = mock.transfer_catalogue(small, "lsst", n_injections=4)
    assert len(t) == 300 * 4
    np.testing.assert_array_equal(t["id"], np.repeat(small["id"], 4))
    np.testing.assert_array_equal(t["injection"], np.tile(np.arange(4), 300))
    np.testing.assert_array_equal(t["z_true"], np.repeat(small["z_true"], 4))
    np.testing.assert_allclose(t.groupby("id")["weight"].sum(), 1.0)
    # the deep photometry, named apart from the wide, identical in every injection
    assert "deep_mag_u" in t and "wide_mag_u_lsst" in t and "mag_u" not in t
    assert (t.groupby("id")["deep_mag_i"].nunique(dropna=False) == 1).all()
    np.testing.assert_array_equal(t["deep_mag_i"], np.repeat(small["mag_i"], 4))
    # ... while the wide noise differs between injections
    assert (t.groupby("id")["wide_flux_i_lsst"].nunique() == 4).all()
    wide_cols = [c for c in t if c.startswith("wide_")]
    assert len(wide_cols) == 4 * 6


def test_transfer_keeps_euclid_deep_and_wide_apart():
    d = mock.make_mock(100, seed=2, nir="euclid", truth=True)
    t = mock.transfer_catalogue(d, "euclid", 2)
    assert "deep_mag_YE" in t and "wide_mag_YE" in t


def test_transfer_mean_converges_to_the_noiseless_flux(deep):
    small = deep.iloc[:200]
    k = 400
    t = mock.transfer_catalogue(small, "euclid", n_injections=k, seed=9)
    true = mock.wide_true_flux(small, "euclid")
    for j, b in enumerate(_bands("euclid")):
        mean = t.groupby("id", sort=False)[f"wide_flux_{b}"].mean().to_numpy()
        sigma = t.groupby("id", sort=False)[f"wide_fluxerr_{b}"].first().to_numpy()
        pull = (mean - true[:, j]) / (sigma / np.sqrt(k))
        assert abs(pull.mean()) < 0.3 and 0.8 < pull.std() < 1.2, b
        assert np.abs(pull).max() < 5.0, b


def test_one_injection_is_a_wide_observation(deep):
    small = deep.iloc[:100]
    t = mock.transfer_catalogue(small, "lsst", 1)
    assert (t["weight"] == 1.0).all() and len(t) == 100


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_named(deep):
    small = deep.iloc[:10]
    with pytest.raises(ValueError, match="unknown wide preset 'des'.*lsst, euclid"):
        mock.observe_wide(small, "des")
    with pytest.raises(ValueError, match="unknown wide preset"):
        mock.transfer_catalogue(small, "LSST")
    for bad in (0, -2):
        with pytest.raises(ValueError, match="n_injections must be >= 1"):
            mock.transfer_catalogue(small, "lsst", bad)
    for bad in (2.5, True, "3"):
        with pytest.raises(ValueError, match="n_injections must be an integer"):
            mock.transfer_catalogue(small, "lsst", bad)
    with pytest.raises(ValueError, match="truth column.*template, ebv, i_true.*truth=True"):
        mock.observe_wide(mock.make_mock(10), "lsst")
    with pytest.raises(ValueError, match="band 'H' is not a band of the 'lsst' preset"):
        mock.observe_wide(small, "lsst", depth={"H": 24.0})
    with pytest.raises(ValueError, match="must be finite"):
        mock.observe_wide(small, "lsst", depth={"u_lsst": np.nan})
    with pytest.raises(TypeError, match="depth must map band names"):
        mock.observe_wide(small, "lsst", depth=25.0)
    with pytest.raises(ValueError, match="seed must be"):
        mock.observe_wide(small, "lsst", seed=-1)
    with pytest.raises(ValueError, match="ebv must be values"):
        mock.observe_wide(small.assign(ebv=0.05), "lsst")


def test_aliases_name_a_depth():
    d = mock.make_mock(200, seed=1, truth=True)
    a = mock.observe_wide(d, "euclid", depth={"IE": 23.0})
    b = mock.observe_wide(d, "euclid", depth={"VIS": 23.0})
    pd.testing.assert_frame_equal(a, b)


def test_flux_columns_carry_their_unit(tmp_path):
    from som.tables import read_table, write_table

    d = mock.make_mock(30, seed=1, truth=True)
    wide = mock.observe_wide(d, "euclid")
    assert wide.attrs["units"]["flux_VIS"] == "uJy" and "mag_VIS" not in wide.attrs["units"]
    t = mock.transfer_catalogue(d, "euclid", 2)
    assert t.attrs["units"]["wide_fluxerr_HE"] == "uJy"
    write_table(wide, tmp_path / "w.fits", format="fits")
    assert read_table(tmp_path / "w.fits").attrs["units"]["flux_HE"] in ("uJy", "microJy")


def test_empty_deep_gives_empty_wide():
    d = mock.make_mock(0, truth=True)
    assert len(mock.observe_wide(d, "lsst")) == 0
    assert len(mock.transfer_catalogue(d, "lsst", 3)) == 0


# ----------------------------------------------------------------------------- CLI


def test_cli_mock_writes_wide_and_transfer(tmp_path):
    from app.cli import cli

    runner = CliRunner()
    out = tmp_path / "m.parquet"
    res = runner.invoke(
        cli, ["mock", str(out), "-n", "400", "--seed", "2", "--wide", "lsst", "--transfer", "3"]
    )
    assert res.exit_code == 0, res.stderr
    wide_path, transfer_path = (
        tmp_path / "m_wide_lsst.parquet",
        tmp_path / "m_transfer_lsst.parquet",
    )
    assert res.stdout.split() == [str(out), str(wide_path), str(transfer_path)]
    deep = pd.read_parquet(out)
    wide = pd.read_parquet(wide_path)
    tr = pd.read_parquet(transfer_path)
    # the deep file is the plain mock: --wide adds files, it does not change this one
    pd.testing.assert_frame_equal(deep, mock.make_mock(400, 2))
    np.testing.assert_array_equal(wide["id"], deep["id"])
    assert len(tr) == 3 * 400 and "wide_flux_y_lsst" in tr and "deep_mag_H" in tr
    # the wide file holds fluxes only (ingest takes one of flux or magnitude per band)
    expected = mock.observe_wide(mock.make_mock(400, 2, truth=True), "lsst", seed=2)
    expected = expected.drop(columns=[c for c in expected if c.startswith("mag")])
    pd.testing.assert_frame_equal(wide, expected)
    bad = runner.invoke(cli, ["mock", str(tmp_path / "x.parquet"), "--transfer", "3"])
    assert bad.exit_code != 0 and "--transfer needs --wide" in bad.stderr
    # a second run refuses to replace the wide file it wrote before
    first = runner.invoke(cli, ["mock", str(tmp_path / "z.parquet"), "-n", "10", "--wide", "lsst"])
    assert first.exit_code == 0
    exists = runner.invoke(cli, ["mock", str(tmp_path / "z.parquet"), "-n", "10", "--wide", "lsst"])
    assert exists.exit_code != 0 and "exists" in exists.stderr


def test_cli_year_sets_the_lsst_depths(tmp_path):
    from typer.testing import CliRunner

    from app.cli import cli
    from som.tables import read_table

    runner = CliRunner()
    out = tmp_path / "y.parquet"
    ok = runner.invoke(cli, ["mock", str(out), "-n", "300", "--wide", "lsst", "--year", "1"])
    assert ok.exit_code == 0, ok.stderr
    wide = read_table(tmp_path / "y_wide_lsst.parquet")
    expected = mock.observe_wide(mock.make_mock(300, 0, truth=True), "lsst", seed=0, year=1)
    np.testing.assert_array_equal(wide["fluxerr_u_lsst"], expected["fluxerr_u_lsst"])
    bad = runner.invoke(
        cli, ["mock", str(tmp_path / "e.parquet"), "--wide", "euclid", "--year", "1"]
    )
    assert bad.exit_code != 0 and "--year needs --wide lsst" in bad.stderr
