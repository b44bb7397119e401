"""The zCOSMOS-bright DR3 x COSMOS reader (Lilly et al. 2009; Capak et al. 2007).

Reads the real spectroscopic catalogue the validation benches use into somcal's shape
(``id``, ``ra``, ``dec``, ``z_spec``, ``z_quality``, ``secure``, ``mag_*``, ``magerr_*``);
the file itself goes through :func:`som.tables.read_table`.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from som.photometry import PhotometryError, column_as_float64, near_sentinels
from som.tables import CatalogueError, read_table

__all__ = [
    "MOCK_BAND_NAMES",
    "ZCOSMOS_ALL_BANDS",
    "ZCOSMOS_BANDS",
    "read_zcosmos",
    "zcosmos_secure",
]

#: Every broad band :func:`read_zcosmos` returns, in wavelength order, by the registry's
#: names (:mod:`som.bands`): CFHT u*, Subaru Suprime-Cam B V g+ r+ i+ z+, UKIRT WFCAM J and
#: CFHT WIRCam Ks. They are not the HSC g r i z or VISTA J Ks of somcal's mock.
ZCOSMOS_ALL_BANDS = (
    "u",
    "B_subaru",
    "g_subaru",
    "V_subaru",
    "r_subaru",
    "i_subaru",
    "z_subaru",
    "J_wfcam",
    "Ks_wircam",
)
#: The seven bands (six colours) the validation bench uses on zCOSMOS.
ZCOSMOS_BANDS = ("u", "g_subaru", "r_subaru", "i_subaru", "z_subaru", "J_wfcam", "Ks_wircam")
#: The same bands under the names of the mock's nearest filters (``band_names="mock"``):
#: for a bench that puts zCOSMOS galaxies on a mock-trained map, or mock galaxies on a
#: zCOSMOS map. An approximation (the colour terms between Suprime-Cam and HSC, or WFCAM
#: and VISTA, are a few hundredths of a magnitude) that has to be asked for by name.
MOCK_BAND_NAMES = {
    "B_subaru": "B",
    "V_subaru": "V",
    "g_subaru": "g",
    "r_subaru": "r",
    "i_subaru": "i",
    "z_subaru": "z",
    "J_wfcam": "J",
    "Ks_wircam": "Ks",
}

# Band -> column stem in the zCOSMOS x COSMOS file (value "{stem}_photzi25", error
# "e{stem}_photzi25").
_ZCOSMOS_STEMS = {
    "u": "u",
    "B_subaru": "b",
    "g_subaru": "g",
    "V_subaru": "v",
    "r_subaru": "r",
    "i_subaru": "i",
    "z_subaru": "z",
    "J_wfcam": "j",
    "Ks_wircam": "k",
}
_ZCOSMOS_SENTINELS = (-99.0, -99.9)


def zcosmos_secure(cc) -> np.ndarray:
    """Secure-redshift mask from zCOSMOS confidence classes.

    The class digit is ``cc mod 10`` (the tens mark broad-line AGN, 1x.x, and secondary targets,
    2x.x). Secure means that digit is 3 or 4, any decimal: 3.1-3.5, 4.1-4.5, 13.x, 14.x, 23.x,
    24.x (Lilly et al. 2009: >99% spectroscopic verification). Not secure: 0.x, 1.x, 2.x,
    9.x (single-line), 18.x and NaN/negative classes. The digit is rounded to 0.1 first so
    that floating-point remainders such as 14.5 % 10 = 4.499999... cannot move a class.
    """
    cc = np.asarray(cc, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        digit = np.round(np.mod(cc, 10.0), 1)
        return np.isfinite(cc) & (cc >= 0) & (digit >= 3.0) & (digit < 5.0)


def read_zcosmos(path: str | os.PathLike, *, band_names: str = "instrument") -> pd.DataFrame:
    """zCOSMOS-bright spectroscopic redshifts with COSMOS photometry, in somcal's shape.

    Reads the zCOSMOS-bright DR3 x COSMOS (Capak et al. 2007; Ilbert et al. 2009) CSV
    (``zcosmos_bright20k_cosmos_photometry.csv``) or any table with the same columns.

    Returns a DataFrame with columns ``id`` (int64, id_zcosmos), ``ra``, ``dec`` (deg),
    ``z_spec``, ``z_quality`` (the confidence class ``cc`` as a float), ``secure`` (bool, see
    :func:`zcosmos_secure`) and ``mag_{b}``, ``magerr_{b}`` (AB) for b in
    :data:`ZCOSMOS_ALL_BANDS` (``u``, ``g_subaru`` ..., ``J_wfcam``, ``Ks_wircam``), ready for
    ``ColourFeatures(bands=ZCOSMOS_BANDS)``; with ``band_names="mock"`` under the mock's
    names instead (:data:`MOCK_BAND_NAMES`, an approximation said where it is used).

    Missing photometry becomes NaN: the sentinels -99 and -99.9, rows without a photometric
    counterpart (NaN in the file), and measurements whose error is negative, which the COSMOS
    catalogue uses to flag a magnitude that is only an upper limit (one u-band value with error
    -1 in the 17,358-row file). Stars are kept: they have ``z_spec == 0`` (708 rows, many of them
    with a secure class), so select ``z_spec > 0`` for galaxy samples.
    """
    if band_names not in ("instrument", "mock"):
        raise ValueError(f"band_names must be 'instrument' or 'mock', got {band_names!r}")
    df = read_table(path)
    source = str(path)
    needed = ["id_zcosmos", "zpec", "cc", "alpha", "delta"]
    for stem in _ZCOSMOS_STEMS.values():
        needed += [f"{stem}_photzi25", f"e{stem}_photzi25"]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise CatalogueError(
            f"not a zCOSMOS x COSMOS table: missing columns {absent}", source=source
        )

    out = pd.DataFrame(
        {
            "id": _numeric(df, "id_zcosmos", source),
            "ra": _numeric(df, "alpha", source),
            "dec": _numeric(df, "delta", source),
            "z_spec": _numeric(df, "zpec", source),
            "z_quality": _numeric(df, "cc", source),
        }
    )
    for col in ("id", "ra", "dec", "z_spec", "z_quality"):
        bad = ~np.isfinite(out[col].to_numpy())
        if bad.any():
            raise CatalogueError(
                "missing value", column=col, row=int(np.flatnonzero(bad)[0]), source=source
            )
    ids = out["id"].to_numpy()
    if np.any(ids != np.round(ids)):
        row = int(np.flatnonzero(ids != np.round(ids))[0])
        raise CatalogueError("non-integer id", column="id_zcosmos", row=row, source=source)
    out["id"] = ids.astype(np.int64)
    out["secure"] = zcosmos_secure(out["z_quality"].to_numpy())

    for instrument_band, stem in _ZCOSMOS_STEMS.items():
        band = MOCK_BAND_NAMES.get(instrument_band, instrument_band)
        if band_names == "instrument":
            band = instrument_band
        mag = _numeric(df, f"{stem}_photzi25", source)
        err = _numeric(df, f"e{stem}_photzi25", source)
        missing = _is_sentinel(mag) | _is_sentinel(err)
        upper_limit = ~missing & (err < 0)
        missing |= upper_limit
        out[f"mag_{band}"] = np.where(missing, np.nan, mag)
        out[f"magerr_{band}"] = np.where(missing, np.nan, err)
        bad = np.isfinite(out[f"mag_{band}"].to_numpy()) & ~(out[f"mag_{band}"].to_numpy() > 0)
        if bad.any():
            raise CatalogueError(
                f"non-positive AB magnitude {mag[np.flatnonzero(bad)[0]]:g}",
                column=f"{stem}_photzi25",
                row=int(np.flatnonzero(bad)[0]),
                source=source,
            )
    out.attrs["source"] = source
    return out


def _numeric(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    try:
        return column_as_float64(df[column], column, source)
    except PhotometryError as exc:
        raise CatalogueError(exc.reason, column=exc.column, row=exc.row, source=source) from exc


def _is_sentinel(values: np.ndarray) -> np.ndarray:
    return ~np.isfinite(values) | near_sentinels(values, _ZCOSMOS_SENTINELS)
