"""Bulk loading of column arrays into a table: binary COPY on PostgreSQL, executemany on SQLite.

Columns are numpy arrays: ``float8`` (NaN means NULL), ``int4``/``int8``/``bool`` (never
NULL), ``text`` (object arrays, None means NULL) and ``bytea`` (a 2-D uint8 array: every
row the same number of bytes, never NULL — the packed photometry of a catalogue's bands).

The PostgreSQL path writes the binary COPY stream with numpy instead of formatting rows in
Python: rows that share a NULL pattern and text lengths have an identical byte layout, so
each such group is one packed structured array filled column by column. Catalogues have few
such groups (a handful of missing-band patterns times a few id lengths); if a file has very
many, the loader falls back to psycopg's row-by-row binary writer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

PG_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
PG_TRAILER = struct.pack("!h", -1)
_FIXED = {"float8": ">f8", "int4": ">i4", "int8": ">i8", "bool": "u1"}
MAX_GROUPS = 5000
SQLITE_CHUNK = 50_000


@dataclass
class Col:
    name: str
    type: str  # float8 | int4 | int8 | bool | text | bytea
    data: np.ndarray


def _encode_text(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UTF-8 bytes (fixed-width numpy array), byte lengths and NULL mask of text values."""
    null = np.asarray(pd.isna(values), dtype=bool)
    filled = np.where(null, "", values)
    try:
        # ASCII (catalogue ids nearly always are): numpy converts without a Python loop.
        encoded = filled.astype("U").astype("S")
        lengths = np.char.str_len(encoded).astype(np.int64)
    except UnicodeEncodeError:
        enc = [str(v).encode("utf-8") for v in filled]
        lengths = np.fromiter(map(len, enc), dtype=np.int64, count=len(enc))
        width = max(int(lengths.max(initial=0)), 1)
        encoded = np.array(enc, dtype=f"S{width}")
    return encoded, lengths, null


def pg_binary_stream(cols: list[Col], n: int) -> Iterator[bytes] | None:
    """Binary COPY chunks for ``cols``; None when the layout has too many distinct groups."""
    prepared = []
    keys: dict[str, np.ndarray] = {}
    for k, col in enumerate(cols):
        if col.type == "float8":
            data = np.asarray(col.data, dtype=np.float64)
            null = np.isnan(data)
            prepared.append((col, data, null, None))
            if null.any():
                keys[f"n{k}"] = null
        elif col.type == "text":
            data, lengths, null = _encode_text(np.asarray(col.data, dtype=object))
            prepared.append((col, data, null, lengths))
            keys[f"l{k}"] = np.where(null, -1, lengths)
        elif col.type == "bytea":
            data = np.ascontiguousarray(col.data, dtype=np.uint8).reshape(n, -1)
            width = data.shape[1]
            # One fixed-size field per row, a void scalar of the row's width; a catalogue
            # without bands writes empty (not NULL) values.
            packed = data.view(np.dtype((np.void, width))).reshape(n) if width else None
            prepared.append((col, packed, np.zeros(n, bool), width))
        elif col.type in _FIXED:
            prepared.append((col, np.asarray(col.data), np.zeros(n, bool), None))
        else:
            raise ValueError(f"unsupported column type {col.type!r}")
    if keys:
        group_ids = pd.DataFrame(keys).groupby(list(keys), sort=False).ngroup().to_numpy()
    else:
        group_ids = np.zeros(n, dtype=np.int64)
    n_groups = int(group_ids.max(initial=-1)) + 1
    if n_groups > MAX_GROUPS:
        return None
    order = np.argsort(group_ids, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(group_ids, minlength=n_groups))])

    def chunks() -> Iterator[bytes]:
        yield PG_HEADER
        for g in range(n_groups):
            idx = order[bounds[g] : bounds[g + 1]]
            if len(idx) == 0:
                continue
            first = idx[0]
            fields: list[tuple[str, str]] = [("nf", ">i2")]
            plan = []
            for k, (col, data, null, lengths) in enumerate(prepared):
                fields.append((f"l{k}", ">i4"))
                if null[first]:
                    plan.append((k, -1, None))
                    continue
                if col.type == "text":
                    size = int(lengths[first])
                    if size:
                        fields.append((f"v{k}", f"S{size}"))
                elif col.type == "bytea":
                    size = lengths  # the fixed width of every row
                    if size:
                        fields.append((f"v{k}", data.dtype))
                else:
                    size = np.dtype(_FIXED[col.type]).itemsize
                    fields.append((f"v{k}", _FIXED[col.type]))
                plan.append((k, size, data))
            block = np.empty(len(idx), dtype=np.dtype(fields))
            block["nf"] = len(prepared)
            for k, size, data in plan:
                block[f"l{k}"] = size
                if data is not None and size > 0:
                    block[f"v{k}"] = data[idx]
            yield block.tobytes()
        yield PG_TRAILER

    return chunks()


