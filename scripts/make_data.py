"""Regenerate the compact filter curves and SED templates shipped in ``som/data``.

Not imported at run time: it documents, and lets anyone repeat, how the packaged files
were derived from the MIT/BSD originals (see ``LICENSES.md``). Run from the repository
root with the reference data checked out next to it::

    python scripts/make_data.py [--shared ../shared/data]

Filters: negative noise clipped to 0; trimmed to the wavelengths where the response
exceeds ``TRIM_FRACTION`` of its peak (plus one sample either side), which drops the
percent-level noise floor of the VIRCAM curves far from the band; curves with more than
``MAX_FILTER_POINTS`` samples are averaged onto that many equally spaced points (a box
average, so noise is smoothed rather than aliased).

SEDs: duplicate wavelengths averaged; f_lambda averaged over bins of a logarithmic grid
(900 A - 6 um, ``SED_DLNLAM`` in ln lambda), which keeps the integrated flux of emission
lines; each template scaled to unit mean f_lambda over 5000-6000 A and stored float32.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from astropy.table import Table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "som" / "data"  # the packaged files this script writes
TRIM_FRACTION = 0.005
MAX_FILTER_POINTS = 200
SED_LAMBDA_MIN = 900.0
SED_LAMBDA_MAX = 60000.0
SED_DLNLAM = 0.003

#: packaged name -> (relative source path, response scale, licence, origin)
FILTERS = {
    "cfht_ustar": (
        "filters/cosmos_ground/cfht_megacam-ustar.ecsv",
        1.0,
        "BSD-3-Clause",
        "speclite 1.0.0",
    ),
    "hsc_g": ("filters/cosmos_ground/hsc2017-g.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    "hsc_r": ("filters/cosmos_ground/hsc2017-r.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    "hsc_i": ("filters/cosmos_ground/hsc2017-i.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    "hsc_z": ("filters/cosmos_ground/hsc2017-z.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    # sedpy gives VIRCAM transmission in per cent
    "vista_Y": ("filters/cosmos_ground/vista_vircam_Y.par", 0.01, "MIT", "astro-sedpy"),
    "vista_J": ("filters/cosmos_ground/vista_vircam_J.par", 0.01, "MIT", "astro-sedpy"),
    "vista_H": ("filters/cosmos_ground/vista_vircam_H.par", 0.01, "MIT", "astro-sedpy"),
    "euclid_Y": ("filters/euclid/Euclid-Y.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    "euclid_J": ("filters/euclid/Euclid-J.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    "euclid_H": ("filters/euclid/Euclid-H.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    # the wide side of the mock (som.mock.wide): Euclid VIS and the DC2 LSST curves
    # (two columns, Angstrom despite the "nm" in their header, total throughput)
    "euclid_VIS": ("filters/euclid/Euclid-VIS.ecsv", 1.0, "BSD-3-Clause", "speclite 1.0.0"),
    **{
        f"lsst_{b}": (f"filters/lsst/DC2LSST_{b}.res", 1.0, "MIT", "pz-rail-base 2.0.11")
        for b in "ugrizy"
    },
}


def read_curve(path: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Angstrom) and response of an ECSV (speclite) or .par (sedpy) file."""
    if path.suffix == ".ecsv":
        t = Table.read(path, format="ascii.ecsv")
        wave = np.asarray(t["wavelength"], dtype=float)
        resp = np.asarray(t["response"], dtype=float)
    else:
        a = np.loadtxt(path, comments="#")
        wave, resp = a[:, 0], a[:, 1]
    return wave, resp * scale


