"""inject_wide_noise: a transfer catalogue from any deep catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from som.deepwide import DeepWideCalibration, inject_wide_noise

DEPTHS = {"g": 24.5, "r": 24.3, "i": 23.8, "z": 23.1}


def _deep(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {"id": np.arange(n) + 100, "z_spec": rng.uniform(0.1, 1.5, n)}
    for k, band in enumerate(("u", "g", "r", "i", "z", "J")):
        data[f"mag_{band}"] = rng.uniform(20.0, 24.0, n) + 0.1 * k
        data[f"magerr_{band}"] = np.full(n, 0.02)
    return pd.DataFrame(data)


def test_noise_is_the_declared_noise_around_the_deep_flux():
    deep = _deep()
    out = inject_wide_noise(deep, DEPTHS, n_injections=20, seed=1, keep=("z_spec",))
    assert len(out) == 20 * len(deep)
    np.testing.assert_array_equal(out["id"].to_numpy()[:20], np.full(20, 100))
    np.testing.assert_array_equal(out["injection"].to_numpy()[:20], np.arange(20))
    np.testing.assert_allclose(out.groupby("id")["weight"].sum().to_numpy(), 1.0)
    np.testing.assert_array_equal(out["z_spec"].to_numpy()[::20], deep["z_spec"].to_numpy())
    assert out["deep_mag_u"].notna().all() and "wide_mag_u" not in out.columns
    zp = 2.5 * np.log10(3631e6)
    for band, m5 in DEPTHS.items():
        f_true = 10 ** (-0.4 * (np.repeat(deep[f"mag_{band}"].to_numpy(), 20) - zp))
        sigma = out[f"wide_fluxerr_{band}"].to_numpy()
        expected = np.hypot(10 ** (-0.4 * (m5 - zp)) / 5, 0.01 / (2.5 / np.log(10)) * f_true)
        np.testing.assert_allclose(sigma, expected, rtol=1e-12)
        pull = (out[f"wide_flux_{band}"].to_numpy() - f_true) / sigma
        # 40,000 draws: the mean and the spread of a standard normal to ~5 sigma
        assert abs(pull.mean()) < 0.025 and abs(pull.std() - 1) < 0.02
        assert out.attrs["units"][f"wide_flux_{band}"] == "uJy"


def test_missing_deep_bands_stay_missing_and_faint_wide_magnitudes_are_nan():
    deep = _deep(50)
    deep.loc[3, "mag_r"] = -99.0  # a sentinel: no deep measurement, so no wide one
    deep.loc[4, "mag_i"] = 30.0  # far below the wide depth: flux kept, magnitude NaN
    out = inject_wide_noise(deep, DEPTHS, n_injections=4, seed=2, wide_suffix="_w")
    rows3 = out["id"] == 103
    assert out.loc[rows3, "wide_flux_r_w"].isna().all()
    assert out.loc[rows3, "wide_mag_r_w"].isna().all()
    rows4 = out["id"] == 104
    assert out.loc[rows4, "wide_flux_i_w"].notna().all()
    assert out.loc[rows4, "wide_mag_i_w"].isna().all()
    again = inject_wide_noise(deep, DEPTHS, n_injections=4, seed=2, wide_suffix="_w")
    pd.testing.assert_frame_equal(out, again)  # the one seed fixes every draw


def test_bad_requests_are_named():
    deep = _deep(10)
    with pytest.raises(ValueError, match="no column 'mag_Y'"):
        inject_wide_noise(deep, {"Y": 23.0})
    with pytest.raises(ValueError, match="not a plausible AB depth"):
        inject_wide_noise(deep, {"g": 2.0})
    with pytest.raises(ValueError, match="n_injections must be >= 1"):
        inject_wide_noise(deep, DEPTHS, n_injections=0)
    with pytest.raises(ValueError, match="no id column"):
        inject_wide_noise(deep.drop(columns="id"), DEPTHS)
    with pytest.raises(ValueError, match="keep names columns"):
        inject_wide_noise(deep, DEPTHS, keep=("nope",))
    deep.loc[2, "mag_g"] = 75.0
    with pytest.raises(ValueError, match=r"column 'mag_g', row 2"):
        inject_wide_noise(deep, DEPTHS)


def test_it_feeds_the_deep_wide_calibration():
    """Deep map on six bands, wide map on the four injected ones: the column layout is the
    one DeepWideCalibration reads, and the bins come out ordered in redshift."""
    deep = _deep(3000, seed=3)
    # colours that follow redshift, so the maps have something to order
    rng = np.random.default_rng(6)
    for k, band in enumerate(("u", "g", "r", "i", "z", "J")):
        slope = 2.0 - 0.3 * k
        deep[f"mag_{band}"] = 21.0 + slope * deep["z_spec"] + rng.normal(0, 0.03, len(deep))
    wide = inject_wide_noise(deep, DEPTHS, n_injections=1, seed=4)
    wide = wide[[c for c in wide.columns if c.startswith("wide_")]]
    wide.columns = [c.removeprefix("wide_") for c in wide.columns]
    # real catalogues hold galaxies with no usable photometry: no cell, in no bin
    wide.iloc[:7, :] = np.nan
    transfer = inject_wide_noise(deep, DEPTHS, n_injections=3, seed=5)
    cal = DeepWideCalibration(
        deep_bands=("u", "g", "r", "i", "z", "J"),
        wide_bands=tuple(DEPTHS),
        deep_shape=(8, 8),
        wide_shape=(5, 5),
        n_epochs=5,
        bin_edges=(0.0, 0.6, 1.0, 2.0),
    ).fit(deep, wide, transfer, np.ones(len(deep), bool), z_column="z_spec")
    assert np.all(np.diff(cal.nz_.mean_z) > 0)
    assert cal.wide_som_.n_skipped_ == 7
    assert np.all(cal.wide_cells_[:7] == -1) and np.all(cal.wide_bins_[:7] == -1)
    assert cal.nz_.n_galaxies.sum() == len(wide) - 7
