"""Issue 11, item 6: the Roster et al. 2025 (arXiv:2508.02779) comparison on the mock.

Ten tomographic bins of a wide sample; the per-bin mean redshift of three calibrations
against the wide sample's true per-bin mean, and how many bins meet |Δ⟨z⟩| <= 0.002(1+z):

- ``single map`` (Masters et al. 2015): one map on the deep bands, trained on the deep
  catalogue; the spectra label its cells (mean spec-z); the wide sample is assigned to
  it *by its own deep-band photometry* (the mock observes the wide draw in the deep bands
  at the deep depths: the idealised single-map case, as if the wide survey had the deep
  field's bands and depth); bins by the cell's mean spec-z; n(z) by the bin's cell
  occupation (cells without spectra dropped, as Masters does).
- ``deep/wide`` (SOMPZ): :class:`som.deepwide.DeepWideCalibration`, the wide sample seen
  through LSST-like ugrizy (``observe_wide``), a Balrog-like transfer catalogue
  (``transfer_catalogue``); bins by the wide cell's mean z, bin-conditioned n(z).
- ``photo-z bins``: each wide galaxy (and each transfer object) binned by its own photo-z,
  then the same deep/wide n(z). The wide frame has no photo-z column (the deep mock's
  ``z_phot`` is a COSMOS-quality 30-band photo-z, not one the wide bands could give), so
  the photo-z is a kNN (k = 20, median z) on the wide bands (adjacent colours + i) trained
  on the deep spectroscopic sample's wide-noise photometry (its first injection) and its
  redshifts: the same spectra the calibration uses, so it inherits their selection.

Each with the mock's own spectroscopy (``z_spec``: zCOSMOS-like, 15 < i < 22.5 and
z < 1.4, plus a sparse faint "deep" survey at 1.5 < z < 3) and with complete
spectroscopy (every deep galaxy, its true z). Bin edges: ten bins equipopulated in the wide
sample's true z over 0.2 < z < 2.5 (a definition of the bins, not a calibration input).

Also the runtime of one full deep/wide calibration (``DeepWideCalibration.fit``: features,
both maps, all assignments, transfer function, n(z)) at the sizes given.

    python bench/deepwide.py [--quick] [--deep 100000] [--wide 1000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from _common import format_table, pin_threads

RESULTS = Path(__file__).resolve().parent / "results"


def knn_photoz(train_X, train_z, X, k=20):
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    ok = np.isfinite(train_X).all(axis=1) & np.isfinite(train_z)
    nn = NearestNeighbors(n_neighbors=k).fit(train_X[ok])
    out = np.full(len(X), np.nan)
    good = np.isfinite(X).all(axis=1)
    idx = nn.kneighbors(X[good], return_distance=False)
    out[good] = np.median(train_z[ok][idx], axis=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10^4 deep, 5x10^4 wide, small maps")
    ap.add_argument("--deep", type=int, default=100_000)
    ap.add_argument("--wide", type=int, default=1_000_000)
    ap.add_argument("--injections", type=int, default=10)
    ap.add_argument("--deep-shape", type=int, nargs=2, default=(48, 48))
    ap.add_argument("--wide-shape", type=int, nargs=2, default=(32, 32))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.deep, args.wide, args.injections = 10_000, 50_000, 5
        args.deep_shape, args.wide_shape, args.epochs = (20, 20), (12, 12), 10
    pin_threads(args.threads)

    import numpy as np

    from som.calibration.nofz import MEAN_Z_REQUIREMENT
    from som.deepwide import (
        DeepWideCalibration,
        assign_bins,
        deep_wide_nz,
        redshift_in_cells,
        spec_bin_fractions,
        wide_cell_redshift,
    )
    from som.mock import make_mock
    from som.mock.wide import observe_wide, transfer_catalogue

    t0 = time.perf_counter()
    deep = make_mock(args.deep, seed=args.seed, truth=True)
    deep["z_complete"] = deep["z_true"]
    wide_deepbands = make_mock(args.wide, seed=args.seed + 1, truth=True, spec=False)
    wide = observe_wide(wide_deepbands, "lsst", seed=args.seed + 2)
    transfer = transfer_catalogue(deep, "lsst", args.injections, seed=args.seed + 3)
    t_mock = time.perf_counter() - t0
    n_spec = int(np.isfinite(deep["z_spec"]).sum())
    print(
        f"mock: {len(deep)} deep (8 bands u..H, {n_spec} with the mock's spectra), "
        f"{len(wide)} wide (LSST ugrizy), {len(transfer)} transfer rows "
        f"({args.injections} injections); made in {t_mock:.1f} s"
    )

    zt = wide["z_true"].to_numpy()
    sel = (zt > 0.2) & (zt < 2.5)
    edges = np.quantile(zt[sel], np.linspace(0, 1, 11))
    edges[0], edges[-1] = 0.2, 2.5
    n_bins = 10
    print("bin edges:", " ".join(f"{e:.3f}" for e in edges))

    # ---- the full deep/wide calibration, timed (complete spectroscopy: it always has a
    # spectrum in every bin; the mock's own spectra are one of the variants below)
    cal = DeepWideCalibration(
        deep_shape=tuple(args.deep_shape),
        wide_shape=tuple(args.wide_shape),
        n_epochs=args.epochs,
        random_state=args.seed,
        bin_edges=tuple(edges),
        binning="mean",
    )
    t0 = time.perf_counter()
    cal.fit(
        deep,
        wide,
        transfer,
        np.ones(len(deep), bool),
        z_column="z_complete",
        truth_column="z_true",
        allow_missing_transfer=True,
    )
    t_fit = time.perf_counter() - t0
    print(
        f"runtime: DeepWideCalibration.fit (features, {args.deep_shape[0]}x"
        f"{args.deep_shape[1]} deep + {args.wide_shape[0]}x{args.wide_shape[1]} wide maps, "
        f"{args.epochs} epochs, assignments, n(z)) on {len(deep)} deep / {len(wide)} wide / "
        f"{len(transfer)} transfer, {args.threads} threads: {t_fit:.1f} s"
    )

    # ---- reuse the trained maps for every variant (the maps do not see the spectra)
    nd, nw = cal.deep_som_.n_cells, cal.wide_som_.n_cells
    deep_cells = cal.deep_som_.assign(
        *cal.deep_features_.transform(deep), skip_empty=True
    ).cell.astype(np.int64)
    single_cells = cal.deep_som_.assign(
        *cal.deep_features_.transform(wide_deepbands), skip_empty=True
    ).cell.astype(np.int64)
    tid = transfer["id"].to_numpy()
    t_w = transfer["weight"].to_numpy()

    # kNN photo-z on the wide bands (colours + i), from the deep spectra's wide photometry
    from som.photometry import ColourFeatures

    pzf = ColourFeatures(bands=cal.wide_bands, magnitude_band="i_lsst")
    Xw, _ = pzf.fit_transform(wide)
    first = transfer[transfer["injection"] == 0].reset_index(drop=True)
    wide_side = first[[c for c in first.columns if c.startswith("wide_")]].rename(
        columns=lambda c: c[5:]
    )
    Xfirst, _ = pzf.transform(wide_side)
    Xt, _ = pzf.transform(
        transfer[[c for c in transfer.columns if c.startswith("wide_")]].rename(
            columns=lambda c: c[5:]
        )
    )
    assert np.array_equal(first["id"].to_numpy(), deep["id"].to_numpy())

    spectra = {
        "mock spec": deep["z_spec"].to_numpy(),
        "complete": deep["z_true"].to_numpy(),
    }

    def solve(tdc, twc, s_cells, s_z, wide_cells, n_w, sid, cell_bins=None, gal_bins=None):
        """Per-bin |Δ<z>| and pass flags (NaN / False for a bin that cannot be calibrated:
        no wide galaxies in it, or none of its deep cells has a spectrum; such a bin is
        dropped, its reason noted, and the rest recomputed: bins are independent)."""
        active, notes = list(range(n_bins)), {}
        while active:
            remap = np.full(n_bins + 1, -1)
            remap[active] = np.arange(len(active))
            if cell_bins is not None:
                cb = remap[cell_bins]
                kw = dict(cell_bins=cb)
                tb = np.where(twc >= 0, cb[twc], -1)
            else:
                wb, tb = remap[gal_bins[0]], remap[gal_bins[1]]
                kw = dict(wide_bins=wb, transfer_bins=tb)
            if sid is not None:
                kw["spec_bin_fractions"] = spec_bin_fractions(sid, tid, tb, len(active), t_w)
                kw["transfer_weights"] = t_w
            try:
                r = deep_wide_nz(
                    tdc,
                    twc,
                    s_cells,
                    s_z,
                    wide_cells,
                    nd,
                    n_w,
                    cal.z_edges,
                    n_bins=len(active),
                    truth_z=zt,
                    allow_missing_transfer=True,
                    **kw,
                )
            except ValueError as e:
                m = re.search(r"tomographic bin (\d+)", str(e))
                if not m:
                    raise
                dropped = active.pop(int(m.group(1)))
                notes[dropped] = "empty" if "no wide galaxies" in str(e) else "no spec"
                continue
            delta = np.full(n_bins, np.nan)
            passes = np.zeros(n_bins, bool)
            nospec = np.full(n_bins, np.nan)
            delta[active], passes[active] = r.delta_mean_z, r.passes
            nospec[active] = r.no_spec_fraction
            share = float(r.weight.sum()) / len(wide_cells)
            return dict(delta=delta, passes=passes, notes=notes, no_spec=nospec, share=share)
        return dict(
            delta=np.full(n_bins, np.nan),
            passes=np.zeros(n_bins, bool),
            notes=notes,
            no_spec=np.full(n_bins, np.nan),
            share=0.0,
        )

    results: dict[tuple[str, str], dict] = {}
    for sname, zs in spectra.items():
        has = np.isfinite(zs)
        z_clean = np.where(has, zs, -1.0)
        s_cells = np.where(has, deep_cells, -1)
        sid = deep["id"].to_numpy()[has]
        # single map: the cell mean spec-z bins the cells; identity transfer, no conditioning
        ident = np.arange(nd)
        cz = np.bincount(s_cells[has], weights=zs[has], minlength=nd)
        cn = np.bincount(s_cells[has], minlength=nd)
        with np.errstate(invalid="ignore", divide="ignore"):
            cell_mean = np.where(cn > 0, cz / cn, np.nan)
        results[("single map", sname)] = solve(
            ident,
            ident,
            s_cells,
            z_clean,
            single_cells,
            nd,
            None,
            cell_bins=assign_bins(cell_mean, edges),
        )
        # deep/wide: bins by the wide cell's mean z (from these spectra), bin-conditioned
        crz = redshift_in_cells(s_cells, z_clean, nd, cal.z_edges)
        cbins = assign_bins(wide_cell_redshift(cal.transfer_matrix_, crz, "mean"), edges)
        results[("deep/wide", sname)] = solve(
            cal.transfer_deep_cells_,
            cal.transfer_wide_cells_,
            s_cells[has],
            zs[has],
            cal.wide_cells_,
            nw,
            sid,
            cell_bins=cbins,
        )
        # photo-z bins: kNN on the wide bands trained on these spectra
        pz_wide = knn_photoz(Xfirst[has], zs[has], Xw)
        pz_tr = knn_photoz(Xfirst[has], zs[has], Xt)
        results[("photo-z bins", sname)] = solve(
            cal.transfer_deep_cells_,
            cal.transfer_wide_cells_,
            s_cells[has],
            zs[has],
            cal.wide_cells_,
            nw,
            sid,
            gal_bins=(assign_bins(pz_wide, edges), assign_bins(pz_tr, edges)),
        )

    # ---- table
    keys = list(results)
    rows = []
    for b in range(n_bins):
        row = [f"{b} [{edges[b]:.2f},{edges[b + 1]:.2f})"]
        for k in keys:
            r = results[k]
            if b in r["notes"]:
                row.append(r["notes"][b])
            else:
                row.append(f"{abs(r['delta'][b]):.4f}{'' if r['passes'][b] else '*'}")
        rows.append(row)
    rows.append(
        ["bins meeting 0.002(1+z)"] + [f"{int(results[k]['passes'].sum())}/{n_bins}" for k in keys]
    )
    rows.append(
        ["max no-spec fraction"] + [f"{np.nanmax(results[k]['no_spec']):.2f}" for k in keys]
    )
    rows.append(["wide share in the bins"] + [f"{results[k]['share']:.2f}" for k in keys])
    print()
    print(
        "|Δ<z>| per bin against the wide sample's true mean z (* fails 0.002(1+z); "
        "empty: no wide galaxy in the bin; no spec: none of its deep cells has a spectrum)"
    )
    print(
        "no-spec fraction: share of a bin's deep occupation in cells without spectra "
        "(deep/wide renormalises over the rest); the single map drops such cells, so its "
        "cost shows in the wide share in the bins instead"
    )
    print(format_table(["bin"] + [f"{m} / {s}" for m, s in keys], rows))

    # ---- figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    centres = 0.5 * (edges[:-1] + edges[1:])
    for ax, sname in zip(axes, spectra, strict=True):
        for m, mk in (("single map", "o"), ("deep/wide", "s"), ("photo-z bins", "^")):
            d = np.abs(results[(m, sname)]["delta"])
            ax.semilogy(centres, np.maximum(d, 1e-5), mk + "-", label=m)
        ax.plot(centres, MEAN_Z_REQUIREMENT * (1 + centres), "k--", label="0.002(1+z)")
        ax.set_title(f"{sname} spectroscopy")
        ax.set_xlabel("tomographic bin centre z")
    axes[0].set_ylabel("|Δ<z>|")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"mock: {len(deep)} deep, {len(wide)} wide, LSST-like wide bands")
    fig.tight_layout()
    out = RESULTS / f"deepwide{'_quick' if args.quick else ''}.png"
    fig.savefig(out, dpi=120)
    print(f"\nfigure: {out}")


if __name__ == "__main__":
    main()
