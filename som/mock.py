"""A COSMOS-like mock galaxy catalogue: somcal's embedded default data.

``make_mock(n)`` draws galaxies with COSMOS-like i-band counts, a magnitude-dependent
redshift distribution and a type mix that turns bluer at faint magnitudes and high
redshift; it gives each one a COSMOS SED template (Ilbert et al. 2009) with Calzetti
(2000) dust and Madau (1995) intergalactic absorption, observes it through CFHT u*,
HSC g r i z and UltraVISTA (or Euclid NISP) Y J H at COSMOS depths, and imitates a
reference 30-band photo-z and a zCOSMOS-like spectroscopic selection.

Everything it needs ships in ``som/data`` (see ``som/data/LICENSES.md``). The synthetic
colours are computed once per process on a grid of template x E(B-V) x redshift and
interpolated in redshift, so 10^6 galaxies take seconds.

Conventions: wavelengths in Angstrom; SEDs are f_lambda (arbitrary scale); magnitudes
are AB; fluxes are in microjansky (AB zero point 23.9).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from scipy import special

__all__ = [
    "BANDS",
    "DEPTHS",
    "EBV_GRID",
    "NIR_OPTIONS",
    "Filter",
    "SuccessGrid",
    "Templates",
    "TypeMix",
    "ab_magnitude",
    "calzetti_k",
    "load_filters",
    "load_success_grid",
    "load_templates",
    "load_type_mix",
    "luminosity_proxy",
    "madau_transmission",
    "make_mock",
    "median_z_of_i",
    "read_success_grid",
    "write_mock",
]

DATA_DIR = Path(__file__).resolve().parent / "data"

BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")
NIR_OPTIONS = ("ultravista", "euclid")
#: The band names of the mock's columns (``som.bands`` registry names): VISTA's Y J H, or
#: Euclid NISP's YE JE HE, which are other filters and so other bands.
BAND_NAMES = {
    "ultravista": BANDS,
    "euclid": ("u", "g", "r", "i", "z", "YE", "JE", "HE"),
}


def band_names(nir: str = "ultravista") -> tuple[str, ...]:
    """Band names of ``make_mock(..., nir=nir)``'s ``mag_<band>`` columns, in ``BANDS`` order."""
    if nir not in BAND_NAMES:
        raise ValueError(f"nir must be one of {NIR_OPTIONS}, got {nir!r}")
    return BAND_NAMES[nir]

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

#: 5-sigma point-source depths (AB): COSMOS CFHT/HSC and UltraVISTA, or Euclid NISP
DEPTHS = {
    "ultravista": dict(zip(BANDS, (26.5, 26.5, 26.2, 26.0, 25.4, 24.8, 24.7, 24.4), strict=True)),
    "euclid": dict(zip(BANDS, (26.5, 26.5, 26.2, 26.0, 25.4, 24.0, 24.0, 24.0), strict=True)),
}
#: error floor (mag) for calibration and aperture systematics at high S/N
MAG_ERROR_FLOOR = 0.01
#: a band counts as detected at S/N >= this (measured flux over its error)
DETECTION_SNR = 2.0

#: Calzetti E(B-V) values of the synthetic-colour grid
EBV_GRID = np.round(np.arange(6) * 0.1, 1)
#: redshift grid of the synthetic colours; galaxies are interpolated linearly between nodes
Z_GRID = np.linspace(0.0, 4.0, 801)
Z_MAX = float(Z_GRID[-1])
EBV_GRID.setflags(write=False)
Z_GRID.setflags(write=False)

I_RANGE = (17.0, 25.5)
#: dlog10 N / dm of the i-band counts
COUNT_SLOPE = 0.3
#: (i, median z) through which log(median z) runs as a quadratic in i. The bright two
#: are medians of real secure zCOSMOS-bright redshifts (i 18-18.5 and 21.75-22.25); the
#: faint one is the median of COSMOS 30-band photo-zs near i = 24.5. The curvature makes
#: the median rise fast at bright magnitudes and level off near z ~ 1.1 at i = 25.
Z_MEDIAN_ANCHORS = ((18.25, 0.185), (22.0, 0.61), (24.5, 1.0))
RA_RANGE = (149.4, 150.8)
DEC_RANGE = (1.5, 2.9)

