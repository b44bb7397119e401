"""somcal's SOM engine against somoclu (batch), MiniSom and torchsom, in one run, on the same data.

(One file of about 700 lines on purpose: a benchmark a reader runs and audits top to
bottom, each peer's timing beside somcal's, with nothing imported that could time
differently.)

    .venv/bin/python bench/engine.py               # full run: 10^6 rows, 10^7 for memory
    .venv/bin/python bench/engine.py --quick       # 10^5 rows, 10^6 for memory
    .venv/bin/python bench/engine.py --skip-peers  # somcal only

Data: colours of a COSMOS-like mock catalogue (``som.mock``; rows with every colour
present, standardised), or a seeded 7-D Gaussian mixture with ``--data gmm``. Map:
75 x 150 planar rectangular, Gaussian neighbourhood, random initialisation, the same
number of threads for every library (``--threads``, default 2).

What is timed (see bench/README.md for the reasoning):

* batch epoch: (t(fit 4 epochs) - t(fit 2 epochs)) / 2 for somcal and somoclu, which
  cancels initialisation and set-up; for somcal also each part of an epoch (the
  best-matching-cell pass with its per-cell sums, and the neighbourhood smoothing at
  the widest and the narrowest radius). MiniSom has no batch map: its "epoch" is one
  pass of online training, timed on a subsample and scaled linearly to all rows.
* assignment: somcal ``predict`` on all rows; somoclu's public path
  (``get_surface_state`` + ``get_bmus``) and, separately, the scipy ``cdist`` + argmin
  it runs, without its quadratic concatenation; MiniSom ``quantization``. Peers run on
  a subsample (they build rows x cells distance matrices) and report rows per second.
* pruned search (issue 12): ``predict`` with the pruned search (the default on this map)
  and with brute force, interleaved; the fraction of cell distances the pruned search
  skipped; its cells against brute force on every row (a differing row must be a float
  tie); the chi^2 (per-row errors) and missing-feature (10% NaN) paths' rates; one
  thread against ``--threads``. torchsom (PyTorch, CPU) trains its mini-batch map on a
  subsample (scaled) and assigns with its brute-force search; skipped, with the reason,
  where it is not installed.
* memory: a fresh process loads 10^7 rows (float32), assigns them with ``predict``, and
  reports the resident-set peak above the level with the input loaded. The peers'
  needs are computed from the matrices they allocate, not run.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    RssSampler,
    Timing,
    current_rss,
    format_table,
    git_state,
    human_bytes,
    load_average,
    machine_info,
    max_rss,
    pin_threads,
    reset_peak_rss,
    run_json,
    time_call,
)

REPO = Path(__file__).resolve().parents[1]
N_ROWS, N_COLS = 75, 150
N_FEATURES = 7
MB = 1e6

# goals of issue 12 (issue 2's, 20x somoclu's epoch, 0.6 M rows/s and 15x its kernel, are
# the floor they raised)
GOAL_EPOCH_SPEEDUP = 200.0
GOAL_EPOCH_SPEEDUP_SMALL = 100.0
GOAL_ROWS_PER_S = 2.0e6
GOAL_ASSIGN_SPEEDUP = 15.0
GOAL_METRIC_RATIO = 0.7
GOAL_THREAD_SCALING = 1.8
GOAL_MEMORY_RATIO = 1.5


def per_epoch(t2: float, t4: float) -> float:
    """Seconds per epoch from fits of 2 and 4 epochs: (t4 - t2) / 2 cancels set-up and
    initialisation. On a loaded machine the difference can drown in noise (it came out
    negative once); then the figure falls back to t4 / 4, an upper bound that includes the
    set-up, and says so."""
    diff = (t4 - t2) / 2
    if diff > 0.25 * t4 / 4:
        return diff
    log(f"  epoch timing: t(4) - t(2) = {2 * diff:.3f} s is noise; using t(4) / 4 = {t4 / 4:.3f} s")
    return t4 / 4


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=None, help="rows timed (default 10^6)")
    p.add_argument("--mem-rows", type=int, default=None, help="rows assigned in the memory test")
    p.add_argument("--quick", action="store_true", help="10^5 rows, 10^6 in the memory test")
    p.add_argument("--skip-peers", action="store_true", help="time somcal only")
    p.add_argument("--threads", type=int, default=2, help="threads for every library")
    p.add_argument("--repeat", type=int, default=3, help="repeats of each cheap timing")
    p.add_argument("--data", choices=("mock", "gmm"), default="mock", help="source of colours")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--somoclu-assign-rows",
        type=int,
        default=2000,
        help="subsample for somoclu's get_surface_state (~1 ms per row)",
    )
    p.add_argument(
        "--minisom-train-rows",
        type=int,
        default=5000,
        help="subsample for one MiniSom online epoch",
    )
    p.add_argument(
        "--small-rows",
        type=int,
        default=100_000,
        help="rows of the second epoch comparison, where fixed per-epoch costs show",
    )
    p.add_argument(
        "--torchsom-train-rows", type=int, default=20_000, help="subsample for a torchsom epoch"
    )
    p.add_argument("--torchsom-batch", type=int, default=1024, help="torchsom's batch_size")
    p.add_argument("--json", type=Path, default=None, help="also write all figures here")
    p.add_argument("--memory-child", nargs=2, metavar=("INPUT_NPY", "MAP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = 100_000 if args.quick else 1_000_000
    if args.mem_rows is None:
        args.mem_rows = 1_000_000 if args.quick else 10_000_000
    if args.rows < 10_000:
        p.error("--rows must be at least 10000")
    return args


# --------------------------------------------------------------------------- data


def mock_colours(n: int, seed: int):
    """``n`` standardised colours of mock galaxies that have all eight bands."""
    import numpy as np

    from som.mock import make_mock
    from som.photometry import ColourFeatures

    parts, have, draw = [], 0, int(n / 0.9) + 1000
    features = None
    while have < n:
        # about 5% of mock galaxies miss a band (undetected u or NIR): draw a margin
        df = make_mock(draw, seed=seed + len(parts), spec=False)
        if features is None:
            features = ColourFeatures(error_template=None).fit(df)
        X, _ = features.transform(df)
        X = X[np.isfinite(X).all(axis=1)]
        parts.append(X)
        have += len(X)
        draw = int((n - have) / 0.9) + 1000
    X = np.concatenate(parts)[:n]
    desc = (
        f"som.mock.make_mock colours {'/'.join(features.feature_names_)}, rows with all "
        "8 bands, standardised by ColourFeatures"
    )
    return np.ascontiguousarray(X, dtype=np.float32), desc


def gmm_colours(n: int, seed: int):
    """``n`` rows of a seeded 12-component 7-D Gaussian mixture, standardised."""
    import numpy as np

    rng = np.random.default_rng(seed)
    k = 12
    means = rng.normal(0.0, 1.5, (k, N_FEATURES))
    mixing = rng.normal(0.0, 0.4, (k, N_FEATURES, N_FEATURES))
    comp = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 2.0)))
    X = np.empty((n, N_FEATURES), dtype=np.float64)
    for c in range(k):
        rows = np.flatnonzero(comp == c)
        X[rows] = means[c] + rng.standard_normal((rows.size, N_FEATURES)) @ mixing[c].T
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return np.ascontiguousarray(X, dtype=np.float32), "seeded 12-component 7-D Gaussian mixture"


def load_colours(args):
    if args.data == "mock":
        try:
            return mock_colours(args.rows, args.seed)
        except ImportError as exc:
            print(f"som.mock unavailable ({exc}); using the Gaussian mixture", flush=True)
    return gmm_colours(args.rows, args.seed)


def write_tiled(X, n: int, path: Path, seed: int) -> None:
    """Write ``n`` rows of ``X`` repeated, with 0.01 (standardised units) of jitter, to .npy.

    Written in slices so the parent never holds the big array.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, X.shape[1]))
    for start in range(0, n, len(X)):
        stop = min(n, start + len(X))
        noise = rng.standard_normal((stop - start, X.shape[1]), dtype=np.float32)
        out[start:stop] = X[: stop - start] + np.float32(0.01) * noise
    out.flush()
    del out


