"""Scale-out on Dask: assign a Parquet catalogue, and train the batch map, across a cluster.

>>> summary = assign_parquet(som, "survey/", "survey_cells/", client="tcp://head:8786",
...                          cell_stats=stats[["z_median", "covered"]])
>>> som = fit_distributed(SOM(75, 150, random_state=1), "deep/", client=client,
...                       feature_columns=["u-g", "g-r", "r-i", "i-z", "z-y", "y-j", "j-h"])

Both work partition by partition, so memory per worker is bounded by one partition (for
assignment: one Parquet row group plus one batch of ``batch_rows`` rows), and both reproduce
the single-process results: assignment exactly, training within float rounding (the
per-cell sums of the batch map are added in a different order). The map travels to the
workers once per run, as its versioned ``SOM.to_bytes`` form, never pickled per task.

Dask (``dask[distributed]``) is imported only when a cluster is used; the in-process path of
``assign_parquet`` needs nothing beyond pyarrow. Paths must be visible to every worker under
the same name (a shared or parallel file system); the output is committed by renaming a
temporary directory, which is atomic on one POSIX file system.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .estimator import SOM, ProgressCallback, SOMError
from .photometry import PhotometryError
from .trust import DistanceDistribution, outside_training

__all__ = [
    "CELL_COLUMN",
    "DISTANCE_COLUMN",
    "INIT_SAMPLE_SIZE",
    "TRUST_COLUMNS",
    "PartitionError",
    "assign_parquet",
    "fit_distributed",
    "list_parquet_files",
]

CELL_COLUMN = "cell"
DISTANCE_COLUMN = "cell_distance"
#: how far to trust each row's cell, as ``SOM.assign`` and ``som.trust`` give it: usable
#: features, the distance's percentile among the training rows', outside_training
TRUST_COLUMNS = ("cell_n_colours", "cell_percentile", "cell_outside_training")
#: rows ``SOM._initial_weights`` draws for the PCA/random initialisation; drawing the same
#: number here (with the map's seed) makes the distributed start equal the in-memory one
INIT_SAMPLE_SIZE = 100_000
#: consecutive row groups of one file are grouped into tasks of about this many rows: a few
#: seconds of work per task on one core, so scheduling overhead stays below 1%
DEFAULT_ROWS_PER_TASK = 1_000_000
MANIFEST = "_somcal.json"
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# pyarrow's dataset discovery skips these prefixes too (Spark's _SUCCESS, _metadata, .crc)
_IGNORED_PREFIXES = (".", "_")
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


# ------------------------------------------------------------------------------ planning
@dataclass(frozen=True)
class _Piece:
    """A run of consecutive row groups of one Parquet file: the unit of work."""

    index: int
    path: str  # absolute
    relpath: str  # relative to the dataset root, with "/" separators
    row_groups: tuple[int, ...]
    first_row: int  # row offset of the first row group within the file
    n_rows: int
    split: int | None  # k-th piece of a file cut into several, None when it is the whole file

    @property
    def where(self) -> str:
        if not self.row_groups:
            return f"{self.relpath} (no rows)"
        rg = self.row_groups
        groups = f"row group {rg[0]}" if len(rg) == 1 else f"row groups {rg[0]}-{rg[-1]}"
        last = self.first_row + self.n_rows - 1
        return f"{self.relpath} ({groups}, file rows {self.first_row}..{last})"

    @property
    def output_relpath(self) -> str:
        if self.split is None:
            return self.relpath
        stem, dot, suffix = self.relpath.rpartition(".")
        return f"{stem}.{self.split:04d}.{suffix}" if dot else f"{self.relpath}.{self.split:04d}"


def list_parquet_files(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """The Parquet files of a dataset, sorted, and the root they are relative to.

    ``path`` is one file, or a directory searched recursively for ``*.parquet``/``*.pq``/
    ``*.parq``, skipping names starting with "." or "_" as pyarrow does. A HATS catalogue
    (a directory holding ``hats.properties`` or ``properties`` and ``dataset/``) contributes
    only its ``dataset/Norder=*`` pixel files, not its thumbnails or metadata.
    """
    root = Path(path).expanduser().resolve()
    if root.is_file():
        return root.parent, [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or directory")
    search = root
    hats = (root / "dataset").is_dir() and any(
        (root / name).is_file() for name in ("hats.properties", "properties")
    )
    if hats:
        search = root / "dataset"
    files = []
    for dirpath, dirnames, filenames in os.walk(search):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(_IGNORED_PREFIXES))
        if hats and Path(dirpath) == search:
            dirnames[:] = [d for d in dirnames if d.startswith("Norder=")]
            continue
        for name in sorted(filenames):
            if name.startswith(_IGNORED_PREFIXES):
                continue
            if name.lower().endswith(PARQUET_SUFFIXES):
                files.append(Path(dirpath) / name)
    if not files:
        raise FileNotFoundError(
            f"{root}: no Parquet files ({', '.join('*' + s for s in PARQUET_SUFFIXES)}) found"
        )
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _plan(
    path, rows_per_task: int, required: Sequence[str], forbidden: frozenset = frozenset()
) -> tuple[Path, list[_Piece], list[dict]]:
    """Cut a dataset into pieces of about ``rows_per_task`` rows, reading only the footers.

    Files that cannot be opened, or lack a ``required`` column, become failures (with the
    same shape as a failed task) instead of pieces. A file holding a ``forbidden`` column
    (one the output would overwrite) is a ValueError: the call, not the data, is wrong.
    """
    root, files = list_parquet_files(path)
    pieces: list[_Piece] = []
    failures: list[dict] = []
    for file in files:
        rel = file.relative_to(root).as_posix()
        try:
            meta = pq.read_metadata(file)
            names = meta.schema.to_arrow_schema().names
        except Exception as exc:
            failures.append(
                {"partition": None, "where": rel, "reason": f"not a readable Parquet file ({exc})"}
            )
            continue
        clash = sorted(forbidden & set(names))
        if clash:
            raise ValueError(
                f"{rel}: input column(s) {clash} would be overwritten by the assignment; "
                "pass columns=[...] without them"
            )
        missing = [c for c in required if c not in names]
        if missing:
            failures.append(
                {
                    "partition": None,
                    "where": rel,
                    "reason": f"column(s) {', '.join(map(repr, missing))} missing; the file has "
                    f"{', '.join(map(repr, names[:20]))}" + (" ..." if len(names) > 20 else ""),
                }
            )
            continue
        groups: list[list[int]] = []
        sizes: list[int] = []
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            if groups and sizes[-1] + n <= rows_per_task:
                groups[-1].append(rg)
                sizes[-1] += n
            else:
                groups.append([rg])
                sizes.append(n)
        if not groups:  # a file without row groups still yields an (empty) output file
            groups, sizes = [[]], [0]
        first = 0
        for k, (rgs, n) in enumerate(zip(groups, sizes, strict=True)):
            pieces.append(
                _Piece(
                    index=len(pieces),
                    path=str(file),
                    relpath=rel,
                    row_groups=tuple(rgs),
                    first_row=first,
                    n_rows=n,
                    split=None if len(groups) == 1 else k,
                )
            )
            first += n
    return root, pieces, failures


# ------------------------------------------------------------------------------ workers
@dataclass
class _Context:
    """Everything a task needs besides its piece; shipped to each worker once."""

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


_MAPS: dict[tuple, SOM] = {}


def _worker_map(ctx: _Context) -> SOM:
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


def _needed_columns(som: SOM, ctx: _Context) -> list[str]:
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
        raise PartitionError(
            [
                {
                    "partition": None,
                    "where": where,
                    "reason": f"column {name!r} has Arrow type {t}; SOM features must be numeric",
                }
            ]
        )
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    # nulls become NaN, i.e. a missing feature, exactly as pandas reads them
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _batch_features(som: SOM, ctx: _Context, batch, first_row: int, source: str):
    """(X, E, sample_weight) of one record batch, as ``SOM.assign`` on that table would see."""
    if ctx.feature_columns is not None:
        X = np.column_stack([_numeric_column(batch, c, source) for c in ctx.feature_columns])
        E = None
        if ctx.error_columns:
            E = np.column_stack([_numeric_column(batch, c, source) for c in ctx.error_columns])
    else:
        present = set(batch.schema.names)
        cols = [c for c in _needed_columns(som, ctx) if c in present]
        frame = batch.select(cols).to_pandas()
        try:
            X, E = som.features.transform(frame, source=source)
        except PhotometryError as exc:
            row = None if exc.row is None else exc.row + first_row
            raise type(exc)(exc.reason, column=exc.column, row=row, source=source) from exc
        if som.distance != "chi2":
            E = None  # SOM._features_from uses table errors for chi2 only
    w = None
    if ctx.weight_column is not None:
        w = _numeric_column(batch, ctx.weight_column, source)
    return X, E, w


def _reason(exc: BaseException, first_row: int | None) -> str:
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


def _stats_columns(ctx: _Context, cell: np.ndarray) -> pa.Table | None:
    if ctx.stats is None:
        return None
    rows = np.where(cell >= 0, ctx.stats_row[np.maximum(cell, 0)], -1)
    # a null index gives a null row: cells without statistics (or rows without a cell)
    # get nulls of the column's own type instead of being cast to float
    return ctx.stats.take(pa.array(rows, mask=rows < 0, type=pa.int64()))


def _assign_batch(som: SOM, ctx: _Context, batch, first_row: int, source: str) -> pa.Table:
    if batch.num_rows:
        X, E, _ = _batch_features(som, ctx, batch, first_row, source)
        a = som.assign(X, E, allow_empty=ctx.allow_empty)
        cell, dist = a.cell, a.distance
        trust = (a.n_features, a.percentile, outside_training(a))
    else:
        cell, dist = np.empty(0, np.int32), np.empty(0, np.float64)
        trust = (np.empty(0, np.int16), np.empty(0, np.float32), np.empty(0, bool))
    carry = batch.schema.names if ctx.carry is None else list(ctx.carry)
    table = pa.Table.from_batches([batch.select(carry)])
    # fixed output types whatever the engine returns: int32 holds any cell number, and
    # float64 holds a float32 or float64 distance exactly
    table = table.append_column(CELL_COLUMN, pa.array(cell, type=pa.int32()))
    table = table.append_column(DISTANCE_COLUMN, pa.array(dist, type=pa.float64()))
    for name, values, kind in zip(
        TRUST_COLUMNS, trust, (pa.int16(), pa.float64(), pa.bool_()), strict=True
    ):
        table = table.append_column(name, pa.array(values, type=kind))
    stats = _stats_columns(ctx, cell)
    if stats is not None:
        for name, column in zip(stats.column_names, stats.columns, strict=True):
            table = table.append_column(name, column)
    return table


def _read_columns(pf: pq.ParquetFile, som: SOM, ctx: _Context) -> list[str] | None:
    if ctx.carry is None:
        return None
    names = set(pf.schema_arrow.names)
    wanted = list(ctx.carry) + [c for c in _needed_columns(som, ctx) if c not in ctx.carry]
    return [c for c in wanted if c in names]


def _assign_piece(ctx: _Context, piece: _Piece, out_root: str) -> dict:
    """Task: assign one piece and write it under ``out_root``; a failure is returned, not raised.

    Returning the failure keeps its description (file, rows, reason) intact and lets the
    client decide whether to stop; exceptions are reserved for the cluster itself failing.
    """
    t0 = time.perf_counter()
    first_row = piece.first_row
    out = Path(out_root) / piece.output_relpath
    writer = None
    n = n_unassigned = 0
    try:
        som = _worker_map(ctx)
        pf = pq.ParquetFile(piece.path)
        cols = _read_columns(pf, som, ctx)
        batches = pf.iter_batches(
            batch_size=ctx.batch_rows,
            row_groups=list(piece.row_groups),
            columns=cols,
            use_threads=ctx.threads is None or ctx.threads > 1,
        )
        try:
            for batch in batches:
                table = _assign_batch(som, ctx, batch, first_row, piece.relpath)
                if writer is None:
                    writer = pq.ParquetWriter(out, table.schema)
                writer.write_table(table)
                n += batch.num_rows
                n_unassigned += int(np.count_nonzero(table.column(CELL_COLUMN).to_numpy() < 0))
                first_row += batch.num_rows
            if writer is None:  # no rows: still one output file, with the output schema
                schema = pf.schema_arrow
                if cols is not None:
                    schema = pa.schema([schema.field(c) for c in cols])
                empty = pa.RecordBatch.from_pylist([], schema=schema)
                pq.write_table(_assign_batch(som, ctx, empty, first_row, piece.relpath), out)
        finally:
            if writer is not None:
                writer.close()
    except Exception as exc:
        return {
            "ok": False,
            "partition": piece.index,
            "where": piece.where,
            "reason": _reason(exc, first_row),
        }
    return {
        "ok": True,
        "partition": piece.index,
        "file": piece.output_relpath,
        "source": piece.relpath,
        "n_rows": n,
        "n_unassigned": n_unassigned,
        "seconds": time.perf_counter() - t0,
    }


# ------------------------------------------------------------------------------ clients
def _dask():
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - dask is in the dev/dask extras
        raise ImportError(
            "running on a Dask cluster needs dask.distributed: pip install 'somcal[dask]'"
        ) from exc
    return distributed


def _resolve_client(client, *, required: bool):
    """(client or None, owned): a Client, a scheduler address, "local", or None (default)."""
    if client is not None and not isinstance(client, str):
        return client, False
    if client is None:
        try:
            import distributed

            return distributed.default_client(), False
        except (ImportError, ValueError):
            if required:
                raise ValueError(
                    "no Dask client: pass client=Client(...), a scheduler address "
                    "('tcp://host:8786') or 'local'"
                ) from None
            return None, False
    distributed = _dask()
    if client == "local":
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


def _close(client, owned: bool) -> None:
    if owned:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()


def _load_map(som) -> SOM:
    if isinstance(som, SOM):
        return som
    return SOM.load(som)


class _Progress:
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


# ------------------------------------------------------------------------------ assignment
def _stats_context(som: SOM, cell_stats: pd.DataFrame | None, taken: set[str]):
    if cell_stats is None:
        return None, None
    if not isinstance(cell_stats, pd.DataFrame):
        raise TypeError(f"cell_stats must be a DataFrame indexed by cell, got {type(cell_stats)}")
    idx = cell_stats.index
    if not pd.api.types.is_integer_dtype(idx.dtype):
        raise ValueError(f"cell_stats must be indexed by integer cell number, got {idx.dtype}")
    cells = idx.to_numpy(np.int64)
    if idx.has_duplicates:
        raise ValueError(f"cell_stats index has duplicate cells, e.g. {idx[idx.duplicated()][0]}")
    bad = (cells < 0) | (cells >= som.n_cells)
    if bad.any():
        raise ValueError(
            f"cell_stats lists cell {cells[bad][0]}, outside this map's 0..{som.n_cells - 1}"
        )
    names = [str(c) for c in cell_stats.columns]
    clash = [c for c in names if c in taken]
    if clash:
        raise ValueError(f"cell_stats column(s) {clash} would overwrite output columns")
    table = pa.Table.from_pandas(cell_stats, preserve_index=False)
    row = np.full(som.n_cells, -1, np.int64)
    row[cells] = np.arange(len(cells))
    return table, row


def _commit(tmp: Path, output: Path, overwrite: bool) -> None:
    """Move the finished temporary directory into place; the old output goes only after."""
    if not output.exists():
        tmp.rename(output)
        return
    if not overwrite:
        shutil.rmtree(tmp)
        raise FileExistsError(f"{output} appeared while assigning; nothing was written")
    old = output.with_name(f".{output.name}.somcal-old-{uuid.uuid4().hex[:8]}")
    output.rename(old)
    tmp.rename(output)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()


def assign_parquet(
    som: SOM | str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    client: Any = None,
    columns: Sequence[str] | None = None,
    feature_columns: Sequence[str] | None = None,
    error_columns: Sequence[str] | None = None,
    cell_stats: pd.DataFrame | None = None,
    allow_empty: bool = False,
    progress: bool | ProgressCallback = True,
    errors_ok: bool = False,
    overwrite: bool = False,
    rows_per_task: int = DEFAULT_ROWS_PER_TASK,
    batch_rows: int | None = None,
    threads_per_task: int | None = None,
) -> dict:
    """Assign every row of a Parquet dataset to its best cell, writing a Parquet dataset.

    Parameters
    ----------
    som : a fitted map, or the path of a saved one.
    input_path : a Parquet file, or a directory of them (searched recursively; a HATS
        catalogue directory contributes its ``dataset/Norder=*`` files).
    output_path : directory to create. Each input file gives an output file at the same
        relative path (a file cut into several tasks gives ``name.0000.parquet``, ...), so
        hive/HATS directory layouts and file order are kept. Holds the carried columns,
        ``cell`` (int32; -1 for rows without a usable feature when ``allow_empty``),
        ``cell_distance`` (float64, feature-space distance to the cell's weights; NaN for
        cell -1), how far to trust it (``TRUST_COLUMNS``: ``cell_n_colours``,
        ``cell_percentile`` among the training rows' distances, ``cell_outside_training``)
        and the ``cell_stats`` columns, plus a ``_somcal.json`` manifest.
    client : a ``distributed.Client``, a scheduler address ("tcp://host:8786"), "local"
        (a LocalCluster of one single-threaded worker per core, closed afterwards), or None:
        the default Dask client if one is running, else this process, one piece at a time.
    columns : input columns copied to the output (None: all).
    feature_columns, error_columns : for a map without ``features``, the input columns of
        its features (and their errors, for ``distance="chi2"``) in training order. A map
        with ``features`` (``ColourFeatures``) reads its band columns itself.
    cell_stats : DataFrame indexed by cell whose columns are joined onto each row (e.g.
        ``z_median``, ``covered``); cells it does not list get nulls.
    allow_empty : give rows with no usable feature cell -1 instead of failing their partition.
    progress : True for a progress line on stderr, or a ``callback(fraction, message)``.
    errors_ok : False (default): the first failing partition stops the run, nothing is
        written and ``PartitionError`` names every partition that failed and why. True: the
        other partitions are written and the failures are listed in the summary, in the
        manifest and in a warning.
    overwrite : replace an existing ``output_path`` (only once the new one is complete).
    rows_per_task : consecutive row groups of a file are grouped into tasks of about this
        many rows (a row group is never split).
    batch_rows : rows read, assigned and written at a time within a task (default: the
        map's ``chunk_size``); with the row group size, this bounds the memory of a task.
    threads_per_task : numba and Arrow threads per task. Default: 1 on a cluster (Dask runs
        one task per worker thread, so more would oversubscribe the cores); in this process
        alone, the map's ``n_jobs`` (None: all cores).

    Returns
    -------
    dict with ``output``, ``n_rows``, ``n_unassigned`` (cell -1), ``n_files``,
    ``n_partitions``, ``failed`` (list of ``{partition, where, reason}``), ``seconds``,
    ``rows_per_second``, ``task_seconds`` (time inside tasks, summed), ``engine``
    (scheduler address or "in-process"), ``map_sha256``, ``columns_added``.
    """
    t0 = time.perf_counter()
    som = _load_map(som)
    som._check_fitted()
    output = Path(output_path).expanduser().resolve()
    source = Path(input_path).expanduser().resolve()
    if output == source or source in output.parents:
        raise ValueError(f"output {output} lies inside the input {source}; choose another place")
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True to replace it")
    if som.features is None:
        if feature_columns is None:
            raise ValueError(
                f"this map has no feature definition (som.features is None): pass "
                f"feature_columns=[...] naming its {som.n_features_in_} input columns in "
                "training order"
            )
        if len(feature_columns) != som.n_features_in_:
            raise ValueError(
                f"the map was trained on {som.n_features_in_} features, "
                f"feature_columns lists {len(feature_columns)}"
            )
    elif feature_columns is not None:
        raise ValueError("the map defines its features (som.features); omit feature_columns")
    if error_columns is not None and len(error_columns) != len(feature_columns or ()):
        raise ValueError("error_columns must pair one-to-one with feature_columns")
    if int(rows_per_task) < 1 or (batch_rows is not None and int(batch_rows) < 1):
        raise ValueError("rows_per_task and batch_rows must be positive")

    added = {CELL_COLUMN, DISTANCE_COLUMN, *TRUST_COLUMNS}
    stats, stats_row = _stats_context(som, cell_stats, added)
    added |= set(stats.column_names if stats is not None else ())
    if columns is not None:
        clash = sorted(added & set(columns))
        if clash:
            raise ValueError(
                f"input column(s) {clash} would be overwritten by the assignment; leave them "
                "out of columns=..."
            )
    required = list(columns or ()) + list(feature_columns or ()) + list(error_columns or ())
    # when every input column is carried, none may share a name with the added ones
    forbidden = frozenset(added) if columns is None else frozenset()
    root, pieces, failures = _plan(source, int(rows_per_task), required, forbidden)
    if failures and not errors_ok:
        raise PartitionError(failures)

    map_bytes = som.to_bytes()
    ctx = _Context(
        map_bytes=map_bytes,
        digest=hashlib.sha256(map_bytes).hexdigest(),
        feature_columns=None if feature_columns is None else tuple(feature_columns),
        error_columns=None if error_columns is None else tuple(error_columns),
        carry=None if columns is None else tuple(columns),
        stats=stats,
        stats_row=stats_row,
        allow_empty=bool(allow_empty),
        batch_rows=int(batch_rows or som.chunk_size),
        threads=1 if threads_per_task is None else max(1, int(threads_per_task)),
    )
    client_, owned = _resolve_client(client, required=False)
    if client_ is None and threads_per_task is None:
        ctx.threads = som.n_jobs  # alone in this process: the map's own setting (all cores)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.somcal-tmp-{uuid.uuid4().hex[:8]}")
    total_rows = sum(p.n_rows for p in pieces)
    report = _Progress(progress, "assign")
    try:
        tmp.mkdir()
        # tasks never create directories: one that outlives a failed run cannot re-create
        # a temporary tree the client has removed
        for rel in {Path(p.output_relpath).parent for p in pieces}:
            (tmp / rel).mkdir(parents=True, exist_ok=True)
        results = _run_assign(client_, ctx, pieces, str(tmp), report, total_rows, errors_ok)
        engine = "in-process" if client_ is None else client_.scheduler_info()["address"]
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _close(client_, owned)
    done = [r for r in results if r["ok"]]
    failures += [
        {k: r[k] for k in ("partition", "where", "reason")} for r in results if not r["ok"]
    ]
    if failures and not errors_ok:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PartitionError(failures)

    n_rows = sum(r["n_rows"] for r in done)
    seconds = time.perf_counter() - t0
    summary = {
        "output": str(output),
        "input": str(source),
        "n_rows": n_rows,
        "n_unassigned": sum(r["n_unassigned"] for r in done),
        "n_files": len({p.path for p in pieces}),
        "n_partitions": len(pieces),
        "failed": failures,
        "seconds": seconds,
        "rows_per_second": n_rows / seconds if seconds > 0 else float("nan"),
        # time inside tasks, summed: against seconds x workers it shows the idle share
        "task_seconds": sum(r["seconds"] for r in done),
        "engine": engine,
        "map_sha256": ctx.digest,
        "columns_added": [CELL_COLUMN, DISTANCE_COLUMN, *TRUST_COLUMNS]
        + (stats.column_names if stats is not None else []),
    }
    manifest = {
        "format": "somcal-assignment",
        "format_version": 1,
        "somcal_version": getattr(som, "somcal_version_", None),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "allow_empty": bool(allow_empty),
        **summary,
        "parts": sorted(
            ({k: r[k] for k in ("file", "source", "n_rows")} for r in done),
            key=lambda r: r["file"],
        ),
    }
    manifest.pop("output")
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
    _commit(tmp, output, overwrite)
    if failures:
        warnings.warn(
            f"{len(failures)} partition(s) were not assigned and are missing from {output}:\n"
            + str(PartitionError(failures)),
            stacklevel=2,
        )
    return summary


def _run_assign(client, ctx, pieces, out_root, report, total_rows, errors_ok) -> list[dict]:
    results: list[dict] = []
    rows_done = 0

    def record(res: dict) -> bool:
        nonlocal rows_done
        results.append(res)
        rows_done += res.get("n_rows", 0)
        frac = len(results) / len(pieces) if not total_rows else rows_done / total_rows
        failed = sum(not r["ok"] for r in results)
        report(
            min(frac, 1.0),
            f"{len(results)}/{len(pieces)} partitions, {rows_done:,} rows"
            + (f", {failed} failed" if failed else ""),
        )
        return res["ok"] or errors_ok

    if client is None:
        for piece in pieces:
            if not record(_assign_piece(ctx, piece, out_root)):
                break
        return results

    distributed = _dask()
    ctx_future = client.scatter(ctx, broadcast=True, hash=False)
    # a bounded number of tasks in flight: a failure stops the run after at most this many
    # more, and the client can wait for them before removing the temporary directory
    in_flight = max(2, 2 * sum(client.nthreads().values()))
    queue = iter(pieces)
    by_key: dict[str, _Piece] = {}
    completed = distributed.as_completed(loop=client.loop)

    def submit() -> None:
        piece = next(queue, None)
        if piece is not None:
            fut = client.submit(_assign_piece, ctx_future, piece, out_root, pure=False)
            by_key[fut.key] = piece
            completed.add(fut)

    for _ in range(in_flight):
        submit()
    stopping = False
    for fut in completed:
        piece = by_key.pop(fut.key)
        try:
            res = fut.result()
        except Exception as exc:  # the cluster failed the task (worker lost, killed, ...)
            res = {"ok": False, "partition": piece.index, "where": piece.where,
                   "reason": f"{type(exc).__name__}: {exc}"}  # fmt: skip
        fut.release()
        if not record(res):
            stopping = True
        if not stopping:
            submit()
    return results


# ------------------------------------------------------------------------------ training
@dataclass
class _Part:
    """Features of one partition, held on a worker between epochs."""

    X: np.ndarray
    E: np.ndarray | None
    w: np.ndarray | None
    where: str
    index: int
    first_row: int = 0  # file row of X[0] (Parquet pieces); SOMError rows count from it


def _fail(index: int, where: str, exc: BaseException, first_row: int | None = None):
    return PartitionError([{"partition": index, "where": where, "reason": _reason(exc, first_row)}])


def _load_piece(ctx: _Context, piece: _Piece) -> _Part:
    first_row = piece.first_row
    try:
        som = _worker_map(ctx)
        pf = pq.ParquetFile(piece.path)
        names = set(pf.schema_arrow.names)
        cols = [c for c in _needed_columns(som, ctx) if c in names]
        xs, es, ws = [], [], []
        for batch in pf.iter_batches(
            batch_size=ctx.batch_rows,
            row_groups=list(piece.row_groups),
            columns=cols,
            use_threads=ctx.threads is None or ctx.threads > 1,
        ):
            X, E, w = _batch_features(som, ctx, batch, first_row, piece.relpath)
            xs.append(X)
            es.append(E)
            ws.append(w)
            first_row += batch.num_rows
    except Exception as exc:
        raise _fail(piece.index, piece.where, exc, first_row) from exc
    F = som.n_features_in_
    X = np.concatenate(xs) if xs else np.empty((0, F))
    E = np.concatenate(es) if es and es[0] is not None else None
    w = np.concatenate(ws) if ws and ws[0] is not None else None
    return _Part(X, E, w, piece.where, piece.index, piece.first_row)


def _frame_part(ctx: _Context, frame: pd.DataFrame, index: int) -> _Part:
    where = f"partition {index} of the Dask DataFrame"
    try:
        som = _worker_map(ctx)
        names = set(frame.columns)
        cols = [c for c in _needed_columns(som, ctx) if c in names]
        missing = [c for c in (ctx.feature_columns or ()) if c not in names]
        if missing:
            raise KeyError(f"column(s) {missing} missing")
        batch = pa.RecordBatch.from_pandas(frame[cols], preserve_index=False)
        X, E, w = _batch_features(som, ctx, batch, 0, where)
    except Exception as exc:
        raise _fail(index, where, exc) from exc
    return _Part(X, E, w, where, index)


def _array_part(block: np.ndarray, index: int) -> _Part:
    return _Part(np.asarray(block), None, None, f"block {index} of the Dask array", index)


def _part_len(part: _Part) -> int:
    return int(part.X.shape[0])


def _part_rows(part: _Part, rows: np.ndarray) -> np.ndarray:
    return part.X[rows]


def _trainer(ctx: _Context, weights: np.ndarray) -> SOM:
    som = copy.copy(_worker_map(ctx))  # shallow: tasks sharing a worker keep their weights
    som.weights_ = weights
    return som


def _part_sums(ctx: _Context, weights: np.ndarray, part: _Part):
    """Task: this partition's batch-map sums (S, N, squared error, rows) for ``weights``."""
    if part.X.shape[0] == 0:
        F = weights.shape[1]
        return np.zeros((weights.shape[0], F)), np.zeros((weights.shape[0], F)), 0.0, 0
    try:
        S, N, sq = _trainer(ctx, weights).batch_sums(
            part.X, part.E, part.w, skip_empty=ctx.allow_empty
        )
    except Exception as exc:
        raise _fail(part.index, part.where, exc, part.first_row) from exc
    return S, N, sq, part.X.shape[0]


def _add_sums(*parts):
    """Task: add partial sums in the order given, so the result does not depend on timing."""
    S, N, sq, n = parts[0]
    S, N = S.copy(), N.copy()
    for s, nn, q, m in parts[1:]:
        S += s
        N += nn
        sq += q
        n += m
    return S, N, sq, n


def _part_quality(ctx: _Context, weights: np.ndarray, den: np.ndarray | None, part: _Part):
    """Task: summed distance, topographic errors, occupancy and the histogram of distances,
    for ``SOM.quality_`` and ``SOM.training_distances_`` (see ``SOM._measure``)."""
    som = _trainer(ctx, weights)
    if part.X.shape[0] == 0:
        record = DistanceDistribution.empty(som.distance, som.n_features_in_)
        return 0.0, 0, 0, np.zeros(som.n_cells, np.int64), record
    try:
        return som._measure(part.X, part.E, ctx.allow_empty, part.w, den)
    except Exception as exc:
        raise _fail(part.index, part.where, exc, part.first_row) from exc


def _add_quality(*parts):
    return SOM._add_measures(*parts)


def _tree(client, futures: list, combine: Callable, fan_in: int = 8):
    """Reduce futures on the cluster in a fixed tree of ``fan_in``-way combines."""
    while len(futures) > 1:
        futures = [
            client.submit(combine, *futures[i : i + fan_in], pure=False)
            for i in range(0, len(futures), fan_in)
        ]
    return futures[0]


def _raise_failures(futures: list) -> None:
    """Wait for ``futures`` and raise one PartitionError naming every partition that failed."""
    failures = []
    for i, fut in enumerate(futures):
        exc = fut.exception()  # waits for the future; None when it succeeded
        if isinstance(exc, PartitionError):
            failures += exc.failures
        elif exc is not None:
            failures.append({"partition": i, "where": f"partition {i}",
                             "reason": f"{type(exc).__name__}: {exc}"})  # fmt: skip
    if failures:
        raise PartitionError(failures)


def fit_distributed(
    som: SOM,
    data: Any,
    *,
    client: Any = None,
    n_epochs: int | None = None,
    sample_size_for_init: int = INIT_SAMPLE_SIZE,
    progress: bool | ProgressCallback | None = None,
    feature_columns: Sequence[str] | None = None,
    error_columns: Sequence[str] | None = None,
    weight_column: str | None = None,
    persist: bool = True,
    rows_per_task: int = DEFAULT_ROWS_PER_TASK,
    threads_per_task: int = 1,
    compute_quality: bool = True,
    skip_empty: bool = False,
) -> SOM:
    """Train the Kohonen batch map on a Dask cluster; returns ``som``, fitted.

    ``data`` is a Parquet file or dataset directory, a Dask DataFrame (columns as for
    ``assign_parquet``: ``feature_columns`` for a map without ``features``, else the band
    columns; ``weight_column`` for sample weights) or a 2-D Dask array of features.

    Each epoch the current weights are broadcast, every partition computes its
    ``SOM.batch_sums`` (per-cell feature sums S and counts N), the sums are added on the
    cluster in a fixed tree, and ``SOM.apply_batch_sums`` runs here. Sums add up exactly in
    exact arithmetic, so the map equals ``SOM.fit`` on the concatenated data up to float
    rounding of the additions (different order), provided the starting weights are equal.

    Initialisation: ``rng = som`` 's generator draws ``sample_size_for_init`` distinct row
    numbers of the concatenated data (``rng.choice(n, size, replace=False)``, all rows in
    order when there are no more than that); those rows are fetched in the drawn order and
    passed to ``SOM._start``. With the default 100,000 this is exactly the draw
    ``SOM.fit`` makes, so the starting weights are *identical* to ``SOM.fit`` on the
    concatenated data with the same ``random_state`` (any size; rows in partition order).
    With another sample size the start is equally seeded and reproducible but differs.

    ``som.features`` (if any) must already be fitted: its normalisation is not refitted on
    the cluster. ``persist`` keeps the features of every partition in cluster memory
    between epochs (8 bytes x features per row, twice with errors); ``persist=False``
    re-reads them every epoch, bounding memory by the partitions in flight.
    ``progress(fraction, message)`` is called after each epoch (True: a line on stderr).

    ``compute_quality`` runs one more pass to fill ``som.quality_`` and record the training
    rows' own distances (``som.training_distances_``, summed over partitions exactly as
    ``SOM.fit`` records them); without it ``assign`` cannot give percentiles. With
    ``skip_empty`` rows without any usable feature are left out (``som.n_skipped_``)
    instead of failing their partition.
    """
    client, owned = _resolve_client(client, required=True)
    try:
        return _fit(
            som,
            data,
            client,
            n_epochs=n_epochs,
            sample_size=int(sample_size_for_init),
            progress=_Progress(progress, "train") if progress else None,
            feature_columns=feature_columns,
            error_columns=error_columns,
            weight_column=weight_column,
            persist=persist,
            rows_per_task=int(rows_per_task),
            threads=max(1, int(threads_per_task)),
            compute_quality=compute_quality,
            skip_empty=bool(skip_empty),
        )
    finally:
        _close(client, owned)


def _fit(som, data, client, *, n_epochs, sample_size, progress, feature_columns, error_columns,
         weight_column, persist, rows_per_task, threads, compute_quality,
         skip_empty):  # fmt: skip
    som._check_params()
    if som.method != "batch":
        raise ValueError("fit_distributed trains the batch map (method='batch') only")
    if sample_size < 1:
        raise ValueError("sample_size_for_init must be positive")
    import dask.array as da
    import dask.dataframe as dd

    is_array = isinstance(data, da.Array)
    if som.features is not None:
        if feature_columns is not None:
            raise ValueError("the map defines its features (som.features); omit feature_columns")
        if not getattr(som.features, "feature_names_", None):
            raise ValueError(
                "som.features is not fitted: fit its normalisation first (e.g. on a sample, "
                "som.features.fit(table)); fit_distributed does not refit it on the cluster"
            )
        n_features = int(som.features.n_features_)
    elif is_array:
        n_features = int(data.shape[1])
    elif feature_columns is None:
        raise ValueError("a map without features needs feature_columns=[...] to read a table")
    else:
        n_features = len(feature_columns)
    if error_columns is not None and len(error_columns) != len(feature_columns or ()):
        raise ValueError("error_columns must pair one-to-one with feature_columns")

    # a started map, so that the context's bytes describe the grid; the weights the workers
    # use are broadcast every epoch, these zeros never reach a sum
    template = copy.copy(som)
    template.n_features_in_ = n_features
    template.weights_ = np.zeros((som.n_cells, n_features))
    template.n_jobs = threads
    template.training_distances_ = None  # the workers measure; a stale record is dead weight
    map_bytes = template.to_bytes()
    ctx = _Context(
        map_bytes=map_bytes,
        digest=hashlib.sha256(map_bytes).hexdigest(),
        feature_columns=None if feature_columns is None else tuple(feature_columns),
        error_columns=None if error_columns is None else tuple(error_columns),
        weight_column=weight_column,
        batch_rows=int(som.chunk_size),
        threads=threads,
        allow_empty=skip_empty,
    )
    ctx_future = client.scatter(ctx, broadcast=True, hash=False)

    if is_array:
        if data.ndim != 2:
            raise ValueError(f"a Dask array of features must be 2-D, got shape {data.shape}")
        blocks = list(data.rechunk({1: -1}).to_delayed().ravel())

        def make_parts():
            arrays = client.compute(blocks)
            return [client.submit(_array_part, a, i, pure=False) for i, a in enumerate(arrays)]

    elif isinstance(data, dd.DataFrame):
        frames = list(data.to_delayed())

        def make_parts():
            computed = client.compute(frames)
            return [
                client.submit(_frame_part, ctx_future, f, i, pure=False)
                for i, f in enumerate(computed)
            ]

    elif isinstance(data, str | os.PathLike):
        required = list(feature_columns or ()) + list(error_columns or ())
        required += [weight_column] if weight_column else []
        _, pieces, failures = _plan(data, rows_per_task, required)
        if failures:
            raise PartitionError(failures)

        def make_parts():
            return [client.submit(_load_piece, ctx_future, p, pure=False) for p in pieces]

    else:
        raise TypeError(
            f"data must be a Parquet path, a Dask DataFrame or a Dask array, got {type(data)}"
        )

    parts = make_parts()
    _raise_failures(parts)
    lengths = np.array(client.gather(client.map(_part_len, parts, pure=False)), np.int64)
    n_total = int(lengths.sum())
    if n_total == 0:
        raise SOMError("no rows: every partition is empty")

    # the initial sample, drawn exactly as SOM._initial_weights draws it
    if hasattr(som, "n_features_in_"):
        del som.n_features_in_
    rng = som._rng()
    if n_total > sample_size:
        drawn = rng.choice(n_total, size=sample_size, replace=False)
    else:
        drawn = np.arange(n_total)
    order = np.argsort(drawn, kind="stable")
    sorted_rows = drawn[order]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    pieces_of_sample = []
    for i in range(len(parts)):
        lo, hi = np.searchsorted(sorted_rows, bounds[i : i + 2])
        if hi > lo:
            local = sorted_rows[lo:hi] - bounds[i]
            pieces_of_sample.append(client.submit(_part_rows, parts[i], local, pure=False))
    gathered = np.concatenate(client.gather(pieces_of_sample))
    sample = np.empty_like(gathered)
    sample[order] = gathered
    som._start(sample, rng)
    som.training_["distributed"] = {"n_partitions": len(parts), "n_rows": n_total}

    n_epochs = int(n_epochs or som.n_epochs)
    for e, sigma in enumerate(som.sigma_schedule(n_epochs)):
        if not persist and e > 0:
            parts = make_parts()
        weights = client.scatter(som.weights_, broadcast=True)
        sums = [client.submit(_part_sums, ctx_future, weights, p, pure=False) for p in parts]
        if not persist:
            del parts  # each partition is freed once its sums are taken
        total = _tree(client, sums, _add_sums)
        try:
            S, N, sq, n = total.result()
        except Exception:
            _raise_failures(sums)  # names every failed partition, not the first
            raise
        del sums, total, weights
        som.apply_batch_sums(S, N, sigma)
        som._record_epoch(sigma, sq, n, progress, e + 1, n_epochs)

    if compute_quality:
        if not persist:
            parts = make_parts()
        weights = client.scatter(som.weights_, broadcast=True)
        den = client.scatter(som._batch_den, broadcast=True)
        q = [client.submit(_part_quality, ctx_future, weights, den, p, pure=False) for p in parts]
        try:
            measures = _tree(client, q, _add_quality).result()
        except Exception:
            _raise_failures(q)
            raise
        som._set_quality(*measures)
    else:
        # no measuring pass: no distance record, so assign() gives NaN percentiles
        som.quality_ = {"n_rows_trained": n_total}
    return som