#: type classes of the templates
EARLY, SPIRAL, STARBURST = 0, 1, 2
#: zCOSMOS-bright: 15 < i < 22.5, ~30% targeted, success from the Lilly+09 grid
ZCOSMOS_I_RANGE = (15.0, 22.5)
ZCOSMOS_SAMPLING = 0.30
#: the deep component: 22.5 < i < 24.5 and 1.5 < z < 3, star-formers preferred
DEEP_I_RANGE = (22.5, 24.5)
DEEP_Z_RANGE = (1.5, 3.0)
DEEP_SAMPLING = 0.02
_DEEP_CLASS_WEIGHT = np.array([0.1, 0.5, 1.0])
SPEC_Z_SIGMA = 0.0005
#: zCOSMOS-bright spectra (5550-9650 A) cannot yield redshifts much beyond this
BRIGHT_WRONG_Z_MAX = 1.6
#: rest wavelengths (A) of strong lines whose confusion makes wrong spectroscopic redshifts
_LINES = np.array([1215.7, 1549.0, 1908.7, 2798.0, 3727.3, 4861.3, 5006.8, 6562.8])


# --------------------------------------------------------------------------- data files


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


def _check_nir(nir: str) -> str:
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
def _filters(nir: str) -> tuple[Filter, ...]:
    files = _FILTER_FILES[_check_nir(nir)]
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
    return dict(zip(BANDS, _filters(nir), strict=True))


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


# --------------------------------------------------------------------------- physics

#: Calzetti et al. (2000) R_V for the stellar continuum
CALZETTI_RV = 4.05


def calzetti_k(wavelength: np.ndarray | float) -> np.ndarray:
    """Calzetti et al. (2000, eq. 4) attenuation k(lambda) = A(lambda) / E_s(B-V).

    ``wavelength`` in A (rest frame). The published ranges are 0.12-0.63 um (cubic in
    1/lambda) and 0.63-2.2 um (linear in 1/lambda); as in the IDL ``calz_unred`` the UV
    branch is extended down to 912 A and the IR branch beyond 2.2 um, where k is
    clipped at 0 (it would turn negative near 3.1 um). Below 912 A the templates carry
    no flux.
    """
    lam_um = np.asarray(wavelength, dtype=float) * 1e-4
    if np.any(lam_um <= 0):
        raise ValueError("calzetti_k: wavelengths must be positive (Angstrom)")
    x = 1.0 / lam_um
    uv = 2.659 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + CALZETTI_RV
    ir = 2.659 * (-1.857 + 1.040 * x) + CALZETTI_RV
    return np.maximum(np.where(lam_um < 0.63, uv, ir), 0.0)


#: Madau (1995) eq. 15: Lyman alpha, beta, gamma, delta wavelengths (A) and strengths
_MADAU_LINES = np.array([1216.0, 1026.0, 973.0, 950.0])
_MADAU_A = np.array([3.6e-3, 1.7e-3, 1.2e-3, 9.3e-4])
_LYMAN_LIMIT = 912.0


def madau_transmission(wavelength_obs: np.ndarray | float, z: float) -> np.ndarray:
    """Mean IGM transmission exp(-tau_eff) of Madau (1995) towards a source at ``z``.

    ``wavelength_obs`` in A (observed frame). tau_eff sums the Lyman-series blanketing
    A_j (lam / lam_j)^3.46 for lam_j < lam < lam_j (1 + z), j = Ly alpha..delta (eq. 15),
    and the photoelectric absorption by intervening Lyman-limit systems for
    912 A <= lam < 912 (1 + z), using the analytic approximation of footnote 3
    (x_c = lam / 912, x_em = 1 + z).
    """
    lam = np.asarray(wavelength_obs, dtype=float)
    if z < 0:
        raise ValueError(f"madau_transmission: z must be >= 0, got {z}")
    tau = np.zeros_like(lam)
    for lam_j, a_j in zip(_MADAU_LINES, _MADAU_A, strict=True):
        inside = (lam > lam_j) & (lam < lam_j * (1.0 + z))
        tau += np.where(inside, a_j * (lam / lam_j) ** 3.46, 0.0)
    x_em = 1.0 + z
    x_c = lam / _LYMAN_LIMIT
    cont = (
        0.25 * x_c**3 * (x_em**0.46 - x_c**0.46)
        + 9.4 * x_c**1.5 * (x_em**0.18 - x_c**0.18)
        - 0.7 * x_c**3 * (x_c ** (-1.32) - x_em ** (-1.32))
        - 0.023 * (x_em**1.68 - x_c**1.68)
    )
    tau += np.where((x_c >= 1.0) & (x_c < x_em), np.maximum(cont, 0.0), 0.0)
    return np.exp(-tau)


