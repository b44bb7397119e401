"""What assignment and training share: the failure type, the context shipped to the workers
(the map as its versioned bytes), reading a partition's features, clients and progress."""

from __future__ import annotations

import hashlib
import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..estimator import SOM, SOMError
from ..photometry import PhotometryError

CELL_COLUMN = "cell"
DISTANCE_COLUMN = "cell_distance"
#: how far to trust each row's cell, as ``SOM.assign`` and ``som.trust`` give it: usable
#: features, the distance's percentile among the training rows', outside_training
TRUST_COLUMNS = ("cell_n_colours", "cell_percentile", "cell_outside_training")
#: rows ``SOM.fit`` draws for the PCA/random initialisation; ``SOM.initialize`` drawing the
#: same number (with the map's seed) makes the distributed start equal the in-memory one
INIT_SAMPLE_SIZE = 100_000
#: consecutive row groups of one file make partitions of about this many rows: a few
#: seconds of work per task on one core, so scheduling overhead stays below 1%
DEFAULT_ROWS_PER_TASK = 1_000_000
MANIFEST = "_somcal.json"
_MAX_CACHED_MAPS = 4


class PartitionError(RuntimeError):
    """Partitions that could not be processed: ``failures`` lists which and why.

    Each failure is a dict with ``partition`` (index in the run), ``where`` (file, row
    groups and file rows, or the partition of a Dask collection) and ``reason``.
    """

    def __init__(self, failures: Sequence[dict]):
        self.failures = [dict(f) for f in failures]
        super().__init__(self._message())

    def _message(self) -> str:
        lines = [f"{f['where']}: {f['reason']}" for f in self.failures[:10]]
        if len(self.failures) > 10:
            lines.append(f"... and {len(self.failures) - 10} more")
        if len(self.failures) == 1:
            return f"partition failed: {lines[0]}"
        return f"{len(self.failures)} partitions failed:\n  " + "\n  ".join(lines)

    def __reduce__(self):
        # raised on workers and re-raised on the client: must survive pickling
        return (PartitionError, (self.failures,))


@dataclass
class Context:
    """Everything a task needs besides its partition; shipped to each worker once."""

    map_bytes: bytes
    digest: str
    feature_columns: tuple[str, ...] | None
    error_columns: tuple[str, ...] | None
    weight_column: str | None = None
    carry: tuple[str, ...] | None = None  # output columns copied from the input; None: all
    stats: pa.Table | None = None  # one row per listed cell
    stats_row: np.ndarray | None = None  # (n_cells,) row of each cell in ``stats``, -1: none
    allow_empty: bool = False
    batch_rows: int = 262_144
    threads: int | None = 1  # numba/Arrow threads per task; None: numba's default (all cores)

    @classmethod
    def of(
        cls,
        som: SOM,
        feature_columns: Sequence[str] | None,
        error_columns: Sequence[str] | None,
        **options,
    ) -> Context:
        """The context that ships ``som`` (its bytes and their digest, the key of a worker's
        cached copy) with the named input columns and ``options``."""
        map_bytes = som.to_bytes()
        return cls(
            map_bytes=map_bytes,
            digest=hashlib.sha256(map_bytes).hexdigest(),
            feature_columns=None if feature_columns is None else tuple(feature_columns),
            error_columns=None if error_columns is None else tuple(error_columns),
            **options,
        )


_MAPS: dict[tuple, SOM] = {}


def worker_map(ctx: Context) -> SOM:
    """The context's map, deserialised once per worker process and kept for later tasks."""
    key = (ctx.digest, ctx.threads)
    som = _MAPS.get(key)
    if som is None:
        som = SOM.from_bytes(ctx.map_bytes, source="map shipped to the worker")
        som.n_jobs = ctx.threads
        while len(_MAPS) >= _MAX_CACHED_MAPS:
            _MAPS.pop(next(iter(_MAPS)))
        _MAPS[key] = som
    return som


def needed_columns(som: SOM, ctx: Context) -> list[str]:
    """Input columns the features are computed from (as far as they can be named)."""
    if ctx.feature_columns is not None:
        cols = list(ctx.feature_columns) + list(ctx.error_columns or ())
    else:
        f = som.features
        bands = list(f.bands)
        if f.magnitude_band is not None and f.magnitude_band not in bands:
            bands.append(f.magnitude_band)
        cols = [f.value_column(b) for b in bands]
        if f.error_template is not None:
            cols += [f.error_column(b) for b in bands]
    if ctx.weight_column is not None:
        cols.append(ctx.weight_column)
    return cols


