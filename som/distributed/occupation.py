"""``occupation_parquet``: a survey's occupation of a map (``som.occupation``) from a Parquet
dataset or HATS catalogue, computed partition by partition on Dask.

Each partition (a run of row groups, ``_parquet.plan``) is read with only the columns the
histograms need, assigned in batches (or, for a dataset already written by
``assign_parquet`` with this map, its ``cell`` and ``cell_outside_training`` columns are
used as they are), and reduced to its :class:`~som.occupation.Occupation`: a few arrays
of the map's size, whatever the partition's rows. They are added on the cluster in a
fixed tree of fan-in ``_SPLIT_EVERY`` in partition order, so counts are exact and weight
sums do not depend on timing; only a round's total reaches the client. Memory per worker
is one partition's columns plus one batch's features.

The partitions are submitted in rounds of a few per worker thread: progress is reported
as each partition ends (a queued job shows it), and the run stops after the round in
which a partition failed. A failed
partition does not raise inside the tree: its failure travels up as data, so the error
names every partition that failed (file, row groups, file rows, reason).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..estimator import SOM, ProgressCallback
from ..occupation import Occupation, _edges, _order
from ..trust import outside_training
from . import _parquet
from . import hats as _hats
from ._common import (
    CELL_COLUMN,
    DEFAULT_ROWS_PER_TASK,
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
    worker_map,
)

_SPLIT_EVERY = 8  # fan-in of the reduction tree
_OUTSIDE_COLUMN = TRUST_COLUMNS[2]
#: partitions per worker thread in a round (a failure stops the run after its round)
_ROUND_PER_THREAD = 4


def healpix_pixels(ra: np.ndarray, dec: np.ndarray, order: int) -> np.ndarray:
    """HEALPix nested pixel of each position at ``order``, by ``hats``' own pixel maths
    (the numbering of a HATS catalogue's ``Npix``); -1 where a position is missing or off
    the sky."""
    from hats.pixel_math.healpix_shim import radec2pix

    ra = np.asarray(ra, np.float64)
    dec = np.asarray(dec, np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    out = np.full(len(ra), -1, np.int64)
    if ok.any():
        out[ok] = radec2pix(order, np.mod(ra[ok], 360.0), dec[ok])
    return out


class _Spec:
    """What a partition task needs besides the map: which columns mean what."""

    def __init__(self, ctx: Context, *, assigned: bool, mag_column, mag_edges, z_column,
                 z_edges, weight_column, healpix_order, ra_column, dec_column):  # fmt: skip
        self.ctx = ctx
        self.assigned = assigned
        self.mag_column, self.mag_edges = mag_column, mag_edges
        self.z_column, self.z_edges = z_column, z_edges
        self.weight_column = weight_column
        self.healpix_order = healpix_order
        self.ra_column, self.dec_column = ra_column, dec_column

    def columns(self, som: SOM | None) -> list[str]:
        """Input columns a partition reads: no more than the histograms need."""
        cols = [CELL_COLUMN, _OUTSIDE_COLUMN] if self.assigned else needed_columns(som, self.ctx)
        for c in (self.mag_column, self.z_column, self.weight_column):
            if c is not None and c not in cols:
                cols.append(c)
        if self.healpix_order is not None:
            cols += [c for c in (self.ra_column, self.dec_column) if c not in cols]
        return cols


def _column(table: pa.Table, name: str, where: str) -> np.ndarray:
    col = table.column(name)
    t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_null(t)):  # fmt: skip
        reason = f"column {name!r} has Arrow type {t}; it must be numeric"
        raise PartitionError([{"partition": None, "where": where, "reason": reason}])
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _piece_occupation(piece: _parquet.Piece, spec: _Spec) -> Occupation | PartitionError:
    """Bag function: one partition's occupation, or the PartitionError that names why it
    could not be computed (returned, not raised, so that every failure is reported)."""
    ctx = spec.ctx
    first_row = piece.first_row
    try:
        som = worker_map(ctx)
        frame = _parquet.read_piece(piece, ctx.threads)
        table = _parquet.frame_table(frame)
        del frame
        n = table.num_rows
        if spec.assigned:
            cells = _column(table, CELL_COLUMN, piece.relpath)
            cells = np.where(np.isfinite(cells), cells, -1).astype(np.int64)
            outside = _column(table, _OUTSIDE_COLUMN, piece.relpath) == 1.0
        else:
            cells = np.empty(n, np.int64)
            outside = np.empty(n, bool)
            start = 0
            for batch in table.select(needed_columns(som, ctx)).to_batches(ctx.batch_rows):
                X, E, _ = batch_features(som, ctx, batch, first_row, piece.relpath)
                a = som.assign(X, E, allow_empty=True)
                stop = start + batch.num_rows
                cells[start:stop] = a.cell
                outside[start:stop] = outside_training(a)
                start, first_row = stop, first_row + batch.num_rows

        def values(name):
            return None if name is None else _column(table, name, piece.relpath)

        pixels = None
        if spec.healpix_order is not None:
            pixels = healpix_pixels(values(spec.ra_column), values(spec.dec_column),
                                    spec.healpix_order)  # fmt: skip
        try:
            return Occupation.from_rows(
                som.n_cells, cells, outside=outside, weights=values(spec.weight_column),
                mags=values(spec.mag_column), mag_edges=spec.mag_edges,
                z=values(spec.z_column), z_edges=spec.z_edges, pixels=pixels,
                healpix_order=spec.healpix_order, mag_column=spec.mag_column,
                z_column=spec.z_column, weight_column=spec.weight_column,
            )  # fmt: skip
        except ValueError as exc:
            # rows of the partition, numbered in the file
            raise ValueError(f"{exc} (row numbers count from file row {piece.first_row})") from exc
    except PartitionError as exc:
        f = dict(exc.failures[0])
        f.update(partition=piece.index, where=piece.where)
        return PartitionError([f])
    except Exception as exc:
        return failure(piece.index, piece.where, exc, first_row)


def _combine(results) -> Occupation | PartitionError:
    """Reduction step: add partial occupations in partition order; failures collected."""
    results = list(results)
    failed = [r for r in results if isinstance(r, PartitionError)]
    if failed:
        return PartitionError([f for r in failed for f in r.failures])
    return Occupation.combine(*results)


def _first(seq):
    return next(iter(seq))


def dataset_checksum(files: Sequence[Path], root: Path) -> str:
    """SHA-256 over every file's relative path, size and Parquet footer: a dataset's
    identity (a repeated pass over the same files is recognised) without reading its
    10^9 rows twice."""
    import pyarrow.parquet as pq

    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(str(f.stat().st_size).encode())
        try:
            meta = pq.read_metadata(f)
            h.update(str((meta.num_rows, meta.num_row_groups, meta.serialized_size)).encode())
        except Exception:  # noqa: BLE001 - an unreadable file fails in the plan, by name
            h.update(b"unreadable")
    return h.hexdigest()


def occupation_parquet(
    som: SOM | str | os.PathLike,
    input_path: str | os.PathLike,
    *,
    client: Any = None,
    mag_column: str | None = None,
    mag_edges: Any = None,
    z_column: str | None = None,
    z_edges: Any = None,
    weight_column: str | None = None,
    healpix_order: int | None = None,
    ra_column: str | None = None,
    dec_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    error_columns: Sequence[str] | None = None,
    progress: bool | ProgressCallback = True,
    rows_per_task: int = DEFAULT_ROWS_PER_TASK,
    batch_rows: int | None = None,
    threads_per_task: int | None = None,
) -> Occupation:
    """The occupation of ``som`` by every row of a Parquet dataset or HATS catalogue.

    ``input_path`` is a Parquet file, a directory of them, a HATS catalogue, or the output
    of :func:`assign_parquet` with this map (recognised by its ``_somcal.json``; its cells
    are used, not recomputed; another map's output is refused, checked by assigning its
    first rows again when it carries their features). ``mag_column`` with
    ``mag_edges`` and ``z_column`` with ``z_edges`` add the magnitude and photo-z splits;
    ``healpix_order`` the sky split on ``ra_column``/``dec_column`` (a HATS catalogue's own
    by default); ``weight_column`` the weight sums (1 per row without). ``client``,
    ``rows_per_task``, ``batch_rows``, ``threads_per_task``, ``feature_columns`` and
    ``error_columns`` as in :func:`assign_parquet`.

    Returns the :class:`~som.occupation.Occupation`, its ``provenance`` holding the
    dataset, its file count and checksum (:func:`dataset_checksum`), the map's
    fingerprint (:func:`map_fingerprint`),
    the engine, the time and the rows per second. Raises ``PartitionError`` naming every
    file or partition that failed (missing columns are found from the footers, before any
    work); nothing is returned half-computed.
    """
    t0 = time.perf_counter()
    som = load_map(som)
    if not hasattr(som, "weights_"):
        raise RuntimeError("this SOM is not fitted yet: call fit() first")
    source = Path(input_path).expanduser().resolve()
    if (mag_column is None) != (mag_edges is None):
        raise ValueError("mag_column and mag_edges go together")
    if (z_column is None) != (z_edges is None):
        raise ValueError("z_column and z_edges go together")
    mag_edges = None if mag_edges is None else _edges(mag_edges, "mag_edges")
    z_edges = None if z_edges is None else _edges(z_edges, "z_edges")
    if healpix_order is not None:
        healpix_order = _order(healpix_order)
    if int(rows_per_task) < 1 or (batch_rows is not None and int(batch_rows) < 1):
        raise ValueError("rows_per_task and batch_rows must be positive")

    assigned = False
    manifest_path = source / MANIFEST if source.is_dir() else source.parent / MANIFEST
    ctx = Context.of(
        som, feature_columns, error_columns,
        batch_rows=int(batch_rows or som.chunk_size),
        threads=1 if threads_per_task is None else max(1, int(threads_per_task)),
    )  # fmt: skip
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        assigned = manifest.get("format") == "somcal-assignment"
    if not assigned and som.features is None and feature_columns is None:
        raise ValueError(
            "this map has no feature definition (som.features is None): pass "
            f"feature_columns=[...] naming its {som.n_features_in_} input columns"
        )
    catalogue = _hats.open_catalogue(source) if source.is_dir() else None
    if healpix_order is not None and (ra_column is None or dec_column is None):
        if catalogue is None:
            raise ValueError("healpix_order needs ra_column and dec_column")
        info = catalogue.catalog_info
        ra_column, dec_column = ra_column or info.ra_column, dec_column or info.dec_column
    spec = _Spec(
        ctx, assigned=assigned, mag_column=mag_column, mag_edges=mag_edges,
        z_column=z_column, z_edges=z_edges, weight_column=weight_column,
        healpix_order=healpix_order, ra_column=ra_column, dec_column=dec_column,
    )  # fmt: skip
    wanted = spec.columns(som)
    per_task = 2**62 if catalogue is not None else int(rows_per_task)
    root, pieces, failures = _parquet.plan(source, per_task, wanted, wanted=wanted)
    if failures:
        raise PartitionError(failures)
    _, files = _parquet.list_parquet_files(source)
    if assigned:
        _check_assigned(som, ctx, pieces)

    client_, owned = resolve_client(client)
    if client_ is None and threads_per_task is None:
        ctx.threads = som.n_jobs
    report = Progress(progress, "occupation")
    try:
        total = _run(client_, spec, pieces, report)
        engine = "in-process" if client_ is None else client_.scheduler_info()["address"]
    finally:
        close_client(client_, owned)
    seconds = time.perf_counter() - t0
    total.provenance = {
        "dataset": str(source),
        "hats": catalogue is not None,
        "from_assignment": assigned,
        "n_files": len(files),
        "n_partitions": len(pieces),
        "dataset_sha256": dataset_checksum(files, root),
        "map_fingerprint": map_fingerprint(som),
        "engine": engine,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": seconds,
        "rows_per_second": total.n_rows / seconds if seconds > 0 else float("nan"),
    }
    return total


def map_fingerprint(som: SOM) -> str:
    """SHA-256 of what decides a map's cells (its shape, lattice and weights): the same
    for every copy of a map, unlike its serialised bytes, which carry their save time."""
    h = hashlib.sha256()
    h.update(f"{som.n_rows}x{som.n_cols}:{som.lattice}:{som.periodic}".encode())
    h.update(np.ascontiguousarray(som.weights_, dtype=np.float64).tobytes())
    return h.hexdigest()


#: rows of an assigned dataset re-assigned to check that its cells are this map's
_CHECK_ROWS = 2000


def _check_assigned(som: SOM, ctx: Context, pieces: list[_parquet.Piece]) -> None:
    """An ``assign_parquet`` output's cells are used as they are, so they must be this
    map's: the first rows that carry their features are assigned again and compared (the
    manifest's map digest cannot tell, as a map's bytes carry their save time)."""
    import pyarrow.parquet as pq

    cols = needed_columns(som, ctx)
    for piece in pieces:
        if not piece.n_rows:
            continue
        pf = pq.ParquetFile(piece.path)
        names = pf.schema_arrow.names
        if any(c not in names for c in cols):
            return  # features not carried: nothing to compare with; the cells are trusted
        table = pf.read_row_group(piece.row_groups[0], columns=[*cols, CELL_COLUMN])
        table = table.slice(0, _CHECK_ROWS)
        X, E, _ = batch_features(som, ctx, table, piece.first_row, piece.relpath)
        mine = som.assign(X, E, allow_empty=True).cell
        theirs = _column(table, CELL_COLUMN, piece.relpath)
        theirs = np.where(np.isfinite(theirs), theirs, -1).astype(np.int64)
        differ = np.flatnonzero(mine != theirs)
        if len(differ):
            r = int(differ[0])
            raise ValueError(
                f"{piece.relpath}: the cells were not assigned with this map (file row "
                f"{piece.first_row + r}: cell {theirs[r]}, this map gives {mine[r]}); compute "
                "the occupation from the input dataset instead"
            )
        return


def _tree(values: list, combine) -> Any:
    """``values`` added in a fixed tree of ``_SPLIT_EVERY``-way steps, in partition order:
    the same sums (to the last bit) whatever ran them and in whatever order they ended."""
    while len(values) > 1:
        step = _SPLIT_EVERY
        values = [combine(values[i : i + step]) for i in range(0, len(values), step)]
    return values[0]


def _run(client, spec: _Spec, pieces: list[_parquet.Piece], report) -> Occupation:
    """Every partition's occupation, added up. Partitions are submitted in rounds of a few
    per worker thread (the run stops after the round in which one failed), progress is
    reported as each partition ends, and a round's partials are added on the cluster in
    the fixed tree (:func:`_tree`), so only the round's total reaches this process."""
    threads = 1 if client is None else max(1, sum(client.nthreads().values()))
    size = max(_SPLIT_EVERY, _ROUND_PER_THREAD * threads)
    total_rows = sum(p.n_rows for p in pieces) or 1
    partials: list[Occupation] = []
    done = rows_done = 0

    def finished(piece: _parquet.Piece) -> None:
        nonlocal done, rows_done
        done += 1
        rows_done += piece.n_rows
        report(
            min(rows_done / total_rows, 1.0),
            f"{done}/{len(pieces)} partitions, {rows_done:,} rows; last: {piece.where}",
        )

    spec_ref = None
    if client is not None:
        # the spec holds the map: on every worker once, referenced by each task
        spec_ref = client.scatter(spec, broadcast=True, hash=False)
    for start in range(0, len(pieces), size):
        chunk = pieces[start : start + size]
        if client is None:
            values = []
            for piece in chunk:
                values.append(_piece_occupation(piece, spec))
                finished(piece)
            value = _tree(values, _combine)
        else:
            value = _round_on_cluster(client, chunk, spec_ref, finished)
        if isinstance(value, PartitionError):
            raise value
        partials.append(value)
    # the rounds' totals, added here in round order: a handful of map-sized arrays
    if not partials:
        raise FileNotFoundError("no Parquet data to read")
    return _combine(partials) if len(partials) > 1 else partials[0]


def _round_on_cluster(client, chunk, spec_ref, finished) -> Occupation | PartitionError:
    import distributed

    futures = client.map(_piece_occupation, chunk, spec=spec_ref, pure=False)
    piece_of = {f.key: p for f, p in zip(futures, chunk, strict=True)}
    lost = []
    for fut in distributed.as_completed(futures, loop=client.loop):
        if fut.status == "error":  # the cluster failed the task (a worker lost, killed...)
            piece = piece_of[fut.key]
            lost.append(failure(piece.index, piece.where, fut.exception()))
        finished(piece_of[fut.key])
    if lost:
        return PartitionError([f for e in lost for f in e.failures])
    total = _tree(futures, lambda group: client.submit(_combine, group, pure=False))
    return total.result()
