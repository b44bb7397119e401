"""Every number the mock is built from: bands and filters, depths, the synthetic-colour
grids, the counts and redshift distribution, the type classes and the spectroscopic
selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: The packaged data files (``som/data``).
DATA_DIR = Path(__file__).resolve().parents[1] / "data"

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
SPEC_Z_SIGMA = 0.0005
#: zCOSMOS-bright spectra (5550-9650 A) cannot yield redshifts much beyond this
BRIGHT_WRONG_Z_MAX = 1.6
