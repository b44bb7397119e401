"""``fit_distributed``: the Kohonen batch map trained over Dask partitions.

The data become a ``dask.bag`` with one partition (one ``_Part`` of features) per Parquet
piece, Dask DataFrame partition or Dask array block, optionally persisted. Each epoch
the weights are shipped once, every partition computes ``SOM.batch_sums`` and
``Bag.reduction`` adds them in a fixed tree (``split_every``), so the sum does not depend
on timing; ``SOM.apply_batch_sums`` runs here. A failing partition does not raise in the
reduction: its failure travels up the tree as data, so the error names every partition
that failed, not just the first one to be noticed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from ..estimator import SOM, ProgressCallback, SOMError
from ..trust import DistanceDistribution
from . import _parquet
from ._common import (
    DEFAULT_ROWS_PER_TASK,
    INIT_SAMPLE_SIZE,
    Context,
    PartitionError,
    Progress,
    batch_features,
    close_client,
    failure,
    needed_columns,
    resolve_client,
    shipped,
    worker_map,
)

_SPLIT_EVERY = 8  # fan-in of the reduction tree


@dataclass
class _Part:
    """Features of one partition (a bag element), held on a worker between epochs."""

    X: np.ndarray
    E: np.ndarray | None
    w: np.ndarray | None
    where: str
    index: int
    first_row: int = 0  # file row of X[0] (Parquet pieces); SOMError rows count from it


def _piece_part(piece: _parquet.Piece, ctx: Context) -> list[_Part]:
    """Bag partition function: a Parquet piece's features, batch by batch (a failure is
    returned as the partition's element, so that every failed partition can be named)."""
    first_row = piece.first_row
    try:
        som = worker_map(ctx)
        table = _parquet.frame_table(_parquet.read_piece(piece, ctx.threads))
        xs, es, ws = [], [], []
        for batch in table.to_batches(max_chunksize=ctx.batch_rows):
            X, E, w = batch_features(som, ctx, batch, first_row, piece.relpath)
            xs.append(X)
            es.append(E)
            ws.append(w)
            first_row += batch.num_rows
    except Exception as exc:
        return [failure(piece.index, piece.where, exc, first_row)]
    F = som.n_features_in_
    X = np.concatenate(xs) if xs else np.empty((0, F))
    E = np.concatenate(es) if es and es[0] is not None else None
    w = np.concatenate(ws) if ws and ws[0] is not None else None
    return [_Part(X, E, w, piece.where, piece.index, piece.first_row)]


def _frame_part(frame, index: int, ctx: Context) -> list[_Part]:
    where = f"partition {index} of the Dask DataFrame"
    try:
        som = worker_map(ctx)
        names = set(frame.columns)
        missing = [c for c in (ctx.feature_columns or ()) if c not in names]
        if missing:
            raise KeyError(f"column(s) {missing} missing")
        cols = [c for c in needed_columns(som, ctx) if c in names]
        batch = pa.RecordBatch.from_pandas(frame[cols], preserve_index=False)
        X, E, w = batch_features(som, ctx, batch, 0, where)
    except Exception as exc:
        return [failure(index, where, exc)]
    return [_Part(X, E, w, where, index)]


def _array_part(block, index: int) -> list[_Part]:
    return [_Part(np.asarray(block), None, None, f"block {index} of the Dask array", index)]


def _trainer(ctx: Context, weights: np.ndarray) -> SOM:
    som = copy.copy(worker_map(ctx))  # shallow: tasks sharing a worker keep their weights
    som.weights_ = weights
    return som


def _sums(parts, ctx: Context, weights: np.ndarray):
    """Per partition: (S, N, squared error, rows) of ``SOM.batch_sums``, or its failure."""
    (part,) = parts
    if isinstance(part, PartitionError):
        return part
    F = weights.shape[1]
    if part.X.shape[0] == 0:
        return np.zeros((weights.shape[0], F)), np.zeros((weights.shape[0], F)), 0.0, 0
    try:
        S, N, sq = _trainer(ctx, weights).batch_sums(
            part.X, part.E, part.w, skip_empty=ctx.allow_empty
        )
    except Exception as exc:
        return failure(part.index, part.where, exc, part.first_row)
    return S, N, sq, part.X.shape[0]


