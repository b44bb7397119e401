"""Validate somcal's default map on real and simulated galaxies against MiniSom and kNN.

Data sets (each skipped, with a line saying so, when its file is absent):

- ``zcosmos``: real zCOSMOS-bright galaxies, secure spectroscopic redshifts, stars (z = 0)
  removed, colours u-g, g-r, r-i, i-z, z-J, J-Ks (COSMOS photometry);
- ``dc2``: the cosmoDC2 mock with LSST 10-year errors, colours u-g ... z-y.

Rows with every colour present are split in two halves (seeded, ``--splits`` times). A
map is trained on one half with somcal's *defaults* (only the size is passed), each cell
is labelled with the median redshift of the training galaxies it holds, and every galaxy
of the other half gets

- its cell's label ("cell median"), and
- somcal's best estimate, :func:`som.calibration.fuzzy_redshift` with its defaults (the
  labels of the cells around the best cell, weighted by fuzzy membership).

The same cell median is computed with a MiniSom map of the same size and lattice, and
compared with k-nearest-neighbour regression (k = 20, median of the neighbours'
redshifts) in the same normalised colour space. The topographic error is measured on the
held-out half, for both maps the same way: the fraction of galaxies whose best and
second-best cells are not adjacent (grid distance > 1; on a rectangular map diagonal
cells are not adjacent — MiniSom's own figure counts them as adjacent).

Goals (issue 10, item 9), zCOSMOS-bright at 30x30: topographic error <= 0.2; sigma_NMAD of
the cell median <= 1.45x kNN's, of the best estimate <= 1.35x; no worse than MiniSom.

    python bench/validate.py [--data zcosmos dc2] [--rows 30] [--cols 30] [--splits 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from som import SOM
from som.calibration import cell_statistics, fuzzy_redshift
from som.photometry import ColourFeatures
from som.tables import read_table
from som.zcosmos import ZCOSMOS_BANDS, read_zcosmos

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FILES = {
    "zcosmos": SHARED / "real" / "zcosmos_bright20k_cosmos_photometry.csv",
    "dc2": SHARED / "mocks" / "test_dc2_training_9816.hdf5",
}
TITLES = {"zcosmos": "zCOSMOS-bright (real)", "dc2": "cosmoDC2 mock, LSST 10-yr errors"}
KNN_K = 20


def load(name: str, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, z, description) of the galaxies with every colour present."""
    if name == "zcosmos":
        cat = read_zcosmos(path)
        cat = cat[cat["secure"] & (cat["z_spec"] > 0)].reset_index(drop=True)
        feats = ColourFeatures(bands=ZCOSMOS_BANDS)
        z = cat["z_spec"].to_numpy()
        what = f"{len(cat)} secure galaxies"
    else:
        cat = read_table(path)
        feats = ColourFeatures(
            bands=tuple("ugrizy"),
            value_template="mag_{band}_lsst",
            error_template="mag_err_{band}_lsst",
        )
        z = cat["redshift"].to_numpy()
        what = f"{len(cat)} galaxies"
    X, _ = feats.fit_transform(cat)
    complete = np.isfinite(X).all(axis=1)
    desc = (
        f"{what}, {int(complete.sum())} with all {X.shape[1]} colours "
        f"({', '.join(feats.feature_names_)})"
    )
    return X[complete], z[complete], desc


def metrics(z_pred: np.ndarray, z_true: np.ndarray) -> dict:
    """sigma_NMAD, outlier fraction (|dz| > 0.15) and median of dz = (zp - z)/(1 + z)."""
    ok = np.isfinite(z_pred)
    dz = (z_pred[ok] - z_true[ok]) / (1 + z_true[ok])
    med = np.median(dz)
    return {
        "sigma_nmad": 1.4826 * float(np.median(np.abs(dz - med))),
        "outliers": float(np.mean(np.abs(dz) > 0.15)),
        "bias": float(med),
        "coverage": float(np.mean(ok)),
    }


def cell_labels(train_cells, z_train, n_cells) -> np.ndarray:
    return cell_statistics(train_cells, z_train, n_cells)["z_median"].to_numpy()


def run_somcal(Xtr, ztr, Xte, zte, args, seed):
    """Default map: cell median and best estimate, held-out topographic error."""
    t0 = time.perf_counter()
    som = SOM(args.rows, args.cols, random_state=seed).fit(Xtr)
    labels = cell_labels(som.predict(Xtr), ztr, som.n_cells)
    a = som.assign(Xte, return_second=True)
    te = float(np.mean(som.grid.distance(a.cell, a.second) > 1 + 1e-6))
    cell = metrics(labels[a.cell], zte)
    t_cell = time.perf_counter() - t0
    best = metrics(fuzzy_redshift(som, Xte, labels), zte)
    t_best = time.perf_counter() - t0
    return som, (cell, te, t_cell), (best, te, t_best)


