"""Catalogue files for the service: a thin adapter over :mod:`som.tables`.

All reading (format detection, header, column-selective and streaming reads, locating bad
bytes and rows) is :class:`som.tables.TableReader`'s. This module only turns its
:class:`~som.tables.CatalogError` into :class:`~app.services.errors.InvalidInputError` (422)
with one :class:`~app.services.errors.RowError` naming the uploaded file, the column and the
0-based data row where known, so routers and ingest see the same errors as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from app.services.errors import InvalidInputError, RowError
from som.tables import DEFAULT_CHUNK_ROWS, CatalogError, Chunk, TableReader
from som.tables import FORMATS as _FORMATS
from som.tables import detect_format as _detect_format

FORMATS = tuple(_FORMATS)

__all__ = ["DEFAULT_CHUNK_ROWS", "FORMATS", "Chunk", "TableFile", "detect_format"]


def _fail(file: str, reason: str, column: str | None = None, row: int | None = None):
    where = f" column {column!r}:" if column else ""
    raise InvalidInputError(f"{file}:{where} {reason}", [RowError(file, column, row, reason)])


@contextlib.contextmanager
def _as_invalid_input(file: str):
    try:
        yield
    except CatalogError as exc:
        _fail(file, exc.reason, exc.column, exc.row)


def detect_format(path: Path, filename: str | None = None) -> str:
    """The file's format (content first, then the name), see :func:`som.tables.detect_format`."""
    file = filename or path.name
    with _as_invalid_input(file):
        return _detect_format(path, file)
    raise AssertionError  # unreachable: the context manager re-raises


class TableFile:
    """One catalogue file: its column names, then the columns an ingest asks for."""

    def __init__(self, path: Path, fmt: str, file: str) -> None:
        if fmt not in FORMATS:
            _fail(file, f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
        self.path, self.fmt, self.file = path, fmt, file
        with _as_invalid_input(file):
            self._reader = TableReader(path, fmt, name=file)
        self.columns: list[str] = self._reader.columns

    def units(self) -> dict[str, str]:
        """:meth:`som.tables.TableReader.units`: the column units the file declares."""
        with _as_invalid_input(self.file):
            return self._reader.units()

    def n_rows_hint(self) -> int | None:
        """Row count from metadata, before reading (Parquet, FITS, HDF5, ECSV, VOTable);
        None for CSV and ASCII."""
        return self._reader.n_rows_hint()

    def read(self, columns: list[str], text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
        """The named columns of every row; ``text_columns`` keep the text as written."""
        with _as_invalid_input(self.file):
            return self._reader.read(columns, text_columns)
        raise AssertionError  # unreachable

    def iter_chunks(
        self,
        columns: list[str],
        text_columns: Iterable[str] = (),
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[Chunk]:
        """:meth:`som.tables.TableReader.iter_chunks`: ``Chunk(offset, frame)`` pairs of at
        most ``chunk_rows`` rows with bounded memory; errors as InvalidInputError."""
        with _as_invalid_input(self.file):
            yield from self._reader.iter_chunks(columns, text_columns, chunk_rows)
