"""``assign_parquet``: every row of a Parquet dataset or HATS catalogue to its best cell.

The pipeline is a Dask DataFrame: ``dd.from_map`` reads one partition per run of row
groups (``_parquet``), ``map_partitions`` assigns it in batches of ``batch_rows`` with the
map shipped once per worker, and a second ``map_partitions`` writes its Parquet file under a
temporary directory; the client runs the partitions through Dask (a cluster, or dask's
synchronous scheduler in this process), reports progress as they finish, stops early on
a failure unless ``errors_ok``, and renames the directory into place when all is done.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..estimator import SOM, ProgressCallback
from ..trust import outside_training
from . import _parquet
from . import hats as _hats
from ._common import (
    CELL_COLUMN,
    DEFAULT_ROWS_PER_TASK,
    DISTANCE_COLUMN,
    MANIFEST,
    TRUST_COLUMNS,
    Context,
    PartitionError,
    Progress,
    batch_features,
    close_client,
    failure,
    load_map,
    needed_columns,
    resolve_client,
    shipped,
    worker_map,
)

_RESULT = "somcal_result"  # DataFrame.attrs key: rows and unassigned rows of a partition


def _stats_columns(ctx: Context, cell: np.ndarray) -> pa.Table | None:
    if ctx.stats is None:
        return None
    rows = np.where(cell >= 0, ctx.stats_row[np.maximum(cell, 0)], -1)
    # a null index gives a null row: cells without statistics (or rows without a cell)
    # get nulls of the column's own type instead of being cast to float
    return ctx.stats.take(pa.array(rows, mask=rows < 0, type=pa.int64()))


def _assign_batch(som: SOM, ctx: Context, batch, first_row: int, source: str) -> pa.Table:
    if batch.num_rows:
        X, E, _ = batch_features(som, ctx, batch, first_row, source)
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


def _assign_frame(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """``map_partitions`` function: the partition with its cells, distances, trust and
    statistics, assigned ``ctx.batch_rows`` rows at a time. A failure raises a
    PartitionError naming the file, row groups and file rows."""
    piece: _parquet.Piece = frame.attrs[_parquet.PIECE]
    t0 = time.perf_counter()
    first_row = piece.first_row
    try:
        som = worker_map(ctx)
        table = _parquet.frame_table(frame)
        out = []
        for batch in table.to_batches(max_chunksize=ctx.batch_rows) or [
            pa.RecordBatch.from_pylist([], schema=table.schema)
        ]:
            out.append(_assign_batch(som, ctx, batch, first_row, piece.relpath))
            first_row += batch.num_rows
        result = pa.concat_tables(out)
    except Exception as exc:
        raise failure(piece.index, piece.where, exc, first_row) from exc
    assigned = result.to_pandas(types_mapper=pd.ArrowDtype, ignore_metadata=True)
    cells = result.column(CELL_COLUMN).to_numpy()
    assigned.attrs.update(frame.attrs)
    assigned.attrs[_RESULT] = (len(assigned), int(np.count_nonzero(cells < 0)),
                               time.perf_counter() - t0)  # fmt: skip
    return assigned


def _output_meta(meta: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """The assigned partitions' (empty) frame: carried columns, then the added ones."""
    carry = list(meta.columns) if ctx.carry is None else list(ctx.carry)
    added = [(CELL_COLUMN, pa.int32()), (DISTANCE_COLUMN, pa.float64())]
    added += list(zip(TRUST_COLUMNS, (pa.int16(), pa.float64(), pa.bool_()), strict=True))
    if ctx.stats is not None:
        added += [(f.name, f.type) for f in ctx.stats.schema]
    out = meta[[c for c in carry if c in meta.columns]].copy()
    for name, kind in added:
        out[name] = pd.Series([], dtype=pd.ArrowDtype(kind), index=out.index)
    return out