def run_minisom(Xtr, ztr, Xte, zte, args, seed, som):
    """MiniSom map of the same size, lattice and epochs as somcal's default."""
    from minisom import MiniSom

    t0 = time.perf_counter()
    # sigma decays linearly to 1; MiniSom's default asymptotic decay stops at sigma0/3,
    # a far smoother map
    ms = MiniSom(
        args.rows,
        args.cols,
        Xtr.shape[1],
        sigma=min(args.rows, args.cols) / 2,
        learning_rate=0.5,
        random_seed=seed,
        topology="hexagonal" if som.lattice == "hex" else "rectangular",
        sigma_decay_function="linear_decay_to_one",
    )
    ms.pca_weights_init(Xtr)
    ms.train(Xtr, som.n_epochs * len(Xtr), random_order=True)
    xx, yy = (c.ravel() for c in ms.get_euclidean_coordinates())

    def best_two(X):
        return np.argsort(ms._distance_from_weights(X), axis=1)[:, :2]

    labels = cell_labels(best_two(Xtr)[:, 0], ztr, args.rows * args.cols)
    b2 = best_two(Xte)
    d = np.hypot(xx[b2[:, 0]] - xx[b2[:, 1]], yy[b2[:, 0]] - yy[b2[:, 1]])
    te = float(np.mean(d > 1 + 1e-6))
    return metrics(labels[b2[:, 0]], zte), te, time.perf_counter() - t0


def run_knn(Xtr, ztr, Xte, zte):
    from sklearn.neighbors import NearestNeighbors

    t0 = time.perf_counter()
    idx = NearestNeighbors(n_neighbors=KNN_K).fit(Xtr).kneighbors(Xte, return_distance=False)
    return metrics(np.median(ztr[idx], axis=1), zte), None, time.perf_counter() - t0


def validate(name: str, args) -> dict | None:
    path = FILES[name]
    if not path.exists():
        print(f"== {TITLES[name]}: SKIPPED, file not found: {path}\n")
        return None
    X, z, desc = load(name, path)
    names = ["somcal cell median", "somcal best (fuzzy)", "MiniSom cell median", "kNN k=20"]
    rows = {k: [] for k in names}
    som = None
    for split in range(args.splits):
        seed = args.seed + split
        half = np.random.default_rng(seed).permutation(len(z)) < len(z) // 2
        Xtr, ztr, Xte, zte = X[half], z[half], X[~half], z[~half]
        som, cell, best = run_somcal(Xtr, ztr, Xte, zte, args, seed)
        rows[names[0]].append(cell)
        rows[names[1]].append(best)
        if not args.skip_minisom:
            rows[names[2]].append(run_minisom(Xtr, ztr, Xte, zte, args, seed, som))
        rows[names[3]].append(run_knn(Xtr, ztr, Xte, zte))
    p = som.get_params()
    print(
        f"== {TITLES[name]}: {desc}\n   map {args.rows}x{args.cols} with somcal's defaults "
        f"(lattice {p['lattice']}, init {p['init']}, {p['n_epochs']} epochs, sigma "
        f"{som._sigma0():g} -> {p['sigma_end']:g} {p['schedule']}); medians over "
        f"{args.splits} random half/half splits, held-out half scored"
    )
    print(
        f"   {'method':<22} {'sigma_NMAD':>10} {'x kNN':>6} {'outliers':>9} {'bias':>8} "
        f"{'topo err':>9} {'covered':>8} {'seconds':>8}"
    )
    med = {}
    for k in names:
        runs = rows[k]
        if not runs:
            continue
        m = {q: float(np.median([r[0][q] for r in runs])) for q in runs[0][0]}
        tes = [r[1] for r in runs if r[1] is not None]
        m["te"] = float(np.median(tes)) if tes else None
        m["seconds"] = float(np.median([r[2] for r in runs]))
        med[k] = m
    knn = med[names[3]]["sigma_nmad"]
    for k, m in med.items():
        te = "-" if m["te"] is None else f"{m['te']:.3f}"
        print(
            f"   {k:<22} {m['sigma_nmad']:>10.4f} {m['sigma_nmad'] / knn:>6.2f} "
            f"{m['outliers']:>9.4f} {m['bias']:>+8.4f} {te:>9} {m['coverage']:>8.3f} "
            f"{m['seconds']:>8.2f}"
        )
    c, b = med[names[0]], med[names[1]]

    def verdict(ok):
        return "met" if ok else "NOT met"

    print(
        f"   goals: topographic error {c['te']:.3f} <= 0.2 {verdict(c['te'] <= 0.2)}; "
        f"cell median {c['sigma_nmad'] / knn:.3f}x kNN <= 1.45 "
        f"{verdict(c['sigma_nmad'] / knn <= 1.45)}; best {b['sigma_nmad'] / knn:.3f}x kNN "
        f"<= 1.35 {verdict(b['sigma_nmad'] / knn <= 1.35)}"
    )
    if names[2] in med:
        ms = med[names[2]]
        ok = c["sigma_nmad"] <= ms["sigma_nmad"] * 1.02 and c["outliers"] <= ms["outliers"] + 0.005
        print(
            f"   vs MiniSom: cell median sigma_NMAD {c['sigma_nmad']:.4f} vs "
            f"{ms['sigma_nmad']:.4f}, outliers {c['outliers']:.4f} vs {ms['outliers']:.4f}, "
            f"topographic error {c['te']:.3f} vs {ms['te']:.3f} (no worse: {verdict(ok)})"
        )
    print()
    return med


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", choices=sorted(FILES), default=["zcosmos", "dc2"])
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--cols", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--splits", type=int, default=3, help="random half/half splits")
    ap.add_argument("--skip-minisom", action="store_true")
    args = ap.parse_args(argv)
    for name in args.data:
        validate(name, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