def _pg_copy(connection: Connection, table: str, cols: list[Col], n: int) -> None:
    names = ", ".join(c.name for c in cols)
    sql = f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)"
    import psycopg

    raw = connection.connection.driver_connection
    stream = pg_binary_stream(cols, n)
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            if stream is not None:
                for chunk in stream:
                    copy.write(chunk)
                return
            copy.set_types([c.type for c in cols])
            for row in _python_rows(cols, 0, n):
                copy.write_row(row)
    except psycopg.Error as exc:
        # The raw driver connection bypasses SQLAlchemy's exception wrapping; restore it so
        # callers see IntegrityError / OperationalError like for any other statement.
        raise DBAPIError.instance(sql, None, exc, psycopg.Error) from exc


def _python_rows(cols: list[Col], start: int, stop: int) -> list[tuple]:
    lists = []
    for col in cols:
        part = col.data[start:stop]
        if col.type == "float8":
            part = np.asarray(part, dtype=np.float64)
            obj = part.astype(object)
            obj[np.isnan(part)] = None
            lists.append(obj.tolist())
        elif col.type == "text":
            obj = np.asarray(part, dtype=object)
            lists.append([None if pd.isna(v) else str(v) for v in obj])
        elif col.type == "bool":
            lists.append(np.asarray(part, dtype=bool).tolist())
        elif col.type == "bytea":
            rows = np.ascontiguousarray(part, dtype=np.uint8).reshape(len(part), -1)
            lists.append([r.tobytes() for r in rows])
        else:
            lists.append(np.asarray(part).tolist())
    return list(zip(*lists, strict=True))


def _sqlite_insert(connection: Connection, table: str, cols: list[Col], n: int) -> None:
    names = ", ".join(c.name for c in cols)
    marks = ", ".join("?" for _ in cols)
    sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"
    for start in range(0, n, SQLITE_CHUNK):
        rows = _python_rows(cols, start, min(start + SQLITE_CHUNK, n))
        connection.exec_driver_sql(sql, rows)


@contextmanager
def _foreign_keys_known_valid(connection: Connection) -> Iterator[None]:
    """Skip PostgreSQL's per-row foreign-key triggers for the duration of a bulk load.

    Only for loads whose references are valid by construction (every row points at the
    catalogue or map created or locked in the same transaction): the per-row checks then
    cost about half of a COPY and prove nothing. ``session_replication_role = replica`` is
    what pg_restore uses for the same reason; it needs superuser (or, since PostgreSQL 15,
    ``GRANT SET ON PARAMETER``). Without that right the load simply runs with the checks.
    """
    try:
        with connection.begin_nested():
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
    except DBAPIError:
        yield
        return
    yield
    # Only on success: after a failure the transaction is aborted (and the caller's
    # rollback undoes the setting with everything else).
    connection.exec_driver_sql("SET LOCAL session_replication_role = origin")


def bulk_insert(
    connection: Connection, table: str, cols: list[Col], references_valid: bool = False
) -> int:
    """Insert all rows of ``cols`` into ``table`` inside the connection's transaction.

    ``references_valid``: the caller guarantees every foreign key of these rows points at
    an existing row (see ``_foreign_keys_known_valid``).
    """
    n = len(cols[0].data) if cols else 0
    if any(len(c.data) != n for c in cols):
        raise ValueError("bulk_insert: columns have different lengths")
    if n == 0:
        return 0
    if connection.dialect.name == "postgresql":
        if references_valid:
            with _foreign_keys_known_valid(connection):
                _pg_copy(connection, table, cols, n)
        else:
            _pg_copy(connection, table, cols, n)
    else:
        _sqlite_insert(connection, table, cols, n)
    return n