_C_ANGSTROM_PER_S = 2.99792458e18
_AB_ZERO_JY = 3631.0


def _band_weights(wave_rest: np.ndarray, filters: list[Filter], z: float, igm: bool):
    """Weights W (L, B) such that (f_lambda @ W) is the band-averaged f_nu in Jy.

    f_lambda(rest grid) is observed at lam (1 + z) with f_lambda,obs = f_lambda / (1 + z);
    the photon-counting mean f_nu = int f_nu T dlam/lam / int T dlam/lam, with
    f_nu = f_lambda lam^2 / c, becomes int f_lambda,rest lam_obs T (IGM) dlam_rest / c /
    int T / lam. Bin widths are trapezoid weights on the rest grid.
    """
    lam_obs = wave_rest * (1.0 + z)
    dlam_rest = np.gradient(wave_rest)
    common = lam_obs * dlam_rest * 1e23 / _C_ANGSTROM_PER_S
    if igm and z > 0:
        common = common * madau_transmission(lam_obs, z)
    w = np.empty((wave_rest.size, len(filters)))
    for b, f in enumerate(filters):
        t = np.interp(lam_obs, f.wavelength, f.response, left=0.0, right=0.0)
        norm = np.trapezoid(f.response / f.wavelength, f.wavelength)
        w[:, b] = common * t / norm
    return w


def ab_magnitude(
    wave_rest: np.ndarray,
    flam: np.ndarray,
    filt: Filter,
    z: float = 0.0,
    *,
    igm: bool = True,
) -> np.ndarray:
    """AB magnitude of f_lambda SED(s) redshifted to ``z`` through a photon-counting filter.

    m = -2.5 log10( int f_nu T dlam / lam / int 3631 Jy T dlam / lam ).
    ``wave_rest`` (L,) in A, ``flam`` (..., L) in erg/s/cm^2/A as it would be observed at
    the rest-frame wavelength (any other unit only shifts all magnitudes by a constant).
    The observed SED is f_lambda(lam / (1 + z)) / (1 + z) at lam, times the Madau IGM
    transmission when ``igm``. Returns an array of shape flam.shape[:-1]; +inf where the
    band receives no flux.
    """
    wave_rest = np.asarray(wave_rest, dtype=float)
    flam = np.asarray(flam, dtype=float)
    if flam.shape[-1] != wave_rest.size:
        raise ValueError(f"flam last axis {flam.shape[-1]} != wavelength length {wave_rest.size}")
    fnu = flam @ _band_weights(wave_rest, [filt], z, igm)[:, 0]
    with np.errstate(divide="ignore"):
        return -2.5 * np.log10(fnu / _AB_ZERO_JY)


