"""The packaged data files the mock reads: filter curves, SED templates, the galaxy-type
mix and the zCOSMOS-bright redshift-success grid."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table

from som.mock.parameters import (
    BANDS,
    DATA_DIR,
    EARLY,
    EBV_GRID,
    NIR_OPTIONS,
    SPIRAL,
    STARBURST,
    Z_MAX,
)

_FILTER_FILES = {
    "ultravista": (
        "cfht_ustar",
        "hsc_g",
        "hsc_r",
        "hsc_i",
        "hsc_z",
        "vista_Y",
        "vista_J",
        "vista_H",
    ),
    "euclid": (
        "cfht_ustar",
        "hsc_g",
        "hsc_r",
        "hsc_i",
        "hsc_z",
        "euclid_Y",
        "euclid_J",
        "euclid_H",
    ),
}


@dataclass(frozen=True)
class Filter:
    """A photon-counting transmission curve: ``wavelength`` (A) and ``response``."""

    name: str
    wavelength: np.ndarray
    response: np.ndarray

    @property
    def pivot(self) -> float:
        """Pivot wavelength (A): sqrt(int T lam dlam / int T / lam dlam)."""
        lam, t = self.wavelength, self.response
        return float(np.sqrt(np.trapezoid(t * lam, lam) / np.trapezoid(t / lam, lam)))


@dataclass(frozen=True)
class Templates:
    """SED templates on one rest-frame grid.

    ``wavelength`` (L,) in A; ``flux`` (T, L) f_lambda, each scaled to unit mean over
    5000-6000 A; ``names`` (T,) in COSMOS_seds.list order (ellipticals to starbursts);
    ``kind`` (T,) 0 = early (Ell, S0), 1 = spiral (Sa-Sdm), 2 = starburst (SB).
    """

    names: tuple[str, ...]
    wavelength: np.ndarray
    flux: np.ndarray
    kind: np.ndarray


def check_nir(nir: str) -> str:
    if nir not in NIR_OPTIONS:
        raise ValueError(f"nir must be one of {NIR_OPTIONS}, got {nir!r}")
    return nir


def _read_filter(path: Path, band: str) -> Filter:
    try:
        t = Table.read(path, format="ascii.ecsv")
        lam = np.asarray(t["wavelength"], dtype=float)
        resp = np.asarray(t["response"], dtype=float)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(
            f"{path}: cannot read a filter curve (wavelength, response): {exc}"
        ) from exc
    if lam.size < 3 or np.any(np.diff(lam) <= 0) or np.any(resp < 0) or resp.max() <= 0:
        raise ValueError(
            f"{path}: wavelength must increase and response be >= 0 with a positive peak"
        )
    lam.setflags(write=False)
    resp.setflags(write=False)
    return Filter(band, lam, resp)


@functools.cache
def nir_filters(nir: str) -> tuple[Filter, ...]:
    files = _FILTER_FILES[check_nir(nir)]
    return tuple(
        _read_filter(DATA_DIR / "filters" / f"{stem}.ecsv", band)
        for band, stem in zip(BANDS, files, strict=True)
    )


def load_filters(nir: str = "ultravista") -> dict[str, Filter]:
    """The eight transmission curves of the mock, keyed by ``BANDS``.

    u is CFHT MegaCam u* (the u of the COSMOS catalogue), g r i z are HSC (2017), and
    Y J H are VISTA/VIRCAM (``nir="ultravista"``) or Euclid NISP (``nir="euclid"``).
    Read once per process; the curves' arrays are read-only.
    """
    return dict(zip(BANDS, nir_filters(nir), strict=True))


@functools.lru_cache(maxsize=1)
def load_templates() -> Templates:
    """The 31 COSMOS templates of Ilbert et al. (2009), resampled (see LICENSES.md)."""
    path = DATA_DIR / "seds" / "cosmos_ilbert09.npz"
    with np.load(path, allow_pickle=False) as npz:
        lam = np.asarray(npz["wavelength"], dtype=float)
        flux = np.asarray(npz["flux"], dtype=float)
        names = tuple(str(s) for s in npz["names"])
    if flux.shape != (len(names), lam.size):
        raise ValueError(f"{path}: flux shape {flux.shape} != ({len(names)}, {lam.size})")
    kind = np.array(
        [
            EARLY if n.startswith(("Ell", "S0")) else STARBURST if n.startswith("SB") else SPIRAL
            for n in names
        ]
    )
    for a in (lam, flux, kind):
        a.setflags(write=False)
    return Templates(names, lam, flux, kind)


@dataclass(frozen=True)
class TypeMix:
    """The galaxy-type mix, calibrated on real zCOSMOS-bright galaxies.

    ``coeff`` (2, 4): log-odds of early and spiral against starburst on
    ``_class_features``. ``freq`` (L, T, E): P(template, E(B-V) | class, luminosity
    bin), each (bin, class) block summing to 1, in the template order of
    ``load_templates`` and the E(B-V) of ``EBV_GRID``; the bins split
    ``luminosity_proxy`` at ``lum_edges`` (L - 1,). Made by ``scripts/calibrate_mix.py``
    from best-fit templates of 11,223 secure redshifts (E(B-V) <= 0.1 for Ell/S0,
    <= 0.3 for spirals).
    """

    coeff: np.ndarray
    freq: np.ndarray
    lum_edges: np.ndarray


@functools.lru_cache(maxsize=1)
def load_type_mix() -> TypeMix:
    """The packaged type mix (``som/data/mix/template_ebv_freq.ecsv``)."""
    path = DATA_DIR / "mix" / "template_ebv_freq.ecsv"
    t = Table.read(path, format="ascii.ecsv")
    tpl = load_templates()
    lum_edges = np.asarray(t.meta["lum_edges"], dtype=float)
    n_bins, n_tpl = lum_edges.size + 1, len(tpl.names)
    if len(t) != n_bins * n_tpl or list(t["template"][:n_tpl]) != list(tpl.names):
        raise ValueError(f"{path}: expected {n_bins} blocks of the {n_tpl} COSMOS templates")
    freq = np.stack([np.asarray(t[f"p_ebv_{e:.1f}"], dtype=float) for e in EBV_GRID], axis=1)
    freq = freq.reshape(n_bins, n_tpl, EBV_GRID.size)
    coeff = np.asarray(t.meta["mix_coeff"], dtype=float)
    for b in range(n_bins):
        for c in (EARLY, SPIRAL, STARBURST):
            total = freq[b, tpl.kind == c].sum()
            if freq.min() < 0 or abs(total - 1.0) > 1e-3:
                raise ValueError(
                    f"{path}: lum_bin {b} class {c} frequencies sum to {total}, expected 1"
                )
    if coeff.shape != (2, 4):
        raise ValueError(f"{path}: mix_coeff has shape {coeff.shape}, expected (2, 4)")
    for a in (freq, coeff, lum_edges):
        a.setflags(write=False)
    return TypeMix(coeff, freq, lum_edges)


@functools.lru_cache(maxsize=1)
def _distance_modulus_table() -> tuple[np.ndarray, np.ndarray]:
    from astropy.cosmology import FlatLambdaCDM

    z = np.geomspace(0.005, Z_MAX, 400)
    return z, FlatLambdaCDM(H0=70.0, Om0=0.3).distmod(z).value


def luminosity_proxy(i_mag: np.ndarray | float, z: np.ndarray | float) -> np.ndarray:
    """i minus the distance modulus (flat LCDM, H0 = 70, Om = 0.3), no k-correction.

    A crude absolute magnitude that orders galaxies by luminosity well enough to pick
    the dust and template mix (luminous star-formers are dustier). z < 0.005 is held
    at 0.005.
    """
    zt, mu = _distance_modulus_table()
    return np.asarray(i_mag, dtype=float) - np.interp(np.asarray(z, dtype=float), zt, mu)


@dataclass(frozen=True)
class SuccessGrid:
    """Spectroscopic success rate on a regular grid: ``rate[k, j]`` at magnitude
    ``mag0 + k * dmag`` and redshift ``z0 + j * dz``."""

    rate: np.ndarray
    mag0: float
    dmag: float
    z0: float
    dz: float

    def __call__(self, mag: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Success rate at the nearest node. Magnitudes outside the grid take the first or
        last row (zCOSMOS success is flat at the bright end); redshifts beyond the last
        column (z > 1.4 for zCOSMOS) or below the first, and NaN inputs, have rate 0."""
        mag, z = np.broadcast_arrays(np.asarray(mag, dtype=float), np.asarray(z, dtype=float))
        nk, nj = self.rate.shape
        jf = (z - self.z0) / self.dz
        # NaN compares False: an unmeasured magnitude or redshift never succeeds
        inside = (jf > -0.5) & (jf < nj - 0.5) & ~np.isnan(mag)
        kf = np.where(inside, (mag - self.mag0) / self.dmag, 0.0)
        k = np.clip(np.rint(kf), 0, nk - 1).astype(np.intp)
        j = np.clip(np.rint(np.where(inside, jf, 0.0)), 0, nj - 1).astype(np.intp)
        return np.where(inside, self.rate[k, j], 0.0)