def nearest_cells(X, W):
    """Brute-force best cell of each row in float64 (the bench's own check)."""
    import numpy as np

    X = X.astype(np.float64)
    W = W.astype(np.float64)
    d2 = (X**2).sum(1)[:, None] - 2.0 * X @ W.T + (W**2).sum(1)[None, :]
    return d2.argmin(axis=1), np.sqrt(np.maximum(d2.min(axis=1), 0.0))


# --------------------------------------------------------------------------- somcal


def interleaved(fa, fb, repeat: int) -> tuple[Timing, Timing]:
    """Time ``fa`` and ``fb`` alternately, ``repeat`` times each, after one untimed call."""
    ta, tb = Timing(), Timing()
    fa()
    fb()
    for _ in range(repeat):
        for t, fn in ((ta, fa), (tb, fb)):
            r = time_call(fn, 1)
            t.seconds += r.seconds
            t.cpu += r.cpu
    return ta, tb


def epoch_passes(som, X, repeat: int) -> list[float]:
    """Median seconds of each epoch of a 4-epoch fit, from the progress callback's marks
    at every epoch's end (the first includes the fit's set-up)."""
    passes = []
    for _ in range(repeat):
        marks = [time.perf_counter()]
        som.fit(X, n_epochs=4, progress=lambda f, m, marks=marks: marks.append(time.perf_counter()))
        passes.append([b - a for a, b in zip(marks[:-1], marks[1:], strict=True)])
    return [statistics.median(p[e] for p in passes) for e in range(4)]


