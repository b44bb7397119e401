"""The mock's wide side: the deep galaxies re-observed by a wide survey, and a Balrog-like
transfer catalogue.

Deep/wide SOM calibration (Buchs+2019, Myles+2021) needs the same galaxies seen twice:
in the deep field's many low-noise bands and with the wide survey's few noisy ones.
:func:`observe_wide` re-observes the galaxies of ``make_mock(n, seed, truth=True)``
(same ``id``, same ``z_true``) through a wide survey's filters at its depth;
:func:`transfer_catalogue` injects every deep galaxy ``n_injections`` times with
independent wide noise, as Balrog does with real images, from which the transfer
function p(c | ĉ) is measured.

Filters: real curves, not approximations. Both presets observe through packaged
transmission curves made by ``scripts/make_data.py`` like the deep ones: ``lsst``
through the DC2 LSST u g r i z y total throughputs (pz-rail-base, MIT), ``euclid``
through Euclid VIS (I_E) and NISP Y_E J_E H_E (speclite, BSD-3). The synthetic
photometry is the deep mock's (COSMOS templates, Calzetti dust, Madau IGM,
photon-counting AB; :mod:`som.mock.sed`), tabulated relative to HSC i on the same
redshift grid and interpolated the same way, so a wide band of a galaxy is exactly its
SED through that filter, scaled by the same noiseless i flux (``i_true``).

Noise: the deep mock's model. A band with 5-sigma point-source depth m5 has sky noise
sigma_sky = f5 / 5 (f5 the flux of m5), combined in quadrature with a 0.01 mag floor
(``MAG_ERROR_FLOOR``) of the noiseless flux; observed flux = true + sigma N(0, 1).
Fluxes are kept as measured, negative ones included (what a wide map on luptitudes
wants); magnitudes and their errors are NaN where S/N < 2 (``DETECTION_SNR``), as in
the deep mock. No selection is applied: every deep galaxy has a wide row, detected or not.

Units: fluxes and their errors in microjansky (AB zero point 23.9), magnitudes AB.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from som.bands import REGISTRY
from som.mock.catalogue import _mag_from_flux
from som.mock.files import DATA_DIR, Filter, _read_filter, load_templates
from som.mock.parameters import EBV_GRID, MAG_ERROR_FLOOR, Z_GRID, Z_MAX
from som.mock.sed import _band_weights, calzetti_k
from som.vocabulary import WidePreset, choices

__all__ = [
    "TRUTH_COLUMNS",
    "WIDE_BANDS",
    "WIDE_DEPTHS",
    "WIDE_PRESETS",
    "load_wide_filters",
    "lsst_depths",
    "observe_wide",
    "transfer_catalogue",
    "wide_band_names",
    "wide_true_flux",
]

WIDE_PRESETS = choices(WidePreset)
#: the wide bands of each preset, in wavelength order (``som.bands`` registry names)
WIDE_BANDS: dict[str, tuple[str, ...]] = {
    "lsst": ("u_lsst", "g_lsst", "r_lsst", "i_lsst", "z_lsst", "y_lsst"),
    "euclid": ("VIS", "YE", "JE", "HE"),
}
_WIDE_FILTER_FILES = {
    "lsst": ("lsst_u", "lsst_g", "lsst_r", "lsst_i", "lsst_z", "lsst_y"),
    "euclid": ("euclid_VIS", "euclid_Y", "euclid_J", "euclid_H"),
}
#: default 5-sigma point-source depths (AB) of each preset.
#: ``lsst``: the 10-year coadd of the LSST baseline (Ivezić et al. 2019, table 1:
#: u 26.1, g 27.4, r 27.5, i 26.8, z 26.1, y 24.9). m5 grows as 1.25 log10(N visits), so
#: year N is roughly m5(Y10) + 1.25 log10(N / 10): Y1 is 1.25 mag shallower. Note that
#: Y10 g r i z are deeper than the bundled COSMOS-like deep mock (26.5 26.2 26.0 25.4):
#: then "deep" differs from "wide" by its extra bands (u*, Y J H), not by depth; pass
#: ``depth=`` for a DES-like regime in which the deep field is deeper in every band.
#: ``euclid``: wide-survey-like round numbers: NISP Y_E J_E H_E 24.0 (the mission's
#: 5-sigma point-source requirement, as the deep mock's ``nir="euclid"`` uses) and VIS
#: 25.5 (the 10-sigma 24.5 requirement for extended sources, taken as about 5 sigma at
#: 25.5 for the mock's point-source noise model).
WIDE_DEPTHS: dict[str, dict[str, float]] = {
    "lsst": dict(zip(WIDE_BANDS["lsst"], (26.1, 27.4, 27.5, 26.8, 26.1, 24.9), strict=True)),
    "euclid": dict(zip(WIDE_BANDS["euclid"], (25.5, 24.0, 24.0, 24.0), strict=True)),
}
#: the columns of a deep catalogue that fix a galaxy's noiseless photometry
TRUTH_COLUMNS = ("id", "z_true", "template", "ebv", "i_true")


def _check_preset(preset: str) -> str:
    if not isinstance(preset, str) or preset not in WIDE_PRESETS:
        raise ValueError(f"unknown wide preset {preset!r}: use one of {', '.join(WIDE_PRESETS)}")
    return str(WidePreset(preset).value)


def wide_band_names(preset: str = "lsst") -> tuple[str, ...]:
    """Band names of ``preset``'s wide columns, in wavelength order."""
    return WIDE_BANDS[_check_preset(preset)]