def read_success_grid(
    path: str | Path,
    *,
    mag0: float = 18.0,
    dmag: float = 0.01464226,
    z0: float = 0.0,
    dz: float = 0.00587002,
    shape: tuple[int, int] | None = (301, 239),
) -> SuccessGrid:
    """Read a whitespace-separated success-rate grid (rows = magnitude, columns = redshift).

    The defaults describe ``zCOSMOS_success.txt`` of pz-rail-base (Lilly et al. 2009 fig. 3):
    301 rows of I_AB from 18.0 in steps of 0.01464226, 239 columns of z from 0 in steps of
    0.00587002 (the steps RAIL's SpecSelection_zCOSMOS uses). ``#`` lines are comments;
    ``.gz`` files are read transparently. Pass ``shape=None`` to accept any shape.
    """
    path = Path(path)
    try:
        rate = np.loadtxt(path, comments="#", ndmin=2)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a numeric success-rate grid: {exc}") from exc
    if shape is not None and rate.shape != tuple(shape):
        raise ValueError(f"{path}: grid has shape {rate.shape}, expected {tuple(shape)}")
    bad = ~np.isfinite(rate) | (rate < 0) | (rate > 1)
    if bad.any():
        k, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{path}: success rate must be in [0, 1]; row {k + 1}, column {j + 1} is {rate[k, j]}"
        )
    rate.setflags(write=False)
    return SuccessGrid(rate, float(mag0), float(dmag), float(z0), float(dz))


@functools.lru_cache(maxsize=1)
def load_success_grid() -> SuccessGrid:
    """The packaged zCOSMOS-bright success grid (I_AB 18-22.4 x z 0-1.4)."""
    return read_success_grid(DATA_DIR / "selection" / "zCOSMOS_success.txt.gz")
