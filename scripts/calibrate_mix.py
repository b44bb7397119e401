"""Derive the mock's galaxy-type mix from real zCOSMOS-bright galaxies (development tool).

Not imported at run time. It fits every secure zCOSMOS-bright redshift (real/ in the
reference data, which is not redistributable) with the mock's own template x E(B-V)
grid at the spectroscopic redshift, using the real COSMOS bands (CFHT u*, Subaru
B V g+ r+ i+ z+, UKIRT J, WIRCam Ks; the LePhare curves in the reference data), and
prints the aggregate numbers that ``som.mock`` carries as constants:

- the multinomial-logistic coefficients of P(early, spiral | i, z) against starburst,
and writes ``mix/template_ebv_freq.ecsv``, the joint frequency of (template, E(B-V))
within each class (kept joint because bluer templates take more dust in the fits).

Only these fitted summaries enter the package, never the catalogue. Dust follows the
brief and Ilbert et al. (2009): at most E(B-V) = 0.1 for Ell/S0 and 0.3 for spirals.

    python scripts/calibrate_mix.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.table import Table
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "som" / "data"  # the packaged files this script writes
sys.path.insert(0, str(ROOT))

from som import mock  # noqa: E402
from som.mock import catalogue as mock_catalogue  # noqa: E402
from som.mock import sed as mock_sed  # noqa: E402

REAL_BANDS = {  # column stem -> filter file (LePhare curves; used here only, not shipped)
    "b": "lephare_B_subaru.res",
    "v": "lephare_V_subaru.res",
    "g": "lephare_g_subaru.res",
    "r": "lephare_r_subaru.res",
    "i": "lephare_i_subaru.res",
    "z": "lephare_z_subaru.res",
    "j": "lephare_J_wfcam.res",
    "k": "lephare_K_wircam.res",
}
#: per class, the largest allowed E(B-V) index into EBV_GRID
MAX_EBV_INDEX = {mock.EARLY: 1, mock.SPIRAL: 3, mock.STARBURST: 5}
#: added in quadrature to catalogue errors: zero points and template mismatch
MAG_FLOOR = 0.05
#: luminosity-proxy bin edges: dust and template depend on luminosity in the fits
LUM_EDGES = (-21.5, -20.5, -19.5)
#: weight of the class-wide table in each luminosity bin (sparse bins stay sane)
PSEUDO_COUNTS = 20.0


def class_features(i_mag: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Features of the type-mix logistic; must match ``som.mock.catalogue._class_features``."""
    return mock_catalogue._class_features(i_mag, z)


def fit_templates(shared: Path, real: pd.DataFrame) -> pd.DataFrame:
    def curve(name: str) -> mock.Filter:
        a = np.loadtxt(shared / "filters" / "cosmos_ground" / name, comments="#")
        return mock.Filter(name, a[:, 0], np.clip(a[:, 1], 0.0, None))

    filters = [mock.load_filters()["u"]] + [curve(f) for f in REAL_BANDS.values()]
    stems = ["u", *REAL_BANDS]
    tpl = mock.load_templates()
    dust = 10.0 ** (-0.4 * np.outer(mock.EBV_GRID, mock.calzetti_k(tpl.wavelength)))
    seds = (tpl.flux[:, None, :] * dust[None]).reshape(-1, tpl.wavelength.size)
    n_ebv = mock.EBV_GRID.size
    allowed = np.array(
        [e <= MAX_EBV_INDEX[tpl.kind[t]] for t in range(len(tpl.names)) for e in range(n_ebv)]
    )
    mag = real[[f"{s}_photzi25" for s in stems]].to_numpy(float)
    err = real[[f"e{s}_photzi25" for s in stems]].to_numpy(float)
    good = np.isfinite(mag) & (mag > 0) & (mag < 40) & np.isfinite(err) & (err > 0) & (err < 1)
    # a template fit needs colours: at least four usable bands
    enough = good.sum(axis=1) >= 4
    real, mag, err, good = real[enough], mag[enough], err[enough], good[enough]
    mag, err = np.where(good, mag, 30.0), np.where(good, err, 1.0)
    flux = 10.0 ** (-0.4 * (mag - 23.9))
    ivar = np.where(good, (flux * np.hypot(err, MAG_FLOOR) / 1.0857) ** -2.0, 0.0)
    best = np.empty(len(real), dtype=int)
    for n, z in enumerate(real["zpec"].to_numpy()):
        model = seds @ mock_sed._band_weights(tpl.wavelength, filters, float(z), igm=True)
        scale = (model * flux[n] * ivar[n]).sum(1) / (model * model * ivar[n]).sum(1)
        chi2 = ((flux[n] - scale[:, None] * model) ** 2 * ivar[n]).sum(1)
        best[n] = np.argmin(np.where(allowed & np.isfinite(chi2), chi2, np.inf))
    out = real[["mag_sel", "zpec"]].copy()
    out["template"] = best // n_ebv
    out["ebv_index"] = best % n_ebv
    out["kind"] = tpl.kind[out["template"]]
    return out