@functools.cache
def _flux_ratio_grid(nir: str) -> np.ndarray:
    """Band fluxes relative to i, shape (T * n_ebv, n_z, n_bands), rows t * n_ebv + e.

    f_b / f_i = 10^(-0.4 (m_b - m_i)) of template t with E(B-V) = EBV_GRID[e] at Z_GRID;
    ratios (not magnitudes) so that bands blanked by the IGM interpolate to 0, not inf.
    """
    tpl = load_templates()
    filters = list(_filters(nir))
    dust = 10.0 ** (-0.4 * np.outer(EBV_GRID, calzetti_k(tpl.wavelength)))  # (E, L)
    seds = (tpl.flux[:, None, :] * dust[None, :, :]).reshape(-1, tpl.wavelength.size)
    i_band = BANDS.index("i")
    grid = np.empty((seds.shape[0], Z_GRID.size, len(BANDS)))
    for k, z in enumerate(Z_GRID):
        fnu = seds @ _band_weights(tpl.wavelength, filters, float(z), igm=True)
        grid[:, k, :] = fnu / fnu[:, i_band : i_band + 1]
    grid.setflags(write=False)
    return grid


# --------------------------------------------------------------------------- the mock


def median_z_of_i(i_mag: np.ndarray | float) -> np.ndarray:
    """Median of p(z|i) before the z <= 4 cap: exp of the quadratic in i through
    ``Z_MEDIAN_ANCHORS``."""
    i_anchor, med = np.array(Z_MEDIAN_ANCHORS).T
    coeff = np.polyfit(i_anchor, np.log(med), 2)
    return np.exp(np.polyval(coeff, np.asarray(i_mag, dtype=float)))


def _z0_of_i(i_mag: np.ndarray) -> np.ndarray:
    """Scale z0 of p(z|i) ∝ z^2 exp(-(z/z0)^1.5) giving the median ``median_z_of_i``.

    With t = (z/z0)^1.5, p(t) = t e^-t (a Gamma(2) variate), so median z = z0 t_med^(2/3).
    """
    t_med = special.gammaincinv(2.0, 0.5)
    return median_z_of_i(i_mag) / t_med ** (2.0 / 3.0)


#: the type mix is calibrated on zCOSMOS-bright, i.e. within these limits
MIX_I_MAX = 22.5
MIX_Z_RANGE = (0.05, 1.2)


def _class_features(i_mag: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Features (n, 4) of the type-mix logistic: 1, i - 22, ln z, z, with i and z held at
    the edge of the zCOSMOS-bright range where it was calibrated."""
    i_c = np.minimum(np.asarray(i_mag, dtype=float), MIX_I_MAX)
    z_c = np.clip(np.asarray(z, dtype=float), *MIX_Z_RANGE)
    return np.stack([np.ones_like(i_c), i_c - 22.0, np.log(z_c), z_c], axis=1)


def _softmax_classes(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(early), P(spiral), P(starburst), shape (n, 3), from log-odds ``x @ theta.T``
    of early and spiral against starburst (``theta`` (2, F), ``x`` (n, F))."""
    s = np.concatenate([x @ theta.T, np.zeros((x.shape[0], 1))], axis=1)
    s -= s.max(axis=1, keepdims=True)
    p = np.exp(s)
    return p / p.sum(axis=1, keepdims=True)


def _class_probabilities(i_mag: np.ndarray, z: np.ndarray) -> np.ndarray:
    """P(early), P(spiral), P(starburst) for each galaxy, shape (n, 3).

    Inside i < 22.5, z < 1.2 this is the logistic fitted to the best-fit templates of
    real zCOSMOS-bright galaxies (``scripts/calibrate_mix.py``). Beyond, where no
    spectra constrain it, early types fade by e^-(i - 22.5)/2.5 and e^-(z - 1.2) and
    the difference goes to starbursts: blue star-formers dominate faint, distant samples.
    """
    p = _softmax_classes(load_type_mix().coeff, _class_features(i_mag, z))
    fade = np.exp(
        -np.clip(np.asarray(i_mag) - MIX_I_MAX, 0.0, None) / 2.5
        - np.clip(np.asarray(z) - MIX_Z_RANGE[1], 0.0, None) / 1.0
    )
    early = p[:, EARLY] * fade
    p[:, STARBURST] += p[:, EARLY] - early
    p[:, EARLY] = early
    return p


def _draw_categorical(rng: np.random.Generator, prob: np.ndarray) -> np.ndarray:
    """One category per row of ``prob`` (n, k) by inverse CDF."""
    cdf = np.cumsum(prob, axis=1)
    u = rng.random(prob.shape[0]) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), prob.shape[1] - 1)