def _quality(parts, ctx: Context, weights: np.ndarray, den: np.ndarray | None):
    """Per partition: ``SOM.quality_sums`` (distances, topography, occupancy, distance
    record) for ``quality_`` and ``training_distances_``, or its failure."""
    (part,) = parts
    if isinstance(part, PartitionError):
        return part
    som = _trainer(ctx, weights)
    if part.X.shape[0] == 0:
        record = DistanceDistribution.empty(som.distance, som.n_features_in_)
        return 0.0, 0, 0, np.zeros(som.n_cells, np.int64), record
    try:
        return som.quality_sums(part.X, part.E, part.w, skip_empty=ctx.allow_empty, den=den)
    except Exception as exc:
        return failure(part.index, part.where, exc, part.first_row)


def _combine(add, results):
    """Reduction step: add partial results in partition order; failures are collected."""
    results = list(results)
    failed = [r for r in results if isinstance(r, PartitionError)]
    if failed:
        return PartitionError([f for r in failed for f in r.failures])
    return add(*results)


def _add_sums(*parts):
    S, N, sq, n = parts[0]
    S, N = S.copy(), N.copy()
    for s, nn, q, m in parts[1:]:
        S += s
        N += nn
        sq += q
        n += m
    return S, N, sq, n


def _result(collection, client):
    value = (collection.compute(scheduler="synchronous") if client is None
             else client.compute(collection).result())  # fmt: skip
    if isinstance(value, PartitionError):
        raise value
    return value


def _epoch_sums(bag, client, per_part, add, *args):
    """Sum ``per_part(part, *args)`` over the bag's partitions in a fixed tree of
    ``_SPLIT_EVERY``-way additions (``Bag.reduction``), in partition order."""
    partials = bag.map_partitions(lambda parts, *a: [per_part(parts, *a)], *args)
    total = partials.reduction(_first, partial(_combine, add), split_every=_SPLIT_EVERY)
    return _result(total, client)


def _first(seq):
    return next(iter(seq))


def _part_len(part) -> int | PartitionError:
    return part if isinstance(part, PartitionError) else int(part.X.shape[0])