def bench_somcal(X, args, out: dict) -> object:
    import numba
    import numpy as np

    from som import SOM

    som = SOM(
        N_ROWS, N_COLS, lattice="rect", init="random", random_state=args.seed, n_jobs=args.threads
    )
    log(f"somcal: numba threads {numba.get_num_threads()}; compiling on 20,000 rows")
    som.fit(X[:20_000], n_epochs=2)

    t2 = time_call(lambda: som.fit(X, n_epochs=2), args.repeat)
    t4 = time_call(lambda: som.fit(X, n_epochs=4), args.repeat)
    out["somcal_fit2"], out["somcal_fit4"] = t2.seconds, t4.seconds
    # CPU seconds hardly change with other processes' load, wall seconds do
    out["somcal_epoch_cpu"] = per_epoch(statistics.median(t2.cpu), statistics.median(t4.cpu))
    out["somcal_epoch"] = per_epoch(t2.median, t4.median)
    log(f"somcal: fit 2 epochs {t2}; 4 epochs {t4}; epoch {out['somcal_epoch']:.3f} s")
    # each epoch of a 4-epoch fit on its own (the progress callback marks every epoch's
    # end): (t(4) - t(2)) / 2 compares epochs at different radii, and the first epoch from
    # random weights, where no search can prune, costs most
    out["somcal_epoch_passes"] = epoch_passes(som, X, args.repeat)
    log(
        "somcal: epochs of a 4-epoch fit, one by one: "
        + ", ".join(f"{t:.3f}" for t in out["somcal_epoch_passes"])
        + " s"
    )
    small = copy.deepcopy(som)
    Xs = X[: min(len(X), args.small_rows)]
    s2 = time_call(lambda: small.fit(Xs, n_epochs=2), args.repeat)
    s4 = time_call(lambda: small.fit(Xs, n_epochs=4), args.repeat)
    out["somcal_small_epoch"] = per_epoch(s2.median, s4.median)
    out["small_rows"] = len(Xs)
    out["somcal_small_epoch_passes"] = epoch_passes(small, Xs, args.repeat)
    log(
        f"somcal: epoch on {len(Xs):,} rows {out['somcal_small_epoch']:.3f} s; one by one "
        + ", ".join(f"{t:.4f}" for t in out["somcal_small_epoch_passes"])
        + " s"
    )

    sigma_max, sigma_min = float(som.sigma_schedule(4)[0]), float(som.sigma_schedule(4)[-1])
    sums = time_call(lambda: som.batch_sums(X), args.repeat)
    S, N, _ = som.batch_sums(X)
    scratch = copy.deepcopy(som)  # apply_batch_sums moves the weights; keep the fitted map
    smooth_max = time_call(lambda: scratch.apply_batch_sums(S, N, sigma_max), args.repeat)
    smooth_min = time_call(lambda: scratch.apply_batch_sums(S, N, sigma_min), args.repeat)
    out["somcal_batch_sums"] = sums.seconds
    out["somcal_batch_sums_cores"] = sums.cores_used
    out["somcal_smooth_sigma_max"] = smooth_max.seconds
    out["somcal_smooth_sigma_min"] = smooth_min.seconds
    out["somcal_sigma_max"], out["somcal_sigma_min"] = sigma_max, sigma_min
    out["somcal_epoch_worst"] = sums.median + smooth_max.median
    log(
        f"somcal: batch_sums {sums}; smoothing sigma={sigma_max:g} {smooth_max}; "
        f"sigma={sigma_min:g} {smooth_min}"
    )

    # the same passes on one thread against N, interleaved (1, N, 1, N, ...) so that a
    # busy spell on a shared machine hits both alike: how well the kernels scale
    one = copy.deepcopy(som)
    one.n_jobs = 1
    pred1, predn = interleaved(lambda: one.predict(X), lambda: som.predict(X), args.repeat)
    sums1, sumsn = interleaved(lambda: one.batch_sums(X), lambda: som.batch_sums(X), args.repeat)
    out["somcal_predict_1thread"] = pred1.seconds
    out["somcal_batch_sums_1thread"] = sums1.seconds
    out["somcal_predict_nthreads"] = predn.seconds
    out["somcal_batch_sums_nthreads"] = sumsn.seconds
    log(
        f"somcal 1 thread vs {args.threads} interleaved: predict {pred1} vs {predn}; "
        f"batch_sums {sums1} vs {sumsn}"
    )
    # and brute force, the path issue 2 measured, on one and on N threads
    brute = copy.deepcopy(som)
    brute._search = "brute"
    one._search = "brute"
    bp1 = time_call(lambda: one.predict(X), args.repeat, warmup=1)
    bs1 = time_call(lambda: one.batch_sums(X), args.repeat)
    bs2 = time_call(lambda: brute.batch_sums(X), args.repeat)
    out["brute_predict_1thread"] = bp1.seconds
    out["brute_batch_sums_1thread"] = bs1.seconds
    out["brute_batch_sums"] = bs2.seconds
    log(f"brute force: 1 thread predict {bp1}, batch_sums {bs1}; N threads batch_sums {bs2}")

    # the bench checks its own subject: cells against a float64 brute force
    sub = X[: min(len(X), 20_000)]
    ref_cells, ref_dist = nearest_cells(sub, som.weights_)
    a = som.assign(sub)
    out["somcal_agreement"] = float(np.mean(a.cell == ref_cells))
    # a differing cell must be a near-tie in float32, not a wrong answer: its excess
    # squared distance, in units of the float32 rounding of ||x||^2 + ||w||^2 - 2 x.w
    x = sub.astype(np.float64)
    d2_got = ((x - som.weights_[a.cell]) ** 2).sum(axis=1)
    scale = (x**2).sum(axis=1) + (som.weights_[ref_cells] ** 2).sum(axis=1)
    excess = (d2_got - ref_dist**2) / (np.finfo(np.float32).eps * scale)
    out["somcal_max_excess"] = float(np.max(excess))
    out["somcal_qe_4epochs"] = float(np.mean(ref_dist))
    return som


# --------------------------------------------------------------------------- somoclu


def bench_somoclu(X, args, out: dict) -> None:
    import numpy as np
    import somoclu

    def train(epochs: int):
        s = somoclu.Somoclu(N_COLS, N_ROWS, initialization="random")  # columns first
        cpu, start = time.process_time(), time.perf_counter()
        s.train(X, epochs=epochs)
        wall = time.perf_counter() - start
        out[f"somoclu_fit{epochs}_cpu"] = time.process_time() - cpu
        out[f"somoclu_fit{epochs}_cores"] = out[f"somoclu_fit{epochs}_cpu"] / wall
        return wall, s

    log("somoclu: training 2 epochs (one run; several minutes at 10^6 rows)")
    t2, _ = train(2)
    log(f"somoclu: 2 epochs {t2:.1f} s; training 4 epochs")
    t4, s = train(4)
    cb = s.codebook.reshape(-1, N_FEATURES)
    if not np.isfinite(cb).all():
        raise RuntimeError("somoclu returned a non-finite codebook: its timing is meaningless")
    out["somoclu_fit2"], out["somoclu_fit4"] = t2, t4
    out["somoclu_epoch"] = per_epoch(t2, t4)
    out["somoclu_epoch_cpu"] = per_epoch(out["somoclu_fit2_cpu"], out["somoclu_fit4_cpu"])
    log(f"somoclu: 4 epochs {t4:.1f} s; epoch {out['somoclu_epoch']:.1f} s")

    ref_cells, ref_dist = nearest_cells(X[: min(len(X), 20_000)], cb)
    out["somoclu_qe_4epochs"] = float(np.mean(ref_dist))

    Xs = np.ascontiguousarray(X[: min(len(X), args.small_rows)])
    times = {}
    for epochs in (2, 4):
        s = somoclu.Somoclu(N_COLS, N_ROWS, initialization="random")
        start = time.perf_counter()
        s.train(Xs, epochs=epochs)
        times[epochs] = time.perf_counter() - start
    out["somoclu_small_epoch"] = per_epoch(times[2], times[4])
    log(f"somoclu: epoch on {len(Xs):,} rows {out['somoclu_small_epoch']:.2f} s")


