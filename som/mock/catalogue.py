"""Drawing the catalogue: magnitudes, redshifts and types, observed photometry with
errors, the reference photo-z and the spectroscopic selection (:func:`make_mock`), and
writing it (:func:`write_mock`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from scipy import special

from som.mock.files import (
    check_nir,
    load_success_grid,
    load_templates,
    load_type_mix,
    luminosity_proxy,
)
from som.mock.parameters import (
    BANDS,
    BRIGHT_WRONG_Z_MAX,
    COUNT_SLOPE,
    DEC_RANGE,
    DEEP_I_RANGE,
    DEEP_SAMPLING,
    DEEP_Z_RANGE,
    DEPTHS,
    DETECTION_SNR,
    EARLY,
    EBV_GRID,
    I_RANGE,
    MAG_ERROR_FLOOR,
    RA_RANGE,
    SPEC_Z_SIGMA,
    SPIRAL,
    STARBURST,
    Z_GRID,
    Z_MAX,
    Z_MEDIAN_ANCHORS,
    ZCOSMOS_I_RANGE,
    ZCOSMOS_SAMPLING,
    band_names,
)
from som.mock.sed import flux_ratio_grid

# the deep component's preference per type class (early, spiral, starburst)
_DEEP_CLASS_WEIGHT = np.array([0.1, 0.5, 1.0])
#: rest wavelengths (A) of strong lines whose confusion makes wrong spectroscopic redshifts
_LINES = np.array([1215.7, 1549.0, 1908.7, 2798.0, 3727.3, 4861.3, 5006.8, 6562.8])


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


def deep_success_rate(i_mag: np.ndarray | float) -> np.ndarray:
    """The mock's truth for a faint spectroscopic target: the chance that an observation
    gives a secure redshift, 0.9 at i <= 22.5 falling by 0.3 per magnitude to 0 at i = 25.5
    (the "deep" sample of :func:`make_mock` is drawn with it, and simulated follow-up
    campaigns observe with it)."""
    i = np.asarray(i_mag, dtype=np.float64)
    return np.clip(0.9 - 0.3 * (i - DEEP_I_RANGE[0]), 0.0, 0.9)


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
    ``template`` (index into ``load_templates().names``), ``ebv`` (Calzetti E(B-V)) and
    ``i_true`` (the noiseless HSC i magnitude, AB): with ``z_true`` they fix every band's
    noiseless flux, which is how :func:`som.mock.observe_wide` re-observes the galaxies.

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
    check_nir(nir)
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
    grid = flux_ratio_grid(nir)
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
        deep_success = deep_success_rate(np.nan_to_num(i_obs))
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
        out["i_true"] = i_true
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
