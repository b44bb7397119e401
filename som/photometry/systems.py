"""Magnitude systems and Galactic extinction: what turns a survey's magnitude into the AB,
dereddened (or not) magnitude the SOM compares across catalogues.

* :func:`to_ab` adds a band's published offset ``m_AB - m_system`` (``som.bands``: Vega for
  2MASS, WISE and UKIDSS catalogues, "SDSS" for SDSS's asinh magnitudes) to magnitudes, and
  first turns SDSS asinh magnitudes ("luptitudes", Lupton, Gunn & Szalay 1999) into
  Pogson's, since the AB offsets and every other survey's magnitudes are Pogson's. Fluxes
  are physical units and are never shifted.
* :func:`extinction_mag` reads a survey's own Galactic extinction column, given either as
  ``A_b`` in magnitudes (SDSS ``extinction_<b>``, HSC ``a_<b>``, KiDS ``EXTINCTION_<b>``) or
  as a transmission ``T = 10^(-0.4 A_b)`` (Legacy Surveys ``MW_TRANSMISSION_<B>``); a
  magnitude is dereddened by subtracting ``A_b``.
"""

from __future__ import annotations

import math

import numpy as np

from som.photometry.units import POGSON

#: How a survey gives Galactic extinction: "mag" (A_b) or "transmission" (10^(-0.4 A_b)).
EXTINCTION_KINDS = ("mag", "transmission")
#: Largest A_b a band is corrected for (E(B-V) ~ 1.3 in u, ~ 2 in g); behind more dust the
#: band is treated as missing in that row.
MAX_EXTINCTION = 6.0


def luptitudes_to_pogson(
    mag: np.ndarray, err: np.ndarray, softening: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pogson magnitudes and errors of asinh magnitudes with softening ``b`` (in units of
    the zero-point flux, e.g. maggies for SDSS), and where the flux they mean is <= 0.

    ``f/f0 = 2b sinh(-m/p - ln b)`` with ``p = 2.5 log10(e)``; then ``m' = -2.5 log10(f/f0)``
    and ``sigma' = sigma sqrt(f^2 + 4 b^2) / f``. A luptitude of a flux <= 0 (possible for
    asinh magnitudes) is a non-detection: NaN, flagged in the third array.
    """
    m = np.asarray(mag, dtype=np.float64)
    s = np.asarray(err, dtype=np.float64)
    b = float(softening)
    with np.errstate(over="ignore", invalid="ignore"):
        f = 2.0 * b * np.sinh(-m / POGSON - math.log(b))
        nonpositive = np.isfinite(m) & ~(f > 0)
        good = np.isfinite(m) & (f > 0)
        out = np.full(m.shape, np.nan)
        out_err = np.full(m.shape, np.nan)
        out[good] = -2.5 * np.log10(f[good])
        out_err[good] = s[good] * np.sqrt(f[good] ** 2 + 4.0 * b * b) / f[good]
    return out, out_err, nonpositive


def extinction_mag(values: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``A_b`` in magnitudes from an extinction column, and the rows where it is not a
    usable value (missing, negative, a transmission outside (0, 1])."""
    if kind not in EXTINCTION_KINDS:
        raise ValueError(f"extinction kind must be one of {EXTINCTION_KINDS}, got {kind!r}")
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "transmission":
            a = np.where((v > 0) & (v <= 1.0), -2.5 * np.log10(v), np.nan)
        else:
            a = np.where(v >= 0, v, np.nan)
    return a, ~np.isfinite(a)


def deredden(
    mag: np.ndarray, err: np.ndarray, status: np.ndarray, values: np.ndarray, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Magnitudes (``clean_band``'s, made AB) less the survey's ``A_b`` from ``values``.

    Returns ``(mag, err, status, bad)``: a measured band behind more than
    :data:`MAX_EXTINCTION` magnitudes of dust is missing (no colour survives such a
    correction); ``bad`` marks the measured rows whose extinction value is unusable, for
    the caller to report as errors of their rows.
    """
    from som.photometry.cleaning import MEASURED, MISSING

    a, unusable = extinction_mag(values, kind)
    status = np.array(status, copy=True)
    measured = status == MEASURED
    with np.errstate(invalid="ignore"):
        status[measured & (a > MAX_EXTINCTION)] = MISSING
    ok = status == MEASURED
    mag = np.where(ok, np.asarray(mag, dtype=np.float64) - np.where(ok, a, 0.0), np.nan)
    err = np.where(ok, err, np.nan)
    return mag, err, status, unusable & measured


def to_ab(
    mag: np.ndarray,
    err: np.ndarray,
    status: np.ndarray,
    offset: float = 0.0,
    softening: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AB magnitudes of cleaned magnitudes (``clean_band``'s ``mag``, ``magerr``,
    ``status``) in a system with ``offset = m_AB - m_system``; ``softening``: they are asinh
    magnitudes, made Pogson's first (a flux <= 0 becomes undetected). Unchanged arrays when
    there is nothing to do (AB, fluxes)."""
    if not offset and softening is None:
        return mag, err, status
    from som.photometry.cleaning import MEASURED, UNDETECTED

    mag = np.asarray(mag, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    status = np.array(status, copy=True)
    if softening is not None:
        mag, err, nonpositive = luptitudes_to_pogson(mag, err, softening)
        status[nonpositive & (status == MEASURED)] = UNDETECTED
        err = np.where(status == MEASURED, err, np.nan)
        mag = np.where(status == MEASURED, mag, np.nan)
    return mag + float(offset), err, status
