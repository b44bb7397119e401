"""Synthetic photometry: Calzetti dust, Madau intergalactic absorption, AB magnitudes of a
redshifted SED through the filters, and the grid of colours the mock interpolates."""

from __future__ import annotations

import functools

import numpy as np

from som.mock.files import Filter, load_templates, nir_filters
from som.mock.parameters import BANDS, EBV_GRID, Z_GRID

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
def flux_ratio_grid(nir: str) -> np.ndarray:
    """Band fluxes relative to i, shape (T * n_ebv, n_z, n_bands), rows t * n_ebv + e.

    f_b / f_i = 10^(-0.4 (m_b - m_i)) of template t with E(B-V) = EBV_GRID[e] at Z_GRID;
    ratios (not magnitudes) so that bands blanked by the IGM interpolate to 0, not inf.
    """
    tpl = load_templates()
    filters = list(nir_filters(nir))
    dust = 10.0 ** (-0.4 * np.outer(EBV_GRID, calzetti_k(tpl.wavelength)))  # (E, L)
    seds = (tpl.flux[:, None, :] * dust[None, :, :]).reshape(-1, tpl.wavelength.size)
    i_band = BANDS.index("i")
    grid = np.empty((seds.shape[0], Z_GRID.size, len(BANDS)))
    for k, z in enumerate(Z_GRID):
        fnu = seds @ _band_weights(tpl.wavelength, filters, float(z), igm=True)
        grid[:, k, :] = fnu / fnu[:, i_band : i_band + 1]
    grid.setflags(write=False)
    return grid