def fit_mix(fits: pd.DataFrame) -> np.ndarray:
    x = class_features(fits["mag_sel"].to_numpy(), fits["zpec"].to_numpy())
    k = fits["kind"].to_numpy()

    def nll(theta: np.ndarray) -> float:
        p = mock_catalogue._softmax_classes(theta.reshape(2, -1), x)
        return -np.log(p[np.arange(len(k)), k]).sum()

    return minimize(nll, np.zeros(2 * x.shape[1]), method="BFGS").x.reshape(2, -1)


def main(shared: Path) -> None:
    real = pd.read_csv(shared / "real" / "zcosmos_bright20k_cosmos_photometry.csv")
    cc = real["cc"]
    secure = (cc < 10) & (cc % 10 >= 3) & (cc % 10 < 5) & (real["zpec"] > 0.02)
    real = real[secure & (real["zpec"] < 1.4)].reset_index(drop=True)
    fits = fit_templates(shared, real)
    theta = fit_mix(fits)
    np.set_printoptions(precision=3, suppress=True)
    print(f"{len(fits)} secure galaxies fitted")
    print("logistic coefficients (early, spiral vs starburst):", np.round(theta, 3))
    tpl = mock.load_templates()
    n_tpl, n_ebv = len(tpl.names), mock.EBV_GRID.size
    lum_bin = np.searchsorted(
        LUM_EDGES, mock.luminosity_proxy(fits["mag_sel"].to_numpy(), fits["zpec"].to_numpy())
    )
    counts = np.zeros((len(LUM_EDGES) + 1, n_tpl, n_ebv))
    np.add.at(counts, (lum_bin, fits["template"].to_numpy(), fits["ebv_index"].to_numpy()), 1)
    freq = np.empty_like(counts)
    for kind in (mock.EARLY, mock.SPIRAL, mock.STARBURST):
        rows = tpl.kind == kind
        overall = counts[:, rows].sum(axis=0)
        overall /= overall.sum()
        for b, c in enumerate(counts[:, rows]):
            # shrink sparse luminosity bins towards the class's overall table
            smoothed = c + PSEUDO_COUNTS * overall
            freq[b, rows] = smoothed / smoothed.sum()
            print(f"class {kind}, luminosity bin {b}: {int(c.sum())} galaxies")
    columns = {
        "lum_bin": np.repeat(np.arange(len(LUM_EDGES) + 1), n_tpl),
        "template": list(tpl.names) * (len(LUM_EDGES) + 1),
        "kind": np.tile(tpl.kind, len(LUM_EDGES) + 1),
    }
    for e, ebv in enumerate(mock.EBV_GRID):
        columns[f"p_ebv_{ebv:.1f}"] = np.round(freq[:, :, e].ravel(), 5)
    table = Table(columns)
    table.meta = {
        "description": "P(template, E(B-V) | class, luminosity bin) from best fits to secure "
        "zCOSMOS-bright redshifts; each (lum_bin, kind) block sums to 1 "
        "(kind 0 early, 1 spiral, 2 starburst)",
        "made_by": "scripts/calibrate_mix.py",
        "n_galaxies": len(fits),
        "lum_proxy": "i - distance modulus(z), flat LCDM H0=70 Om0=0.3, no k-correction",
        "lum_edges": list(LUM_EDGES),
        "pseudo_counts": PSEUDO_COUNTS,
        "mix_features": "1, min(i, 22.5) - 22, ln z, z  (z clipped to 0.05-1.2)",
        "mix_coeff": np.round(theta, 4).tolist(),
    }
    out = DATA / "mix" / "template_ebv_freq.ecsv"
    out.parent.mkdir(exist_ok=True)
    table.write(out, format="ascii.ecsv", overwrite=True)
    print("wrote", out)
    i_bins = pd.cut(fits["mag_sel"], [17, 19, 20, 21, 21.5, 22, 22.5])
    z_bins = pd.cut(fits["zpec"], [0, 0.3, 0.5, 0.7, 0.9, 1.4])
    observed = pd.crosstab([i_bins, z_bins], fits["kind"], normalize="index")
    model = mock_catalogue._softmax_classes(
        theta, class_features(fits["mag_sel"].to_numpy(), fits["zpec"].to_numpy())
    )
    modelled = pd.DataFrame(model).groupby([i_bins.values, z_bins.values], observed=True).mean()
    print("class fractions, observed | logistic model")
    print(pd.concat([observed.round(2), modelled.round(2)], axis=1).to_string())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT / ".." / "shared" / "data")
    main(parser.parse_args().shared.resolve())
