"""The self-organizing map estimator, in scikit-learn's conventions with MiniSom's names.

>>> som = SOM(75, 150, random_state=1).fit(X)        # X: (n, F) normalised colours
>>> cells = som.predict(X_survey)                      # best-matching cell, row-major

Training defaults to the Kohonen *batch* map (no learning rate: each epoch every weight
becomes the neighbourhood-weighted mean of the data, Kohonen 2013), which is what
somoclu calls "batch". ``method="online"`` is the classic sequential update with a
decaying learning rate. Neither is "mini-batch".

Why one ~1,000-line module: it is one scikit-learn estimator, and its training, inference
and quality passes share the same private chunked passes (``_chunk``, ``_bmu_chunk``,
``_iter_assign``, ``_assign``) and fitted state. Cut into mixins or free functions, those
pieces would reach into each other's private state across files, which is what the
redesign took out of ``som.distributed`` (it now uses the public hooks ``batch_sums``,
``apply_batch_sums``, ``quality_sums``, ...). The metrics (``quantization_error``,
``topographic_error``, ``distance_map``) are a few lines each over ``assign``: another
module would add nothing but a hop. The saved-map format, which has a seam of its own,
is :mod:`som.persistence`; the numba hot loops are :mod:`som.kernels`.
"""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from . import kernels, persistence
from .grid import Grid
from .persistence import FORMAT_NAME as FORMAT_NAME  # re-exported: the saved format
from .persistence import FORMAT_VERSION as FORMAT_VERSION
from .persistence import MapFormatError as MapFormatError
from .trust import DEFAULT_MAX_PERCENTILE, DistanceDistribution, default_min_features
from .trust import outside_training as _outside_training
from .vocabulary import Distance, Init, Method, Neighbourhood, Schedule, choices

#: the Gaussian neighbourhood is cut where it falls below exp(-4**2/2) ~ 3e-4 (scipy's default)
GAUSSIAN_TRUNCATE = 4.0
#: row tasks (``kernels.ROWS_PER_TASK`` rows each) a thread takes at a time in the pruned
#: search (numba dynamic scheduling; 0 would split the rows into equal static halves)
PRUNED_TASKS_PER_GRAB = 4
ProgressCallback = Callable[[float, str], None]


def _search_tiles(X, A, index, hint, want_second, cell, d2, second):
    """``kernels.bmu_tiles`` with dynamic scheduling: rows cost unequal work there, so a
    thread that another process slows down does not hold the other idle at the end of
    the pass."""
    chunk = numba.get_parallel_chunksize()
    numba.set_parallel_chunksize(PRUNED_TASKS_PER_GRAB)
    try:
        return kernels.bmu_tiles(X, A, index, hint, want_second, cell, d2, second)
    finally:
        numba.set_parallel_chunksize(chunk)


class SOMError(ValueError):
    """Input a map cannot use; the message says what and where."""


@dataclass
class Assignment:
    """Best-matching cells of a set of rows, and how far to trust them.

    ``percentile`` places each row's distance among the training rows' own distances
    (``SOM.training_distances_``): about uniform on 0-100 for rows like the training set,
    near 100 for rows unlike it. ``som.trust.outside_training`` turns it into a flag.
    """

    cell: np.ndarray  # (n,) int32, -1 where a row has no usable feature (skip_empty)
    distance: np.ndarray  # (n,) float32, distance to the cell's weight vector (NaN: no cell)
    second: np.ndarray | None = None  # (n,) int32 second-best cell, when asked for
    n_features: np.ndarray | None = None  # (n,) int16 usable (finite) features of each row
    percentile: np.ndarray | None = None  # (n,) float32 0-100; NaN: no cell or no record
    n_features_in: int | None = None  # features of the map (for the min_features default)

    @property
    def empty(self) -> np.ndarray:
        """Rows without any usable feature (cell -1)."""
        return np.asarray(self.cell) < 0

    @property
    def n_skipped(self) -> int:
        """How many rows got no cell because they have no usable feature."""
        return int(np.count_nonzero(self.empty))


