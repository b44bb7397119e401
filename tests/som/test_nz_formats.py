"""n(z) ensembles written as qp, SACC and CosmoSIS/2pt FITS read back equal."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from astropy.io import fits

from som import nz_formats as nzf
from som.nz_formats import NzEnsemble

# qp-prob is the optional "formats" extra (in "dev", so CI runs these); sacc is a dependency
needs_qp = pytest.mark.skipif(
    importlib.util.find_spec("qp") is None, reason='qp-prob not installed: pip install ".[formats]"'
)


def _ensemble(n_bins: int = 3, n_z: int = 12, n_real: int | None = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    # uneven edges: the readers must not rebuild them from the centres
    edges = np.cumsum(np.concatenate([[0.0], rng.uniform(0.05, 0.3, n_z)]))
    widths = np.diff(edges)

    def unit(a):
        return a / (a * widths).sum(axis=-1, keepdims=True)

    fid = unit(rng.random((n_bins, n_z)))
    real = None if n_real is None else unit(rng.random((n_real, n_bins, n_z)))
    return NzEnsemble(
        z_edges=edges,
        fiducial=fid,
        realisations=real,
        names=[f"source_{i}" for i in range(n_bins)],
        n_eff=rng.uniform(100, 1000, n_bins),
        metadata={"map_id": 7, "k": 1},
    )


def _assert_equal(a: NzEnsemble, b: NzEnsemble, metadata: bool = True) -> None:
    assert b.n_bins == a.n_bins
    assert b.names == a.names
    np.testing.assert_allclose(b.z_edges, a.z_edges, rtol=1e-14, atol=0)
    np.testing.assert_allclose(b.fiducial, a.fiducial, rtol=1e-12, atol=0)
    if a.realisations is None:
        assert b.realisations is None
    else:
        assert b.realisations is not None
        assert b.realisations.shape == a.realisations.shape
        np.testing.assert_allclose(b.realisations, a.realisations, rtol=1e-12, atol=0)
    np.testing.assert_allclose(b.n_eff, a.n_eff, rtol=1e-14)
    if metadata:
        assert b.metadata == a.metadata


@needs_qp
@pytest.mark.parametrize("n_real", [None, 5])
@pytest.mark.parametrize("suffix", [".hdf5", ".fits"])
def test_qp_one_file_round_trip(tmp_path, n_real, suffix):
    import qp

    ens = _ensemble(n_real=n_real)
    (path,) = nzf.write_qp(ens, tmp_path / f"nz{suffix}")
    e = qp.read(str(path))
    # a plain qp.hist ensemble on the edges: every bin's fiducial and realisations as rows
    assert e.npdf == ens.n_bins * (1 + (n_real or 0))
    np.testing.assert_allclose(e.metadata["bins"].ravel(), ens.z_edges)
    _assert_equal(ens, nzf.read_qp(path), metadata=False)


@needs_qp
def test_qp_one_file_per_bin(tmp_path):
    import qp

    ens = _ensemble(n_real=4)
    paths = nzf.write_qp(ens, tmp_path / "nz.hdf5", per_bin=True)
    assert [p.name for p in paths] == [f"nz_source_{i}.hdf5" for i in range(3)]
    # each file: the fiducial, then the realisations, as RAIL's summarizers hand them on
    e = qp.read(str(paths[1]))
    assert e.npdf == 5
    np.testing.assert_allclose(e.objdata["pdfs"][0], ens.fiducial[1], rtol=1e-12)
    np.testing.assert_allclose(e.objdata["pdfs"][1:], ens.realisations[:, 1], rtol=1e-12)
    _assert_equal(ens, nzf.read_qp(list(reversed(paths))), metadata=False)
    with pytest.raises(ValueError, match="missing"):
        nzf.read_qp(paths[1:])


@pytest.mark.parametrize("n_real", [None, 5])
def test_sacc_round_trip(tmp_path, n_real):
    import sacc

    ens = _ensemble(n_real=n_real)
    path = nzf.write_sacc(ens, tmp_path / "nz.sacc")
    s = sacc.Sacc.load_fits(str(path))
    assert sorted(s.tracers) == ens.names
    t = s.tracers["source_2"]
    assert t.tracer_type == "NZ"
    np.testing.assert_allclose(t.z, ens.z_mid, rtol=1e-14)
    np.testing.assert_allclose(t.nz, ens.fiducial[2], rtol=1e-14)
    assert len(t.extra_columns) == (n_real or 0)
    _assert_equal(ens, nzf.read_sacc(path))


@pytest.mark.parametrize("n_real", [None, 5])
def test_cosmosis_fits_round_trip(tmp_path, n_real):
    ens = _ensemble(n_bins=4, n_real=n_real)
    path = nzf.write_fits(ens, tmp_path / "nz.fits")
    with fits.open(path) as hdul:
        h, d = hdul["NZ_SOURCE"].header, hdul["NZ_SOURCE"].data
        assert h["NZDATA"] is True and h["NBIN"] == 4 and h["NZ"] == 12
        assert d.columns.names == ["Z_LOW", "Z_MID", "Z_HIGH", "BIN1", "BIN2", "BIN3", "BIN4"]
        np.testing.assert_array_equal(d["BIN3"], ens.fiducial[2])
        assert ("NZ_SOURCE_REALISATIONS" in hdul) == (n_real is not None)
    _assert_equal(ens, nzf.read_fits(path))


@pytest.mark.parametrize("fmt", nzf.FORMATS)
def test_write_read_dispatch_single_bin(tmp_path, fmt):
    if fmt == "qp" and importlib.util.find_spec("qp") is None:
        pytest.skip("qp-prob not installed")
    ens = _ensemble(n_bins=1, n_real=2)
    paths = nzf.write(ens, tmp_path / "one.fits", fmt)
    back = nzf.read(paths if fmt == "qp" else paths[0], fmt)
    _assert_equal(ens, back, metadata=fmt != "qp")


def test_bad_ensembles_and_format():
    ens = _ensemble(n_real=None)
    with pytest.raises(ValueError, match="strictly increasing"):
        NzEnsemble(ens.z_edges[::-1], ens.fiducial)
    with pytest.raises(ValueError, match="fiducial must have shape"):
        NzEnsemble(ens.z_edges, ens.fiducial[:, :-1])
    with pytest.raises(ValueError, match="realisations must have shape"):
        NzEnsemble(ens.z_edges, ens.fiducial, realisations=ens.fiducial)
    with pytest.raises(ValueError, match="distinct"):
        NzEnsemble(ens.z_edges, ens.fiducial, names=["a", "a", "b"])
    with pytest.raises(ValueError, match="unknown n\\(z\\) format"):
        nzf.write(ens, "x", "hdf5")
