"""Packed photometry in the ledger: one float64 array of magnitudes (and one of errors)
per row, over the catalogue's own bands (see ``app.models._Photometry``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from app.models import PHOT_DTYPE


def pack(values: np.ndarray) -> np.ndarray:
    """(n, B) float64 → (n, 8B) uint8: the bytes stored for each row."""
    arr = np.ascontiguousarray(values, dtype=PHOT_DTYPE)
    return arr.view(np.uint8).reshape(arr.shape[0], 8 * arr.shape[1])


def unpack(blobs: Sequence[bytes | None], n_bands: int) -> np.ndarray:
    """Stored bytes of n rows → (n, n_bands) float64, NaN where a row has none."""
    n = len(blobs)
    width = 8 * n_bands
    out = np.full((n, n_bands), np.nan)
    if n == 0 or n_bands == 0:
        return out
    ok = np.fromiter((b is not None and len(b) == width for b in blobs), dtype=bool, count=n)
    if ok.all():
        return np.frombuffer(b"".join(blobs), dtype=PHOT_DTYPE).reshape(n, n_bands).copy()
    good = [bytes(b) for b, k in zip(blobs, ok, strict=True) if k]
    if good:
        out[ok] = np.frombuffer(b"".join(good), dtype=PHOT_DTYPE).reshape(-1, n_bands)
    return out


def photometry_frame(
    bands: Sequence[str],
    mags: np.ndarray,
    magerrs: np.ndarray,
    wanted: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``mag_<band>``/``magerr_<band>`` columns (what ``ColourFeatures`` reads) for ``wanted``
    bands; a band the catalogue lacks is all-NaN, so it is simply missing for the map."""
    index = {b: j for j, b in enumerate(bands)}
    n = mags.shape[0]
    cols: dict[str, np.ndarray] = {}
    for band in wanted if wanted is not None else bands:
        j = index.get(band)
        cols[f"mag_{band}"] = mags[:, j] if j is not None else np.full(n, np.nan)
        cols[f"magerr_{band}"] = magerrs[:, j] if j is not None else np.full(n, np.nan)
    return pd.DataFrame(cols)