def _draw_wrong_z(rng: np.random.Generator, z: np.ndarray, z_max: np.ndarray) -> np.ndarray:
    """Wrong redshifts from line confusion: a line at rest lam_a read as lam_b gives
    1 + z' = (1 + z) lam_a / lam_b. One confusion per galaxy among those landing in
    [0, z_max] (per galaxy); galaxies with none get a uniform redshift in [0, z_max]."""
    z_max = np.broadcast_to(np.asarray(z_max, dtype=float), z.shape)
    ratio = _LINES[:, None] / _LINES[None, :]
    ratio = ratio[~np.eye(_LINES.size, dtype=bool)]  # (P,)
    cand = (1.0 + z[:, None]) * ratio[None, :] - 1.0
    ok = (cand >= 0.0) & (cand <= z_max[:, None])
    keys = np.where(ok, rng.random(cand.shape), -1.0)
    pick = keys.argmax(axis=1)
    wrong = cand[np.arange(z.size), pick]
    fallback = rng.uniform(0.0, z_max, z.size)
    return np.where(ok.any(axis=1), wrong, fallback)


def _mag_from_flux(flux: np.ndarray, sigma: np.ndarray):
    """AB magnitude and error from flux and its error (uJy); NaN where S/N < DETECTION_SNR."""
    detected = flux >= DETECTION_SNR * sigma
    safe = np.where(detected, flux, 1.0)
    mag = np.where(detected, 23.9 - 2.5 * np.log10(safe), np.nan)
    err = np.where(detected, 2.5 / np.log(10.0) * sigma / safe, np.nan)
    return mag, err


