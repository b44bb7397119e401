"""Tests of som.mock: the embedded COSMOS-like mock catalogue and its physics."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from som import mock
from som.mock import catalogue as mock_catalogue

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
N = 20_000


@pytest.fixture(scope="module")
def cat() -> pd.DataFrame:
    return mock.make_mock(N, seed=1, truth=True)


@pytest.fixture(scope="module")
def cat_euclid() -> pd.DataFrame:
    return mock.make_mock(N, seed=1, nir="euclid")


def _nmad(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


# ----------------------------------------------------------------------------- layout


def test_columns_dtypes_and_ranges(cat):
    expected = ["id", "ra", "dec", "z_true", "z_phot", "z_spec", "spec_survey"]
    for b in mock.BANDS:
        expected += [f"mag_{b}", f"magerr_{b}"]
    assert list(cat.columns) == expected + ["template", "ebv", "i_true"]
    assert mock.BANDS == ("u", "g", "r", "i", "z", "Y", "J", "H")
    assert cat["id"].dtype == np.int64
    assert cat["id"].is_unique and cat["id"].min() == 1 and cat["id"].max() == N
    for col in expected[1:]:
        if col != "spec_survey":
            assert cat[col].dtype == np.float64, col
    assert cat["ra"].between(149.4, 150.8).all()
    assert cat["dec"].between(1.5, 2.9).all()
    assert cat["z_true"].between(0.0, 4.0).all()
    assert cat["z_phot"].between(0.0, 4.0).all()
    assert set(cat["spec_survey"].unique()) == {"zcosmos-like", "deep", ""}
    assert set(np.round(cat["ebv"].unique(), 1)) <= set(mock.EBV_GRID)
    # magnitude and its error are missing together, and only for undetected bands
    for b in mock.BANDS:
        assert (cat[f"mag_{b}"].isna() == cat[f"magerr_{b}"].isna()).all()
        assert (cat[f"magerr_{b}"].dropna() > 0).all()
    assert cat["mag_i"].notna().all()  # i <= 25.5 is >= 8 sigma at the 26.0 depth
    # i_true is the noiseless i the observed one scatters about
    pull = (cat["mag_i"] - cat["i_true"]) / cat["magerr_i"]
    assert cat["i_true"].between(17.0, 25.5).all() and abs(pull.median()) < 0.1


def test_default_has_exactly_the_documented_columns():
    df = mock.make_mock(10)
    assert "template" not in df and "i_true" not in df and len(df.columns) == 7 + 16


def test_empty_mock_keeps_columns():
    df = mock.make_mock(0)
    assert len(df) == 0 and "mag_H" in df and df["id"].dtype == np.int64


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1},
        {"n": 2.5},
        {"n": 10, "nir": "2mass"},
        {"n": 10, "seed": -3},
        {"n": 10, "seed": "a"},
    ],
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        mock.make_mock(**kwargs)


# ----------------------------------------------------------------------------- randomness


def test_same_seed_same_catalogue_other_seed_other_catalogue():
    a = mock.make_mock(3000, seed=7)
    pd.testing.assert_frame_equal(a, mock.make_mock(3000, seed=7))
    b = mock.make_mock(3000, seed=8)
    assert not np.allclose(a["z_true"], b["z_true"])
    assert not np.allclose(a["ra"], b["ra"])


def test_switching_nir_or_spec_keeps_the_galaxies(cat, cat_euclid):
    # every random step has its own stream, so the same galaxies are observed again
    np.testing.assert_array_equal(cat["z_true"], cat_euclid["z_true"])
    np.testing.assert_array_equal(cat["mag_g"], cat_euclid["mag_g"])
    assert not np.allclose(cat["mag_J"], cat_euclid["mag_JE"], equal_nan=True)
    # Euclid's NISP filters are other bands than VISTA's, and the columns say so
    assert "mag_J" not in cat_euclid and mock.band_names("euclid")[5:] == ("YE", "JE", "HE")
    nospec = mock.make_mock(N, seed=1, spec=False)
    np.testing.assert_array_equal(nospec["mag_r"], cat["mag_r"])
    assert nospec["z_spec"].isna().all() and (nospec["spec_survey"] == "").all()


# ----------------------------------------------------------------------------- photometry


def test_errors_reach_five_sigma_at_the_depth(cat):
    # sigma = f_5sigma / 5 makes the magnitude error 1.0857 / 5 = 0.217 at the depth
    # (the mock stops at i = 25.5, so i itself never reaches its 26.0 depth)
    for b in ("g", "r", "z", "Y", "J", "H"):
        depth = mock.DEPTHS["ultravista"][b]
        near = cat[f"mag_{b}"].between(depth - 0.05, depth + 0.05)
        assert near.sum() > 30, b
        assert cat.loc[near, f"magerr_{b}"].median() == pytest.approx(0.217, abs=0.02), b
    bright = cat["mag_i"] < 20
    assert cat.loc[bright, "magerr_i"].min() >= 0.4 * np.log(10) * mock.MAG_ERROR_FLOOR * 0.999


def test_detection_fraction_falls_beyond_the_depth(cat, cat_euclid):
    for b in ("Y", "J", "H"):
        by_i = cat[f"mag_{b}"].notna().groupby(pd.cut(cat["mag_i"], [18, 22, 24, 25, 26])).mean()
        assert by_i.iloc[0] > 0.999 and by_i.is_monotonic_decreasing, by_i
        assert by_i.iloc[-1] < 0.995
        # Euclid NISP (5 sigma 24.0) loses more faint galaxies than UltraVISTA
        eu = cat_euclid[f"mag_{b}E"].notna().groupby(pd.cut(cat["mag_i"], [25, 26])).mean()
        assert eu.iloc[0] < by_i.iloc[-1] - 0.02
    # no detection below S/N 2: the largest error is 1.0857 / 2
    for b in mock.BANDS:
        assert cat[f"magerr_{b}"].max() <= 2.5 / np.log(10) / mock.DETECTION_SNR + 1e-9


def test_detection_probability_follows_the_noise():
    # a source at the 2-sigma limit is detected half the time; 5 sigma always; 0.8 sigma
    # only when the noise adds 1.2 sigma (11.5%)
    rng = np.random.default_rng(0)
    sigma = np.ones(200_000)
    for snr, expected in ((2.0, 0.5), (5.0, 0.99865), (0.8, 0.1151)):
        flux = snr * sigma + rng.standard_normal(sigma.size)
        mag, err = mock_catalogue._mag_from_flux(flux, sigma)
        assert np.isfinite(mag).mean() == pytest.approx(expected, abs=0.005)
        assert (np.isfinite(mag) == np.isfinite(err)).all()


def test_count_slope_and_redshift_medians(cat):
    counts, edges = np.histogram(cat["mag_i"], bins=np.arange(18.0, 25.01, 0.5))
    slope = np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(counts), 1)[0]
    assert slope == pytest.approx(mock.COUNT_SLOPE, abs=0.03)
    near22 = cat["mag_i"].between(21.8, 22.2)
    assert cat.loc[near22, "z_true"].median() == pytest.approx(0.61, abs=0.05)
    faint = cat["mag_i"].between(24.3, 24.7)
    assert cat.loc[faint, "z_true"].median() == pytest.approx(1.0, abs=0.08)


def test_bluer_types_dominate_faint_and_distant(cat):
    kind = mock.load_templates().kind[cat["template"]]
    bright_low = (cat["mag_i"] < 21) & (cat["z_true"] > 0.3) & (cat["z_true"] < 0.9)
    faint_high = (cat["mag_i"] > 24) & (cat["z_true"] > 1.5)
    early_bright = np.mean(kind[bright_low] == mock.EARLY)
    early_faint = np.mean(kind[faint_high] == mock.EARLY)
    assert early_bright > 0.25 and early_faint < 0.05
    assert np.mean(kind[faint_high] == mock.STARBURST) > 0.8
    # Ell/S0 carry at most a little dust
    assert cat.loc[kind == mock.EARLY, "ebv"].max() <= 0.1 + 1e-9


def test_red_sequence_colours_redden_to_z_0_8(cat):
    kind = mock.load_templates().kind[cat["template"]]
    early = cat[(kind == mock.EARLY) & (cat["mag_i"] < 23)]
    gr = early["mag_g"] - early["mag_r"]
    medians = gr.groupby(pd.cut(early["z_true"], [0.05, 0.25, 0.45, 0.65, 0.85])).median()
    assert medians.is_monotonic_increasing, medians
    assert medians.iloc[0] > 0.6 and medians.iloc[-1] > 1.3


def test_photo_z_scatter_and_outliers(cat):
    dz = (cat["z_phot"] - cat["z_true"]) / (1 + cat["z_true"])
    bright = cat["mag_i"] < 22.5
    assert _nmad(dz[bright]) == pytest.approx(0.007, abs=0.0015)
    faint = cat["mag_i"].between(24.8, 25.2)
    assert _nmad(dz[faint]) == pytest.approx(0.03, abs=0.008)
    assert np.mean(np.abs(dz[bright]) > 0.15) < 0.015
    assert 0.02 < np.mean(np.abs(dz[faint]) > 0.15) < 0.10


# ----------------------------------------------------------------------------- spectra


def test_spectra_only_where_the_selection_allows(cat):
    has = cat["z_spec"].notna()
    assert (has == (cat["spec_survey"] != "")).all()
    bright = cat[cat["spec_survey"] == "zcosmos-like"]
    deep = cat[cat["spec_survey"] == "deep"]
    assert len(bright) > 300 and len(deep) > 0
    assert bright["mag_i"].between(15.0, 22.5).all()
    assert (bright["z_true"] <= 1.4).all()  # the success grid ends at z = 1.4
    assert deep["mag_i"].between(22.5, 24.5).all()
    assert deep["z_true"].between(1.5, 3.0).all()
    eligible = cat["mag_i"].between(15.0, 22.5) & (cat["z_true"] < 1.0)
    assert 0.2 < len(bright) / eligible.sum() < 0.32  # 30% sampling x ~90% success
    # coverage gap: faint galaxies at 1 < z < 3 almost never have spectra
    gap = (cat["mag_i"] > 23) & cat["z_true"].between(1.0, 3.0)
    assert cat.loc[gap, "z_spec"].notna().mean() < 0.02


def test_spectroscopic_redshifts_are_accurate():
    df = mock.make_mock(N, seed=1, wrong_z_fraction=0.0)
    s = df[df["z_spec"].notna()]
    dz = (s["z_spec"] - s["z_true"]) / (1 + s["z_true"])
    assert np.abs(dz).max() < 6 * mock.SPEC_Z_SIGMA
    assert dz.std() == pytest.approx(mock.SPEC_Z_SIGMA, rel=0.15)


def test_a_few_spectroscopic_redshifts_are_wrong():
    df = mock.make_mock(100_000, seed=2)
    s = df[df["z_spec"].notna()]
    wrong = np.abs(s["z_spec"] - s["z_true"]) > 0.01 * (1 + s["z_true"])
    assert 0.003 < wrong.mean() < 0.02
    assert (s.loc[wrong & (s["spec_survey"] == "zcosmos-like"), "z_spec"] <= 1.6).all()


def test_success_grid_lookup_and_edges():
    grid = mock.load_success_grid()
    assert grid.rate.shape == (301, 239)
    assert grid.rate[0, 0] == pytest.approx(0.972)
    # nodes are hit exactly; brighter than 18 uses the first row; z > 1.4 has no success
    k, j = 120, 80
    mag, z = 18.0 + k * grid.dmag, j * grid.dz
    assert grid(mag, z) == pytest.approx(grid.rate[k, j])
    assert grid(16.0, z) == pytest.approx(grid.rate[0, j])
    assert grid(22.49, z) == pytest.approx(grid.rate[-1, j])
    assert grid(20.0, 1.45) == 0.0 and grid(20.0, 3.0) == 0.0
    np.testing.assert_array_equal(grid(np.array([np.nan, 20.0]), np.array([0.5, np.nan])), 0.0)


def test_read_success_grid_reports_bad_files(tmp_path):
    good = np.full((3, 4), 0.5)
    p = tmp_path / "ok.txt"
    np.savetxt(p, good, header="comment")
    g = mock.read_success_grid(p, shape=(3, 4), mag0=20.0, dmag=1.0, dz=0.5)
    assert g(21.0, 0.5) == 0.5 and g(21.0, 2.0) == 0.0
    with pytest.raises(ValueError, match="shape"):
        mock.read_success_grid(p)
    bad = good.copy()
    bad[1, 2] = 1.7
    np.savetxt(p, bad)
    with pytest.raises(ValueError, match=r"row 2, column 3"):
        mock.read_success_grid(p, shape=None)
    p.write_text("0.1 0.2\nabc 0.3\n")
    with pytest.raises(ValueError, match="ok.txt"):
        mock.read_success_grid(p, shape=None)


def test_packaged_success_grid_equals_the_original():
    original = SHARED / "selection" / "zCOSMOS_success.txt"
    if not original.exists():
        pytest.skip(f"reference data not present: {original}")
    packaged = mock.DATA_DIR / "selection" / "zCOSMOS_success.txt.gz"
    with gzip.open(packaged, "rt") as fh:
        assert fh.readline().startswith("#")
    np.testing.assert_array_equal(
        mock.read_success_grid(original).rate, mock.load_success_grid().rate
    )


# ----------------------------------------------------------------------------- physics


def test_calzetti_hand_values():
    lam = np.array([1000.0, 1500.0, 5500.0, 10000.0, 20000.0, 40000.0])
    expected = [15.042, 10.334, 4.048, 1.878, 0.495, 0.0]
    np.testing.assert_allclose(mock.calzetti_k(lam), expected, atol=2e-3)
    with pytest.raises(ValueError):
        mock.calzetti_k(-5.0)


def test_madau_hand_values():
    # z = 3, 4500 A: Lyman alpha only, tau = 0.0036 (4500/1216)^3.46 = 0.3331
    assert mock.madau_transmission(4500.0, 3.0) == pytest.approx(0.71671, rel=1e-4)
    # z = 3, 4000 A: alpha + beta
    assert mock.madau_transmission(4000.0, 3.0) == pytest.approx(0.66367, rel=1e-4)
    # z = 4, 4000 A: four lines (tau 0.7042) + Lyman continuum (tau 3.8752)
    assert mock.madau_transmission(4000.0, 4.0) == pytest.approx(0.010261, rel=1e-3)
    # redward of Lyman alpha and at z = 0 nothing is absorbed
    assert mock.madau_transmission(1216.0 * 4.0 + 1.0, 3.0) == 1.0
    assert np.all(mock.madau_transmission(np.linspace(3000, 9000, 7), 0.0) == 1.0)
    rest = 1100.0
    t = [mock.madau_transmission(rest * (1 + z), z) for z in (1.0, 2.0, 3.0, 4.0)]
    assert np.all(np.diff(t) < 0)


def test_ab_magnitude_of_a_flat_3631_jy_source_is_zero():
    lam = np.geomspace(900.0, 60000.0, 3000)
    flam = 3631e-23 * 2.99792458e18 / lam**2  # f_nu = 3631 Jy in erg/s/cm^2/A
    for nir in mock.NIR_OPTIONS:
        for b, f in mock.load_filters(nir).items():
            assert mock.ab_magnitude(lam, flam, f, z=0.0) == pytest.approx(0.0, abs=2e-3), b
    # redshifting a flat f_nu source changes no colour
    f = mock.load_filters()
    m = [mock.ab_magnitude(lam, flam, f[b], z=0.8, igm=False) for b in ("g", "r", "i", "J")]
    assert np.ptp(m) < 2e-3


def test_filters_are_ordered_and_sane():
    for nir in mock.NIR_OPTIONS:
        f = mock.load_filters(nir)
        assert tuple(f) == mock.BANDS
        pivots = [f[b].pivot for b in mock.BANDS]
        assert np.all(np.diff(pivots) > 0), pivots
        assert 3400 < pivots[0] < 3900 and 15000 < pivots[-1] < 18500
        assert all(len(x.wavelength) <= 200 for x in f.values())


def test_packaged_data_reproduce_the_original_colours():
    sed_dir = SHARED / "seds" / "cosmos_ilbert09"
    if not sed_dir.exists():
        pytest.skip(f"reference data not present: {sed_dir}")
    from astropy.table import Table

    def curve(rel, scale):
        path = SHARED / "filters" / rel
        if path.suffix == ".ecsv":
            t = Table.read(path, format="ascii.ecsv")
            lam, r = np.asarray(t["wavelength"], float), np.asarray(t["response"], float)
        else:
            a = np.loadtxt(path)
            lam, r = a[:, 0], a[:, 1] * scale
        return mock.Filter(rel, lam, np.clip(r, 0, None))

    originals = {
        "u": curve("cosmos_ground/cfht_megacam-ustar.ecsv", 1),
        "g": curve("cosmos_ground/hsc2017-g.ecsv", 1),
        "i": curve("cosmos_ground/hsc2017-i.ecsv", 1),
        "Y": curve("cosmos_ground/vista_vircam_Y.par", 0.01),
        "H": curve("cosmos_ground/vista_vircam_H.par", 0.01),
    }
    packaged = mock.load_filters()
    tpl = mock.load_templates()
    for name in ("Ell5_A_0", "Sc_A_0", "SB8_A_0"):
        raw = np.loadtxt(sed_dir / f"{name}.sed")
        lam, idx = np.unique(raw[:, 0], return_index=True)
        flam = raw[idx, 1]
        k = tpl.names.index(name)
        for z in (0.0, 0.6, 1.5, 3.0):
            ref = [mock.ab_magnitude(lam, flam, originals[b], z) for b in originals]
            new = [
                mock.ab_magnitude(tpl.wavelength, tpl.flux[k], packaged[b], z) for b in originals
            ]
            ok = np.isfinite(ref) & (np.array(ref) < ref[2] + 4)  # bands with real flux
            colours_ref = np.array(ref)[ok] - ref[2]
            colours_new = np.array(new)[ok] - new[2]
            np.testing.assert_allclose(colours_new, colours_ref, atol=0.02, err_msg=f"{name} z={z}")


def test_type_mix_file_is_consistent():
    mix = mock.load_type_mix()
    tpl = mock.load_templates()
    assert mix.freq.shape == (mix.lum_edges.size + 1, len(tpl.names), mock.EBV_GRID.size)
    early = tpl.kind == mock.EARLY
    assert np.all(mix.freq[:, early, 2:] == 0)  # the calibration allowed E(B-V) <= 0.1
    p = mock_catalogue._class_probabilities(np.array([18.0, 22.0, 25.0]), np.array([0.4, 0.8, 2.5]))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[0, mock.EARLY] > p[1, mock.EARLY] > p[2, mock.EARLY]


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("suffix", [".parquet", ".fits", ".csv"])
def test_write_mock_round_trip(tmp_path, suffix):
    path = mock.write_mock(tmp_path / f"mock{suffix}", 500, seed=3)
    ref = mock.make_mock(500, seed=3)
    if suffix == ".parquet":
        back = pd.read_parquet(path)
    elif suffix == ".csv":
        back = pd.read_csv(path, keep_default_na=False, na_values=[""])
        back["spec_survey"] = pd.read_csv(path, keep_default_na=False)["spec_survey"]
    else:
        from astropy.table import Table

        back = Table.read(path).to_pandas()
        # astropy reads FITS strings as bytes and masks the empty ones
        back["spec_survey"] = [
            "" if pd.isna(v) else (v.decode() if isinstance(v, bytes) else v).strip()
            for v in back["spec_survey"]
        ]
    np.testing.assert_array_equal(back["id"], ref["id"])
    np.testing.assert_allclose(back["mag_H"], ref["mag_H"], equal_nan=True)
    np.testing.assert_allclose(back["z_spec"], ref["z_spec"], equal_nan=True)
    assert list(back["spec_survey"]) == list(ref["spec_survey"])
    with pytest.raises(FileExistsError):
        mock.write_mock(path, 10)


def test_write_mock_refuses_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown catalogue format"):
        mock.write_mock(tmp_path / "mock.xlsx", 10)