# --------------------------------------------------------------------------- MiniSom


def bench_minisom(X, args, out: dict) -> None:
    from minisom import MiniSom

    m = min(len(X), args.minisom_train_rows)
    sub = X[:m]
    som = MiniSom(
        N_ROWS,
        N_COLS,
        N_FEATURES,
        sigma=min(N_ROWS, N_COLS) / 2.0,
        learning_rate=0.5,
        random_seed=args.seed,
    )
    som.random_weights_init(sub)
    tr = time_call(lambda: som.train(sub, 1, use_epochs=True), args.repeat)
    out["minisom_train_rows"] = m
    out["minisom_train"] = tr.seconds
    out["minisom_epoch"] = tr.median * len(X) / m
    log(f"minisom: online epoch on {m} rows {tr} -> {out['minisom_epoch']:.0f} s at {len(X)}")


# --------------------------------------------------------------------------- torchsom


def torchsom_import(out: dict):
    """torchsom's SOM class, or None with the reason recorded (it is an optional peer)."""
    try:
        import torch
        import torchsom
    except ImportError as exc:
        out["torchsom_skipped"] = (
            f"torchsom not installed ({exc}); pip install -e '.[bench]' with the local "
            "CPU wheel of torch"
        )
        return None
    out["torchsom_version"] = _version("torchsom")
    out["torch_version"] = torch.__version__
    return torchsom.SOM


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def torchsom_map(W, args, out: dict):
    """A torchsom map holding ``W`` (somcal's weights), or None when torchsom is absent."""
    import numpy as np

    torch_som = torchsom_import(out)
    if torch_som is None:
        return None
    import torch

    torch.set_num_threads(args.threads)
    t = torch_som(
        N_ROWS, N_COLS, N_FEATURES, device="cpu", search_backend="torch", random_seed=args.seed
    )
    t.weights.data = torch.from_numpy(
        np.ascontiguousarray(W.reshape(N_ROWS, N_COLS, N_FEATURES), dtype=np.float32)
    )
    t._search_strategy.rebuild_index(t.weights)
    return t


def bench_torchsom(X, args, out: dict) -> None:
    """One epoch of torchsom's mini-batch training on a subsample, scaled to all rows."""
    torch_som = torchsom_import(out)
    if torch_som is None:
        log(f"torchsom: skipped: {out['torchsom_skipped']}")
        return
    import torch

    torch.set_num_threads(args.threads)
    m = min(len(X), args.torchsom_train_rows)
    data = torch.from_numpy(X[:m].copy())

    def epoch():
        t = torch_som(
            N_ROWS,
            N_COLS,
            N_FEATURES,
            epochs=1,
            batch_size=args.torchsom_batch,
            sigma=min(N_ROWS, N_COLS) / 2.0,
            device="cpu",
            search_backend="torch",
            random_seed=args.seed,
        )
        t.fit(data, verbose=False)

    tr = time_call(epoch, args.repeat)
    out["torchsom_train_rows"] = m
    out["torchsom_train"] = tr.seconds
    out["torchsom_epoch"] = tr.median * len(X) / m
    log(f"torchsom: epoch on {m} rows {tr} -> {out['torchsom_epoch']:.0f} s at {len(X)}")


# --------------------------------------------------------------------------- assignment


