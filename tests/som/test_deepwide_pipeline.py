"""End to end on the mock: DeepWideCalibration from catalogues to the per-bin n(z).

Size and tolerance. The test is small (3000 deep galaxies with complete spectroscopy,
6000 wide galaxies from an independent draw, 5 injections per deep galaxy, 10x10 deep and
6x6 wide maps, 5 epochs) so it runs in seconds. At that size the per-bin mean redshift is
not expected to meet the 0.002(1+z) requirement: ~30 spectra per deep cell and a coarse
deep map leave a residual p(z|c, ĉ) != p(z|c) (a wide cell's colours still carry
information within a deep cell), worth ~0.02 in the lowest bin on this seed. The
tolerance is therefore 0.03 (1 + z) per bin: it catches a broken pipeline (wrong cells,
wrong bins, swapped maps give errors of 0.1-0.5) while leaving room for the small-sample
residual. The 0.002 (1 + z) check at full size is in ``bench/deepwide.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from som.deepwide import DeepWideCalibration, DeepWideNz
from som.mock import make_mock
from som.mock.wide import observe_wide, transfer_catalogue

BIN_EDGES = (0.0, 0.7, 1.0, 1.4, 4.0)
TOLERANCE = 0.03  # x (1 + z); see the module docstring


@pytest.fixture(scope="module")
def mock():
    deep = make_mock(3000, seed=1, truth=True)
    deep["z_complete"] = deep["z_true"]  # complete spectroscopy of the deep sample
    wide = observe_wide(make_mock(6000, seed=2, truth=True), "lsst", seed=3)
    transfer = transfer_catalogue(deep, "lsst", n_injections=5, seed=4)
    return deep, wide, transfer


def _cal(**kw):
    params = dict(deep_shape=(10, 10), wide_shape=(6, 6), n_epochs=5, bin_edges=BIN_EDGES)
    params.update(kw)
    return DeepWideCalibration(**params)


@pytest.fixture(scope="module")
def fitted(mock):
    deep, wide, transfer = mock
    return _cal().fit(
        deep,
        wide,
        transfer,
        np.ones(len(deep), bool),
        z_column="z_complete",
        truth_column="z_true",
        allow_missing_transfer=True,
    )


def test_mean_z_per_bin_close_to_truth(fitted):
    nz = fitted.nz_
    assert isinstance(nz, DeepWideNz)
    assert nz.n_bins == len(BIN_EDGES) - 1
    # the bins are distinct populations, ordered in z
    assert np.all(np.diff(nz.truth_mean_z) > 0.15)
    assert np.all(np.abs(nz.delta_mean_z) <= TOLERANCE * (1.0 + nz.truth_mean_z)), nz.delta_mean_z
    # complete spectroscopy: every deep cell the bins reach has spectra
    assert np.all(nz.no_spec_fraction < 0.01)
    assert np.all(nz.no_transfer_fraction < 0.05)
    assert np.allclose((nz.nz * np.diff(nz.z_edges)).sum(axis=1), 1.0)


def test_learned_attributes(fitted, mock):
    deep, wide, transfer = mock
    assert fitted.wide_cells_.shape == (len(wide),)
    assert fitted.transfer_deep_cells_.shape == (len(transfer),)
    assert fitted.transfer_matrix_.shape == (36, 100)
    assert fitted.spec_bin_fractions_.shape == (len(deep), len(BIN_EDGES) - 1)
    assert fitted.deep_features_.n_features_ == 7
    assert fitted.wide_features_.n_features_ == 5


def test_ensemble(fitted):
    ens = fitted.nz_ensemble(10, "bootstrap_spec", random_state=0)
    assert ens.n_realisations == 10
    assert np.all(ens.mean_z_std > 0)
    ens = fitted.nz_ensemble(5, "bootstrap_deep", random_state=0)
    assert ens.n_realisations == 5


def test_photoz_binning_and_band_subsets(mock):
    deep, wide, transfer = mock
    rng = np.random.default_rng(0)
    cal = _cal(
        binning="photoz",
        deep_bands=("u", "g", "r", "i", "z"),
        wide_bands=("g_lsst", "r_lsst", "i_lsst", "z_lsst"),
    )
    cal.fit(
        deep,
        wide,
        transfer,
        np.ones(len(deep), bool),
        z_column="z_complete",
        photo_z=wide["z_true"].to_numpy() + 0.03 * rng.standard_normal(len(wide)),
        transfer_photo_z=transfer["z_true"].to_numpy() + 0.03 * rng.standard_normal(len(transfer)),
        truth_column="z_true",
        allow_missing_transfer=True,
    )
    assert cal.cell_bins_ is None
    assert cal.deep_features_.n_features_ == 4
    assert np.all(np.abs(cal.nz_.delta_mean_z) <= TOLERANCE * (1.0 + cal.nz_.truth_mean_z))


def test_transfer_bands_must_match_the_maps(mock):
    deep, wide, transfer = mock
    euclid = transfer_catalogue(deep.iloc[:50], "euclid", n_injections=2, seed=0)
    with pytest.raises(ValueError, match=r"transfer catalogue's wide side.*wide_mag_u_lsst.*VIS"):
        _cal().fit(deep, wide, euclid, np.ones(len(deep), bool), z_column="z_complete")
    with pytest.raises(ValueError, match=r"deep catalogue does not match.*mag_Q"):
        _cal(deep_bands=("u", "g", "Q")).fit(deep, wide, transfer, np.ones(len(deep), bool))
    no_deep = transfer.drop(columns=["deep_mag_H", "deep_magerr_H"])
    with pytest.raises(ValueError, match=r"transfer catalogue's deep side.*deep_mag_H"):
        _cal().fit(deep, wide, no_deep, np.ones(len(deep), bool))


def test_bad_inputs(mock):
    deep, wide, transfer = mock
    with pytest.raises(ValueError, match="binning must be one of"):
        _cal(binning="median").fit(deep, wide, transfer, np.ones(len(deep), bool))
    with pytest.raises(ValueError, match="boolean mask over the deep rows"):
        _cal().fit(deep, wide, transfer, np.ones(10, bool))
    with pytest.raises(ValueError, match="needs photo_z"):
        _cal(binning="photoz").fit(deep, wide, transfer, np.ones(len(deep), bool))
    with pytest.raises(ValueError, match="at least two distinct bands"):
        _cal(wide_bands=("g_lsst",)).fit(deep, wide, transfer, np.ones(len(deep), bool))
    with pytest.raises(RuntimeError, match="not fitted"):
        _cal().nz_ensemble(3)


def test_weights_as_arrays_and_no_weight_column(mock):
    deep, wide, transfer = mock
    args = (deep, wide, transfer.drop(columns=["weight"]), np.ones(len(deep), bool))
    kw = dict(z_column="z_complete", truth_column="z_true", allow_missing_transfer=True)
    unweighted = _cal().fit(*args, **kw).nz_
    # equal weights per injection: the same n(z) as the mock's 1/n_injections column
    weighted = _cal().fit(*args, transfer_weights=np.full(len(transfer), 0.2), **kw).nz_
    assert np.allclose(unweighted.mean_z, weighted.mean_z)
    w = np.ones(len(wide))
    w[::2] = 3.0
    shear = _cal().fit(*args, wide_weights=w, **kw).nz_
    assert 0.95 * w.sum() <= shear.weight.sum() <= w.sum()
    assert np.all(shear.n_eff < shear.n_galaxies)
    with pytest.raises(ValueError, match="wide_weights must have one value per row"):
        _cal().fit(*args, wide_weights=np.ones(3), **kw)


@pytest.mark.parametrize("binning", ["mean", "mode"])
def test_wide_map_on_the_transfer_side(mock, binning):
    deep, wide, transfer = mock
    cal = _cal(train_wide_on="transfer", binning=binning).fit(
        deep,
        wide,
        transfer,
        np.ones(len(deep), bool),
        z_column="z_complete",
        truth_column="z_true",
        allow_missing_transfer=True,
    )
    assert cal.wide_cell_z_.shape == (36,)
    assert np.all(np.abs(cal.nz_.delta_mean_z) <= TOLERANCE * (1.0 + cal.nz_.truth_mean_z))


# ----------------------------------------------------------------------------- save/load
def _same_nz(a: DeepWideNz, b: DeepWideNz) -> None:
    for name in ("nz", "mean_z", "width", "weight", "n_eff", "no_spec_fraction"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_saved_calibration_gives_the_same_nz_ensembles_and_cells(fitted, mock, tmp_path):
    import json
    import zipfile

    from som.deepwide.pipeline import PARAM_NAMES
    from som.deepwide.saved import FORMAT_NAME

    path = fitted.save(tmp_path / "cal.somcal-deepwide")
    loaded = DeepWideCalibration.load(path)
    _same_nz(fitted.nz_, loaded.nz_)
    np.testing.assert_array_equal(fitted.nz_.truth_mean_z, loaded.nz_.truth_mean_z)
    for name in PARAM_NAMES:
        assert tuple(np.ravel(getattr(loaded, name))) == tuple(np.ravel(getattr(fitted, name)))
    for method in ("dirichlet", "bootstrap_spec", "bootstrap_deep"):
        a = fitted.nz_ensemble(8, method=method, random_state=5)
        b = loaded.nz_ensemble(8, method=method, random_state=5)
        np.testing.assert_array_equal(a.nz, b.nz, err_msg=method)
    # the maps and colour features came back too: new galaxies land in the same cells
    deep, wide, _ = mock
    for som_a, som_b, feat_a, feat_b, frame in (
        (fitted.deep_som_, loaded.deep_som_, fitted.deep_features_, loaded.deep_features_, deep),
        (fitted.wide_som_, loaded.wide_som_, fitted.wide_features_, loaded.wide_features_, wide),
    ):
        rows = frame.iloc[:500]
        np.testing.assert_array_equal(
            som_a.assign(*feat_a.transform(rows)).cell, som_b.assign(*feat_b.transform(rows)).cell
        )
    np.testing.assert_array_equal(fitted.transfer_matrix_, loaded.transfer_matrix_)
    with zipfile.ZipFile(path) as zf:
        assert json.loads(zf.read("meta.json"))["format"] == FORMAT_NAME


def test_saved_photoz_calibration_round_trips(mock, tmp_path):
    deep, wide, transfer = mock
    rng = np.random.default_rng(1)
    cal = _cal(binning="photoz").fit(
        deep,
        wide,
        transfer,
        np.ones(len(deep), bool),
        z_column="z_complete",
        wide_weights=rng.uniform(0.5, 1.5, len(wide)),
        photo_z=wide["z_true"].to_numpy(),
        transfer_photo_z=transfer["z_true"].to_numpy(),
        allow_missing_transfer=True,
    )
    loaded = DeepWideCalibration.from_bytes(cal.to_bytes())
    assert loaded.cell_bins_ is None and loaded.nz_.truth_mean_z is None
    _same_nz(cal.nz_, loaded.nz_)


def test_unreadable_calibration_files_are_named(fitted, tmp_path):
    import io
    import json
    import zipfile

    from som.persistence import MapFormatError

    data = fitted.to_bytes()
    bad = tmp_path / "truncated.zip"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(MapFormatError, match="truncated.zip"):
        DeepWideCalibration.load(bad)
    with pytest.raises(MapFormatError, match="cannot read"):
        DeepWideCalibration.load(tmp_path / "missing.zip")
    # a file from a newer somcal is refused, not misread
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            payload = zin.read(item)
            if item.filename == "meta.json":
                meta = json.loads(payload)
                meta["format_version"] = 99
                payload = json.dumps(meta).encode()
            zout.writestr(item, payload)
    with pytest.raises(MapFormatError, match="newer than this somcal reads"):
        DeepWideCalibration.from_bytes(out.getvalue(), "future.zip")
    # a saved single map is not a calibration
    with pytest.raises(MapFormatError, match="not a somcal deep/wide calibration"):
        DeepWideCalibration.from_bytes(fitted.deep_som_.to_bytes(), "map.somcal")
    with pytest.raises(RuntimeError, match="not fitted"):
        _cal().to_bytes()


def test_wide_map_on_asinh_magnitudes_of_the_fluxes(mock, tmp_path):
    """DES's choice for the wide map: asinh magnitudes, finite for faint and negative
    fluxes, so no wide galaxy loses a band to the noise."""
    deep, wide, transfer = mock
    asinh = {
        "kind": "flux",
        "value_template": "flux_{band}",
        "error_template": "fluxerr_{band}",
        "magnitudes": "asinh",
    }
    cal = _cal(wide_photometry=asinh).fit(
        deep,
        wide,
        transfer,
        np.ones(len(deep), bool),
        z_column="z_complete",
        truth_column="z_true",
        allow_missing_transfer=True,
    )
    assert cal.wide_features_.magnitudes == "asinh" and cal.deep_features_.kind == "mag"
    X, _ = cal.wide_features_.transform(wide)
    assert np.isfinite(X).all()  # Pogson magnitudes are NaN for the undetected
    assert np.isnan(wide["mag_u_lsst"]).any()
    assert np.all(np.abs(cal.nz_.delta_mean_z) <= TOLERANCE * (1.0 + cal.nz_.truth_mean_z))
    loaded = DeepWideCalibration.load(cal.save(tmp_path / "asinh.zip"))
    assert loaded.wide_photometry == asinh
    assert loaded.wide_features_.softening_ == cal.wide_features_.softening_
    _same_nz(cal.nz_, loaded.nz_)
    with pytest.raises(ValueError, match="wide_photometry: unknown key"):
        _cal(wide_photometry={"band": "x"}).fit(
            deep, wide, transfer, np.ones(len(deep), bool), z_column="z_complete"
        )