def make_mock(
    n: int,
    seed: int | None = 0,
    nir: str = "ultravista",
    spec: bool = True,
    *,
    wrong_z_fraction: float = 0.01,
    truth: bool = False,
) -> pd.DataFrame:
    """A COSMOS-like catalogue of ``n`` galaxies.

    Columns: ``id`` (int64, 1..n), ``ra`` (149.4-150.8 deg), ``dec`` (1.5-2.9 deg, uniform
    on the sphere), ``z_true``, ``z_phot``, ``z_spec`` (NaN without a spectrum),
    ``spec_survey`` ("zcosmos-like", "deep" or ""), then ``mag_{b}``, ``magerr_{b}`` for b
    in ``BANDS`` (AB; NaN where the band is undetected, S/N < 2). With ``truth=True`` also
    ``template`` (index into ``load_templates().names``) and ``ebv`` (Calzetti E(B-V)).

    The recipe, in the order of the random streams (each from its own child of
    ``SeedSequence(seed)``, so switching ``spec`` or ``nir`` leaves everything else equal):

    1. i (true) from dlog10N/dm = 0.3 counts over 17 < i < 25.5.
    2. z from p(z|i) ∝ z^2 exp(-(z/z0(i))^1.5) on 0 < z <= 4, with z0(i) set by
       ``median_z_of_i`` (median 0.19 at i = 18.25, 0.61 at i = 22, 1.0 at i = 24.5).
    3. Type class (early/spiral/starburst) from ``_class_probabilities(i, z)``, then a
       template and an E(B-V) from the class's frequencies; all three calibrated on
       template fits to real zCOSMOS-bright galaxies, extrapolated bluer beyond i = 22.5
       and z = 1.2.
    4. Band fluxes = i flux x template colours (Calzetti dust, Madau IGM, photon-counting
       AB synthetic photometry); Gaussian flux noise with sigma = f_5sigma / 5 (``DEPTHS``)
       plus a 0.01 mag floor; magnitudes from the noisy fluxes.
    5. ``z_phot`` = z + sigma (1 + z) N(0, 1), sigma 0.007 at i < 22.5 rising to 0.03 at
       i = 25; outliers (0.5% rising to 5% at i = 25) uniform in 0-4; clipped to [0, 4].
    6. sky positions.
    7. Spectra (``spec=True``): zCOSMOS-like for 15 < i_obs < 22.5 with 30% sampling x the
       Lilly+09 success grid (0 beyond z = 1.4); "deep" for 22.5 <= i_obs < 24.5 and
       1.5 < z < 3 with 2% sampling x class weight (starburst 1, spiral 0.5, early 0.1)
       and success falling from 0.9 at i = 22.5 to 0.3 at i = 24.5. z_spec = z + 0.0005
       (1 + z) N(0, 1); a fraction ``wrong_z_fraction`` of successes get a wrong
       redshift from emission-line confusion (set 0 for none).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    _check_nir(nir)
    if not 0.0 <= wrong_z_fraction <= 1.0:
        raise ValueError(f"wrong_z_fraction must be in [0, 1], got {wrong_z_fraction}")
    n = int(n)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]
    rng_i, rng_z, rng_type, rng_noise, rng_pz, rng_sky, rng_spec = streams

    # 1. i magnitudes: inverse CDF of N(<m) ∝ 10^(a m)
    a = COUNT_SLOPE
    lo, hi = 10.0 ** (a * I_RANGE[0]), 10.0 ** (a * I_RANGE[1])
    i_true = np.log10(lo + rng_i.random(n) * (hi - lo)) / a

    # 2. redshift: t = (z/z0)^1.5 ~ Gamma(2) truncated at z = Z_MAX, by inverse CDF
    z0 = _z0_of_i(i_true)
    p_max = special.gammainc(2.0, (Z_MAX / z0) ** 1.5)
    t = special.gammaincinv(2.0, rng_z.random(n) * p_max)
    z_true = np.clip(z0 * t ** (2.0 / 3.0), 0.0, Z_MAX)

    # 3. templates and dust
    tpl = load_templates()
    kind = _draw_categorical(rng_type, _class_probabilities(i_true, z_true))
    # (template, E(B-V)) jointly within the class and luminosity bin: flat t * n_ebv + e
    mix = load_type_mix()
    lum_bin = np.searchsorted(mix.lum_edges, luminosity_proxy(i_true, z_true))
    u_pair = rng_type.random(n)
    row = np.empty(n, dtype=np.intp)
    for b in range(mix.freq.shape[0]):
        for c in (EARLY, SPIRAL, STARBURST):
            pairs = np.flatnonzero(np.repeat(tpl.kind == c, EBV_GRID.size))
            cdf = np.cumsum(mix.freq[b].ravel()[pairs])
            these = (kind == c) & (lum_bin == b)
            pick = np.searchsorted(cdf, u_pair[these] * cdf[-1], side="right")
            row[these] = pairs[np.minimum(pick, pairs.size - 1)]
    template, ebv_idx = np.divmod(row, EBV_GRID.size)

    # 4. photometry
    grid = _flux_ratio_grid(nir)
    zpos = z_true / (Z_GRID[1] - Z_GRID[0])
    k = np.minimum(zpos.astype(np.intp), Z_GRID.size - 2)
    w = zpos - k
    flux_i = 10.0 ** (-0.4 * (i_true - 23.9))
    floor = 0.4 * np.log(10.0) * MAG_ERROR_FLOOR
    columns: dict[str, np.ndarray] = {}
    for b, band in enumerate(BANDS):
        g = grid[:, :, b]
        flux = flux_i * ((1.0 - w) * g[row, k] + w * g[row, k + 1])
        sky = 10.0 ** (-0.4 * (DEPTHS[nir][band] - 23.9)) / 5.0
        sigma = np.hypot(sky, floor * flux)
        observed = flux + sigma * rng_noise.standard_normal(n)
        columns[f"mag_{band}"], columns[f"magerr_{band}"] = _mag_from_flux(observed, sigma)

    # 5. reference photo-z
    faint = np.clip((i_true - 22.5) / 2.5, 0.0, None)
    sigma_pz = 0.007 + 0.023 * faint**2
    outlier_rate = np.minimum(0.005 + 0.045 * faint**2, 0.1)
    z_phot = z_true + sigma_pz * (1.0 + z_true) * rng_pz.standard_normal(n)
    outlier = rng_pz.random(n) < outlier_rate
    z_phot = np.where(outlier, rng_pz.uniform(0.0, Z_MAX, n), z_phot)
    z_phot = np.clip(z_phot, 0.0, Z_MAX)

    # 6. sky: uniform in ra and sin(dec)
    ra = rng_sky.uniform(*RA_RANGE, n)
    s_lo, s_hi = np.sin(np.radians(DEC_RANGE))
    dec = np.degrees(np.arcsin(rng_sky.uniform(s_lo, s_hi, n)))

    # 7. spectroscopy
    z_spec = np.full(n, np.nan)
    survey = np.full(n, "", dtype=object)
    if spec:
        i_obs = columns["mag_i"]
        with np.errstate(invalid="ignore"):
            bright = (i_obs > ZCOSMOS_I_RANGE[0]) & (i_obs < ZCOSMOS_I_RANGE[1])
            deep_box = (
                (i_obs >= DEEP_I_RANGE[0])
                & (i_obs < DEEP_I_RANGE[1])
                & (z_true > DEEP_Z_RANGE[0])
                & (z_true < DEEP_Z_RANGE[1])
            )
        u_target, u_success = rng_spec.random(n), rng_spec.random(n)
        ok_bright = (
            bright
            & (u_target < ZCOSMOS_SAMPLING)
            & (u_success < load_success_grid()(i_obs, z_true))
        )
        deep_success = np.clip(0.9 - 0.3 * (np.nan_to_num(i_obs) - DEEP_I_RANGE[0]), 0.0, 0.9)
        ok_deep = (
            deep_box
            & (u_target < DEEP_SAMPLING * _DEEP_CLASS_WEIGHT[kind])
            & (u_success < deep_success)
        )
        got = ok_bright | ok_deep
        survey[ok_bright] = "zcosmos-like"
        survey[ok_deep] = "deep"
        noisy = z_true + SPEC_Z_SIGMA * (1.0 + z_true) * rng_spec.standard_normal(n)
        wrong = np.flatnonzero(got & (rng_spec.random(n) < wrong_z_fraction))
        # a wrong line identification still lands inside the survey's redshift window
        z_window = np.where(ok_deep[wrong], Z_MAX, BRIGHT_WRONG_Z_MAX)
        noisy[wrong] = _draw_wrong_z(rng_spec, z_true[wrong], z_window)
        z_spec = np.where(got, np.clip(noisy, 0.0, None), np.nan)

    out = {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "ra": ra,
        "dec": dec,
        "z_true": z_true,
        "z_phot": z_phot,
        "z_spec": z_spec,
        "spec_survey": survey,
    }
    for band, name in zip(BANDS, band_names(nir), strict=True):
        out[f"mag_{name}"] = columns[f"mag_{band}"]
        out[f"magerr_{name}"] = columns[f"magerr_{band}"]
    if truth:
        out["template"] = template.astype(np.int16)
        out["ebv"] = EBV_GRID[ebv_idx]
    return pd.DataFrame(out)


def write_mock(
    path: str | Path,
    n: int,
    seed: int | None = 0,
    *,
    nir: str = "ultravista",
    spec: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``make_mock(n, seed, nir, spec)`` to ``path``; the suffix picks the format:
    ``.parquet``/``.pq`` (pandas + pyarrow), ``.fits``/``.fit`` (astropy), ``.csv``.

    Refuses to replace an existing file unless ``overwrite``. Returns the path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".parquet", ".pq", ".fits", ".fit", ".csv"}
    if suffix not in writers:
        raise ValueError(
            f"{path}: unknown catalogue format {suffix!r}; use one of {sorted(writers)}"
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it")
    df = make_mock(n, seed, nir=nir, spec=spec)
    if suffix in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    elif suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        table = Table.from_pandas(df)
        table["spec_survey"] = table["spec_survey"].astype(str)
        table.meta["ORIGIN"] = "somcal som.mock.make_mock"
        table.meta["SEED"] = -1 if seed is None else int(seed)
        table.meta["NIR"] = nir
        table.write(path, format="fits", overwrite=overwrite)
    return path
