"""SExtractor FITS_LDAC files for the reader tests, as SExtractor writes them: the catalogue
in HDU 2 ``LDAC_OBJECTS``, behind HDU 1 ``LDAC_IMHEAD`` (the image's header as one array of
80-character cards), so a reader that takes the first table reads the wrong one."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits


def ldac_hdus(objects: list[fits.Column]) -> list:
    """[primary, LDAC_IMHEAD, LDAC_OBJECTS holding ``objects``]."""
    card = "SIMPLE  =                    T".ljust(80)
    imhead = fits.BinTableHDU.from_columns(
        [
            fits.Column(
                name="Field Header Card",
                format="1680A",
                dim="(80, 21)",
                array=np.array([[card] * 21]),
            )
        ],
        name="LDAC_IMHEAD",
    )
    return [
        fits.PrimaryHDU(),
        imhead,
        fits.BinTableHDU.from_columns(objects, name="LDAC_OBJECTS"),
    ]


def ldac_bytes(objects: list[fits.Column]) -> bytes:
    """The bytes of an LDAC file holding ``objects``."""
    buf = io.BytesIO()
    fits.HDUList(ldac_hdus(objects)).writeto(buf)
    return buf.getvalue()