class SOM:
    """A self-organizing map of ``n_rows`` x ``n_cols`` cells.

    Parameters
    ----------
    n_rows, n_cols : map size; cells are numbered ``row * n_cols + col``.
    lattice : "hex" (default: odd rows shifted by half a cell, six neighbours) or "rect".
    periodic : toroidal map (no edges).
    neighbourhood : "gaussian" (truncated at 4 sigma) or "bubble" (1 within sigma).
    init : "pca" (default: plane of the two leading principal components) or "random"
        (randomly drawn training rows).
    method : "batch" (Kohonen batch map, default) or "online" (sequential updates).
    n_epochs : passes over the data in ``fit`` (default 30).
    sigma_start, sigma_end : neighbourhood radius (grid units) at the first and last
        epoch; ``sigma_start`` defaults to half the shorter side of the map, ``sigma_end``
        to 0.55.
    schedule : "exponential" (default: geometric decay of sigma) or "linear".

    The defaults (hex, pca, 30 epochs, sigma -> 0.55 exponentially) were chosen by
    validation on real zCOSMOS-bright galaxies and the cosmoDC2 mock (``bench/validate.py``,
    30x30 maps), judging both the cell-median redshift and the order of the map on held-out
    galaxies: a smaller ``sigma_end`` makes cells a little purer but the map stops being
    ordered (at 0.3 half the galaxies have best and second-best cells that are not
    neighbours: a k-means, not a map), a larger one blurs the cells. Where the cell median
    is not precise enough, use ``som.calibration.fuzzy_redshift`` rather than shrinking
    ``sigma_end``. A hexagonal lattice keeps the same order at a smaller ``sigma_end``
    than a rectangular one. Map size: aim for several (>= 5) training redshifts per cell
    when the cells are to be labelled, e.g. 30x30 for ~5,000 spectra; the 75x150 default
    suits photometric samples of 10^5 and more.
    learning_rate_start, learning_rate_end : online training only.
    distance : "euclidean", or "chi2" to weight each feature by 1/error^2 (DES SOMPZ).
    features : optional ``som.photometry.ColourFeatures``; when given, ``fit``/``predict``
        accept catalogues (DataFrame, astropy Table) and turn them into features, and the
        feature definition and normaliser are saved with the map.
    random_state : seed (or numpy Generator) driving every random step.
    dtype : float32 (default) or float64 for distance computations.
    chunk_size : rows per chunk in every pass, so memory does not grow with the input.
    n_jobs : threads for the kernels (default: numba's default, all cores).

    Attributes (after fitting)
    --------------------------
    weights_ : (n_cells, F) weight vectors. quality_ : dict of quality figures.
    training_distances_ : ``som.trust.DistanceDistribution`` of the training rows' own
        distances to their cells (saved with the map); None for a map saved before somcal
        recorded it, and then ``assign`` gives NaN percentiles.
    n_skipped_ : training rows left out because they have no usable feature (skip_empty).
    """

    #: best-cell search: "auto" (pruned on maps of at least ``kernels.PRUNE_MIN_CELLS``
    #: cells, brute force below), "pruned" or "brute". Both are exact; benches and tests
    #: set it on an instance to compare the two.
    _search = "auto"

    def __init__(
        self,
        n_rows: int = 75,
        n_cols: int = 150,
        *,
        lattice: str = "hex",
        periodic: bool = False,
        neighbourhood: str = "gaussian",
        init: str = "pca",
        method: str = "batch",
        n_epochs: int = 30,
        sigma_start: float | None = None,
        sigma_end: float = 0.55,
        schedule: str = "exponential",
        learning_rate_start: float = 0.5,
        learning_rate_end: float = 0.01,
        distance: str = "euclidean",
        features: Any = None,
        random_state: int | np.random.Generator | None = None,
        dtype: Any = np.float32,
        chunk_size: int = 262_144,
        n_jobs: int | None = None,
    ) -> None:
        self.n_rows = n_rows
        self.n_cols = n_cols
        self.lattice = lattice
        self.periodic = periodic
        self.neighbourhood = neighbourhood
        self.init = init
        self.method = method
        self.n_epochs = n_epochs
        self.sigma_start = sigma_start
        self.sigma_end = sigma_end
        self.schedule = schedule
        self.learning_rate_start = learning_rate_start
        self.learning_rate_end = learning_rate_end
        self.distance = distance
        self.features = features
        self.random_state = random_state
        self.dtype = dtype
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ settings
    def _check_params(self) -> None:
        allowed_values = {
            "neighbourhood": choices(Neighbourhood),
            "init": choices(Init),
            "method": choices(Method),
            "schedule": choices(Schedule),
            "distance": choices(Distance),
        }
        for name, allowed in allowed_values.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if int(self.n_epochs) < 1:
            raise ValueError(f"n_epochs must be at least 1, got {self.n_epochs}")
        if self.sigma_end <= 0 or (self.sigma_start is not None and self.sigma_start <= 0):
            raise ValueError("sigma_start and sigma_end must be positive")
        if int(self.chunk_size) < 1:
            raise ValueError("chunk_size must be positive")

    @property
    def grid(self) -> Grid:
        return Grid(self.n_rows, self.n_cols, self.lattice, self.periodic)

    @property
    def n_cells(self) -> int:
        return int(self.n_rows) * int(self.n_cols)

    @classmethod
    def default_params(cls) -> dict:
        """The hyper-parameters' defaults, from the signature: what the service and the CLI
        train with unless told otherwise, so no copy of them can drift."""
        return {
            name: p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    def get_params(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "n_rows",
                "n_cols",
                "lattice",
                "periodic",
                "neighbourhood",
                "init",
                "method",
                "n_epochs",
                "sigma_start",
                "sigma_end",
                "schedule",
                "learning_rate_start",
                "learning_rate_end",
                "distance",
                "random_state",
                "dtype",
                "chunk_size",
                "n_jobs",
            )
        }

    def _sigma0(self) -> float:
        if self.sigma_start is not None:
            return float(self.sigma_start)
        return max(min(self.n_rows, self.n_cols) / 2.0, float(self.sigma_end))

    def sigma_schedule(self, n_epochs: int | None = None) -> np.ndarray:
        """Neighbourhood radius of each batch epoch, from sigma_start to sigma_end."""
        n = int(n_epochs or self.n_epochs)
        s0, s1 = self._sigma0(), float(self.sigma_end)
        if n == 1:
            return np.array([s1])
        frac = np.arange(n) / (n - 1)
        if self.schedule == "linear":
            return s0 + (s1 - s0) * frac
        return s0 * (s1 / s0) ** frac

    def _rng(self) -> np.random.Generator:
        if isinstance(self.random_state, np.random.Generator):
            return self.random_state
        return np.random.default_rng(self.random_state)

    # ------------------------------------------------------------------ input
    def _features_from(self, X, errors=None, *, fitting: bool = False):
        """Turn the caller's input into (X, errors) arrays of the working dtype."""
        if self.features is not None and not isinstance(X, np.ndarray):
            if fitting and not getattr(self.features, "feature_names_", None):
                self.features.fit(X)
            X, table_errors = self.features.transform(X)
            if errors is None and self.distance == "chi2":
                errors = table_errors
        X = np.asarray(X)
        if X.dtype.kind not in "fiu":
            raise SOMError(f"features must be numeric, got dtype {X.dtype}")
        if X.ndim != 2:
            raise SOMError(f"features must be a 2-D array (rows x features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise SOMError("no rows: the input is empty")
        if X.shape[1] == 0:
            raise SOMError("no features: the input has zero columns")
        n_expected = getattr(self, "n_features_in_", None)
        if n_expected is not None and X.shape[1] != n_expected:
            raise SOMError(
                f"the map was trained on {n_expected} features, the input has {X.shape[1]}"
            )
        if errors is not None:
            errors = np.asarray(errors, dtype=np.float64)
            if errors.shape != X.shape:
                raise SOMError(f"errors have shape {errors.shape}, features {X.shape}")
        elif self.distance == "chi2":
            raise SOMError("distance='chi2' needs per-feature errors")
        return X, errors

    def _chunk(self, X, errors, start: int, stop: int, allow_empty: bool = False):
        """One chunk as contiguous working-dtype arrays, validated, with its inverse variances.

        A row without any usable feature is an error, unless ``allow_empty`` (then the
        masked kernel gives it cell -1).
        """
        dtype = np.dtype(self.dtype)
        xc = np.ascontiguousarray(X[start:stop], dtype=dtype)
        bad = np.isinf(xc)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise SOMError(f"row {start + r}, feature {c}: infinite value")
        present = np.isfinite(xc)
        has_missing = not present.all()
        if has_missing:
            empty = ~present.any(axis=1)
            if empty.any() and not allow_empty:
                raise SOMError(
                    f"row {start + int(np.flatnonzero(empty)[0])}: no usable feature "
                    f"({int(empty.sum())} such rows in rows {start}..{stop - 1})"
                )
        inv_var = None
        if errors is not None and self.distance == "chi2":
            ec = errors[start:stop]
            bad = present & ~(np.isfinite(ec) & (ec > 0))
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise SOMError(
                    f"row {start + r}, feature {c}: error must be positive and finite "
                    f"where the feature is present, got {ec[r, c]!r}"
                )
            with np.errstate(divide="ignore", invalid="ignore"):
                inv_var = np.where(present, 1.0 / ec**2, 0.0).astype(dtype)
        return xc, inv_var, has_missing

    # ------------------------------------------------------------------ core passes
    def _prepared_weights(self, weights: np.ndarray):
        """[WT, half_norm2, index, weights]: what the kernels need of the weights, computed
        once per pass; ``index`` is the pruned search's tile structure, None for brute
        force (a pass may swap it, ``_bmu_chunk``).

        Kept for the last weights seen (keyed by a hash of their bytes, so weights changed
        in place are never served stale): repeated ``predict`` calls on chunks or Dask
        partitions otherwise rebuild the tile index every call, serially."""
        dtype = np.dtype(self.dtype)
        weights = np.ascontiguousarray(weights)
        key = (
            hashlib.blake2b(weights.view(np.uint8), digest_size=16).digest(),
            weights.shape,
            weights.dtype.str,
            dtype.str,
            self._search,
            int(self.n_rows),
            int(self.n_cols),
        )
        cached = self.__dict__.get("_prepared_cache")
        if cached is not None and cached[0] == key:
            # a fresh list: a pass may drop the index for itself (pruning did not pay)
            return list(cached[1])
        w = weights.astype(dtype)
        WT = np.ascontiguousarray(w.T)
        half_norm2 = (0.5 * np.einsum("kf,kf->k", weights, weights)).astype(dtype)
        index = None
        if self._search == "pruned" or (
            self._search == "auto" and self.n_cells >= kernels.PRUNE_MIN_CELLS
        ):
            index = kernels.tile_index(weights, int(self.n_rows), int(self.n_cols), dtype=dtype)
        self._prepared_cache = (key, (WT, half_norm2, index, weights))
        # a list: the first chunk may find that pruning does not pay and drop the index
        return [WT, half_norm2, index, weights]

    def _bmu_chunk(self, xc, inv_var, has_missing, prep, want_second, out=None, hint=None):
        """Best cells of one chunk, written into ``out = (cell, d2, second)`` when given.

        ``hint``: a cell per row to start the pruned search from (last epoch's cells; -1
        for none), or None."""
        n = xc.shape[0]
        if out is None:
            out = (np.empty(n, np.int64), np.empty(n, np.float64), np.empty(n, np.int64))
        out = cell, d2, second = out
        WT, half_norm2, index, weights = prep
        if index is not None:
            if inv_var is None and not has_missing:
                A = np.zeros((0, 0), xc.dtype)
            elif inv_var is None:
                A = np.isfinite(xc).astype(xc.dtype)
            else:
                A = inv_var
            # int32 like training's hints: one compiled signature, not two
            h = np.zeros(0, np.int32) if hint is None else hint
            # an untrained map (random weights, first epoch) has tiles of the map too
            # spread out to prune; a sample of rows says so, groups of cells by weight
            # are tried next, and brute force, as exact, does the rest if neither prunes
            m = n if self._search == "pruned" else min(n, kernels.PRUNE_SAMPLE_ROWS)
            evals = _search_tiles(
                xc[:m], A[:m], index, h[:m], want_second, cell[:m], d2[:m], second[:m]
            )
            counts = self.__dict__.setdefault("_search_counts", [0, 0])
            counts[0] += int(evals)
            counts[1] += m * self.n_cells
            if m == n:
                return cell, d2, second
            if h.size and m < n:
                # last epoch's cells are a good start only while the map moves little: just
                # after the widest smoothing of a random start they are worse than the
                # nearest representative (measured: 14.5% of the distances against 3.2%,
                # 75x150 map, second epoch); the sample, searched without them, says which
                scratch = (np.empty(m, np.int64), np.empty(m), np.empty(m, np.int64))
                fresh = _search_tiles(xc[:m], A[:m], index, h[:0], want_second, *scratch)
                if fresh < evals:
                    h, evals = h[:0], fresh
            if evals > kernels.PRUNE_MAX_FRACTION * m * self.n_cells:
                # blocks of the map prune nothing while the map is not yet ordered (a
                # random start: 10^6 mock rows on 75x150, 96% of distances computed);
                # groups of cells near in weight space do (10%): the sample says which
                grouped = kernels.tile_index(
                    weights, int(self.n_rows), int(self.n_cols), dtype=xc.dtype, grouping="weights"
                )
                regrouped = _search_tiles(
                    xc[:m], A[:m], grouped, h[:m], want_second, cell[:m], d2[:m], second[:m]
                )
                counts[0] += int(regrouped)
                counts[1] += m * self.n_cells
                if regrouped < evals:
                    index = prep[2] = grouped
                    evals = regrouped
            if evals > kernels.PRUNE_MAX_FRACTION * m * self.n_cells:
                prep[2] = None
            else:
                evals = _search_tiles(
                    xc[m:],
                    A[m:],
                    index,
                    h[m:] if h.size else h,
                    want_second,
                    cell[m:],
                    d2[m:],
                    second[m:],
                )
                counts[0] += int(evals)
                counts[1] += (n - m) * self.n_cells
                return cell, d2, second
            xc, cell, d2, second = xc[m:], cell[m:], d2[m:], second[m:]
            if inv_var is not None:
                inv_var = inv_var[m:]
        if inv_var is None and not has_missing:
            kernels.bmu_dense(xc, WT, half_norm2, want_second, cell, d2, second)
        else:
            iv = inv_var if inv_var is not None else np.zeros((0, 0), xc.dtype)
            kernels.bmu_masked(xc, iv, WT, want_second, cell, d2, second)
        return out

    def _iter_assign(self, X, errors, weights, want_second, skip_empty=False, hints=None):
        prep = self._prepared_weights(weights)
        n = X.shape[0]
        step = int(self.chunk_size)
        for start in range(0, n, step):
            stop = min(n, start + step)
            xc, inv_var, has_missing = self._chunk(X, errors, start, stop, skip_empty)
            hint = None if hints is None else hints[start:stop]
            cell, d2, second = self._bmu_chunk(
                xc, inv_var, has_missing, prep, want_second, hint=hint
            )
            if hints is not None:
                hints[start:stop] = cell
            yield start, stop, xc, cell, d2, second

    def _threads(self):
        """Context manager-like helper: set numba threads for the duration of a call."""
        return _NumbaThreads(self.n_jobs)

    # ------------------------------------------------------------------ initialisation
    def _initial_weights(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, F = X.shape
        sample = X[rng.choice(n, size=min(n, 100_000), replace=False)] if n > 100_000 else X
        sample = np.asarray(sample, dtype=np.float64)
        # rows without any feature (skip_empty) do not take part; without skip_empty they
        # are refused by the first epoch anyway
        usable = np.isfinite(sample).any(axis=1)
        if not usable.all():
            sample = sample[usable]
        if sample.shape[0] == 0:
            raise SOMError("no row has a usable feature")
        mean = np.nanmean(sample, axis=0)
        if np.isnan(mean).any():
            raise SOMError(
                f"feature {int(np.flatnonzero(np.isnan(mean))[0])} is missing in every row"
            )
        filled = np.where(np.isfinite(sample), sample, mean)
        K = self.n_cells
        if self.init == "random" or F < 2 or filled.shape[0] < 3:
            rows = rng.choice(filled.shape[0], size=K, replace=filled.shape[0] < K)
            return filled[rows].copy()
        centred = filled - mean
        # sign-fixed SVD so the same data give the same map on every platform
        _, svals, vt = np.linalg.svd(centred, full_matrices=False)
        signs = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
        vt = vt * signs[:, None]
        scale = svals / np.sqrt(max(filled.shape[0] - 1, 1))
        xy = self.grid.coordinates()
        # span +-2 standard deviations along the two leading components, the longer
        # map side along the first component
        u = (xy - xy.mean(axis=0)) / np.maximum(np.ptp(xy, axis=0), 1e-12)
        if self.n_rows > self.n_cols:
            u = u[:, ::-1]
        return mean + 4.0 * (u[:, :1] * scale[0] * vt[0] + u[:, 1:2] * scale[1] * vt[1])

    # ------------------------------------------------------------------ training
    def _neighbourhood_table(self, sigma: float) -> tuple[np.ndarray, int, int]:
        dist = self._distance_table
        if self.neighbourhood == "gaussian":
            h = np.exp(-(dist**2) / (2.0 * sigma**2))
            reach = GAUSSIAN_TRUNCATE * sigma
        else:
            h = np.ones_like(dist)
            reach = sigma
        h[dist > reach + 1e-9] = 0.0
        win_c = int(np.ceil(reach)) + 1
        win_r = int(np.ceil(reach / self.grid.row_spacing)) + 1
        return h, win_r, win_c

    def _separable_factors(self, h):
        """(gy, gx, cw) of ``kernels.smooth_separable`` from a rectangular lattice's
        neighbourhood table h (``_neighbourhood_table``): h = gy(dr) gx(dc) inside a disc."""
        R1, C1 = self.n_rows - 1, self.n_cols - 1
        h0 = h[0]
        gy = np.ascontiguousarray(h0[:, C1])
        # on a torus |dc| beyond half the row is the same column seen the other way round
        reach_c = self.n_cols // 2 if self.periodic else C1
        gx = np.zeros(self.n_cols)
        gx[: reach_c + 1] = h0[R1, C1 : C1 + reach_c + 1]
        inside = h0[:, C1 : C1 + reach_c + 1] > 0
        cw = np.where(inside.any(axis=1), reach_c - np.argmax(inside[:, ::-1], axis=1), -1)
        return gy, gx, cw.astype(np.int64)

    def _hex_separable_factors(self, sigma: float):
        """(gy, gxi, gxh, cwi, cwh) of ``kernels.smooth_separable_hex`` at radius sigma:
        the same neighbourhood and disc as ``_neighbourhood_table``, factored into a
        row-offset part and a column-distance part (whole and half cells)."""
        grid = self.grid
        R1, C = self.n_rows - 1, self.n_cols
        dy = np.arange(-R1, R1 + 1) * grid.row_spacing
        if self.periodic:
            dy = dy - grid.height * np.round(dy / grid.height)
        # whole-cell and half-cell column distances a window can reach before it would
        # count a column twice (torus) or leave the map
        ci = np.arange(C // 2 + 1 if self.periodic else C, dtype=float)
        ch = np.arange((C - 1) // 2 + 1 if self.periodic else C, dtype=float) + 0.5
        if self.neighbourhood == "gaussian":
            reach = GAUSSIAN_TRUNCATE * sigma
            gy = np.exp(-(dy**2) / (2.0 * sigma**2))
            gxi = np.exp(-(ci**2) / (2.0 * sigma**2))
            gxh = np.exp(-(ch**2) / (2.0 * sigma**2))
        else:
            reach = sigma
            gy, gxi, gxh = np.ones_like(dy), np.ones_like(ci), np.ones_like(ch)

        def widths(dx):
            inside = np.hypot(dx[None, :], dy[:, None]) <= reach + 1e-9
            return np.where(
                inside.any(axis=1), inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1), -1
            )

        pad = np.zeros(C)
        gxi_full, gxh_full = pad.copy(), pad.copy()
        gxi_full[: ci.size], gxh_full[: ch.size] = gxi, gxh
        return gy, gxi_full, gxh_full, widths(ci).astype(np.int64), widths(ch).astype(np.int64)

    def batch_sums(self, X, errors=None, sample_weight=None, *, skip_empty: bool = False):
        """Per-cell sums of one batch epoch over ``X`` with the current weights.

        Returns ``(S, N, sq_err)``: S (n_cells, F) weighted feature sums per best cell,
        N (n_cells, F) weighted counts per feature, and the summed squared quantization
        distance. Epoch sums of separate chunks or partitions simply add up, which is
        what out-of-core and distributed training use. With ``skip_empty`` rows without
        any usable feature add nothing instead of raising.
        """
        return self._batch_sums(X, errors, sample_weight, skip_empty)

    def _batch_sums(self, X, errors, sample_weight, skip_empty, hints=None):
        """``batch_sums``; ``hints`` (n,) int32, when given, holds each row's cell of the
        previous epoch (-1: none), starts the pruned search there and receives this
        epoch's cells."""
        self._check_fitted()
        X, errors = self._features_from(X, errors)
        sw = self._sample_weight(sample_weight, X.shape[0])
        F = X.shape[1]
        S = np.zeros((self.n_cells, F))
        N = np.zeros((self.n_cells, F))
        sq = 0.0
        with self._threads():
            for start, stop, xc, cell, d2, _ in self._iter_assign(
                X, errors, self.weights_, False, skip_empty, hints
            ):
                kernels.accumulate(xc, cell, sw[start:stop] if sw.size else sw, S, N)
                sq += float(np.nansum(d2))
        return S, N, sq

    def apply_batch_sums(self, S: np.ndarray, N: np.ndarray, sigma: float) -> SOM:
        """Batch update: each weight becomes the neighbourhood-weighted mean of the sums.

        ``S`` and ``N`` are ``batch_sums``' (n_cells, F) arrays, summed over every chunk or
        partition of the epoch (feature units times ``sample_weight``, and
        ``sample_weight`` units); ``sigma`` is the epoch's radius in grid units
        (``sigma_schedule``). Sets ``weights_`` and ``batch_den_``."""
        self._check_fitted()
        num = np.empty_like(S)
        den = np.empty_like(N)
        periodic = bool(self.periodic)
        # both lattices' neighbourhoods factor into a row part and a column part inside a
        # disc, so the O(K reach^2) direct sum (kernels.smooth) is only the tests' reference
        with self._threads():
            if self.lattice == "rect":
                gy, gx, cw = self._separable_factors(self._neighbourhood_table(float(sigma))[0])
                kernels.smooth_separable(
                    S, N, gy, gx, cw, self.n_rows, self.n_cols, periodic, num, den
                )
            else:
                factors = self._hex_separable_factors(float(sigma))
                kernels.smooth_separable_hex(
                    S, N, *factors, self.n_rows, self.n_cols, periodic, num, den
                )
        # a cell no data reaches keeps its weight rather than collapsing to zero
        with np.errstate(invalid="ignore", divide="ignore"):
            self.weights_ = np.where(den > 0, num / den, self.weights_)
        # each cell's summed pull, for the leave-one-out training distances (quality_sums)
        self._batch_den = den.mean(axis=1)
        return self

    @staticmethod
    def _sample_weight(sample_weight, n):
        if sample_weight is None:
            return np.zeros(0)
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != (n,):
            raise SOMError(f"sample_weight has shape {sw.shape}, expected ({n},)")
        bad = ~np.isfinite(sw) | (sw < 0)
        if bad.any():
            raise SOMError(
                f"row {int(np.flatnonzero(bad)[0])}: sample weight must be finite and non-negative"
            )
        return sw

    def initialize(
        self, n_rows: int, take: Callable[[np.ndarray], np.ndarray], *, sample_size: int = 100_000
    ) -> SOM:
        """Start the map from data that is not in memory at once (distributed training).

        Draws ``sample_size`` distinct row numbers out of ``n_rows`` with the map's
        generator (all rows when there are no more), calls ``take(rows)`` with those row
        numbers in ascending order, which must return those rows' features
        (len(rows), F) in that order, and initialises the weights from them. With the
        default 100,000 the draw is exactly the one ``fit`` makes, so the starting
        weights equal ``fit``'s on the same rows with the same ``random_state``. Follow
        with ``batch_sums`` / ``apply_batch_sums`` / ``record_epoch`` per epoch and
        ``quality_sums`` / ``set_quality``, as ``fit_chunks`` does in one process.
        """
        self._check_params()
        n_rows, sample_size = int(n_rows), int(sample_size)
        if n_rows < 1 or sample_size < 1:
            raise SOMError("initialize needs a positive number of rows and sample size")
        if hasattr(self, "n_features_in_"):
            del self.n_features_in_
        rng = self._rng()
        drawn = (
            rng.choice(n_rows, size=sample_size, replace=False)
            if n_rows > sample_size
            else np.arange(n_rows)
        )
        order = np.argsort(drawn, kind="stable")
        got = np.asarray(take(drawn[order]))
        if got.ndim != 2 or got.shape[0] != drawn.size:
            raise SOMError(f"take() returned shape {got.shape} for {drawn.size} rows")
        sample = np.empty_like(got)
        sample[order] = got
        self._start(sample, rng)
        return self

    def _start(self, X, rng):
        self._check_params()
        self.n_features_in_ = X.shape[1]
        self._distance_table = self.grid.offset_distance_table()
        self.weights_ = self._initial_weights(X, rng)
        self.n_epochs_done_ = 0
        self.training_ = {"epochs": [], "started": time.time()}
        self.training_distances_ = None
        self.n_skipped_ = 0
        self._batch_den = None

    def fit(
        self,
        X,
        errors=None,
        sample_weight=None,
        *,
        n_epochs: int | None = None,
        progress: ProgressCallback | None = None,
        skip_empty: bool = False,
    ) -> SOM:
        """Train the map from scratch on ``X`` (n, F) (or a catalogue, with ``features``).

        ``errors`` (n, F) are used by the chi2 distance; ``sample_weight`` (n,) weights
        each row's pull on the map. ``progress(fraction, message)`` is called after every
        epoch. ``X`` may be a memory-mapped array larger than memory: it is read in
        chunks of ``chunk_size`` rows. A row without any usable feature is an error naming
        it, unless ``skip_empty``: then it is left out and counted in ``n_skipped_``.

        At the end the training rows' own distances to their cells are recorded in
        ``training_distances_`` (see ``som.trust``), from which ``assign`` reports each
        new row's ``percentile``.
        """
        self._check_params()
        if hasattr(self, "n_features_in_"):
            del self.n_features_in_
        X, errors = self._features_from(X, errors, fitting=True)
        rng = self._rng()
        self._start(X, rng)
        n_epochs = int(n_epochs or self.n_epochs)
        sigmas = self.sigma_schedule(n_epochs)
        if self.method == "batch":
            # each epoch's search starts from the row's cell of the epoch before
            hints = np.full(X.shape[0], -1, np.int32)
            for e, sigma in enumerate(sigmas):
                S, N, sq = self._batch_sums(X, errors, sample_weight, skip_empty, hints)
                self.apply_batch_sums(S, N, sigma)
                self._record_epoch(sigma, sq, X.shape[0], progress, e + 1, n_epochs)
        else:
            self._fit_online(X, errors, rng, n_epochs, progress, skip_empty)
        self._finish([(X, errors, sample_weight)], skip_empty)
        return self

    def fit_chunks(
        self,
        chunks: Callable[[], Iterable],
        *,
        n_epochs: int | None = None,
        progress: ProgressCallback | None = None,
        skip_empty: bool = False,
    ) -> SOM:
        """Batch-train on data that never sits in memory at once.

        ``chunks()`` must return a fresh iterable of ``X`` arrays (or ``(X, errors,
        sample_weight)`` tuples) on every call; it is called once for initialisation
        (only the first chunk is used), once per epoch and once more at the end to measure
        the map (``quality_``, ``training_distances_``). Each epoch sums the chunks'
        ``batch_sums``, so the result equals ``fit`` on the concatenated data.
        ``skip_empty`` as in ``fit``.
        """
        self._check_params()
        if self.method != "batch":
            raise ValueError("fit_chunks trains the batch map only")

        def parts():
            for part in chunks():
                yield part if isinstance(part, tuple) else (part, None, None)

        first = next(iter(parts()), None)
        if first is None:
            raise SOMError("no rows: the chunk source yielded nothing")
        X0, e0 = self._features_from(first[0], first[1], fitting=True)
        rng = self._rng()
        self._start(X0, rng)
        n_epochs = int(n_epochs or self.n_epochs)
        n_rows = 0
        for e, sigma in enumerate(self.sigma_schedule(n_epochs)):
            S = np.zeros((self.n_cells, self.n_features_in_))
            N = np.zeros_like(S)
            sq, n_rows = 0.0, 0
            for X, err, sw in parts():
                s, nn, q = self.batch_sums(X, err, sw, skip_empty=skip_empty)
                S += s
                N += nn
                sq += q
                n_rows += len(X)
            self.apply_batch_sums(S, N, sigma)
            self._record_epoch(sigma, sq, n_rows, progress, e + 1, n_epochs)
        self._finish(parts(), skip_empty)
        return self

    def partial_fit(
        self,
        X,
        errors=None,
        sample_weight=None,
        *,
        n_epochs: int = 1,
        sigma: float | None = None,
        progress: ProgressCallback | None = None,
        skip_empty: bool = False,
    ) -> SOM:
        """Continue training on new data (a catalogue that arrives in parts).

        An unfitted map is initialised from ``X`` and fully trained. A fitted map runs
        ``n_epochs`` batch epochs on ``X`` at the final radius ``sigma_end`` (or ``sigma``),
        which refines the weights without unfolding the map again.

        The map has now been trained on every part, so the distances of ``X`` are *added*
        to ``training_distances_`` (earlier parts keep the distances they had under the
        weights of their time; refining at the final radius moves weights little), and
        ``n_skipped_`` counts the skipped rows of every part. ``quality_`` describes ``X``.
        """
        if not hasattr(self, "weights_"):
            return self.fit(X, errors, sample_weight, progress=progress, skip_empty=skip_empty)
        if self.method != "batch":
            raise ValueError("partial_fit continues batch training only")
        X, errors = self._features_from(X, errors)
        sigma = float(sigma or self.sigma_end)
        for e in range(int(n_epochs)):
            S, N, sq = self.batch_sums(X, errors, sample_weight, skip_empty=skip_empty)
            self.apply_batch_sums(S, N, sigma)
            self._record_epoch(sigma, sq, X.shape[0], progress, e + 1, n_epochs)
        before = getattr(self, "training_distances_", None)
        skipped_before = int(getattr(self, "n_skipped_", 0) or 0)
        self._finish([(X, errors, sample_weight)], skip_empty)
        if (
            before is not None
            and before.metric == self.training_distances_.metric
            and before.n_features.size == self.training_distances_.n_features.size
        ):
            self.training_distances_ = before.merge(self.training_distances_)
        self.n_skipped_ += skipped_before
        return self

    def _fit_online(self, X, errors, rng, n_epochs, progress, skip_empty=False):
        n = X.shape[0]
        W = np.ascontiguousarray(self.weights_, dtype=np.float64)
        n_steps = n * n_epochs
        s0, s1 = self._sigma0(), float(self.sigma_end)
        for e in range(n_epochs):
            order = rng.permutation(n).astype(np.int64)
            xc, inv_var, _ = self._chunk(X, errors, 0, n, skip_empty)
            iv = inv_var if inv_var is not None else np.zeros((0, 0), xc.dtype)
            kernels.online_epoch(
                xc.astype(np.float64),
                iv.astype(np.float64),
                order,
                W,
                self._distance_table,
                self.n_rows,
                self.n_cols,
                bool(self.periodic),
                self.neighbourhood == "gaussian",
                s0,
                s1,
                float(self.learning_rate_start),
                float(self.learning_rate_end),
                e * n,
                n_steps,
            )
            sigma = s0 * (s1 / s0) ** ((e + 1) / n_epochs)
            self.weights_ = W.copy()
            self._record_epoch(sigma, float("nan"), n, progress, e + 1, n_epochs)

    def record_epoch(self, sigma: float, sq_err: float, n_rows: int) -> None:
        """Log one finished epoch in ``training_``: its radius and the rms distance
        ``sqrt(sq_err / n_rows)`` (``sq_err`` as ``batch_sums`` returns it, summed)."""
        self.n_epochs_done_ += 1
        qe = float(np.sqrt(sq_err / n_rows)) if np.isfinite(sq_err) else None
        self.training_["epochs"].append({"sigma": float(sigma), "rms_distance": qe})

    def _record_epoch(self, sigma, sq, n_rows, progress, done, total):
        self.record_epoch(sigma, sq, n_rows)
        if progress is not None:
            progress(done / total, f"epoch {done}/{total} (sigma {sigma:.2f})")

    @property
    def batch_den_(self) -> np.ndarray | None:
        """Each cell's summed neighbourhood pull (n_cells,) after the last
        ``apply_batch_sums`` (the mean over features of the smoothed counts; same units as
        ``sample_weight``); None before batch training. ``quality_sums`` takes it as ``den``."""
        return getattr(self, "_batch_den", None)

    def quality_sums(self, X, errors=None, sample_weight=None, *, skip_empty=False, den=None):
        """Quality sums of one chunk of training rows, which add up over chunks
        (``add_quality_sums``) and become ``quality_`` through ``set_quality``:
        (summed distance, rows with a cell, topographic errors, occupancy (n_cells,) int,
        ``DistanceDistribution`` of the rows' distances).

        The distances recorded are *leave-one-out* distances when the batch map's final
        per-cell sums ``den`` are known (default: those of the last ``apply_batch_sums``):
        a batch weight is the mean of the rows it holds, so a training row sits closer to
        its cell than a new row drawn like it would. Taking the row's own pull out,
        ``w_k(-i) = (num_k - w_i x_i) / (den_k - w_i)``, gives exactly
        ``|x_i - w_k(-i)| = |x_i - w_k| den_k / (den_k - w_i)``; the row may then prefer
        its second-best cell, so the distance to that caps it. Without this, rows of
        sparsely filled cells (small maps' neighbourhoods aside, a final sigma well below
        1) would make held-out rows look far more unusual than they are.
        """
        if den is None:
            den = getattr(self, "_batch_den", None)
        if den is None:  # online training: no batch sums, the plain distances
            a, loo = self._assign(X, errors, True, skip_empty, trust=False), None
        else:
            a, loo = self._assign(X, errors, True, skip_empty, False, (den, sample_weight))
        ok = a.cell >= 0
        cell = a.cell[ok]
        record = DistanceDistribution.empty(self.distance, self.n_features_in_)
        record.add(a.distance if loo is None else loo, a.n_features)
        return (
            float(a.distance[ok].sum(dtype=np.float64)),
            int(cell.size),
            self._n_topographic(cell, a.second[ok]),
            np.bincount(cell, minlength=self.n_cells),
            record,
        )

    @staticmethod
    def add_quality_sums(*parts):
        """Add ``quality_sums`` results, in the order given."""
        d, n, t, occ, rec = parts[0]
        for d2, n2, t2, occ2, rec2 in parts[1:]:
            d, n, t, occ, rec = d + d2, n + n2, t + t2, occ + occ2, rec.merge(rec2)
        return d, n, t, occ, rec

    def set_quality(self, dist_sum, n, n_topo, occupancy, record) -> None:
        """``quality_``, ``training_distances_`` and ``n_skipped_`` from summed measures."""
        self.training_distances_ = record
        self.n_skipped_ = record.n_skipped
        self.quality_ = {
            "n_rows_trained": int(n),
            "quantization_error": float(dist_sum / n) if n else float("nan"),
            "topographic_error": float(n_topo / n) if n and self.n_cells > 1 else 0.0,
            "occupied_cells": int(np.count_nonzero(occupancy)),
            "n_rows_skipped": int(record.n_skipped),
        }

    def _finish(self, parts, skip_empty=False):
        """Quality figures and distance record of the trained map on its training data.

        ``parts``: iterable of (X, errors, sample_weight) chunks of the training data.
        """
        total = None
        for X, errors, sample_weight in parts:
            m = self.quality_sums(X, errors, sample_weight, skip_empty=skip_empty)
            total = m if total is None else self.add_quality_sums(total, m)
        self.set_quality(*total)

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise RuntimeError("this SOM is not fitted yet: call fit() first")

    def assign(
        self,
        X,
        errors=None,
        *,
        return_second: bool = False,
        skip_empty: bool = False,
        allow_empty: bool = False,
    ) -> Assignment:
        """Best-matching cell and distance of every row (chunked, parallel), with trust.

        With ``skip_empty`` (or its older name ``allow_empty``) a row with no usable feature
        gets cell -1 and distance NaN instead of raising (``Assignment.n_skipped`` counts
        them); with ``return_second`` the second-best cell is found too. Every row also gets
        ``n_features`` (its usable features) and ``percentile`` (0-100, where its distance
        lies among the training rows' own, ``training_distances_``; NaN for a row without a
        cell or a map saved without that record). See ``outside_training``.
        """
        return self._assign(X, errors, return_second, skip_empty or allow_empty, trust=True)

    def _assign(self, X, errors, return_second, skip_empty, trust, loo=None):
        """``assign``; with ``loo = (den, sample_weight)`` also the leave-one-out distances
        (see ``quality_sums``), returned as ``(Assignment, distances)``."""
        self._check_fitted()
        X, errors = self._features_from(X, errors)
        n, F = X.shape
        if loo is not None:
            den, sw = loo
            sw = self._sample_weight(sw, n)
            loo_dist = np.empty(n, np.float64)
        # int32 cells and float32 distances: at 10^9 rows the outputs alone would
        # otherwise outweigh a float32 input
        cell = np.empty(n, np.int32)
        dist = np.empty(n, np.float32)
        second = np.empty(n, np.int32) if return_second else None
        n_feat = np.empty(n, np.int16 if F < 2**15 else np.int32)
        record = getattr(self, "training_distances_", None) if trust else None
        pct = np.empty(n, np.float32) if trust else None
        step = int(self.chunk_size)
        unused_second = None if return_second else np.empty(min(n, step), np.int32)
        prep = self._prepared_weights(self.weights_)
        with self._threads():
            for start in range(0, n, step):
                stop = min(n, start + step)
                xc, inv_var, has_missing = self._chunk(X, errors, start, stop, skip_empty)
                out_second = second[start:stop] if return_second else unused_second[: stop - start]
                self._bmu_chunk(
                    xc,
                    inv_var,
                    has_missing,
                    prep,
                    return_second,
                    out=(cell[start:stop], dist[start:stop], out_second),
                )
                np.sqrt(dist[start:stop], out=dist[start:stop])
                if has_missing:
                    n_feat[start:stop] = np.count_nonzero(np.isfinite(xc), axis=1)
                else:
                    n_feat[start:stop] = F
                if pct is not None:
                    pct[start:stop] = (
                        np.nan if record is None else record.percentile(dist[start:stop])
                    )
                if loo is not None:
                    loo_dist[start:stop] = self._loo_distance(
                        xc,
                        inv_var,
                        cell[start:stop],
                        dist[start:stop],
                        out_second,
                        den,
                        sw[start:stop] if sw.size else 1.0,
                    )
        a = Assignment(cell, dist, second, n_feat, pct, int(F))
        return a if loo is None else (a, loo_dist)

    def _row_distance(self, xc, inv_var, cells):
        """Distance of each row of a chunk to the given cells, as the kernels measure it."""
        W = self.weights_[np.maximum(cells, 0)]
        diff2 = (xc.astype(np.float64) - W) ** 2
        present = np.isfinite(diff2)
        if inv_var is not None:
            diff2 = diff2 * inv_var
        n_p = present.sum(axis=1)
        d2 = np.where(present, diff2, 0.0).sum(axis=1) * xc.shape[1] / np.maximum(n_p, 1)
        return np.where((cells >= 0) & (n_p > 0), np.sqrt(d2), np.nan)

    def _loo_distance(self, xc, inv_var, cell, dist, second, den, w):
        """Leave-one-out distances of training rows to their cells (see ``quality_sums``)."""
        den_k = den[np.maximum(cell, 0)]
        rest = den_k - w
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(rest > 1e-9 * den_k, den_k / rest, np.inf)
            d = dist.astype(np.float64) * factor  # 0 x inf: NaN, settled below
        has_second = second >= 0
        if has_second.any():
            d2nd = self._row_distance(xc, inv_var, second)
            d = np.where(has_second, np.fmin(d, d2nd), d)
        # a lone row on a one-cell map: nothing better to compare with than its own distance
        return np.where(np.isfinite(d), d, dist)

    def predict(self, X, errors=None, *, skip_empty: bool = False) -> np.ndarray:
        """Best-matching cell (row-major index) of every row.

        With ``skip_empty`` rows with no usable feature get cell -1 instead of raising;
        ``(cells < 0).sum()`` (or ``assign(...).n_skipped``) says how many.
        """
        return self._assign(X, errors, False, skip_empty, trust=False).cell

    def outside_training(
        self,
        assignment_or_X,
        errors=None,
        *,
        max_percentile: float | None = DEFAULT_MAX_PERCENTILE,
        min_features: int | None = None,
    ) -> np.ndarray:
        """True for the rows this map should not be trusted on (see ``som.trust``).

        ``assignment_or_X``: an ``Assignment`` from this map, or rows to assign (rows
        without any feature are then flagged, not refused). A row is flagged when it has no
        cell, fewer than ``min_features`` usable features (default: half the map's
        features, at least 2, ``som.trust.default_min_features``), or a distance beyond
        ``max_percentile`` (default 99.5) of the training rows' own distances: rows drawn
        like the training set are flagged 0.5% of the time, unfamiliar ones far more.
        """
        self._check_fitted()
        if max_percentile is not None and getattr(self, "training_distances_", None) is None:
            raise ValueError(
                "this map has no record of its training distances (saved by an older somcal "
                "or never measured): refit it, or pass max_percentile=None to test only the "
                "feature count"
            )
        a = assignment_or_X
        if not isinstance(a, Assignment):
            a = self.assign(a, errors, skip_empty=True)
        if min_features is None:
            min_features = default_min_features(self.n_features_in_)
        return _outside_training(a, max_percentile=max_percentile, min_features=min_features)

    def winner(self, x) -> tuple[int, int]:
        """(row, col) of the best-matching cell of one sample, as MiniSom returns it."""
        cell = int(self.predict(np.asarray(x, dtype=float).reshape(1, -1))[0])
        return divmod(cell, int(self.n_cols))

    def transform(self, X, errors=None) -> np.ndarray:
        """(n, 2) array of [best cell, distance to it]; never the n x cells distance matrix."""
        a = self.assign(X, errors)
        return np.column_stack([a.cell, a.distance])

    def quantization_error(self, X, errors=None) -> float:
        """Mean distance between each row and its best cell's weight vector (chunked)."""
        return float(np.mean(self.assign(X, errors).distance))

    def _topographic(self, best, second) -> float:
        if self.n_cells == 1:
            return 0.0
        d = self.grid.distance(best, second)
        return float(np.mean(d > 1.0 + 1e-6))

    def _n_topographic(self, best, second) -> int:
        """Rows whose best and second-best cells are not grid neighbours."""
        if self.n_cells == 1 or len(best) == 0:
            return 0
        return int(np.count_nonzero(self.grid.distance(best, second) > 1.0 + 1e-6))

    def topographic_error(self, X, errors=None) -> float:
        """Fraction of rows whose best and second-best cells are not grid neighbours."""
        a = self.assign(X, errors, return_second=True)
        return self._topographic(a.cell, a.second)

    def occupation(self, X, errors=None, sample_weight=None) -> np.ndarray:
        """(n_rows, n_cols) number (or summed weight) of rows per cell."""
        cells = self.predict(X, errors)
        w = None if sample_weight is None else self._sample_weight(sample_weight, cells.size)
        counts = np.bincount(cells, weights=w, minlength=self.n_cells)
        return counts.reshape(self.n_rows, self.n_cols)

    activation_response = occupation  # MiniSom's name

    def distance_map(self) -> np.ndarray:
        """U-matrix: (n_rows, n_cols) mean feature-space distance to direct neighbours."""
        self._check_fitted()
        i, j = self.grid.neighbour_pairs(1.0)
        d = np.linalg.norm(self.weights_[i] - self.weights_[j], axis=1)
        total = np.bincount(i, weights=d, minlength=self.n_cells)
        count = np.bincount(i, minlength=self.n_cells)
        with np.errstate(invalid="ignore"):
            return (total / count).reshape(self.n_rows, self.n_cols)

    def neighbours(self, cell: int) -> np.ndarray:
        """Direct neighbours of a cell (grid distance 1), honouring the wrap."""
        return self.grid.neighbours(int(cell))

    def get_weights(self) -> np.ndarray:
        """Weights as (n_rows, n_cols, F), MiniSom's layout."""
        self._check_fitted()
        return self.weights_.reshape(self.n_rows, self.n_cols, -1)

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """The map as one self-describing zip: ``meta.json`` and ``weights.npy``
        (:mod:`som.persistence`)."""
        self._check_fitted()
        return persistence.to_bytes(self)

    def save(self, path) -> Path:
        """Write the map to ``path`` (atomically: a crash never leaves half a file)."""
        return persistence.save(self, path)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> SOM:
        som = persistence.from_bytes(cls, data, source)
        som._distance_table = som.grid.offset_distance_table()
        return som

    @classmethod
    def load(cls, path) -> SOM:
        return persistence.load(cls, path)

    def __repr__(self) -> str:
        state = "fitted" if hasattr(self, "weights_") else "unfitted"
        return (
            f"SOM({self.n_rows}x{self.n_cols}, lattice={self.lattice!r}, "
            f"periodic={self.periodic}, {state})"
        )


class _NumbaThreads:
    """Use ``n`` numba threads inside a ``with`` block (None: leave the default)."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        if self.n is not None:
            self.old = numba.get_num_threads()
            numba.set_num_threads(max(1, min(int(self.n), numba.config.NUMBA_NUM_THREADS)))

    def __exit__(self, *exc):
        if self.n is not None:
            numba.set_num_threads(self.old)
