"""The hot loops of somcal: best-matching units, batch sums, neighbourhood smoothing.

Every kernel is a small ``@njit`` function over plain arrays. Shapes use
``n`` rows (sources), ``F`` features and ``K`` cells. Weights are passed transposed,
``WT`` of shape (F, K), so that the innermost loop runs over contiguous cells and
vectorises. Distances are squared, in normalised feature units.

A pure-numpy reference of each kernel lives in ``tests/som/reference.py``; the tests hold the
two to agreement.

(About 800 lines on purpose: every loop that runs per row or per cell is here and nowhere
else, so that what decides the speed is read, profiled and tested in one module, as in
pynndescent's and umap-learn's layouts.)
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

#: cells processed per tile: small enough that the tile's distances stay in L1 cache
TILE = 256
#: rows handed to a thread at a time
ROWS_PER_TASK = 256
#: fast-math without the no-NaN/no-inf assumptions: kernels that test for missing values
#: need ``isfinite`` to survive optimisation
FAST_NAN_SAFE = {"nsz", "arcp", "contract", "afn", "reassoc"}


#: rows sharing each load of a weight tile in the dense kernel
ROW_BLOCK = 4

_DENSE_KERNELS: dict = {}


def _dense_kernel_source(n_features: int, want_second: bool, weighted: bool = False) -> str:
    """Source of the best-matching-unit kernel for a fixed feature count.

    The feature loop is written out so that the cell loop is the innermost one and
    vectorises, with ROW_BLOCK rows sharing every weight load. Each of the TILE lanes keeps
    its own running best (and second best) so no scalar reduction runs per cell.

    Unweighted: minimise ``0.5||w||^2 - x.w``. Weighted (missing features, chi^2):
    minimise ``sum_f A_f w_f^2 + B_f w_f`` with ``A = 1/sigma^2`` (0 where missing) and
    ``B = -2 A x``, the row's chi^2 up to a term constant over cells.
    """
    F, RB = n_features, ROW_BLOCK
    args = "X, A, B, WT, W2T" if weighted else "X, WT, half_norm2"
    L = [
        f"def kernel({args}, out_cell, out_d2, out_second):",
        "    n = X.shape[0]",
        "    K = WT.shape[1]",
        f"    n_tasks = (n + {ROWS_PER_TASK} - 1) // {ROWS_PER_TASK}",
        "    for task in prange(n_tasks):",
        f"        lv = np.empty(({RB}, {TILE}), dtype=WT.dtype)",
        f"        li = np.empty(({RB}, {TILE}), dtype=np.int32)",
        f"        sv = np.empty(({RB}, {TILE}), dtype=WT.dtype)",
        f"        si = np.empty(({RB}, {TILE}), dtype=np.int32)",
        f"        stop = min(n, (task + 1) * {ROWS_PER_TASK})",
        f"        for r0 in range(task * {ROWS_PER_TASK}, stop, {RB}):",
    ]
    for j in range(RB):
        L.append(f"            r{j} = min(r0 + {j}, stop - 1)")
        if weighted:
            L.append("            " + "; ".join(f"a{j}_{f} = A[r{j}, {f}]" for f in range(F)))
            L.append("            " + "; ".join(f"b{j}_{f} = B[r{j}, {f}]" for f in range(F)))
        else:
            L.append("            " + "; ".join(f"a{j}_{f} = X[r{j}, {f}]" for f in range(F)))
        L.append(f"            L{j} = lv[{j}]; I{j} = li[{j}]; S{j} = sv[{j}]; J{j} = si[{j}]")
    L += [
        "            lv[:] = np.inf; li[:] = -1; sv[:] = np.inf; si[:] = -1",
        f"            for c0 in range(0, K, {TILE}):",
        f"                m = min({TILE}, K - c0)",
        "                " + "; ".join(f"w{f} = WT[{f}, c0:c0 + m]" for f in range(F)),
    ]
    if weighted:
        L.append("                " + "; ".join(f"u{f} = W2T[{f}, c0:c0 + m]" for f in range(F)))
    else:
        L.append("                h = half_norm2[c0:c0 + m]")
    L += [
        "                for t in range(m):",
        "                    " + "; ".join(f"q{f} = w{f}[t]" for f in range(F)),
        "                    ci = np.int32(c0 + t)",
    ]
    if weighted:
        L.append("                    " + "; ".join(f"p{f} = u{f}[t]" for f in range(F)))
    else:
        L.append("                    ht = h[t]")
    for j in range(RB):
        if weighted:
            expr = " + ".join(f"a{j}_{f} * p{f} + b{j}_{f} * q{f}" for f in range(F))
            L.append(f"                    v = {expr}")
        else:
            dot = " + ".join(f"a{j}_{f} * q{f}" for f in range(F))
            L.append(f"                    v = ht - ({dot})")
        L.append(f"                    lo = L{j}[t]; io = I{j}[t]")
        L.append("                    lt = v < lo")
        if want_second:
            # branch-free selects: nested conditionals stop LLVM from vectorising
            L.append(f"                    so = S{j}[t]; jo = J{j}[t]")
            L.append("                    lt2 = v < so")
            L.append("                    s_new = v if lt2 else so")
            L.append("                    j_new = ci if lt2 else jo")
            L.append(f"                    S{j}[t] = lo if lt else s_new")
            L.append(f"                    J{j}[t] = io if lt else j_new")
        L.append(f"                    L{j}[t] = v if lt else lo")
        L.append(f"                    I{j}[t] = ci if lt else io")
    finish = "_finish_row_weighted(X, A, WT, r0 + j," if weighted else "_finish_row(X, WT, r0 + j,"
    L += [
        f"            for j in range(min({RB}, stop - r0)):",
        f"                {finish} lv[j], li[j], sv[j], si[j],",
        f"                    {want_second}, out_cell, out_d2, out_second)",
    ]
    return "\n".join(L)


@njit(cache=True, fastmath=True)
def _reduce_lanes(lv, li, sv, si, want_second):
    """Best and second-best cell of one row from its per-lane bests."""
    best = np.inf
    best_i = -1
    lane = -1
    for t in range(lv.shape[0]):
        if li[t] >= 0 and (lv[t] < best or (lv[t] == best and li[t] < best_i)):
            best = lv[t]
            best_i = li[t]
            lane = t
    second_i = -1
    if want_second:
        second = sv[lane]
        second_i = si[lane]
        for t in range(lv.shape[0]):
            if t != lane and li[t] >= 0 and lv[t] < second:
                second = lv[t]
                second_i = li[t]
    return best_i, second_i


@njit(cache=True, fastmath=True)
def _finish_row(X, WT, r, lv, li, sv, si, want_second, out_cell, out_d2, out_second):
    """Reduce one row's per-lane bests to its best (and second) cell; exact distance."""
    best_i, second_i = _reduce_lanes(lv, li, sv, si, want_second)
    d2 = 0.0
    for f in range(X.shape[1]):
        diff = np.float64(X[r, f]) - np.float64(WT[f, best_i])
        d2 += diff * diff
    out_cell[r] = best_i
    out_d2[r] = d2
    out_second[r] = second_i


