"""A Parquet dataset (or a HATS catalogue's pixel files) as Dask partitions.

A partition is a run of consecutive row groups of one file, about ``rows_per_task`` rows,
so that a failure can be named by file, row groups and file rows, and each input file
gives the output file at the same relative path. Planning reads only the footers; the
partitions themselves are a ``dask.dataframe`` made by ``dd.from_map``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import hats as _hats
from ._common import failure

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
# pyarrow's dataset discovery skips these prefixes too (Spark's _SUCCESS, _metadata, .crc)
_IGNORED_PREFIXES = (".", "_")
PIECE = "somcal_piece"  # DataFrame.attrs key: the partition's _Piece
SCHEMA_METADATA = "somcal_schema_metadata"  # DataFrame.attrs key: the file's Arrow metadata


@dataclass(frozen=True)
class Piece:
    """A run of consecutive row groups of one Parquet file: one partition."""

    index: int
    path: str  # absolute
    relpath: str  # relative to the dataset root, with "/" separators
    row_groups: tuple[int, ...]
    first_row: int  # row offset of the first row group within the file
    n_rows: int
    split: int | None  # k-th piece of a file cut into several, None when it is the whole file
    columns: tuple[str, ...] | None = None  # columns to read; None: all

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

    ``path`` is one file, a directory searched recursively for ``*.parquet``/``*.pq``/
    ``*.parq`` (skipping names starting with "." or "_" as pyarrow does), or a HATS
    catalogue or collection: then its pixel files as the ``hats`` package lists them
    (root: the main catalogue's directory), not its thumbnails, metadata or margins.
    """
    root = Path(path).expanduser().resolve()
    if root.is_file():
        return root.parent, [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or directory")
    catalogue = _hats.open_catalogue(root)
    if catalogue is not None:
        return _hats.catalogue_dir(catalogue), _hats.pixel_files(catalogue)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(_IGNORED_PREFIXES))
        files += [
            Path(dirpath) / name
            for name in filenames
            if not name.startswith(_IGNORED_PREFIXES) and name.lower().endswith(PARQUET_SUFFIXES)
        ]
    if not files:
        raise FileNotFoundError(
            f"{root}: no Parquet files ({', '.join('*' + s for s in PARQUET_SUFFIXES)}) found"
        )
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def plan(
    path,
    rows_per_task: int,
    required: Sequence[str],
    forbidden: frozenset = frozenset(),
    wanted: Sequence[str] | None = None,
) -> tuple[Path, list[Piece], list[dict]]:
    """Cut a dataset into pieces of about ``rows_per_task`` rows, reading only the footers.

    Files that cannot be opened, or lack a ``required`` column, become failures (with the
    same shape as a failed partition) instead of pieces. A file holding a ``forbidden``
    column (one the output would overwrite) is a ValueError: the call, not the data, is
    wrong. ``wanted``: the columns to read, as far as each file has them (None: all).
    """
    root, files = list_parquet_files(path)
    pieces: list[Piece] = []
    failures: list[dict] = []
    for file in files:
        rel = file.relative_to(root).as_posix()
        try:
            meta = pq.read_metadata(file)
            names = meta.schema.to_arrow_schema().names
        except Exception as exc:
            reason = f"not a readable Parquet file ({exc})"
            failures.append({"partition": None, "where": rel, "reason": reason})
            continue
        clash = sorted(forbidden & set(names))
        if clash:
            raise ValueError(
                f"{rel}: input column(s) {clash} would be overwritten by the assignment; "
                "pass columns=[...] without them"
            )
        missing = [c for c in required if c not in names]
        if missing:
            has = ", ".join(map(repr, names[:20])) + (" ..." if len(names) > 20 else "")
            reason = f"column(s) {', '.join(map(repr, missing))} missing; the file has {has}"
            failures.append({"partition": None, "where": rel, "reason": reason})
            continue
        columns = None if wanted is None else tuple(c for c in wanted if c in names)
        groups: list[list[int]] = [[]]
        sizes = [0]
        for rg in range(meta.num_row_groups):
            n = meta.row_group(rg).num_rows
            if groups[-1] and sizes[-1] + n > rows_per_task:
                groups.append([])
                sizes.append(0)
            groups[-1].append(rg)
            sizes[-1] += n
        first = 0  # a file without row groups still gives one (empty) piece
        for k, (rgs, n) in enumerate(zip(groups, sizes, strict=True)):
            split = None if len(groups) == 1 else k
            pieces.append(Piece(len(pieces), str(file), rel, tuple(rgs), first, n, split, columns))
            first += n
    return root, pieces, failures


def read_piece(piece: Piece, threads: int | None = 1) -> pd.DataFrame:
    """Partition function of ``dd.from_map``: the piece's rows, columns as Arrow types
    (``pd.ArrowDtype``: no conversion, nulls stay nulls); the piece and the file's schema
    metadata ride along in ``DataFrame.attrs`` for the tasks downstream."""
    try:
        pf = pq.ParquetFile(piece.path)
        columns = None if piece.columns is None else list(piece.columns)
        table = pf.read_row_groups(
            list(piece.row_groups), columns=columns, use_threads=threads is None or threads > 1
        )
    except Exception as exc:
        raise failure(piece.index, piece.where, exc) from exc
    frame = table.to_pandas(types_mapper=pd.ArrowDtype, ignore_metadata=True)
    frame.attrs[PIECE] = piece
    frame.attrs[SCHEMA_METADATA] = table.schema.metadata
    return frame


def frame_table(frame: pd.DataFrame) -> pa.Table:
    """The Arrow table of a partition made by ``read_piece`` (or any pandas frame)."""
    if frame.attrs:  # pyarrow would try to store attrs (a Piece) in the pandas metadata
        frame = frame.copy(deep=False)
        frame.attrs = {}
    return pa.Table.from_pandas(frame, preserve_index=False)


def pieces_frame(pieces: list[Piece], threads: int | None):
    """The pieces as a Dask DataFrame, one partition each (``dd.from_map``), and its
    (empty) meta frame: the first file's columns as Arrow types."""
    import dask.dataframe as dd

    if not pieces:
        raise FileNotFoundError("no Parquet data to read")
    first = pieces[0]
    schema = pq.read_schema(first.path)
    if first.columns is not None:
        schema = pa.schema([schema.field(c) for c in first.columns])
    meta = schema.empty_table().to_pandas(types_mapper=pd.ArrowDtype, ignore_metadata=True)
    # files may differ in their types (a failure to report, not to coerce): no enforcing
    frames = dd.from_map(
        read_piece, pieces, threads=threads, meta=meta, enforce_metadata=False,
        label="somcal-read-parquet", divisions=None,
    )  # fmt: skip
    return frames, meta
