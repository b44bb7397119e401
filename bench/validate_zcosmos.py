"""Validate somcal on real zCOSMOS-bright galaxies against kNN and MiniSom.

Colours u-g, g-r, r-i, i-z, z-J, J-Ks (COSMOS photometry), secure spectroscopic redshifts
only, stars (z = 0) removed. The galaxies are split in two halves (seeded): a map is
trained on one half, each cell is labelled with the median spectroscopic redshift of the
training galaxies it holds, and every galaxy of the other half is given its cell's label.
The same is done with a MiniSom map of the same size, and compared with a k-nearest-
neighbour regression (k = 20) in the same normalised colour space.

Goals (calibration issue): no worse than MiniSom's map of the same size, and sigma_NMAD
within 1.45x of kNN's.

    python bench/validate_zcosmos.py [--rows N] [--cols N] [--seed S] [--plot out.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from som import SOM
from som.calibration import cell_statistics
from som.catalogs import ZCOSMOS_BANDS, read_zcosmos
from som.photometry import ColourFeatures

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FILE = DATA / "zcosmos_bright20k_cosmos_photometry.csv"


def metrics(z_pred: np.ndarray, z_true: np.ndarray) -> dict:
    """sigma_NMAD, outlier fraction (|dz| > 0.15(1+z)) and bias of dz = (zp - z)/(1 + z)."""
    ok = np.isfinite(z_pred)
    dz = (z_pred[ok] - z_true[ok]) / (1 + z_true[ok])
    med = np.median(dz)
    return {
        "sigma_nmad": 1.4826 * np.median(np.abs(dz - med)),
        "outliers": float(np.mean(np.abs(dz) > 0.15)),
        "bias": float(med),
        "mean_bias": float(np.mean(dz)),
        "coverage": float(np.mean(ok)),
    }


def label_cells(train_cells, z_train, test_cells, n_cells):
    """Cell median redshift from the training half; test galaxies take their cell's value."""
    stats = cell_statistics(train_cells, z_train, n_cells)
    return stats["z_median"].to_numpy()[test_cells]


def run_somcal(Xtr, ztr, Xte, n_rows, n_cols, seed, n_epochs, sigma_end):
    t0 = time.perf_counter()
    som = SOM(n_rows, n_cols, n_epochs=n_epochs, random_state=seed, sigma_end=sigma_end)
    som.fit(Xtr)
    cells_tr, cells_te = som.predict(Xtr), som.predict(Xte)
    return label_cells(cells_tr, ztr, cells_te, som.n_cells), time.perf_counter() - t0


def run_minisom(Xtr, ztr, Xte, n_rows, n_cols, seed, n_epochs):
    from minisom import MiniSom

    t0 = time.perf_counter()
    # sigma decays linearly to 1, as somcal's does; MiniSom's default asymptotic decay
    # stops at sigma0/3, a far smoother map than either of the others
    ms = MiniSom(
        n_rows,
        n_cols,
        Xtr.shape[1],
        sigma=min(n_rows, n_cols) / 2,
        learning_rate=0.5,
        random_seed=seed,
        sigma_decay_function="linear_decay_to_one",
    )
    ms.pca_weights_init(Xtr)
    ms.train(Xtr, n_epochs * len(Xtr), random_order=True)

    def cells(X):
        return np.array([r * n_cols + c for r, c in (ms.winner(x) for x in X)])

    z = label_cells(cells(Xtr), ztr, cells(Xte), n_rows * n_cols)
    return z, time.perf_counter() - t0