_WRITTEN = pd.DataFrame(
    {"partition": pd.Series([], dtype="int64"), "file": pd.Series([], dtype=object),
     "source": pd.Series([], dtype=object), "n_rows": pd.Series([], dtype="int64"),
     "n_unassigned": pd.Series([], dtype="int64"), "seconds": pd.Series([], dtype="float64")}
)  # fmt: skip


def _write_partition(frame: pd.DataFrame, out_root: str) -> pd.DataFrame:
    """``map_partitions`` function: write one assigned partition at its output path and
    return one row saying what was written. Fused by Dask with the read and the
    assignment into one task, so the assigned rows never leave the worker's task.
    The file's own schema metadata (pandas' index and dtypes, HATS' column notes) is kept.
    Directories are made by the client beforehand: a task outliving a failed run cannot
    re-create a removed tree."""
    t0 = time.perf_counter()
    piece: _parquet.Piece = frame.attrs[_parquet.PIECE]
    n, n_unassigned, seconds = frame.attrs[_RESULT]
    try:
        table = _parquet.frame_table(frame)
        table = table.replace_schema_metadata(frame.attrs.get(_parquet.SCHEMA_METADATA))
        pq.write_table(table, Path(out_root) / piece.output_relpath)
    except Exception as exc:
        raise failure(piece.index, piece.where, exc) from exc
    return pd.DataFrame([{"partition": piece.index, "file": piece.output_relpath,
                          "source": piece.relpath, "n_rows": n, "n_unassigned": n_unassigned,
                          "seconds": seconds + time.perf_counter() - t0}])  # fmt: skip


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
    input_path : a Parquet file, a directory of them (searched recursively), or a HATS
        catalogue (or collection): then its pixel files as ``hats`` lists them, and the
        output is a HATS catalogue too (see ``som.distributed.hats``).
    output_path : directory to create. Each input file gives an output file at the same
        relative path (a file cut into several partitions gives ``name.0000.parquet``,
        ...), so hive/HATS directory layouts and file order are kept. Holds the carried
        columns, ``cell`` (int32; -1 for rows without a usable feature when
        ``allow_empty``), ``cell_distance`` (float64, feature-space distance to the cell's
        weights; NaN for cell -1), how far to trust it (``TRUST_COLUMNS``:
        ``cell_n_colours``, ``cell_percentile`` among the training rows' distances,
        ``cell_outside_training``) and the ``cell_stats`` columns, plus a ``_somcal.json``
        manifest.
    client : a ``distributed.Client``, a scheduler address ("tcp://host:8786"), "local"
        (a LocalCluster of one single-threaded worker per core, closed afterwards), or None:
        the default Dask client if one is running, else this process (dask's synchronous
        scheduler), one partition at a time.
    columns : input columns copied to the output (None: all). For a HATS input its
        coordinates and spatial index are always kept.
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
    rows_per_task : consecutive row groups of a file make partitions of about this many
        rows (a row group is never split); a partition is what a task holds in memory.
    batch_rows : rows assigned at a time within a partition (default: the map's
        ``chunk_size``); bounds the memory of the features and distances.
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
    som = load_map(som)
    if not hasattr(som, "weights_"):
        raise RuntimeError("this SOM is not fitted yet: call fit() first")
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
    catalogue = _hats.open_catalogue(source) if source.is_dir() else None
    if catalogue is not None and columns is not None:
        columns = list(columns) + [c for c in _hats.spatial_columns(catalogue) if c not in columns]
    ctx = Context.of(
        som,
        feature_columns,
        error_columns,
        carry=None if columns is None else tuple(columns),
        stats=stats,
        stats_row=stats_row,
        allow_empty=bool(allow_empty),
        batch_rows=int(batch_rows or som.chunk_size),
        threads=1 if threads_per_task is None else max(1, int(threads_per_task)),
    )
    required = list(columns or ()) + list(feature_columns or ()) + list(error_columns or ())
    wanted = None
    if columns is not None:
        wanted = list(columns) + [c for c in needed_columns(som, ctx) if c not in columns]
    # when every input column is carried, none may share a name with the added ones
    forbidden = frozenset(added) if columns is None else frozenset()
    # a HATS pixel is one partition, never cut: its file name is its place on the sky, and
    # HATS already bounds the rows per pixel (hats_max_rows)
    per_task = 2**62 if catalogue is not None else int(rows_per_task)
    root, pieces, failures = _parquet.plan(source, per_task, required, forbidden, wanted)
    if failures and not errors_ok:
        raise PartitionError(failures)

    client_, owned = resolve_client(client)
    if client_ is None and threads_per_task is None:
        ctx.threads = som.n_jobs  # alone in this process: the map's own setting (all cores)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.somcal-tmp-{uuid.uuid4().hex[:8]}")
    report = Progress(progress, "assign")
    try:
        tmp.mkdir()
        for rel in {Path(p.output_relpath).parent for p in pieces}:
            (tmp / rel).mkdir(parents=True, exist_ok=True)
        results = _run(client_, ctx, pieces, str(tmp), report, errors_ok) if pieces else []
        engine = "in-process" if client_ is None else client_.scheduler_info()["address"]
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        close_client(client_, owned)
    done = [r for r in results if "reason" not in r]
    failures += [r for r in results if "reason" in r]
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
    if catalogue is not None:
        summary["hats"] = True
        try:
            _hats.write_metadata(catalogue, tmp, n_rows, output.name,
                                 [r["source"] for r in done])  # fmt: skip
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
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