@njit(cache=True, fastmath=FAST_NAN_SAFE)
def _finish_row_weighted(X, A, WT, r, lv, li, sv, si, want_second, out_cell, out_d2, out_second):
    """As ``_finish_row`` with weights A (0 = missing); the distance is scaled by F/n_present.

    A row without any present feature gets cell -1 and distance NaN.
    """
    F = X.shape[1]
    n_p = 0
    for f in range(F):
        if A[r, f] > 0:
            n_p += 1
    if n_p == 0:
        out_cell[r] = -1
        out_d2[r] = np.nan
        out_second[r] = -1
        return
    best_i, second_i = _reduce_lanes(lv, li, sv, si, want_second)
    d2 = 0.0
    for f in range(F):
        a = np.float64(A[r, f])
        if a > 0:
            diff = np.float64(X[r, f]) - np.float64(WT[f, best_i])
            d2 += a * diff * diff
    out_cell[r] = best_i
    out_d2[r] = d2 * F / n_p
    out_second[r] = second_i


def _kernel_cache_dir() -> Path:
    base = os.environ.get("SOMCAL_KERNEL_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "somcal" / "kernels"


def _compile_source(name: str, source: str, entry: str, namespace: dict, **options):
    """Compile function ``entry`` of generated ``source``, through numba's on-disk cache
    when possible.

    numba caches only functions that live in a file, so the source is written to a
    module in the kernel cache directory (named by a hash of the source) and imported;
    a process then compiles each kernel once per machine instead of once per run.
    ``namespace`` is what the source needs when it has to be compiled in memory.
    """
    digest = hashlib.sha256((source + numba.__version__).encode()).hexdigest()[:16]
    name = f"{name}_{digest}"
    try:
        directory = _kernel_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.py"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source)
            tmp.replace(path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        # numba's cache resolves the function's globals through sys.modules
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return njit(cache=True, **options)(getattr(module, entry))
    except OSError:
        # read-only home: compile in memory, every process pays the compile time
        namespace = dict(namespace)
        exec(source, namespace)
        return njit(**options)(namespace[entry])


def _load_generated(n_features: int, want_second: bool, weighted: bool):
    """Compile the generated dense kernel (``_dense_kernel_source``)."""
    source = (
        "import numpy as np\nfrom numba import njit, prange\n"
        "from som.kernels import _finish_row, _finish_row_weighted\n\n"
        + _dense_kernel_source(n_features, want_second, weighted)
    )
    namespace = {
        "np": np,
        "prange": prange,
        "_finish_row": _finish_row,
        "_finish_row_weighted": _finish_row_weighted,
    }
    return _compile_source(
        f"somcal_bmu_{n_features}_{int(want_second)}{int(weighted)}",
        source,
        "kernel",
        namespace,
        parallel=True,
        fastmath=True,
    )


def _generated(n_features: int, want_second: bool, weighted: bool):
    key = (int(n_features), bool(want_second), bool(weighted))
    kernel = _DENSE_KERNELS.get(key)
    if kernel is None:
        kernel = _DENSE_KERNELS[key] = _load_generated(*key)
    return kernel


def bmu_dense(X, WT, half_norm2, want_second, out_cell, out_d2, out_second):
    """Best-matching cell of every row, Euclidean distance, no missing values.

    X : (n, F) float32|float64 normalised features, all finite.
    WT : (F, K) transposed weights, same dtype as X.
    half_norm2 : (K,) ``0.5 * ||w_k||^2``, same dtype.
    want_second : also find the second-best cell (for the topographic error).
    out_cell : (n,) int64, best cell. out_d2 : (n,) float64, squared distance to it.
    out_second : (n,) int64, second-best cell (-1 when not wanted or K == 1).

    Minimises ``0.5||w||^2 - x.w`` (the squared distance up to a term constant over
    cells), then recomputes the exact squared distance of the winner in float64.
    Compiled once per (feature count, want_second) and reused.
    """
    kernel = _generated(X.shape[1], want_second, False)
    kernel(X, WT, half_norm2, out_cell, out_d2, out_second)


def bmu_masked(X, inv_var, WT, want_second, out_cell, out_d2, out_second):
    """Best-matching cell with missing features and optional per-feature errors.

    X : (n, F) normalised features; NaN marks a missing feature.
    inv_var : (n, F) inverse variances 1/sigma^2 for a chi^2 distance, or an array of
        shape (0, 0) for a plain Euclidean distance.
    WT : (F, K) transposed weights.
    out_cell, out_d2, out_second : as in ``bmu_dense``. A row with no usable feature
        gets cell -1 and distance NaN (the caller reports it).

    The distance uses only the features a row has, scaled by F / n_present so that rows
    with and without gaps are on one scale: d2 = F/n_p * sum_f iv_f (x_f - w_kf)^2.
    The search minimises the expansion ``sum_f A_f w_f^2 + B_f w_f`` (A = iv, 0 where
    missing; B = -2 A x), which vectorises like the dense kernel.
    """
    present = np.isfinite(X)
    A = present.astype(WT.dtype) if inv_var.shape[0] == 0 else np.where(present, inv_var, 0)
    A = np.ascontiguousarray(A, dtype=WT.dtype)
    B = np.ascontiguousarray(np.where(present, -2.0 * A * X, 0.0), dtype=WT.dtype)
    W2T = np.ascontiguousarray(WT * WT)
    kernel = _generated(X.shape[1], want_second, True)
    kernel(X, A, B, WT, W2T, out_cell, out_d2, out_second)


@njit(cache=True)
def accumulate(X, cells, sample_weight, S, N):
    """Add rows into per-cell sums for the batch update (in place).

    X : (n, F) features, NaN where missing. cells : (n,) int64 best cells (-1 skipped).
    sample_weight : (n,) float64 or shape (0,) for unit weights.
    S : (K, F) float64 running sum of weight * feature.
    N : (K, F) float64 running sum of weight, per feature (features can be missing).
    """
    n, F = X.shape
    weighted = sample_weight.shape[0] > 0
    for r in range(n):
        c = cells[r]
        if c < 0:
            continue
        w = sample_weight[r] if weighted else 1.0
        for f in range(F):
            v = X[r, f]
            if np.isfinite(v):
                S[c, f] += w * v
                N[c, f] += w


@njit(parallel=True, fastmath=True, cache=True)
def smooth(S, N, h_table, n_rows, n_cols, periodic, win_r, win_c, num, den):
    """Neighbourhood-smoothed sums: num_j = sum_i h(i, j) S_i, den_j = sum_i h(i, j) N_i.

    S, N : (K, F) per-cell sums from ``accumulate``.
    h_table : (2, 2*n_rows-1, 2*n_cols-1) neighbourhood value by row parity of j and
        offset (row_i - row_j, col_i - col_j); see ``Grid.offset_distance_table``.
    win_r, win_c : half-widths (rows, cols) beyond which h is zero.
    num, den : (K, F) outputs, overwritten.
    """
    K, F = S.shape
    R1 = n_rows - 1
    C1 = n_cols - 1
    full_r = 2 * win_r + 1 >= n_rows
    full_c = 2 * win_c + 1 >= n_cols
    for j in prange(K):
        rj = j // n_cols
        cj = j % n_cols
        p = rj % 2
        for f in range(F):
            num[j, f] = 0.0
            den[j, f] = 0.0
        if periodic and full_r:
            r_lo, r_hi = 0, n_rows - 1
        elif periodic:
            r_lo, r_hi = rj - win_r, rj + win_r
        else:
            r_lo, r_hi = max(0, rj - win_r), min(n_rows - 1, rj + win_r)
        if periodic and full_c:
            c_lo, c_hi = 0, n_cols - 1
        elif periodic:
            c_lo, c_hi = cj - win_c, cj + win_c
        else:
            c_lo, c_hi = max(0, cj - win_c), min(n_cols - 1, cj + win_c)
        for rr in range(r_lo, r_hi + 1):
            ri = rr % n_rows
            for cc in range(c_lo, c_hi + 1):
                ci = cc % n_cols
                h = h_table[p, ri - rj + R1, ci - cj + C1]
                if h == 0.0:
                    continue
                i = ri * n_cols + ci
                for f in range(F):
                    num[j, f] += h * S[i, f]
                    den[j, f] += h * N[i, f]


@njit(cache=True)
def online_epoch(
    X,
    inv_var,
    order,
    W,
    dist_table,
    n_rows,
    n_cols,
    periodic,
    gaussian,
    sigma0,
    sigma1,
    lr0,
    lr1,
    step0,
    n_steps,
):
    """One pass of classic online (sequential) Kohonen training, in place on ``W``.

    X : (n, F) features, NaN where missing. inv_var : (n, F) or (0, 0) (Euclidean).
    order : (n,) int64 visiting order (a seeded permutation).
    W : (K, F) float64 weights, updated in place.
    dist_table : grid distances by offset, as ``Grid.offset_distance_table``.
    sigma and learning rate decay geometrically from (sigma0, lr0) at step 0 to
    (sigma1, lr1) at step ``n_steps``; ``step0`` is the global index of this epoch's first
    step. Only the features a row has are updated.
    """
    n, F = X.shape
    K = W.shape[0]
    R1 = n_rows - 1
    C1 = n_cols - 1
    for s in range(order.shape[0]):
        r = order[s]
        frac = (step0 + s) / max(n_steps - 1, 1)
        sigma = sigma0 * (sigma1 / sigma0) ** frac
        lr = lr0 * (lr1 / lr0) ** frac
        best = np.inf
        best_i = -1
        for k in range(K):
            d = 0.0
            for f in range(F):
                v = X[r, f]
                if np.isfinite(v):
                    diff = v - W[k, f]
                    iv = inv_var[r, f] if inv_var.shape[0] > 0 else 1.0
                    d += iv * diff * diff
            if d < best:
                best = d
                best_i = k
        if best_i < 0:
            continue
        rj = best_i // n_cols
        cj = best_i % n_cols
        p = rj % 2
        reach = 4.0 * sigma if gaussian else sigma
        for k in range(K):
            ri = k // n_cols
            ci = k % n_cols
            dist = dist_table[p, ri - rj + R1, ci - cj + C1]
            if dist > reach:
                continue
            h = np.exp(-dist * dist / (2.0 * sigma * sigma)) if gaussian else 1.0
            for f in range(F):
                v = X[r, f]
                if np.isfinite(v):
                    W[k, f] += lr * h * (v - W[k, f])


# --------------------------------------------------------------------------- pruned search
#: relative slack on the pruning threshold: a block is skipped only when its lower bound
#: beats the current candidate by more than float32 rounding of either side could explain
PRUNE_SLACK = 1e-5
#: maps with fewer cells are searched by brute force: pruning would save little there
PRUNE_MIN_CELLS = 400
#: rows of a pass searched first to see whether pruning pays on these weights
PRUNE_SAMPLE_ROWS = 2048
#: above this fraction of cell distances computed, brute force (vectorised over cells)
#: is the faster of the two exact searches
PRUNE_MAX_FRACTION = 0.25


@njit(inline="always")
def _add_columns(T, v, g, n_rows, n_cols, periodic, right, left, both, half):
    """T[r, j] += g * (v[r, j + right] + v[r, j + left]) over every row r of an
    n_rows x n_cols map stored row-major (``left`` only when ``both``), columns wrapping on
    a torus and cut at the edges otherwise; with ``half`` both offsets move one column to
    the right on even rows (the odd-r hexagonal lattice's half-cell shift)."""
    for r in range(n_rows):
        base = r * n_cols
        shift = (1 - r % 2) if half else 0
        for j in range(n_cols):
            jj = j + right + shift
            if periodic:
                jj = jj % n_cols
            if jj < n_cols:
                T[base + j] += g * v[base + jj]
            if both:
                jj = j + left + shift
                if periodic:
                    jj = jj % n_cols
                if jj >= 0:
                    T[base + j] += g * v[base + jj]


@njit(parallel=True, fastmath=True, cache=True)
def smooth_separable(S, N, gy, gx, cw, n_rows, n_cols, periodic, num, den):
    """``smooth`` on a rectangular lattice in O(K F reach) instead of O(K F reach^2).

    S, N : (K, F) per-cell sums from ``accumulate``; num, den : (K, F) outputs.
    gy : (2*n_rows-1,) neighbourhood factor by row offset index (ri - rj + n_rows - 1).
    gx : (n_cols,) neighbourhood factor by column distance |dc| (minimum image on a torus).
    cw : (2*n_rows-1,) int64, the largest |dc| inside the neighbourhood's disc for each
        row offset index, -1 where the row is out of reach.

    A rectangular lattice's neighbourhood is h = gy(dr) gx(dc) inside a disc. Row sums
    over a growing window, T_c(r, j) = sum_{|dc| <= c} gx(|dc|) S(r, j + dc), cost K per
    step of c, and every (target row, source row) pair takes its row sum from T_c once
    c reaches the pair's half-width cw: the disc is exact, not a square. On a torus the
    window wraps and stops growing once it covers the row. The 2F columns of S and N are
    independent, so threads split them: one parallel region, not one per step of c.
    """
    K, F = S.shape
    R1 = n_rows - 1
    cmax = 0
    for i in range(cw.shape[0]):
        cmax = max(cmax, cw[i])
    for ch in prange(2 * F):
        v = np.empty(K)
        for k in range(K):
            v[k] = S[k, ch] if ch < F else N[k, ch - F]
        T = gx[0] * v
        acc = np.zeros(K)
        for c in range(cmax + 1):
            if c > 0 and not (periodic and 2 * c > n_cols):
                both = not (periodic and 2 * c == n_cols)
                _add_columns(T, v, gx[c], n_rows, n_cols, periodic, c, -c, both, False)
            for rj in range(n_rows):
                for ri in range(n_rows):
                    idx = ri - rj + R1
                    if cw[idx] != c:
                        continue
                    g = gy[idx]
                    for j in range(n_cols):
                        acc[rj * n_cols + j] += g * T[ri * n_cols + j]
        for k in range(K):
            if ch < F:
                num[k, ch] = acc[k]
            else:
                den[k, ch - F] = acc[k]


@njit(parallel=True, fastmath=True, cache=True)
def smooth_separable_hex(S, N, gy, gxi, gxh, cwi, cwh, n_rows, n_cols, periodic, num, den):
    """``smooth`` on a hexagonal ("odd-r") lattice in O(K F reach) instead of O(K F reach^2).

    S, N : (K, F) per-cell sums from ``accumulate``; num, den : (K, F) outputs.
    gy : (2*n_rows-1,) neighbourhood factor by row offset index (ri - rj + n_rows - 1).
    gxi : (n_cols,) factor at column distance |dx| = c (rows at an even offset).
    gxh : (n_cols,) factor at |dx| = m + 1/2 (rows at an odd offset: half a cell shifted).
    cwi, cwh : (2*n_rows-1,) int64, the largest c (even offsets) or m (odd offsets) inside
        the neighbourhood's disc for each row offset index, -1 where out of reach.

    On the odd-r lattice a cell's x is col + (row % 2) / 2, so two rows at an even offset
    are aligned and two at an odd offset are shifted by half a cell, to the right when the
    source row is odd. The neighbourhood is h = gy(dy) gx(|dx|) inside a disc (Gaussian or
    bubble alike), so, as in ``smooth_separable``, each source row is summed along itself
    over a growing window, twice: once at whole-cell distances (Ti) and once at
    half-cell-shifted distances (Th, the shift's side set by the source row's parity);
    every (target row, source row) pair takes its row sum once the window reaches the
    pair's half-width. On a torus (an even number of rows, so parities wrap consistently)
    the windows stop growing once they cover the row.
    """
    K, F = S.shape
    R1 = n_rows - 1
    cmax = 0
    for i in range(cwi.shape[0]):
        cmax = max(cmax, cwi[i], cwh[i])
    for ch in prange(2 * F):
        v = np.empty(K)
        for k in range(K):
            v[k] = S[k, ch] if ch < F else N[k, ch - F]
        Ti = gxi[0] * v
        Th = np.zeros(K)
        acc = np.zeros(K)
        for c in range(cmax + 1):
            if c > 0 and not (periodic and 2 * c > n_cols):
                both = not (periodic and 2 * c == n_cols)
                _add_columns(Ti, v, gxi[c], n_rows, n_cols, periodic, c, -c, both, False)
            if not (periodic and 2 * c + 1 > n_cols):
                # the two columns at |dx| = c + 1/2: c and -(c + 1) away from an odd source
                # row's cell, c + 1 and -c from an even one's
                both = not (periodic and 2 * c + 1 == n_cols)
                _add_columns(Th, v, gxh[c], n_rows, n_cols, periodic, c, -c - 1, both, True)
            for rj in range(n_rows):
                for ri in range(n_rows):
                    idx = ri - rj + R1
                    odd = (ri - rj) % 2 == 1
                    if (cwh[idx] if odd else cwi[idx]) != c:
                        continue
                    g = gy[idx]
                    src = ri * n_cols
                    dst = rj * n_cols
                    if odd:
                        for j in range(n_cols):
                            acc[dst + j] += g * Th[src + j]
                    else:
                        for j in range(n_cols):
                            acc[dst + j] += g * Ti[src + j]
        for k in range(K):
            if ch < F:
                num[k, ch] = acc[k]
            else:
                den[k, ch - F] = acc[k]


# ------------------------------------------------------------------- tiled pruned search
#: tile of the tiled search on maps of at least 4 tiles a side (``tile_shape``); a tile cut
#: short by the map's edge is padded with copies of its first cell. Every row bounds its
#: distance to every tile in one vectorised pass, then scores only the tiles the bound
#: cannot rule out. Measured on a trained 75x150 map, 10^6 mock rows, one thread, rows per
#: CPU-second: 8x8 tiles 1.25-1.35 M (476 distances a row); 4x8 0.79 M (256), 8x16 1.07 M
#: (983), 16x16 0.89 M (1,667). Tried before and no faster: 8x8 tiles split into 4x4
#: sub-tiles (a third of the distances, but the sub-tile bounds are L2 misses), 2x2 groups
#: of tiles bounded before their tiles, coordinates rotated onto the principal axes (and,
#: in numpy, per-tile principal frames: 4.7 tiles a row pass against 7.2). Sorting rows by
#: their tile first gained 8%, less than the sort costs. A hint (last epoch's cell) saves
#: the pass over the tiles' representatives: 1.8 M.
TILE_SHAPE = (8, 8)


def tile_shape(n_rows, n_cols):
    """Tile of ``tile_index`` for a map: TILE_SHAPE, or 4 x 4 on maps too small for
    several TILE_SHAPE tiles per side (there 8 x 8 tiles would prune almost nothing)."""
    if n_rows >= 4 * TILE_SHAPE[0] and n_cols >= 4 * TILE_SHAPE[1]:
        return TILE_SHAPE
    return (4, 4)


class TileIndex(NamedTuple):
    """Search structure of ``bmu_tiles`` for one set of weights (``tile_index``).

    Weights are stored minus their mean ``mu`` so that the expanded distance
    ``0.5||w||^2 - x.w`` keeps its precision for features far from zero.
    """

    mu: np.ndarray  # (F,) float64 mean of the weights
    WB: np.ndarray  # (n_tiles, F, T) centred weights, tile by tile
    HB: np.ndarray  # (n_tiles, T) 0.5 ||w - mu||^2 of each tile position
    lo: np.ndarray  # (F, n_tiles) per-feature box of each tile (centred)
    hi: np.ndarray  # (F, n_tiles)
    rep: np.ndarray  # (F, n_tiles) the cell nearest each box's centre (a row's start)
    rep_h: np.ndarray  # (n_tiles,) 0.5 ||rep||^2
    tcell: np.ndarray  # (n_tiles, T) int64 cell at each tile position (padding repeats one)
    tile_n: np.ndarray  # (n_tiles,) int64 real cells per tile
    cell_tile: np.ndarray  # (K,) int64 tile of each cell
    cell_pos: np.ndarray  # (K,) int64 position of each cell in its tile
    w2max: float  # largest ||w - mu||^2: the scale of the expanded form's rounding


def _lattice_tiles(n_rows, n_cols, tile):
    """(n_tiles, tr * tc) cells of each tr x tc block of the map, -1 past its edges."""
    tr, tc = tile
    n_tr, n_tc = -(-n_rows // tr), -(-n_cols // tc)
    rows = np.arange(n_tr * tr)[:, None]
    cols = np.arange(n_tc * tc)[None, :]
    grid = np.where((rows < n_rows) & (cols < n_cols), rows * n_cols + cols, -1)
    # (tile row, tile col, row in tile, col in tile) -> one row of cells per tile
    return grid.reshape(n_tr, tr, n_tc, tc).transpose(0, 2, 1, 3).reshape(n_tr * n_tc, tr * tc)


def _weight_space_tiles(W, T):
    """(n_tiles, T) cells grouped by their weights, -1 padding: a k-d split, each group
    halved along its widest feature at a multiple of T cells, down to T cells a group.

    Lattice blocks are compact in weight space only once the map is ordered; a random
    start (weights drawn from the data) scatters them, so that every block's box holds
    most rows and nothing is pruned. Groups of near weights prune any map: measured on
    10^4 mock rows against 11,250 random data rows as weights, 12 groups a row pass their
    bounds against 181 of 190 lattice blocks; on a trained map lattice blocks do better
    (7.3 against 11.7)."""
    groups = []
    stack = [np.arange(W.shape[0])]
    while stack:
        ids = stack.pop()
        if ids.size <= T:
            groups.append(np.sort(ids))
            continue
        P = W[ids]
        f = int(np.argmax(P.max(axis=0) - P.min(axis=0)))
        left = T * (-(-ids.size // T) // 2)
        order = ids[np.argsort(P[:, f], kind="stable")]
        stack += [order[left:], order[:left]]
    tcell = np.full((len(groups), T), -1, np.int64)
    for j, g in enumerate(groups):
        tcell[j, : g.size] = g
    return tcell


def tile_index(W, n_rows, n_cols, tile=None, dtype=np.float32, grouping="lattice"):
    """``TileIndex`` of weights W (K, F) on an n_rows x n_cols map, in the working
    ``dtype``: tiles of ``tile`` cells (rows, cols; default ``tile_shape``) of the map
    (``grouping="lattice"``), or groups of as many cells near in weight space
    (``"weights"``, ``_weight_space_tiles``)."""
    K, F = W.shape
    tile = tile_shape(n_rows, n_cols) if tile is None else tile
    if grouping == "lattice":
        tcell = _lattice_tiles(n_rows, n_cols, tile)
    elif grouping == "weights":
        tcell = _weight_space_tiles(np.asarray(W, dtype=np.float64), tile[0] * tile[1])
    else:
        raise ValueError(f"grouping must be 'lattice' or 'weights', not {grouping!r}")
    # real cells first (a tile cut by the map's edge), then padding repeating the first
    tcell = np.take_along_axis(tcell, np.argsort(tcell < 0, axis=1, kind="stable"), axis=1)
    tile_n = (tcell >= 0).sum(axis=1).astype(np.int64)
    real = tcell >= 0
    tcell = np.where(real, tcell, tcell[:, :1]).astype(np.int64)
    cell_tile = np.empty(K, np.int64)
    cell_pos = np.empty(K, np.int64)
    # padding repeats a tile's first cell: only the real positions name a cell's place
    cell_tile[tcell[real]] = np.nonzero(real)[0]
    cell_pos[tcell[real]] = np.nonzero(real)[1]
    W = np.asarray(W, dtype=np.float64)
    mu = W.mean(axis=0)
    WB = np.ascontiguousarray((W - mu)[tcell].transpose(0, 2, 1)).astype(dtype)
    W64 = WB.astype(np.float64)
    HB = (0.5 * (W64**2).sum(axis=1)).astype(dtype)
    lo = WB.min(axis=2)
    hi = WB.max(axis=2)
    centre = 0.5 * (lo.astype(np.float64) + hi)
    nearest = np.argmin(((W64 - centre[:, :, None]) ** 2).sum(axis=1), axis=1)
    rep = WB[np.arange(len(WB)), :, nearest]
    c = np.ascontiguousarray
    return TileIndex(
        mu,
        WB,
        c(HB),
        c(lo.T),
        c(hi.T),
        c(rep.T),
        (0.5 * (rep.astype(np.float64) ** 2).sum(axis=1)).astype(dtype),
        tcell,
        tile_n,
        cell_tile,
        cell_pos,
        float((W64**2).sum(axis=1).max()),
    )


# The search is compiled per (features, cells per tile) so that both are constants and
# every loop over them unrolls and vectorises: reading them from the array shapes made
# it 2.3x slower (measured as above). The functions below are its template: their
# source is compiled with _F and _T bound (``_tile_kernel``); never called as they are.
_F = _T = _Z = _INF = None


def _tile_scores_t(x, a, b, WB, HB, j, weighted, e):
    """Score of the row against the T cells of tile j, into e (T,): 0.5||w||^2 - x.w
    (the squared distance / 2 - 0.5||x||^2), or with weights a (and b = -2 a x) the
    weighted squared distance minus sum(a x^2): sum(w (a w + b))."""
    # cells outer, features inner: the unrolled feature loop keeps each sum in a
    # register, where a loop over features outside stores and reloads e F times; the
    # expanded weighted form is two fused multiply-adds a feature against three
    if weighted:
        for t in range(_T):
            # the sum starts from the first feature's term, not from a zero: from
            # WB[j, 0, t] * 0 (a zero of the working dtype) the loop did not vectorise
            w = WB[j, 0, t]
            s = w * (a[0] * w + b[0])
            for f in range(1, _F):
                w = WB[j, f, t]
                s += w * (a[f] * w + b[f])
            e[t] = s
    else:
        for t in range(_T):
            s = HB[j, t]
            for f in range(_F):
                s -= x[f] * WB[j, f, t]
            e[t] = s


def _halving_min_t(src, h, n):
    """min(src[:n]), n a power of two >= 2, by halving into h (n // 2 scratch): vertical,
    vectorised mins (a running scalar min is a chain of dependent instructions, 4x slower
    on a 64-cell tile)."""
    w = n // 2
    for k in range(w):
        u = src[k]
        v = src[k + w]
        h[k] = v if v < u else u
    w //= 2
    while w >= 1:
        for k in range(w):
            u = h[k]
            v = h[k + w]
            h[k] = v if v < u else u
        w //= 2
    return h[0]


def _box_gap_t(x, lo, hi, f, j, zero):
    """Distance of the row's feature f from tile j's box along f (0 inside)."""
    u = max(lo[f, j] - x[f], x[f] - hi[f, j])
    return max(u, zero)


def _tile_bounds_t(x, a, lo, hi, weighted, zero, lb):
    """lb (n_tiles,) = the row's lower bound to every tile: its (weighted) squared distance
    to the tile's box, in one pass vectorised over tiles."""
    # each sum starts from the first feature's term, as in _tile_scores_t
    nt = lb.shape[0]
    if weighted:
        for j in range(nt):
            u = _box_gap_t(x, lo, hi, 0, j, zero)
            s = a[0] * u * u
            for f in range(1, _F):
                u = _box_gap_t(x, lo, hi, f, j, zero)
                s += a[f] * u * u
            lb[j] = s
    else:
        for j in range(nt):
            u = _box_gap_t(x, lo, hi, 0, j, zero)
            s = u * u
            for f in range(1, _F):
                u = _box_gap_t(x, lo, hi, f, j, zero)
                s += u * u
            lb[j] = s


def _nearest_rep_t(x, a, b, rep, rep_h, nt, weighted, rd, h):
    """The tile whose representative cell is nearest the row (rd, h: scratch of a power of
    two >= n_tiles, rd's tail +inf)."""
    if weighted:
        for j in range(nt):
            v = rep[0, j]
            q = v * (a[0] * v + b[0])
            for f in range(1, _F):
                v = rep[f, j]
                q += v * (a[f] * v + b[f])
            rd[j] = q
    else:
        for j in range(nt):
            q = rep_h[j]
            for f in range(_F):
                q -= x[f] * rep[f, j]
            rd[j] = q
    # argmin: the minimum by halving (rd's tail past n_tiles holds +inf), then its position
    m = _halving_min_t(rd, h, rd.shape[0])
    t0 = 0
    while rd[t0] != m:
        t0 += 1
    return t0


def _bmu_tiles_t(
    X,
    A,
    mu,
    WB,
    HB,
    lo,
    hi,
    rep,
    rep_h,
    tcell,
    tile_n,
    cell_tile,
    cell_pos,
    w2max,
    hint,
    want_second,
    out_cell,
    out_d2,
    out_second,
):
    n = X.shape[0]
    nt = WB.shape[0]
    weighted = A.shape[0] > 0
    hinted = hint.shape[0] > 0
    n_tasks = (n + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    evals = 0
    for task in prange(n_tasks):
        x = np.empty(_F, dtype=WB.dtype)
        a = np.ones(_F, dtype=WB.dtype)
        b = np.zeros(_F, dtype=WB.dtype)
        lb = np.empty(nt, dtype=WB.dtype)
        ntp = 1
        while ntp < nt:
            ntp *= 2
        rd = np.full(max(ntp, 2), np.inf, dtype=WB.dtype)
        rh = np.empty(max(ntp, 2) // 2, dtype=WB.dtype)
        e = np.empty(_T, dtype=WB.dtype)
        h = np.empty(_T // 2, dtype=WB.dtype)
        # a zero and an infinity of the working dtype, as constants: max(u, 0) would
        # promote float32 to float64, and so would comparing float32 scores with a
        # float64 best; a zero computed at run time (WB[0, 0, 0] * 0) kept the bound
        # pass from vectorising well, 1.8x slower
        zero = _Z
        inf = _INF
        thr_cast = np.empty(1, dtype=WB.dtype)
        no_cell = tcell.shape[0] * _T
        count = 0
        for r in range(task * ROWS_PER_TASK, min(n, (task + 1) * ROWS_PER_TASK)):
            n_p = _F
            xx = zero
            amax = zero
            if weighted:
                n_p = 0
                for f in range(_F):
                    # selects, not branches: which features are missing is unpredictable
                    # (a zero weight must meet a finite value: 0 * NaN is NaN)
                    af = A[r, f]
                    present = af > 0
                    a[f] = af if present else zero
                    x[f] = X[r, f] - mu[f] if present else zero
                    n_p += present
                if n_p == 0:
                    out_cell[r] = -1
                    out_d2[r] = np.nan
                    out_second[r] = -1
                    continue
                for f in range(_F):
                    b[f] = -2 * a[f] * x[f]
                    xx += a[f] * x[f] * x[f]
                    amax = max(amax, a[f])
            else:
                for f in range(_F):
                    x[f] = X[r, f] - mu[f]
                    xx += x[f] * x[f]
                xx *= 0.5
            _tile_bounds_t(x, a, lo, hi, weighted, zero, lb)
            if hinted and hint[r] >= 0:
                t0 = cell_tile[hint[r]]
            else:
                t0 = _nearest_rep_t(x, a, b, rep, rep_h, nt, weighted, rd, rh)
            if weighted:
                mul = 1.0
                off = np.float64(xx)
                slack = PRUNE_SLACK * (off + 2.0 * np.float64(amax) * w2max)
            else:
                mul = 2.0
                off = np.float64(xx)
                slack = PRUNE_SLACK * (2.0 * off + w2max)
            e1 = inf
            e2 = inf
            c1 = -1
            c2 = -1
            thr = inf
            for step in range(nt + 1):
                # the start tile first, so the threshold is tight at once; then every
                # other tile whose bound does not rule it out
                if step == 0:
                    j = t0
                else:
                    j = step - 1
                    if lb[j] > thr or j == t0:
                        continue
                _tile_scores_t(x, a, b, WB, HB, j, weighted, e)
                count += tile_n[j]
                # most tiles scored hold no cell that beats the best: a vectorised count
                # says so without a minimum (a halving min costs more than the scores)
                ref = e2 if want_second else e1
                below = 0
                for t in range(_T):
                    below += e[t] <= ref
                if below == 0:
                    continue
                if want_second:
                    for t in range(_T):
                        dt = e[t]
                        c = tcell[j, t]
                        if dt < e1 or (dt == e1 and c < c1):
                            if c != c1:
                                e2 = e1
                                c2 = c1
                            e1 = dt
                            c1 = c
                        elif c != c1 and (dt < e2 or (dt == e2 and c < c2)):
                            e2 = dt
                            c2 = c
                else:
                    m = _halving_min_t(e, h, _T)
                    # the lowest cell number at the minimum: ties go to it, as in brute
                    # force (a vectorised integer minimum)
                    cm = no_cell
                    for t in range(_T):
                        cm = min(cm, tcell[j, t] if e[t] == m else no_cell)
                    if m < e1 or (m == e1 and cm < c1):
                        e1 = m
                        c1 = cm
                # scores to distances: d = mul * (score + off); the slack covers the
                # rounding of the expanded form (relative to the norms, not to d) and of
                # the bounds; rounded up into the working dtype, so never below the bound
                ref = e2 if want_second else e1
                if ref < inf:
                    t64 = (mul * (ref + off)) * (1 + PRUNE_SLACK) + slack
                    thr_cast[0] = t64 + abs(t64) * 1e-6
                    thr = thr_cast[0]
            jb = cell_tile[c1]
            tb = cell_pos[c1]
            exact = 0.0
            for f in range(_F):
                if a[f] > 0:
                    diff = (np.float64(X[r, f]) - mu[f]) - np.float64(WB[jb, f, tb])
                    exact += np.float64(a[f]) * diff * diff
            out_cell[r] = c1
            out_d2[r] = exact * _F / n_p if weighted else exact
            out_second[r] = c2 if want_second else -1
        evals += count
    return evals


_TILE_KERNELS: dict = {}
# The template's source, read once when this module is imported: read at the first
# compile instead, a long-running process whose package was upgraded on disk meanwhile
# would compile whatever now sits at the old line numbers.
_TILE_TEMPLATE = "\n".join(
    [
        '\n@njit(inline="always")\n' + inspect.getsource(fn)
        for fn in (_halving_min_t, _box_gap_t, _tile_bounds_t, _nearest_rep_t, _tile_scores_t)
    ]
    + ["\n" + inspect.getsource(_bmu_tiles_t)]
)


def _tile_kernel(n_features: int, tile_cells: int, dtype):
    """``bmu_tiles``' kernel compiled for a feature count, tile size and working dtype."""
    key = (int(n_features), int(tile_cells), np.dtype(dtype).name)
    kernel = _TILE_KERNELS.get(key)
    if kernel is None:
        source = "\n".join(
            [
                "import numpy as np",
                "from numba import njit, prange",
                "from som.kernels import PRUNE_SLACK, ROWS_PER_TASK",
                f"_F = {key[0]}",
                f"_T = {key[1]}",
                f"_Z = np.{key[2]}(0)",
                f"_INF = np.{key[2]}(np.inf)",
                "",
                _TILE_TEMPLATE,
            ]
        )
        namespace = {"PRUNE_SLACK": PRUNE_SLACK, "ROWS_PER_TASK": ROWS_PER_TASK}
        kernel = _TILE_KERNELS[key] = _compile_source(
            f"somcal_tiles_{key[0]}_{key[1]}_{key[2]}",
            source,
            "_bmu_tiles_t",
            namespace,
            parallel=True,
            fastmath=FAST_NAN_SAFE,
        )
    return kernel


def bmu_tiles(X, A, index, hint, want_second, out_cell, out_d2, out_second):
    """Exact best-matching cell by pruning tiles of cells; returns how many cell distances
    it computed (brute force computes n * K).

    X : (n, F) normalised features, NaN where missing (only when ``A`` is given).
    A : (n, F) per-feature weights of the distance (1/sigma^2 for chi^2, 1 for a present
        feature, 0 for a missing one), or shape (0, 0) for the plain Euclidean distance.
    index : ``TileIndex`` of the weights (``tile_index``), same dtype as X.
    hint : (n,) integer cell per row to start from (e.g. last epoch's; -1 none), or (0,).
    out_cell, out_d2, out_second : as in ``bmu_dense``; with ``A`` the squared distance is
        scaled by F / n_present, and a row without any present feature gets cell -1 and
        distance NaN.

    ``sum_f a_f * dist(x_f, [lo_f, hi_f])^2`` bounds from below a row's distance to every
    cell of a box, for any non-negative a_f, so the one test prunes the Euclidean,
    missing-feature and chi^2 metrics alike. Per row: every tile's bound, and the score of
    its representative cell, in one vectorised pass; the start tile (the hint's, else the
    one with the nearest representative) is scored first so the threshold is tight at
    once; then every tile whose bound does not exceed the current best (second-best when
    wanted) distance has its T cells scored in one vectorised pass, and only a tile whose
    minimum could change the answer is looked at cell by cell. Ties in distance go to the
    lower cell number, as in the brute-force reference.
    """
    kernel = _tile_kernel(X.shape[1], index.WB.shape[2], index.WB.dtype)
    return kernel(X, A, *index, hint, want_second, out_cell, out_d2, out_second)