@functools.cache
def _wide_filters(preset: str) -> tuple[Filter, ...]:
    return tuple(
        _read_filter(DATA_DIR / "filters" / f"{stem}.ecsv", band)
        for band, stem in zip(WIDE_BANDS[preset], _WIDE_FILTER_FILES[preset], strict=True)
    )


def load_wide_filters(preset: str = "lsst") -> dict[str, Filter]:
    """The transmission curves of ``preset``'s wide bands, keyed by band name."""
    preset = _check_preset(preset)
    return dict(zip(WIDE_BANDS[preset], _wide_filters(preset), strict=True))


@functools.cache
def _ratio_grid(preset: str) -> np.ndarray:
    """Wide-band fluxes relative to the deep mock's HSC i, shape (T * n_ebv, n_z, B),
    rows t * n_ebv + e, on ``Z_GRID``: the deep mock's ``flux_ratio_grid`` for other
    filters (ratios, so IGM-blanked bands interpolate to 0)."""
    tpl = load_templates()
    hsc_i = _read_filter(DATA_DIR / "filters" / "hsc_i.ecsv", "i")
    filters = [hsc_i, *_wide_filters(preset)]
    dust = 10.0 ** (-0.4 * np.outer(EBV_GRID, calzetti_k(tpl.wavelength)))
    seds = (tpl.flux[:, None, :] * dust[None, :, :]).reshape(-1, tpl.wavelength.size)
    grid = np.empty((seds.shape[0], Z_GRID.size, len(filters) - 1))
    for k, z in enumerate(Z_GRID):
        fnu = seds @ _band_weights(tpl.wavelength, filters, float(z), igm=True)
        grid[:, k, :] = fnu[:, 1:] / fnu[:, :1]
    grid.setflags(write=False)
    return grid