def _run(client, ctx, pieces, out_root, report, errors_ok) -> list[dict]:
    """Run the pipeline partition by partition; a result per partition that finished,
    written (its ``_write_partition`` dict) or failed (``{partition, where, reason}``)."""
    import dask

    frames, meta = _parquet.pieces_frame(pieces, ctx.threads)
    assigned = frames.map_partitions(
        _assign_frame, shipped(client, ctx), meta=_output_meta(meta, ctx), enforce_metadata=False
    )
    written = assigned.map_partitions(
        _write_partition, out_root, meta=_WRITTEN, enforce_metadata=False
    )
    writes = written.to_delayed()
    total_rows = sum(p.n_rows for p in pieces)
    results: list[dict] = []
    rows_done = 0

    def record(index: int, res: dict | None, exc: BaseException | None) -> bool:
        nonlocal rows_done
        if exc is not None:
            piece = pieces[index]
            if isinstance(exc, PartitionError):
                res = exc.failures[0]
            else:  # the cluster failed the task (worker lost, killed, ...)
                res = failure(piece.index, piece.where, exc).failures[0]
        results.append(res)
        rows_done += res.get("n_rows", 0)
        frac = len(results) / len(pieces) if not total_rows else rows_done / total_rows
        failed = sum("reason" in r for r in results)
        report(
            min(frac, 1.0),
            f"{len(results)}/{len(pieces)} partitions, {rows_done:,} rows"
            + (f", {failed} failed" if failed else ""),
        )
        return exc is None or errors_ok

    if client is None:
        for i, w in enumerate(writes):
            try:
                (res,) = dask.compute(w, scheduler="synchronous")
            except Exception as exc:
                if not record(i, None, exc):
                    break
            else:
                record(i, res.to_dict("records")[0], None)
        return results

    import distributed

    # a bounded number of partitions in flight: a failure stops the run after at most this
    # many more, and the client waits for them before removing the temporary directory
    in_flight = max(2, 2 * sum(client.nthreads().values()))
    queue = iter(enumerate(writes))
    index_of: dict[str, int] = {}
    completed = distributed.as_completed(loop=client.loop)

    def submit() -> None:
        item = next(queue, None)
        if item is not None:
            fut = client.compute(item[1])
            index_of[fut.key] = item[0]
            completed.add(fut)

    for _ in range(in_flight):
        submit()
    stopping = False
    for fut in completed:
        i = index_of.pop(fut.key)
        exc = fut.exception()
        ok = record(i, None if exc else fut.result().to_dict("records")[0], exc)
        fut.release()
        stopping = stopping or not ok
        if not stopping:
            submit()
    return results