def bench_assign(X, som, args, out: dict) -> None:
    """Rows per second of each library assigning rows to one map: somcal's trained map.

    The peers get somcal's weights, so all three search the same codebook and must find
    the same cells. Repeats are interleaved (somcal, somoclu, MiniSom, somcal, ...) so
    that a busy spell on the shared machine hits every library alike.
    """
    import numpy as np

    W = np.ascontiguousarray(som.weights_, dtype=np.float64)
    rng = np.random.default_rng(args.seed + 7)
    # the chi^2 path: per-row errors; the missing-feature path: 10% of values NaN
    errors = rng.uniform(0.05, 0.5, size=X.shape).astype(np.float32)
    X_nan = X.copy()
    X_nan[rng.uniform(size=X.shape) < 0.1] = np.nan
    X_nan[np.isnan(X_nan).all(axis=1), 0] = 0.0
    chi = copy.deepcopy(som)
    chi.distance = "chi2"
    brute = copy.deepcopy(som)
    brute._search = "brute"
    timings = {k: Timing() for k in ("somcal", "somcal_brute", "somcal_chi2", "somcal_missing")}
    steps = {
        "somcal": lambda: som.predict(X),
        "somcal_brute": lambda: brute.predict(X),
        "somcal_chi2": lambda: chi.predict(X, errors),
        "somcal_missing": lambda: som.predict(X_nan),
    }
    rows = {k: len(X) for k in timings}
    for fn in steps.values():  # compiled before timing
        fn()

    # what the pruned search skipped, and whether it found brute force's cells
    for name, fn in (
        ("", lambda: som.predict(X)),
        ("_second", lambda: som.assign(X, return_second=True)),
        ("_chi2", lambda: chi.predict(X, errors)),
        ("_missing", lambda: som.predict(X_nan)),
    ):
        target = chi if name == "_chi2" else som
        target._search_counts = [0, 0]
        fn()
        done, total = target._search_counts
        out[f"pruned_skipped{name}"] = 1.0 - done / total if total else float("nan")
    pruned_cells = som.predict(X)
    brute_cells = brute.predict(X)
    differ = np.flatnonzero(pruned_cells != brute_cells)
    out["pruned_rows_differing"] = int(differ.size)
    if differ.size:
        # a differing row must be a tie: both cells at the same float64 distance to rounding
        x = X[differ].astype(np.float64)
        d_p = ((x - W[pruned_cells[differ]]) ** 2).sum(axis=1)
        d_b = ((x - W[brute_cells[differ]]) ** 2).sum(axis=1)
        scale = (x**2).sum(axis=1) + (W[brute_cells[differ]] ** 2).sum(axis=1)
        out["pruned_differing_excess"] = float(
            np.max(np.abs(d_p - d_b) / (np.finfo(np.float32).eps * scale))
        )
        out["pruned_differing_closer"] = int(np.count_nonzero(d_p < d_b))
    if not args.skip_peers:
        import somoclu
        from minisom import MiniSom
        from scipy.spatial.distance import cdist

        soc = somoclu.Somoclu(N_COLS, N_ROWS)  # columns first
        # get_surface_state reads only the codebook, shaped (rows, columns, features)
        soc.codebook = W.reshape(N_ROWS, N_COLS, N_FEATURES).astype(np.float32)
        mini = MiniSom(N_ROWS, N_COLS, N_FEATURES, random_seed=args.seed)
        mini._weights = W.reshape(N_ROWS, N_COLS, N_FEATURES).copy()
        cb = soc.codebook.reshape(-1, N_FEATURES)
        m_pub = min(len(X), args.somoclu_assign_rows)
        m_ker = min(len(X), 20 * args.somoclu_assign_rows)
        m_mini = min(len(X), 10 * args.minisom_train_rows)

        def kernel():
            for start in range(0, m_ker, 256):
                cdist(X[start : start + 256], cb).argmin(axis=1)

        def quantize():
            # quantization builds a rows x cells float64 matrix: 1,000 rows is ~90 MB
            for start in range(0, m_mini, 1000):
                mini.quantization(X[start : start + 1000])

        steps["somoclu_kernel"] = kernel
        steps["minisom"] = quantize
        tsom = torchsom_map(W, args, out)
        if tsom is not None:
            import torch

            m_torch = min(len(X), 10 * args.torchsom_train_rows)
            X_torch = torch.from_numpy(np.ascontiguousarray(X[:m_torch]))

            def torch_assign():
                for start in range(0, m_torch, 10_000):
                    tsom.identify_bmus(X_torch[start : start + 10_000])

            steps["torchsom"] = torch_assign
            rows["torchsom"] = m_torch
            timings["torchsom"] = Timing()
            rc = tsom.identify_bmus(X_torch[:2000]).numpy()
            out["agree_torchsom"] = float(
                np.mean(som.predict(X[:2000]) == rc[:, 0] * N_COLS + rc[:, 1])
            )
        rows.update(somoclu_kernel=m_ker, minisom=m_mini, somoclu_public=m_pub)
        for name in ("somoclu_kernel", "minisom", "somoclu_public"):
            timings[name] = Timing()

        # the three must agree: same codebook, same data
        m_chk = min(len(X), 2000)
        got = som.predict(X[:m_chk])
        col_row = soc.get_bmus(soc.get_surface_state(X[:m_chk]))
        soc_cells = col_row[:, 1] * N_COLS + col_row[:, 0]
        mini_cells = np.argmin(mini._distance_from_weights(X[:m_chk]), axis=1)
        out["agree_somoclu"] = float(np.mean(got == soc_cells))
        out["agree_minisom"] = float(np.mean(got == mini_cells))

    for r in range(args.repeat):
        for name, fn in steps.items():
            t = time_call(fn, 1)
            timings[name].seconds += t.seconds
            timings[name].cpu += t.cpu
        if not args.skip_peers and r == 0:
            # ~1 ms a row and quadratic in the rows: once is enough
            pub = time_call(lambda: soc.get_bmus(soc.get_surface_state(X[:m_pub])), 1)
            timings["somoclu_public"] = pub
        log(
            f"assign round {r + 1}: "
            + "; ".join(f"{k} {v.seconds[-1]:.3g} s" for k, v in timings.items())
        )
    for name, t in timings.items():
        out[f"{name}_assign"] = t.seconds
        out[f"{name}_assign_rows"] = rows[name]
        out[f"{name}_rows_per_s"] = rows[name] / t.median
        out[f"{name}_assign_cores"] = t.cores_used
        log(f"{name}: {rows[name]:,} rows {t} -> {out[f'{name}_rows_per_s']:,.0f} rows/s")


# --------------------------------------------------------------------------- memory


def memory_child(input_npy: str, map_path: str) -> None:
    """Runs in a fresh process: the RSS peak of ``predict`` over 10^7 loaded rows."""
    import numpy as np

    from som import SOM

    X = np.load(input_npy)  # read into memory, not memory-mapped: the input is resident
    som = SOM.load(map_path)
    som.predict(X[:1000])  # load the compiled kernel before the baseline
    gc.collect()
    # the kernel's page-level peak: reset the high-water mark to the level with the
    # input loaded; without /proc's reset, sampling is the only measure
    exact = reset_peak_rss()
    base, hwm_before = current_rss(), max_rss()
    with RssSampler() as sampler:
        start = time.perf_counter()
        cells = som.predict(X)
        seconds = time.perf_counter() - start
    hwm_after = max_rss()
    peak = max(hwm_after, sampler.peak) if exact else sampler.peak
    print(
        json.dumps(
            {
                "input_bytes": int(X.nbytes),
                "output_bytes": int(cells.nbytes),
                "baseline_rss": base,
                "peak_rss": int(peak),
                "sampled_peak_rss": int(sampler.peak),
                "hwm_before": hwm_before,
                "hwm_after": hwm_after,
                "hwm_reset": exact,
                "seconds": seconds,
                "rows": int(len(X)),
                "threads": int(som.n_jobs or 0),
            }
        )
    )


def bench_memory(X, som, args, out: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="somcal-bench-") as tmp:
        tmp = Path(tmp)
        log(f"memory: writing {args.mem_rows:,} rows to {tmp}")
        write_tiled(X, args.mem_rows, tmp / "X.npy", args.seed + 100)
        som.save(tmp / "map.somcal")
        log("memory: assigning in a fresh process")
        res = run_json(
            [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                "--memory-child",
                str(tmp / "X.npy"),
                str(tmp / "map.somcal"),
            ]
        )
    res["increase"] = res["peak_rss"] - res["baseline_rss"]
    res["increase_ratio"] = res["increase"] / res["input_bytes"]
    res["total_ratio"] = (res["input_bytes"] + res["increase"]) / res["input_bytes"]
    out["memory"] = res
    log(f"memory: {json.dumps(res)}")