def box_average(x: np.ndarray, y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of the piecewise-linear y(x) over each [edges[k], edges[k+1]] (0 outside x)."""
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])

    def integral_to(e: np.ndarray) -> np.ndarray:
        # integral of the linear interpolant from x[0] to e, exact inside each segment
        e = np.clip(e, x[0], x[-1])
        k = np.clip(np.searchsorted(x, e, side="right") - 1, 0, len(x) - 2)
        dx = e - x[k]
        slope = (y[k + 1] - y[k]) / (x[k + 1] - x[k])
        return cum[k] + y[k] * dx + 0.5 * slope * dx * dx

    return np.diff(integral_to(edges)) / np.diff(edges)


def trim_filter(wave: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    resp = np.clip(resp, 0.0, None)
    above = np.flatnonzero(resp > TRIM_FRACTION * resp.max())
    lo, hi = max(above[0] - 1, 0), min(above[-1] + 1, len(wave) - 1)
    wave, resp = wave[lo : hi + 1], resp[lo : hi + 1]
    if len(wave) <= MAX_FILTER_POINTS:
        return wave, resp
    centres = np.linspace(wave[0], wave[-1], MAX_FILTER_POINTS)
    half = 0.5 * (centres[1] - centres[0])
    edges = np.concatenate([centres - half, [centres[-1] + half]])
    return centres, box_average(wave, resp, edges)


def read_sed(path: Path) -> tuple[np.ndarray, np.ndarray]:
    a = np.loadtxt(path)
    wave, inverse = np.unique(a[:, 0], return_inverse=True)
    flux = np.bincount(inverse, weights=a[:, 1]) / np.bincount(inverse)
    return wave, flux


def build_filters(shared: Path, names: list[str] | None = None) -> None:
    """Write the packaged curves ``names`` (default: all of ``FILTERS``)."""
    out_f = DATA / "filters"
    out_f.mkdir(parents=True, exist_ok=True)
    for name in names or list(FILTERS):
        rel, scale, licence, origin = FILTERS[name]
        wave, resp = trim_filter(*read_curve(shared / rel, scale))
        # rounding only shortens the text: 5 significant digits is far below curve accuracy
        resp = np.array([float(f"{r:.5g}") for r in resp])
        t = Table([np.round(wave, 2), resp], names=("wavelength", "response"))
        t["wavelength"].unit = "Angstrom"
        t.meta = {
            "name": name,
            "source": Path(rel).name,
            "origin": origin,
            "licence": licence,
            "processing": f"negatives clipped, trimmed at {TRIM_FRACTION:g} of peak, "
            f"box-averaged to <= {MAX_FILTER_POINTS} points",
        }
        t.write(out_f / f"{name}.ecsv", format="ascii.ecsv", overwrite=True)


def build(shared: Path, only_filters: list[str] | None = None) -> None:
    """Everything, or (``only_filters``) just those curves: the SED archive is not
    byte-stable (zip timestamps), so adding a curve should not rewrite it."""
    build_filters(shared, only_filters)
    if only_filters:
        return
    sed_dir = shared / "seds" / "cosmos_ilbert09"
    names = (sed_dir / "COSMOS_seds.list").read_text().split()
    n_bins = int(np.ceil(np.log(SED_LAMBDA_MAX / SED_LAMBDA_MIN) / SED_DLNLAM))
    edges = SED_LAMBDA_MIN * np.exp(SED_DLNLAM * np.arange(n_bins + 1))
    centres = np.sqrt(edges[1:] * edges[:-1])
    fluxes = []
    for fname in names:
        wave, flux = read_sed(sed_dir / fname)
        binned = box_average(wave, flux, edges)
        norm = binned[(centres > 5000) & (centres < 6000)].mean()
        fluxes.append(binned / norm)
    out_s = DATA / "seds"
    out_s.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_s / "cosmos_ilbert09.npz",
        wavelength=centres,
        flux=np.asarray(fluxes, dtype=np.float32),
        names=np.asarray([n.removesuffix(".sed") for n in names]),
    )

    grid = np.loadtxt(shared / "selection" / "zCOSMOS_success.txt")
    out_sel = DATA / "selection"
    out_sel.mkdir(parents=True, exist_ok=True)
    header = (
        "zCOSMOS-bright redshift success rate vs I_AB (rows) and redshift (columns), "
        "after Lilly et al. 2009 fig. 3; from pz-rail-base 2.0.11 (MIT)\n"
        "rows: I_AB = 18.0 + 0.01464226 * k; columns: z = 0.0 + 0.00587002 * j"
    )
    # mtime=0 keeps the archive byte-identical when regenerated
    with gzip.GzipFile(out_sel / "zCOSMOS_success.txt.gz", "wb", mtime=0) as fh:
        np.savetxt(fh, grid, fmt="%.3f", header=header)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT / ".." / "shared" / "data"
    parser.add_argument("--shared", type=Path, default=default)
    parser.add_argument(
        "--filter", action="append", choices=sorted(FILTERS), help="only this curve (repeatable)"
    )
    args = parser.parse_args()
    build(args.shared.resolve(), args.filter)