def _numeric_column(batch, name: str, where: str) -> np.ndarray:
    col = batch.column(name)
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
        reason = f"column {name!r} has Arrow type {t}; SOM features must be numeric"
        raise PartitionError([{"partition": None, "where": where, "reason": reason}])
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    # nulls become NaN, i.e. a missing feature, exactly as pandas reads them
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def batch_features(som: SOM, ctx: Context, batch, first_row: int, source: str):
    """(X, E, sample_weight) of an Arrow batch or table, as ``SOM.assign`` would see them."""
    if ctx.feature_columns is not None:
        X = np.column_stack([_numeric_column(batch, c, source) for c in ctx.feature_columns])
        E = None
        if ctx.error_columns:
            E = np.column_stack([_numeric_column(batch, c, source) for c in ctx.error_columns])
    else:
        present = set(batch.schema.names)
        cols = [c for c in needed_columns(som, ctx) if c in present]
        frame = batch.select(cols).to_pandas()
        try:
            X, E = som.features.transform(frame, source=source)
        except PhotometryError as exc:
            row = None if exc.row is None else exc.row + first_row
            raise type(exc)(exc.reason, column=exc.column, row=row, source=source) from exc
        if som.distance != "chi2":
            E = None  # SOM.assign uses a table's errors for chi2 only
    w = None
    if ctx.weight_column is not None:
        w = _numeric_column(batch, ctx.weight_column, source)
    return X, E, w


def reason(exc: BaseException, first_row: int | None) -> str:
    """Why a partition failed, in words; rows are file rows where they can be."""
    if isinstance(exc, PartitionError):
        return "; ".join(f["reason"] for f in exc.failures)
    if isinstance(exc, PhotometryError):
        # the source (file) is already in ``where``; the row is a file row
        where = []
        if exc.column is not None:
            where.append(f"column {exc.column!r}")
        if exc.row is not None:
            where.append(f"file row {exc.row}")
        return ": ".join([", ".join(where), exc.reason] if where else [exc.reason])
    text = f"{exc}" if isinstance(exc, SOMError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SOMError) and first_row:
        text += f" (row numbers count from file row {first_row})"
    return text


def failure(index: int, where: str, exc: BaseException, first_row: int | None = None):
    """A PartitionError naming one partition, from the exception that failed it."""
    return PartitionError([{"partition": index, "where": where, "reason": reason(exc, first_row)}])


# ------------------------------------------------------------------------------ clients
def dask_extra(module: str, needed_for: str):
    """``module``, one of the ``somcal[dask]`` extra, imported; when it is missing an
    ImportError that says what needs it (``needed_for``) and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - the dask extra is in the dev extras
        raise ImportError(f"{needed_for}: pip install 'somcal[dask]'") from exc


def _dask():
    return dask_extra("distributed", "running on a Dask cluster needs dask.distributed")


def resolve_client(client):
    """(client or None, owned): a Client, a scheduler address, "local", or None: the
    default Dask client if one is running, else None (this process, dask's synchronous
    scheduler)."""
    if client is not None and not isinstance(client, str):
        return client, False
    if client is None:
        try:
            import distributed

            return distributed.default_client(), False
        except (ImportError, ValueError):
            return None, False
    distributed = _dask()
    if client == "local":
        import os

        cluster = distributed.LocalCluster(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        )
        return distributed.Client(cluster), True
    try:
        return distributed.Client(client, timeout="20s"), True
    except OSError as exc:
        raise OSError(f"cannot reach the Dask scheduler at {client!r}: {exc}") from exc


def close_client(client, owned: bool) -> None:
    if owned:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def shipped(client, obj):
    """``obj`` as an argument of dask tasks: in this process as it is; on a cluster
    scattered to every worker once and referenced by key, not copied into every task."""
    if client is None:
        return obj
    import dask

    return dask.delayed(client.scatter(obj, broadcast=True, hash=False))


def load_map(som) -> SOM:
    return som if isinstance(som, SOM) else SOM.load(som)


class Progress:
    """Progress as a callback, or as a line on stderr (rewritten on a terminal)."""

    def __init__(self, progress, label: str):
        self.callback = progress if callable(progress) else None
        self.text = progress is True
        self.label = label
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.last_step = -1

    def __call__(self, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(fraction, message)
        if not self.text:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        line = f"{self.label}: {100 * fraction:5.1f}% {message}, {elapsed:.0f} s, ETA {eta:.0f} s"
        if self.tty:
            end = "\n" if fraction >= 1 else ""
            print("\r" + line, end=end, file=sys.stderr, flush=True)
        else:
            step = int(fraction * 10)  # a line per 10% in logs
            if step > self.last_step:
                self.last_step = step
                print(line, file=sys.stderr, flush=True)
