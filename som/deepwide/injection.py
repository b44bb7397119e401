"""A transfer catalogue for any deep catalogue: its galaxies re-observed, many times, at a
wide survey's depth (:func:`inject_wide_noise`).

DES measures p(c | ĉ) with Balrog: real deep-field galaxies injected into wide-survey
images and measured again. A team without image injections can still get the first-order
transfer function from its deep catalogue alone: take each deep galaxy's measured flux as
its true flux and draw wide-survey noise around it. The approximation, written down:

- the deep photometry's own noise is ignored, which is fair when the deep field is much
  deeper than the wide survey in the bands they share (COSMOS against DES, KiDS or LSST
  Y1: two magnitudes or more); check it with ``depths`` against the deep errors;
- the wide bands are the deep catalogue's own filters (a wide survey observing through
  the same or near-identical filters); colour terms between different filter sets are
  not modelled;
- the noise is sky-limited with a relative floor: sigma^2 = (f5 / 5)^2 + (floor x f)^2
  for 5-sigma point-source depth m5 (flux f5), as the mock's noise model
  (:mod:`som.mock.wide`); blending, seeing and detection are not modelled (every galaxy
  is "detected"; magnitudes are NaN where S/N < 2, fluxes are kept, negative included).

The output has the column layout :class:`~som.deepwide.DeepWideCalibration` reads: the
deep photometry prefixed ``deep_``, the wide prefixed ``wide_``, with ``id``,
``injection`` and ``weight`` (1 / n_injections).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from som.photometry.cleaning import MEASURED, clean_band
from som.photometry.units import POGSON

#: AB zero point of a flux in microjansky
_ZP_UJY = 2.5 * math.log10(3631e6)
#: below this S/N a wide magnitude is NaN (the fluxes are kept), as in the mock
DETECTION_SNR = 2.0


def _check_depths(depths: Mapping[str, float], frame: pd.DataFrame, template: str) -> dict:
    if not isinstance(depths, Mapping) or not depths:
        raise ValueError(
            "depths must map band names to 5-sigma point-source AB depths, e.g. "
            "{'g': 24.5, 'r': 24.3}"
        )
    out = {}
    for band, m5 in depths.items():
        column = template.format(band=band)
        if column not in frame.columns:
            have = [c for c in frame.columns if isinstance(c, str)][:12]
            raise ValueError(
                f"depths names band {band!r} but the deep catalogue has no column "
                f"{column!r} (columns: {have}{' ...' if len(frame.columns) > 12 else ''})"
            )
        try:
            m5 = float(m5)
        except (TypeError, ValueError):
            raise ValueError(f"depths[{band!r}] must be a magnitude, got {m5!r}") from None
        if not (math.isfinite(m5) and 10.0 < m5 < 40.0):
            raise ValueError(f"depths[{band!r}] = {m5} is not a plausible AB depth (10-40)")
        out[str(band)] = m5
    return out


def _rng(seed) -> np.random.Generator:
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence(seed))


def observe_at_depth(
    true_mag: np.ndarray,
    m5: np.ndarray,
    rng: np.random.Generator,
    floor: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noisy fluxes of magnitudes ``true_mag`` (n, B) at depths ``m5`` (B,).

    Returns ``(flux, fluxerr, mag, magerr)``, each (n, B): fluxes in uJy (negative kept,
    NaN where ``true_mag`` is), AB magnitudes and errors NaN where S/N < 2.
    """
    flux_true = 10.0 ** (-0.4 * (true_mag - _ZP_UJY))
    sky = 10.0 ** (-0.4 * (np.asarray(m5, dtype=np.float64) - _ZP_UJY)) / 5.0
    sigma = np.hypot(sky[None, :], floor / POGSON * flux_true)
    flux = flux_true + sigma * rng.standard_normal(flux_true.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        detected = flux >= DETECTION_SNR * sigma
        mag = np.where(detected, _ZP_UJY - 2.5 * np.log10(np.where(detected, flux, 1.0)), np.nan)
        magerr = np.where(detected, POGSON * sigma / np.where(detected, flux, 1.0), np.nan)
    sigma = np.where(np.isfinite(flux), sigma, np.nan)
    return flux, sigma, mag, magerr


def inject_wide_noise(
    deep: pd.DataFrame,
    depths: Mapping[str, float],
    n_injections: int = 10,
    *,
    seed: int | None = 0,
    value_template: str = "mag_{band}",
    error_template: str | None = "magerr_{band}",
    wide_suffix: str = "",
    id_column: str = "id",
    floor: float = 0.01,
    keep: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Every galaxy of ``deep`` observed ``n_injections`` times at the wide ``depths``.

    Parameters
    ----------
    deep : DataFrame
        The deep catalogue: AB magnitudes in ``value_template`` columns (and errors in
        ``error_template``), an ``id_column``. Missing values (NaN, sentinels) follow the
        one cleaning path (:func:`som.photometry.cleaning.clean_band`); a band missing in
        the deep catalogue is missing (NaN) in every injection.
    depths : {band: m5}
        The wide survey's bands (among the deep catalogue's) and their 5-sigma
        point-source AB depths.
    n_injections : int
        Independent wide observations per galaxy (DES Y3 used ~10 per deep galaxy).
    seed : int or None
        The one seed of the noise.
    wide_suffix : str
        Appended to each wide band's name (``"_wide"`` gives ``wide_mag_g_wide``), when the
        wide map's band names must differ from the deep map's.
    floor : float
        Relative flux error floor (magnitudes: ``floor`` mag at high S/N).
    keep : tuple of str
        Columns of ``deep`` copied unchanged into every injection (e.g. ``"z_spec"``).

    Returns
    -------
    DataFrame of n x n_injections rows, galaxy-major: ``id``, ``injection``, ``weight``
    (1 / n_injections, so each deep galaxy weighs one), the ``keep`` columns, every deep
    value and error column prefixed ``deep_``, and per wide band ``wide_flux_<b>``,
    ``wide_fluxerr_<b>`` (uJy), ``wide_mag_<b>``, ``wide_magerr_<b>`` (NaN where
    S/N < 2). ``attrs["units"]`` names the flux unit.
    """
    if not isinstance(deep, pd.DataFrame):
        raise TypeError(f"deep must be a pandas DataFrame, got {type(deep).__name__}")
    if isinstance(n_injections, bool) or not isinstance(n_injections, int | np.integer):
        raise ValueError(f"n_injections must be an integer >= 1, got {n_injections!r}")
    if n_injections < 1:
        raise ValueError(f"n_injections must be >= 1, got {n_injections}")
    if not (math.isfinite(floor) and floor >= 0):
        raise ValueError(f"floor must be a finite number >= 0, got {floor!r}")
    if id_column not in deep.columns:
        raise ValueError(f"the deep catalogue has no id column {id_column!r}")
    absent = [c for c in keep if c not in deep.columns]
    if absent:
        raise ValueError(f"keep names columns the deep catalogue lacks: {absent}")
    m5 = _check_depths(depths, deep, value_template)
    bands = list(m5)
    rng = _rng(seed)
    k = int(n_injections)
    n = len(deep)

    true_mag = np.empty((n, len(bands)))
    for j, band in enumerate(bands):
        column = value_template.format(band=band)
        error_column = None if error_template is None else error_template.format(band=band)
        cleaned = clean_band(
            deep[column].to_numpy(),
            None if error_column not in deep.columns else deep[error_column].to_numpy(),
            kind="mag",
            column=column,
            error_column=error_column,
            source="deep catalogue",
        )
        if cleaned.invalid:
            row = min(cleaned.invalid)
            col, reason = cleaned.invalid[row]
            raise ValueError(f"deep catalogue, column {col!r}, row {row}: {reason}")
        true_mag[:, j] = np.where(cleaned.status == MEASURED, cleaned.mag, np.nan)

    out: dict[str, np.ndarray] = {
        "id": np.repeat(deep[id_column].to_numpy(), k),
        "injection": np.tile(np.arange(k, dtype=np.int32), n),
        "weight": np.full(n * k, 1.0 / k),
    }
    for col in keep:
        out[col] = np.repeat(deep[col].to_numpy(), k)
    deep_columns = [
        c
        for c in deep.columns
        if isinstance(c, str) and (_matches(c, value_template) or _matches(c, error_template))
    ]
    for col in deep_columns:
        out[f"deep_{col}"] = np.repeat(deep[col].to_numpy(), k)
    flux, fluxerr, mag, magerr = observe_at_depth(
        np.repeat(true_mag, k, axis=0), np.array([m5[b] for b in bands]), rng, floor
    )
    for j, band in enumerate(bands):
        name = f"{band}{wide_suffix}"
        out[f"wide_flux_{name}"] = flux[:, j]
        out[f"wide_fluxerr_{name}"] = fluxerr[:, j]
        out[f"wide_mag_{name}"] = mag[:, j]
        out[f"wide_magerr_{name}"] = magerr[:, j]
    frame = pd.DataFrame(out)
    frame.attrs["units"] = {c: "uJy" for c in frame.columns if c.startswith("wide_flux")}
    return frame


def _matches(column: str, template: str | None) -> bool:
    """Whether ``column`` is ``template`` with some band in place of ``{band}``."""
    if template is None:
        return False
    head, _, tail = template.partition("{band}")
    return column.startswith(head) and column.endswith(tail) and len(column) > len(head) + len(tail)