def run_knn(Xtr, ztr, Xte, k=20):
    from sklearn.neighbors import KNeighborsRegressor

    t0 = time.perf_counter()
    knn = KNeighborsRegressor(n_neighbors=k).fit(Xtr, ztr)
    return knn.predict(Xte), time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=FILE)
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--cols", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument(
        "--sigma-end",
        type=float,
        default=0.3,
        help="final neighbourhood radius; a batch map at sigma 1 is still smoothed "
        "over its neighbours, which blurs the cell redshifts",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--splits", type=int, default=3, help="random half/half splits to median over")
    ap.add_argument("--skip-minisom", action="store_true")
    args = ap.parse_args(argv)
    if not args.file.exists():
        print(f"zCOSMOS file not found: {args.file} (it lives in ../shared/data/real)")
        return 2

    cat = read_zcosmos(args.file)
    cat = cat[cat["secure"] & (cat["z_spec"] > 0)].reset_index(drop=True)
    feats = ColourFeatures(bands=ZCOSMOS_BANDS)
    X, _ = feats.fit_transform(cat)
    complete = np.isfinite(X).all(axis=1)
    X, z = X[complete], cat["z_spec"].to_numpy()[complete]
    print(
        f"zCOSMOS-bright: {len(cat)} secure galaxies, {len(z)} with all 6 colours "
        f"({', '.join(feats.feature_names_)}); map {args.rows}x{args.cols}, "
        f"{args.epochs} epochs, final sigma {args.sigma_end}, {args.splits} random half/half "
        "splits\n"
    )

    sigma1 = "somcal s_end=1"
    rows = {"somcal SOM": [], sigma1: [], "MiniSom": [], "kNN (k=20)": []}
    times = {k: [] for k in rows}
    for split in range(args.splits):
        rng = np.random.default_rng(args.seed + split)
        half = rng.permutation(len(z)) < len(z) // 2
        Xtr, ztr, Xte, zte = X[half], z[half], X[~half], z[~half]
        zp, t = run_somcal(
            Xtr, ztr, Xte, args.rows, args.cols, args.seed + split, args.epochs, args.sigma_end
        )
        rows["somcal SOM"].append(metrics(zp, zte))
        times["somcal SOM"].append(t)
        zp, t = run_somcal(Xtr, ztr, Xte, args.rows, args.cols, args.seed + split, args.epochs, 1.0)
        rows[sigma1].append(metrics(zp, zte))
        times[sigma1].append(t)
        if not args.skip_minisom:
            zp, t = run_minisom(Xtr, ztr, Xte, args.rows, args.cols, args.seed + split, args.epochs)
            rows["MiniSom"].append(metrics(zp, zte))
            times["MiniSom"].append(t)
        zp, t = run_knn(Xtr, ztr, Xte)
        rows["kNN (k=20)"].append(metrics(zp, zte))
        times["kNN (k=20)"].append(t)

    print(
        f"{'method':<14} {'sigma_NMAD':>10} {'outliers':>9} {'bias':>9} {'covered':>8} "
        f"{'seconds':>8}   (medians over {args.splits} splits)"
    )
    med = {}
    for name, ms in rows.items():
        if not ms:
            continue
        med[name] = {k: float(np.median([m[k] for m in ms])) for k in ms[0]}
        m = med[name]
        print(
            f"{name:<14} {m['sigma_nmad']:>10.4f} {m['outliers']:>9.4f} {m['bias']:>+9.4f} "
            f"{m['coverage']:>8.3f} {np.median(times[name]):>8.2f}"
        )
    s, k = med["somcal SOM"], med["kNN (k=20)"]
    ratio = s["sigma_nmad"] / k["sigma_nmad"]
    print(
        f"\nsomcal / kNN sigma_NMAD = {ratio:.3f}  (goal <= 1.45: "
        f"{'met' if ratio <= 1.45 else 'NOT met'})"
    )
    if "MiniSom" in med:
        m = med["MiniSom"]
        better = (
            s["sigma_nmad"] <= m["sigma_nmad"] * 1.02 and s["outliers"] <= m["outliers"] + 0.005
        )
        print(
            f"somcal vs MiniSom: sigma_NMAD {s['sigma_nmad']:.4f} vs {m['sigma_nmad']:.4f}, "
            f"outliers {s['outliers']:.4f} vs {m['outliers']:.4f}  (goal no worse: "
            f"{'met' if better else 'NOT met'})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
