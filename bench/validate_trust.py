"""How often ``outside_training`` flags galaxies unlike the training set (issue 10, item 6).

A map is trained on one half of the secure zCOSMOS-bright galaxies (colours of the bands
u g r i z J that zCOSMOS and the mock share). The other half, drawn like the training set,
should be flagged beyond the 99.5th percentile of the training distances about 0.5% of the
time; the mock's z > 2.5 galaxies, which zCOSMOS-bright (i < 22.5, z < 1.4 mostly) never
saw, far more often. The mock's bright low-redshift galaxies are a control: they tell how
much of the flagging is the other catalogue's photometry rather than the redshift.

    python bench/validate_trust.py [--rows N] [--cols N] [--sigma-end S] [--seed S]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from som import SOM
from som.mock import make_mock
from som.photometry import ColourFeatures
from som.zcosmos import read_zcosmos

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FILE = DATA / "zcosmos_bright20k_cosmos_photometry.csv"
COMMON_BANDS = ("u", "g", "r", "i", "z", "J")


def run(file=FILE, rows=30, cols=30, n_epochs=30, sigma_end=1.0, seed=1, n_mock=100_000):
    # The mock's galaxies go on a zCOSMOS map: the Suprime-Cam/WFCAM bands under the mock's
    # HSC/VISTA names, an approximation of a few hundredths of a magnitude in colour.
    cat = read_zcosmos(file, band_names="mock")
    cat = cat[cat["secure"] & (cat["z_spec"] > 0)].reset_index(drop=True)
    feats = ColourFeatures(bands=COMMON_BANDS)
    X, _ = feats.fit_transform(cat)
    half = np.random.default_rng(seed).permutation(len(X)) < len(X) // 2
    som = SOM(rows, cols, n_epochs=n_epochs, random_state=seed, sigma_end=sigma_end)
    som.fit(X[half], skip_empty=True)
    held = som.assign(X[~half], skip_empty=True)
    mock = make_mock(n_mock, seed=seed)
    Xm, _ = feats.transform(mock)
    am = som.assign(Xm, skip_empty=True)
    flag_m = som.outside_training(am)
    z, i = mock["z_true"].to_numpy(), mock["mag_i"].to_numpy()
    high, control = z > 2.5, (z < 1.0) & (i < 22.5)
    enough = held.n_features >= 3
    return {
        "map": f"{rows}x{cols}, {n_epochs} epochs, sigma_end {sigma_end}, seed {seed}",
        "n_train": int(half.sum()),
        "n_train_skipped": som.n_skipped_,
        "n_heldout": int((~half).sum()),
        "heldout_flagged": float(som.outside_training(held).mean()),
        "heldout_beyond_percentile": float(np.mean(held.percentile[enough] > 99.5)),
        "heldout_too_few_features": float(np.mean(held.n_features < 3)),
        "n_mock_high_z": int(high.sum()),
        "mock_high_z_flagged": float(flag_m[high].mean()),
        "mock_high_z_beyond_percentile": float(np.mean(am.percentile[high] > 99.5)),
        "n_mock_control": int(control.sum()),
        "mock_control_flagged": float(flag_m[control].mean()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=FILE)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--cols", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--sigma-end", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if not args.file.exists():
        print(f"zCOSMOS file not found: {args.file} (it lives in ../shared/data/real)")
        return 2
    r = run(args.file, args.rows, args.cols, args.epochs, args.sigma_end, args.seed)
    width = max(map(len, r))
    for k, v in r.items():
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