def _part_rows(parts, rows: np.ndarray) -> np.ndarray:
    return parts[0].X[rows]


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

    ``data`` is a Parquet file or dataset directory (or HATS catalogue), a Dask DataFrame
    (columns as for ``assign_parquet``: ``feature_columns`` for a map without
    ``features``, else the band columns; ``weight_column`` for sample weights) or a 2-D
    Dask array of features. ``client`` as for ``assign_parquet`` (None and no default
    client: this process, dask's synchronous scheduler).

    Each epoch the current weights are shipped once, every partition computes its
    ``SOM.batch_sums`` (per-cell feature sums S and counts N), the sums are added in a
    fixed tree, and ``SOM.apply_batch_sums`` runs here. Sums add up exactly in exact
    arithmetic, so the map equals ``SOM.fit`` on the concatenated data up to float
    rounding of the additions (different order), provided the starting weights are equal.

    Initialisation: ``SOM.initialize`` draws ``sample_size_for_init`` distinct row numbers
    of the concatenated data with the map's generator, exactly the draw ``SOM.fit`` makes
    with the default 100,000, so the starting weights are *identical* to ``SOM.fit`` on
    the concatenated data with the same ``random_state`` (rows in partition order).

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
    client, owned = resolve_client(client)
    try:
        return _fit(som, data, client, n_epochs=n_epochs, sample_size=int(sample_size_for_init),
                    progress=Progress(progress, "train") if progress else None,
                    feature_columns=feature_columns, error_columns=error_columns,
                    weight_column=weight_column, persist=persist,
                    rows_per_task=int(rows_per_task), threads=max(1, int(threads_per_task)),
                    compute_quality=compute_quality, skip_empty=bool(skip_empty))  # fmt: skip
    finally:
        close_client(client, owned)


def _n_features(som, data, feature_columns, error_columns) -> int:
    import dask.array as da

    if som.features is not None:
        if feature_columns is not None:
            raise ValueError("the map defines its features (som.features); omit feature_columns")
        if not getattr(som.features, "feature_names_", None):
            raise ValueError(
                "som.features is not fitted: fit its normalisation first (e.g. on a sample, "
                "som.features.fit(table)); fit_distributed does not refit it on the cluster"
            )
        return int(som.features.n_features_)
    if error_columns is not None and len(error_columns) != len(feature_columns or ()):
        raise ValueError("error_columns must pair one-to-one with feature_columns")
    if isinstance(data, da.Array):
        if data.ndim != 2:
            raise ValueError(f"a Dask array of features must be 2-D, got shape {data.shape}")
        return int(data.shape[1])
    if feature_columns is None:
        raise ValueError("a map without features needs feature_columns=[...] to read a table")
    return len(feature_columns)


def _parts_bag(data, ctx, ctx_arg, rows_per_task):
    """The data as a bag of ``_Part`` elements, one per partition."""
    import dask
    import dask.array as da
    import dask.bag as db
    import dask.dataframe as dd

    if isinstance(data, da.Array):
        blocks = data.rechunk({1: -1}).to_delayed().ravel()
        parts = [dask.delayed(_array_part)(b, i) for i, b in enumerate(blocks)]
        return db.from_delayed(parts)
    if isinstance(data, dd.DataFrame):
        frames = data.to_delayed()
        return db.from_delayed(
            [dask.delayed(_frame_part)(f, i, ctx_arg) for i, f in enumerate(frames)]
        )
    if isinstance(data, str | os.PathLike):
        required = list(ctx.feature_columns or ()) + list(ctx.error_columns or ())
        required += [ctx.weight_column] if ctx.weight_column else []
        _, pieces, failures = _parquet.plan(data, rows_per_task, required)
        if failures:
            raise PartitionError(failures)
        return db.from_sequence(pieces, partition_size=1).map_partitions(
            lambda ps, c: _piece_part(ps[0], c), ctx_arg
        )
    raise TypeError(
        f"data must be a Parquet path, a Dask DataFrame or a Dask array, got {type(data)}"
    )


def _fit(som, data, client, *, n_epochs, sample_size, progress, feature_columns, error_columns,
         weight_column, persist, rows_per_task, threads, compute_quality,
         skip_empty):  # fmt: skip
    import dask

    if som.method != "batch":
        raise ValueError("fit_distributed trains the batch map (method='batch') only")
    if sample_size < 1:
        raise ValueError("sample_size_for_init must be positive")
    n_features = _n_features(som, data, feature_columns, error_columns)

    # a started map, so that the context's bytes describe the grid; the weights the workers
    # use are shipped every epoch, these zeros never reach a sum
    template = copy.copy(som)
    template.n_features_in_ = n_features
    template.weights_ = np.zeros((som.n_cells, n_features))
    template.n_jobs = threads
    template.training_distances_ = None  # the workers measure; a stale record is dead weight
    ctx = Context.of(
        template,
        feature_columns,
        error_columns,
        weight_column=weight_column,
        batch_rows=int(som.chunk_size),
        threads=threads,
        allow_empty=skip_empty,
    )
    ctx_arg = shipped(client, ctx)
    bag = _parts_bag(data, ctx, ctx_arg, rows_per_task)
    if persist:
        bag = bag.persist(scheduler="synchronous") if client is None else client.persist(bag)

    lengths = bag.map(_part_len)
    lengths = (lengths.compute(scheduler="synchronous") if client is None
               else client.compute(lengths).result())  # fmt: skip
    failed = [f for x in lengths if isinstance(x, PartitionError) for f in x.failures]
    if failed:
        raise PartitionError(failed)
    lengths = np.array(lengths, np.int64)
    n_total = int(lengths.sum())
    if n_total == 0:
        raise SOMError("no rows: every partition is empty")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    delayed_parts = bag.to_delayed()

    def take(rows: np.ndarray) -> np.ndarray:
        wanted = []
        for i in range(len(lengths)):
            lo, hi = np.searchsorted(rows, bounds[i : i + 2])
            if hi > lo:
                wanted.append(dask.delayed(_part_rows)(delayed_parts[i], rows[lo:hi] - bounds[i]))
        got = (dask.compute(*wanted, scheduler="synchronous") if client is None
               else client.gather(client.compute(wanted)))  # fmt: skip
        return np.concatenate(got)

    som.initialize(n_total, take, sample_size=sample_size)
    som.training_["distributed"] = {"n_partitions": len(lengths), "n_rows": n_total}

    n_epochs = int(n_epochs or som.n_epochs)
    for e, sigma in enumerate(som.sigma_schedule(n_epochs)):
        weights = shipped(client, som.weights_)
        S, N, sq, n = _epoch_sums(bag, client, _sums, _add_sums, ctx_arg, weights)
        som.apply_batch_sums(S, N, sigma)
        som.record_epoch(sigma, sq, n)
        if progress is not None:
            progress((e + 1) / n_epochs, f"epoch {e + 1}/{n_epochs} (sigma {sigma:.2f})")

    if compute_quality:
        weights, den = shipped(client, som.weights_), shipped(client, som.batch_den_)
        measures = _epoch_sums(bag, client, _quality, SOM.add_quality_sums, ctx_arg, weights,
                               den)  # fmt: skip
        som.set_quality(*measures)
    else:
        # no measuring pass: no distance record, so assign() gives NaN percentiles
        som.quality_ = {"n_rows_trained": n_total}
    return som