def _truth(deep: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row into the ratio grid, z_true, i_true) of every deep galaxy, checked."""
    if not isinstance(deep, pd.DataFrame):
        raise TypeError(f"deep must be a pandas DataFrame, got {type(deep).__name__}")
    missing = [c for c in TRUTH_COLUMNS if c not in deep.columns]
    if missing:
        raise ValueError(
            f"deep catalogue lacks the truth column(s) {', '.join(missing)}: the wide side "
            "re-observes the mock's own galaxies; make it with make_mock(n, seed, truth=True)"
        )
    z = deep["z_true"].to_numpy(dtype=float)
    i_true = deep["i_true"].to_numpy(dtype=float)
    template = deep["template"].to_numpy()
    ebv = deep["ebv"].to_numpy(dtype=float)
    n_tpl = len(load_templates().names)
    if not (np.all(np.isfinite(z)) and np.all((z >= 0) & (z <= Z_MAX))):
        raise ValueError(f"z_true must be finite and in [0, {Z_MAX}]")
    if not np.all(np.isfinite(i_true)):
        raise ValueError("i_true must be finite")
    if not np.issubdtype(template.dtype, np.integer) or np.any(
        (template < 0) | (template >= n_tpl)
    ):
        raise ValueError(f"template must be integer indices in [0, {n_tpl})")
    if not np.all(np.isfinite(ebv)):
        raise ValueError(f"ebv must be values of the mock's grid {list(EBV_GRID)}")
    e_idx = np.rint(ebv / (EBV_GRID[1] - EBV_GRID[0])).astype(np.intp)
    on_grid = (e_idx >= 0) & (e_idx < EBV_GRID.size)
    if not on_grid.all() or not np.allclose(EBV_GRID[e_idx], ebv):
        raise ValueError(f"ebv must be values of the mock's grid {list(EBV_GRID)}")
    return template.astype(np.intp) * EBV_GRID.size + e_idx, z, i_true


def wide_true_flux(deep: pd.DataFrame, preset: str = "lsst") -> np.ndarray:
    """Noiseless wide-band fluxes (uJy), shape (n, B) in ``wide_band_names(preset)``
    order, of the galaxies of ``deep`` (a ``make_mock(..., truth=True)`` frame)."""
    preset = _check_preset(preset)
    row, z, i_true = _truth(deep)
    grid = _ratio_grid(preset)
    zpos = z / (Z_GRID[1] - Z_GRID[0])
    k = np.minimum(zpos.astype(np.intp), Z_GRID.size - 2)
    w = (zpos - k)[:, None]
    ratio = (1.0 - w) * grid[row, k] + w * grid[row, k + 1]
    return 10.0 ** (-0.4 * (i_true - 23.9))[:, None] * ratio


def lsst_depths(year: float) -> dict[str, float]:
    """LSST's 5-sigma coadd depths after ``year`` years (0 < year <= 10): the Y10 depths
    (``WIDE_DEPTHS["lsst"]``) made shallower by 1.25 log10(year / 10), as coadds of
    sky-limited visits deepen (Ivezić et al. 2019); year 1 is what DESC's first analyses
    calibrate."""
    try:
        year = float(year)
    except (TypeError, ValueError):
        raise ValueError(f"year must be a number of survey years, got {year!r}") from None
    if not (np.isfinite(year) and 0 < year <= 10):
        raise ValueError(f"year must be in (0, 10] (LSST's ten years), got {year}")
    shift = 1.25 * np.log10(year / 10.0)
    return {band: m5 + shift for band, m5 in WIDE_DEPTHS["lsst"].items()}


def _depths(
    preset: str, depth: Mapping[str, float] | None, year: float | None = None
) -> np.ndarray:
    """5-sigma depths (B,) of ``preset``'s bands: the defaults (LSST: after ``year`` years,
    10 when None), overridden by ``depth``."""
    if year is not None and preset != "lsst":
        raise ValueError(f"year applies to the 'lsst' preset only, not {preset!r}")
    m5 = dict(WIDE_DEPTHS[preset]) if year is None else lsst_depths(year)
    if depth is not None:
        if not isinstance(depth, Mapping):
            raise TypeError(
                "depth must map band names to 5-sigma limiting magnitudes, e.g. "
                f"{{{WIDE_BANDS[preset][0]!r}: 25.0}}, got {type(depth).__name__}"
            )
        for band, value in depth.items():
            name = REGISTRY.canonical(band) if band in REGISTRY else band
            if name not in m5:
                raise ValueError(
                    f"depth: band {band!r} is not a band of the {preset!r} preset "
                    f"({', '.join(WIDE_BANDS[preset])})"
                )
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"depth[{band!r}] must be a magnitude, got {value!r}") from None
            if not np.isfinite(value):
                raise ValueError(f"depth[{band!r}] must be finite, got {value}")
            m5[name] = value
    return np.array([m5[b] for b in WIDE_BANDS[preset]])


def _rng(seed: int | None) -> np.random.Generator:
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(seed))


def _observe(
    true_flux: np.ndarray, m5: np.ndarray, rng: np.random.Generator, prefix: str, bands
) -> dict[str, np.ndarray]:
    """Noisy photometry columns of ``true_flux`` (n, B) at depths ``m5`` (B,)."""
    sky = 10.0 ** (-0.4 * (m5 - 23.9)) / 5.0
    sigma = np.hypot(sky[None, :], 0.4 * np.log(10.0) * MAG_ERROR_FLOOR * true_flux)
    observed = true_flux + sigma * rng.standard_normal(true_flux.shape)
    mag, magerr = _mag_from_flux(observed, sigma)
    out: dict[str, np.ndarray] = {}
    for b, band in enumerate(bands):
        out[f"{prefix}flux_{band}"] = observed[:, b]
        out[f"{prefix}fluxerr_{band}"] = sigma[:, b]
        out[f"{prefix}mag_{band}"] = mag[:, b]
        out[f"{prefix}magerr_{band}"] = magerr[:, b]
    return out


def observe_wide(
    deep: pd.DataFrame,
    preset: str = "lsst",
    depth: Mapping[str, float] | None = None,
    seed: int | None = 0,
    year: float | None = None,
) -> pd.DataFrame:
    """The galaxies of ``deep`` re-observed by a wide survey.

    ``deep``: a ``make_mock(n, seed, truth=True)`` frame (any subset or order of its rows;
    it needs ``id``, ``z_true``, ``template``, ``ebv``, ``i_true``). ``preset``: ``"lsst"``
    (u g r i z y: ``u_lsst`` ... ``y_lsst``) or ``"euclid"`` (``VIS`` = I_E, ``YE JE HE``).
    ``depth``: {band: 5-sigma point-source AB depth} overriding ``WIDE_DEPTHS[preset]``
    for the bands given. ``seed``: the one seed of the noise (None: fresh entropy).
    ``year`` (LSST only): depths after that many years (:func:`lsst_depths`; None: Y10).

    Returns n rows in ``deep``'s order: ``id``, ``ra``, ``dec`` (when ``deep`` has them),
    ``z_true``, then per band ``flux_<b>``, ``fluxerr_<b>`` (uJy; negative fluxes kept),
    ``mag_<b>``, ``magerr_<b>`` (AB; NaN where S/N < 2); ``attrs["units"]`` names the
    flux unit. See the module docstring for filters and noise. (To ingest it, keep either
    the fluxes or the magnitudes: a band given both ways is refused by ingest.)
    """
    preset = _check_preset(preset)
    m5 = _depths(preset, depth, year)
    rng = _rng(seed)
    flux = wide_true_flux(deep, preset)
    out = {"id": deep["id"].to_numpy()}
    for col in ("ra", "dec"):
        if col in deep.columns:
            out[col] = deep[col].to_numpy(dtype=float)
    out["z_true"] = deep["z_true"].to_numpy(dtype=float)
    out.update(_observe(flux, m5, rng, "", WIDE_BANDS[preset]))
    return _with_units(pd.DataFrame(out))


def transfer_catalogue(
    deep: pd.DataFrame,
    preset: str = "lsst",
    n_injections: int = 10,
    depth: Mapping[str, float] | None = None,
    seed: int | None = 0,
    year: float | None = None,
) -> pd.DataFrame:
    """A Balrog-like transfer catalogue: every galaxy of ``deep`` injected ``n_injections``
    times into the wide survey, each time with independent wide noise.

    ``deep``, ``preset``, ``depth``, ``seed`` and ``year`` as in :func:`observe_wide`.

    Returns n x n_injections rows, galaxy-major (the injections of one galaxy together):
    ``id`` (the deep id), ``injection`` (0 .. n_injections - 1), ``z_true``, ``weight``
    (1 / n_injections, so each deep galaxy weighs one in total), the deep photometry
    (every ``mag_*``, ``magerr_*``, ``flux_*``, ``fluxerr_*`` column of ``deep``, prefixed
    ``deep_``: ``deep_mag_u``), and the wide photometry prefixed ``wide_``
    (``wide_flux_u_lsst``, ``wide_fluxerr_u_lsst``, ``wide_mag_u_lsst``,
    ``wide_magerr_u_lsst``; units as in :func:`observe_wide`). The deep photometry is the
    same in every injection of a galaxy: only the wide noise is drawn again.
    """
    preset = _check_preset(preset)
    if isinstance(n_injections, bool) or not isinstance(n_injections, int | np.integer):
        raise ValueError(f"n_injections must be an integer >= 1, got {n_injections!r}")
    if n_injections < 1:
        raise ValueError(f"n_injections must be >= 1, got {n_injections}")
    k = int(n_injections)
    m5 = _depths(preset, depth, year)
    rng = _rng(seed)
    flux = wide_true_flux(deep, preset)
    n = flux.shape[0]
    out: dict[str, np.ndarray] = {
        "id": np.repeat(deep["id"].to_numpy(), k),
        "injection": np.tile(np.arange(k, dtype=np.int32), n),
        "z_true": np.repeat(deep["z_true"].to_numpy(dtype=float), k),
        "weight": np.full(n * k, 1.0 / k),
    }
    photometry = ("mag_", "magerr_", "flux_", "fluxerr_")
    for col in deep.columns:
        if isinstance(col, str) and col.startswith(photometry):
            out[f"deep_{col}"] = np.repeat(deep[col].to_numpy(), k)
    out.update(_observe(np.repeat(flux, k, axis=0), m5, rng, "wide_", WIDE_BANDS[preset]))
    return _with_units(pd.DataFrame(out))


def _with_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Declare the flux columns' unit (uJy) in ``frame.attrs["units"]``, which
    :func:`som.tables.write_table` writes into the file, so it reads back with its unit."""
    frame.attrs["units"] = {c: "uJy" for c in frame.columns if "flux_" in c or "fluxerr_" in c}
    return frame