# --------------------------------------------------------------------------- report


def log(msg: str) -> None:
    # every figure with the load it was measured under (a shared machine)
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {msg}", flush=True)


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g} s" if x < 100 else f"{x:,.0f} s"


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(out: dict, args, desc: str, load_start: str) -> str:
    n = args.rows
    K = N_ROWS * N_COLS
    peers = not args.skip_peers
    g = out.get
    lines = []
    lines.append("somcal engine bench: somcal vs somoclu (batch) vs MiniSom vs torchsom")
    lines.append(f"data: {n:,} x {N_FEATURES} float32, {desc}")
    lines.append(
        f"map: {N_ROWS} x {N_COLS} planar rectangular (K = {K:,} cells), gaussian, "
        f"random init; {args.threads} threads everywhere; repeats {args.repeat}"
    )
    lines.append("")
    for label, value in machine_info(
        ["somcal", "numpy", "numba", "scipy", "somoclu", "MiniSom", "torchsom", "torch"]
    ):
        if label == "load average":
            value = f"start {load_start}; end {value}"
        if label == "somcal":
            value = f"{value} ({git_state(REPO, ['som'])})"
        lines.append(f"{label:>13}: {value}")
    lines.append("")

    ep_ratio = g("somoclu_epoch") / g("somcal_epoch") if peers else None
    ep_ratio_worst = g("somoclu_epoch") / g("somcal_epoch_worst") if peers else None
    rate_vs_kernel = g("somcal_rows_per_s") / g("somoclu_kernel_rows_per_s") if peers else None
    rate_vs_public = g("somcal_rows_per_s") / g("somoclu_public_rows_per_s") if peers else None
    ep_ratio_cpu = g("somoclu_epoch_cpu") / g("somcal_epoch_cpu") if peers else None
    mem = g("memory")
    rows = [
        [
            "batch epoch, s (all rows)",
            fmt_s(g("somcal_epoch")),
            fmt_s(g("somoclu_epoch")),
            fmt_s(g("minisom_epoch")) + (" *" if peers else ""),
            f"{ep_ratio:.0f}x" if peers else "-",
        ],
        [
            f"  worst epoch (sigma {g('somcal_sigma_max'):g})",
            fmt_s(g("somcal_epoch_worst")),
            "",
            "",
            f"{ep_ratio_worst:.0f}x" if peers else "-",
        ],
        [
            "  epoch, CPU seconds (load-proof)",
            fmt_s(g("somcal_epoch_cpu")),
            fmt_s(g("somoclu_epoch_cpu")),
            "",
            f"{ep_ratio_cpu:.0f}x" if peers else "-",
        ],
        [
            "assign, rows/s",
            fmt_rate(g("somcal_rows_per_s")),
            fmt_rate(g("somoclu_kernel_rows_per_s")) + (" k" if peers else ""),
            fmt_rate(g("minisom_rows_per_s")) + (" *" if peers else ""),
            f"{rate_vs_kernel:.0f}x" if peers else "-",
        ],
        [
            "  somoclu public path",
            "",
            fmt_rate(g("somoclu_public_rows_per_s")) + " p" if peers else "-",
            "",
            f"{rate_vs_public:,.0f}x" if peers else "-",
        ],
    ]
    if mem:
        nm = mem["rows"]
        need = nm * K * 8
        rows.append(
            [
                f"peak RSS rise, assign {nm:,} rows",
                f"{human_bytes(mem['increase'])} = {mem['increase_ratio']:.2f}x in",
                f">= {human_bytes(2 * need)} c",
                f">= {human_bytes(3 * need)} c",
                "",
            ]
        )
    lines.append(format_table(["", "somcal", "somoclu", "MiniSom", "somoclu/somcal"], rows))
    lines.append("")
    if peers:
        lines.append(
            f"*  MiniSom timed on a subsample and scaled: online epoch on "
            f"{g('minisom_train_rows'):,} rows x {n / g('minisom_train_rows'):.0f}; "
            f"quantization on {g('minisom_assign_rows'):,} rows in 1,000-row chunks. "
            "MiniSom has no batch map: its epoch is one online pass."
        )
        lines.append(
            f"k  somoclu's distance kernel alone: scipy cdist + argmin on "
            f"{g('somoclu_kernel_assign_rows'):,} rows in 256-row chunks (what "
            "get_surface_state runs, minus its concatenation); single-threaded."
        )
        lines.append(
            f"p  somoclu's public path get_surface_state(X) + get_bmus on "
            f"{g('somoclu_public_assign_rows'):,} rows (it re-concatenates a rows x cells "
            "float64 matrix 200 times)."
        )
        lines.append(
            f"   somoclu epoch = (t(4 epochs) {g('somoclu_fit4'):.1f} s - t(2 epochs) "
            f"{g('somoclu_fit2'):.1f} s) / 2, one run each."
        )
        lines.append(
            "c  computed, not run: somoclu's get_surface_state holds the rows x cells "
            "float64 matrix twice while concatenating; MiniSom's quantization holds "
            "three rows x cells float64 temporaries."
        )
    lines.append("")
    lines.append("somcal details (medians):")

    def med(key: str) -> float:
        return Timing(g(key)).median

    lines.append(
        f"  fit: 2 epochs {med('somcal_fit2'):.3f} s, 4 epochs {med('somcal_fit4'):.3f} s"
        " -> epoch = difference / 2"
    )
    passes = g("somcal_epoch_passes") or []
    if passes:
        lines.append(
            "  epochs of a 4-epoch fit, one by one (medians; the first from random weights): "
            + ", ".join(f"{t:.3f}" for t in passes)
            + " s"
        )
    lines.append(
        f"  epoch parts: batch_sums (cells + per-cell sums) {med('somcal_batch_sums'):.3f}"
        f" s; smoothing at sigma {g('somcal_sigma_max'):g} "
        f"{med('somcal_smooth_sigma_max'):.3f} s, at sigma {g('somcal_sigma_min'):g} "
        f"{med('somcal_smooth_sigma_min'):.4f} s"
    )
    # the scaling ratios from the interleaved pairs; p2 (the assign step's) for rates
    p1, p2 = med("somcal_predict_1thread"), med("somcal_assign")
    b1 = med("somcal_batch_sums_1thread")
    pn, bn = med("somcal_predict_nthreads"), med("somcal_batch_sums_nthreads")
    lines.append(
        f"  interleaved 1 vs {args.threads} threads: predict {n / p1:,.0f} vs {n / pn:,.0f} "
        f"rows/s (x{p1 / pn:.2f}); batch_sums {b1:.3f} vs {bn:.3f} s (x{b1 / bn:.2f})"
    )
    lines.append(
        f"  predict in the assign step ({args.threads} threads): {n / p2:,.0f} rows/s; "
        f"batch_sums step: {med('somcal_batch_sums'):.3f} s"
    )
    flops = 2 * N_FEATURES * K
    lines.append(
        f"  predict arithmetic: {flops * n / p2 / 1e9:.1f} GFLOP/s "
        f"({flops:,} flop per row, {args.threads} threads)"
    )
    cores = (
        f"  cores busy (CPU s / wall s; {args.threads} = no contention): predict "
        f"{g('somcal_assign_cores'):.2f} ({n / (p2 * g('somcal_assign_cores')):,.0f} rows "
        f"per CPU-second), batch_sums {g('somcal_batch_sums_cores'):.2f}"
    )
    if peers:
        cores += f", somoclu training {g('somoclu_fit2_cores'):.2f} / {g('somoclu_fit4_cores'):.2f}"
    if peers:
        cores += (
            f", assignment: somoclu cdist {g('somoclu_kernel_assign_cores'):.2f} (1 thread), "
            f"MiniSom {g('minisom_assign_cores'):.2f}"
        )
    lines.append(cores)
    if peers:
        lines.append(
            f"  assignment used one map (somcal's after 4 epochs) for all three, repeats "
            f"interleaved; same cells as somcal on 2,000 rows: somoclu "
            f"{100 * g('agree_somoclu'):.2f}%, MiniSom {100 * g('agree_minisom'):.2f}%"
        )
    lines.append(
        f"  check: predict == float64 brute force on 20,000 rows: "
        f"{100 * g('somcal_agreement'):.3f}% (largest excess squared distance of a differing "
        f"cell: {g('somcal_max_excess'):.2g} float32 roundings); mean distance after 4 epochs "
        f"{g('somcal_qe_4epochs'):.4f}"
        + (f" (somoclu {g('somoclu_qe_4epochs'):.4f})" if peers else "")
    )
    if mem:
        lines.append(
            f"  memory: {mem['rows']:,} rows, input {human_bytes(mem['input_bytes'])}, "
            f"returned cells {human_bytes(mem['output_bytes'])}; RSS with input "
            f"{human_bytes(mem['baseline_rss'])}, peak {human_bytes(mem['peak_rss'])} "
            f"({'high-water mark reset before predict' if mem.get('hwm_reset') else 'sampled'}"
            f", sampled {human_bytes(mem['sampled_peak_rss'])}); predict "
            f"{mem['rows'] / mem['seconds']:,.0f} rows/s"
        )
    lines.append("")
    lines.append("")
    lines.append("pruned search (issue 12), same run, medians:")
    rate = g("somcal_rows_per_s")
    rate_b = g("somcal_brute_rows_per_s")
    lines.append(
        f"  predict: pruned {rate:,.0f} rows/s, brute force {rate_b:,.0f} rows/s "
        f"(x{rate / rate_b:.2f}); cell distances skipped {100 * g('pruned_skipped'):.2f}% "
        f"(best cell), {100 * g('pruned_skipped_second'):.2f}% (best and second best), "
        f"{100 * g('pruned_skipped_chi2'):.2f}% (chi2), {100 * g('pruned_skipped_missing'):.2f}%"
        " (10% missing)"
    )
    n_diff = g("pruned_rows_differing")
    lines.append(
        f"  cells differing from brute force: {n_diff:,} of {n:,} rows"
        + (
            f" (each a float tie: |d2 difference| <= {g('pruned_differing_excess'):.2g} float32 "
            f"roundings; the pruned cell the closer in float64 in {g('pruned_differing_closer')})"
            if n_diff
            else ""
        )
    )
    r_chi, r_miss = g("somcal_chi2_rows_per_s"), g("somcal_missing_rows_per_s")
    lines.append(
        f"  chi2 with per-row errors {r_chi:,.0f} rows/s ({r_chi / rate:.2f}x plain); "
        f"10% missing features {r_miss:,.0f} rows/s ({r_miss / rate:.2f}x plain)"
    )
    bp1, bs1, bs2 = (
        med("brute_predict_1thread"),
        med("brute_batch_sums_1thread"),
        med("brute_batch_sums"),
    )
    pb2 = med("somcal_brute_assign")
    lines.append(
        f"  brute force: predict 1 thread {n / bp1:,.0f} rows/s, {args.threads} threads "
        f"{n / pb2:,.0f} (x{bp1 / pb2:.2f}); batch_sums 1 thread {bs1:.3f} s, "
        f"{args.threads} threads {bs2:.3f} s (x{bs1 / bs2:.2f})"
    )
    se, ss = g("somcal_small_epoch"), g("somoclu_small_epoch")
    lines.append(
        f"  epoch on {g('small_rows'):,} rows: somcal {se:.3f} s"
        + (f", somoclu {ss:.2f} s ({ss / se:.0f}x)" if peers else "")
    )
    if peers:
        if g("torchsom_skipped"):
            lines.append(f"  torchsom: skipped: {g('torchsom_skipped')}")
        else:
            te, tr = g("torchsom_epoch"), g("torchsom_rows_per_s")
            lines.append(
                f"  torchsom {g('torchsom_version')} (torch {g('torch_version')}, CPU, "
                f"{args.threads} threads): mini-batch epoch (batch {args.torchsom_batch}; its "
                f"fit also measures the errors of every batch) {fmt_s(te)} at {n:,} rows "
                f"(timed on {g('torchsom_train_rows'):,} rows, scaled), somcal's batch epoch "
                f"{te / g('somcal_epoch'):.0f}x faster; assign (its torch brute force, "
                f"{g('torchsom_assign_rows'):,} rows) {tr:,.0f} rows/s, somcal "
                f"{rate / tr:.0f}x; same cells as somcal on 2,000 rows "
                f"{100 * g('agree_torchsom'):.2f}%"
            )
    lines.append("")
    lines.append("goals (issue 12):")
    if peers:
        worst = min(ep_ratio, ep_ratio_worst)
        lines.append(
            f"  epoch >= {GOAL_EPOCH_SPEEDUP:.0f}x faster than somoclu at {n:,} rows: "
            f"{ep_ratio:.0f}x wall ({worst:.0f}x with the widest smoothing), {ep_ratio_cpu:.0f}x"
            f" CPU seconds {verdict(ep_ratio >= GOAL_EPOCH_SPEEDUP)}"
            + ("" if n == 1_000_000 else " (the goal is set at 1,000,000 rows)")
        )
        if passes:
            so = g("somoclu_epoch")
            lines.append(
                "    epoch by epoch against somoclu's: "
                + ", ".join(f"{so / t:.0f}x" for t in passes)
                + f" {verdict(max(passes[1:]) * GOAL_EPOCH_SPEEDUP <= so)} from the second"
                f" epoch on, {verdict(passes[0] * GOAL_EPOCH_SPEEDUP <= so)} for the first"
            )
        lines.append(
            f"  epoch >= {GOAL_EPOCH_SPEEDUP_SMALL:.0f}x faster than somoclu at "
            f"{g('small_rows'):,} rows: {ss / se:.0f}x "
            f"{verdict(ss / se >= GOAL_EPOCH_SPEEDUP_SMALL)}"
        )
        small_passes = g("somcal_small_epoch_passes") or []
        if small_passes:
            lines.append(
                "    epoch by epoch against somoclu's: "
                + ", ".join(f"{ss / t:.0f}x" for t in small_passes)
                + f" {verdict(max(small_passes[1:]) * GOAL_EPOCH_SPEEDUP_SMALL <= ss)} from the"
                f" second epoch on, {verdict(small_passes[0] * GOAL_EPOCH_SPEEDUP_SMALL <= ss)}"
                " for the first (it includes the fit's set-up)"
            )
    lines.append(
        f"  assign >= {GOAL_ROWS_PER_S / MB:.1f} M rows/s: {rate / MB:.2f} M "
        f"{verdict(rate >= GOAL_ROWS_PER_S)}; identical cells to brute force except float "
        f"ties: {n_diff} rows differ {verdict(n_diff == 0 or g('pruned_differing_excess') < 8)}"
    )
    lines.append(
        f"  chi2 and missing-feature paths >= {GOAL_METRIC_RATIO}x plain: "
        f"{r_chi / rate:.2f}x, {r_miss / rate:.2f}x "
        f"{verdict(min(r_chi, r_miss) / rate >= GOAL_METRIC_RATIO)}"
    )
    lines.append(
        f"  {args.threads} threads >= {GOAL_THREAD_SCALING}x one (interleaved): assign "
        f"x{p1 / pn:.2f} {verdict(p1 / pn >= GOAL_THREAD_SCALING)}, epoch (batch_sums) "
        f"x{b1 / bn:.2f} {verdict(b1 / bn >= GOAL_THREAD_SCALING)}"
    )
    if peers:
        lines.append(
            f"  assign >= {GOAL_ASSIGN_SPEEDUP:.0f}x somoclu (issue 2): {rate_vs_kernel:.0f}x its "
            f"cdist kernel, {rate_vs_public:,.0f}x its public path "
            f"{verdict(rate_vs_kernel >= GOAL_ASSIGN_SPEEDUP)}"
        )
    if mem:
        lines.append(
            f"  memory < {GOAL_MEMORY_RATIO}x input: rise {mem['increase_ratio']:.2f}x "
            f"input {verdict(mem['increase_ratio'] < GOAL_MEMORY_RATIO)}; input + rise "
            f"{mem['total_ratio']:.2f}x input {verdict(mem['total_ratio'] < GOAL_MEMORY_RATIO)}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    # before numpy, numba, scipy or a peer loads: they read their thread counts once
    pin_threads(args.threads)
    # the engine of this checkout, installed or not
    sys.path.insert(0, str(REPO))
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    load_start = load_average()
    log(f"pid {os.getpid()}; load average {load_start}")
    start = time.perf_counter()
    X, desc = load_colours(args)
    log(f"data: {X.shape} {X.dtype} in {time.perf_counter() - start:.1f} s ({desc})")
    out: dict = {"rows": args.rows, "threads": args.threads, "data": desc}
    som = bench_somcal(X, args, out)
    bench_assign(X, som, args, out)
    bench_memory(X, som, args, out)
    if not args.skip_peers:
        bench_minisom(X, args, out)
        bench_torchsom(X, args, out)
        bench_somoclu(X, args, out)
    gc.collect()
    text = report(out, args, desc, load_start)
    print("\n" + text, flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))
    log(f"total {time.perf_counter() - start:.0f} s")
    return 0 if math.isfinite(out["somcal_rows_per_s"]) else 1


if __name__ == "__main__":
    sys.exit(main())
