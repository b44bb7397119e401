"""Column-shaped catalogue files: one reader for the library, the command line and the service.

Formats
-------
=========  ==============================================  ======================================
format     file-name endings (case-insensitive)            read with
=========  ==============================================  ======================================
fits       .fits .fit .fts (+ .gz)                         astropy.io.fits (memmap, per column)
parquet    .parquet .pq                                    pyarrow (per column, per row group)
csv        .csv .txt (+ .gz)                               pyarrow.csv
ascii      .dat .cat .in .ascii .txt (+ .gz)               pyarrow.csv on whitespace-normalised
                                                           blocks (see "Whitespace tables")
ecsv       .ecsv (+ .gz)                                   astropy
votable    .vot .votable .xml                              astropy
hdf5       .hdf5 .h5 .hdf                                  astropy / h5py (one dataset per column)
=========  ==============================================  ======================================

:func:`detect_format` decides by content first (FITS, Parquet and HDF5 signature bytes, the
``# %ECSV`` line, a VOTable XML root), then by the name; ``.txt`` and unknown endings are
sniffed as CSV (a comma in the first non-comment line) or whitespace ASCII. A name promising
a signed binary format whose bytes lack the signature is refused ("not a valid FITS file").

Whitespace tables (``ascii``)
-----------------------------
Fields are separated by runs of blanks/tabs (LePhare ``.in``, CIGALE, EAZY catalogues). Lines
whose first non-blank character is ``#`` are comments; blank lines are skipped. The header:

1. the *last* ``#`` line before the first data line, if it names as many columns as that data
   line has fields (``# id F1 E1 F2 E2`` -> ``id, F1, E1, F2, E2``; ``#id`` works too);
2. otherwise, if the first non-comment line has no token that parses as a number, that line
   (a plain ``id mag_g mag_r`` header);
3. otherwise no header: columns are named ``col1`` .. ``colN`` (astropy's convention), and
   ``#`` lines are only comments.

Quoted fields and ``#`` comments after data on the same line are not supported (such a line
has the wrong number of fields and is refused, located).

Values as written
-----------------
CSV and ASCII columns are read as text and typed afterwards, per column: int64 if every value
is an integer (float64 if some are missing), else float64 if every value is a number
(``nan``/``inf`` included), else bool for ``true``/``false`` columns without gaps, else
text. Columns named in ``text_columns`` are never typed: ids keep leading zeros
(``"000123"``) and integers beyond 2**53 (or 2**63) exactly. Missing values are the usual
null tokens (empty field, ``NA``, ``NaN``, ``nan``, ``null``, ``N/A`` ...). Binary formats
(FITS, Parquet, HDF5, ECSV, VOTable) give their stored types; ``text_columns`` does not
change them.

Streaming
---------
:meth:`TableReader.iter_chunks` yields :class:`Chunk` ``(offset, frame)`` pairs of at most
``chunk_rows`` rows with bounded memory for CSV, ASCII, Parquet, FITS and HDF5 (ECSV and
VOTable are parsed whole by astropy and then sliced). ``offset`` is the 0-based data-row
number of the chunk's first row; each frame has a fresh RangeIndex. Text columns are typed
chunk by chunk, so a column can be int64 in one chunk and float64 in the next; concatenated,
the chunks hold the same values as :meth:`TableReader.read`.

Errors
------
Everything is reported as :class:`CatalogError` (a :class:`~som.photometry.PhotometryError`)
with ``reason``, and ``column``/``row`` where known: rows are 0-based data rows (header and
comment lines excluded), e.g. ``data row 1 has 4 fields but the header has 3`` or ``file is
not UTF-8 text: byte 0xe9 in data row 1``. ``source`` is the name given to the reader.

Units known to astropy (FITS TUNIT, ECSV, VOTable) travel in ``df.attrs["units"]`` in
:func:`read_table`, which :func:`write_table` writes back.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from som.photometry import PhotometryError

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "FORMATS",
    "TEXT_FORMATS",
    "CatalogError",
    "Chunk",
    "TableReader",
    "detect_format",
    "format_from_name",
    "read_table",
    "write_table",
]

#: Supported formats and the file-name endings that select them (longest match wins).
FORMATS: dict[str, tuple[str, ...]] = {
    "fits": (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz"),
    "parquet": (".parquet", ".pq"),
    "csv": (".csv", ".csv.gz", ".txt", ".txt.gz"),
    "ascii": (".dat", ".cat", ".in", ".ascii", ".dat.gz", ".cat.gz", ".in.gz", ".ascii.gz"),
    "ecsv": (".ecsv", ".ecsv.gz"),
    "votable": (".vot", ".votable", ".xml"),
    "hdf5": (".hdf5", ".h5", ".hdf"),
}

#: Formats read as text (typed after reading; ``text_columns`` applies).
TEXT_FORMATS = ("csv", "ascii")

#: Rows per chunk of :meth:`TableReader.iter_chunks` unless asked otherwise.
DEFAULT_CHUNK_ROWS = 100_000

# Endings that say "text" without saying which kind: the content decides (CSV or ASCII).
_SNIFFED = (".txt", ".txt.gz")
_SIGNED = {"fits": b"SIMPLE  =", "parquet": b"PAR1", "hdf5": b"\x89HDF\r\n\x1a\n"}
_COMPRESSION = (".gz", ".bz2", ".xz")
_BLOCK_BYTES = 8 << 20


class CatalogError(PhotometryError):
    """A catalogue file could not be read or written, or its content is not what it claims.

    Subclass of :class:`~som.photometry.PhotometryError`, so ``column``, ``row`` and ``source``
    (the file) are set as far as they are known.
    """


class Chunk(NamedTuple):
    """One piece of a table from :meth:`TableReader.iter_chunks`."""

    offset: int  # 0-based data row of frame's first row in the whole table
    frame: pd.DataFrame  # RangeIndex from 0


# --------------------------------------------------------------------------------------------
# format detection
# --------------------------------------------------------------------------------------------


def format_from_name(name: str) -> str | None:
    """The format a file name's ending selects (see :data:`FORMATS`), or None."""
    lowered = name.lower()
    for candidate in (lowered, _strip_compression(lowered)):
        best = None
        for fmt, suffixes in FORMATS.items():
            for suffix in suffixes:
                if candidate.endswith(suffix) and (best is None or len(suffix) > len(best[1])):
                    best = (fmt, suffix)
        if best is not None:
            return best[0]
    return None


def _strip_compression(name: str) -> str:
    for ext in _COMPRESSION:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_binary(path: Path):
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


def detect_format(path: str | os.PathLike, name: str | None = None) -> str:
    """The format of a file: by content first, then by ``name`` (default: the path's name).

    Raises CatalogError for a corrupt gzip stream and for a name promising FITS, Parquet or
    HDF5 whose bytes do not carry that format's signature.
    """
    path = Path(path)
    file = name or path.name
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                head = gz.read(512)
        except (OSError, EOFError, zlib.error):
            # A stream cut short raises EOFError and damaged data zlib.error, not OSError.
            raise CatalogError("corrupt gzip stream", source=file) from None
    for fmt, magic in _SIGNED.items():
        if head.startswith(magic):
            return fmt
    stripped = head.lstrip()
    if stripped.startswith(b"# %ECSV"):
        return "ecsv"
    if stripped.startswith(b"<?xml") and b"VOTABLE" in head.upper():
        return "votable"
    fmt = format_from_name(file)
    if fmt in _SIGNED:
        # The name promises a binary format whose signature the bytes do not carry.
        raise CatalogError(
            f"not a valid {fmt.upper()} file (no {fmt.upper()} signature; truncated "
            "or mislabelled?)",
            source=file,
        )
    if fmt is None or file.lower().endswith(_SNIFFED):
        return _sniff_text(path)
    return fmt


def _sniff_text(path: Path) -> str:
    """CSV or whitespace ASCII, from the first lines."""
    try:
        with _open_binary(path) as fh:
            head = fh.read(1 << 16)
    except (OSError, EOFError, zlib.error):
        return "csv"  # the CSV reader reports the damage
    comments = False
    for raw in head.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(b"#"):
            comments = True
            continue
        if b"," in line:
            return "csv"
        return "ascii" if comments or len(line.split()) > 1 else "csv"
    return "ascii" if comments else "csv"


# --------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def _dupes(names: Sequence[str], case_insensitive: bool) -> list[str]:
    keys = [n.lower() if case_insensitive else n for n in names]
    counts = Counter(keys)
    return sorted({n for n, k in zip(names, keys, strict=True) if counts[k] > 1})


class TableReader:
    """One catalogue file: its column names, then the columns a caller asks for.

    Parameters
    ----------
    path : str or path-like
    format : one of :data:`FORMATS`, or None to :func:`detect_format`
    name : str, optional
        What errors call the file (``CatalogError.source``), default the path. A service
        passes the uploaded file's name here.
    key : str or int, optional
        FITS: the HDU (name or index) holding the table, default the first table HDU.
        HDF5: the dataset or group path, default the only table in the file.

    Attributes
    ----------
    columns : list of str
        The file's column names, in file order (read at construction; duplicate names are
        refused, case-insensitively for FITS).
    format : str

    The header is read at construction, rows only by :meth:`read` or :meth:`iter_chunks`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        *,
        name: str | None = None,
        key=None,
    ) -> None:
        self.path = Path(path)
        self.name = name or str(self.path)
        fmt = detect_format(self.path, name) if format is None else format.lower()
        if fmt not in FORMATS:
            self._fail(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
        if key is not None and fmt not in ("fits", "hdf5"):
            self._fail(f"key= applies to FITS and HDF5 only, not {fmt}")
        self.format, self.key = fmt, key
        self._whole: pd.DataFrame | None = None
        self._ascii_start = 0  # byte offset of the first data line (after any header)
        self._hdf5_rows: int | None = None
        with self._errors():
            self.columns: list[str] = self._header()
        dupes = _dupes(self.columns, case_insensitive=(fmt == "fits"))
        if dupes:
            self._fail(f"duplicate column names: {', '.join(dupes)}", column=dupes[0])

    # ------------------------------------------------------------------ errors
    def _fail(self, reason: str, column: str | None = None, row: int | None = None):
        raise CatalogError(reason, column=column, row=row, source=self.name)

    @contextlib.contextmanager
    def _errors(self):
        """Every failure as CatalogError; a failed text parse is first located to its row."""
        try:
            yield
        except CatalogError:
            raise
        except UnicodeDecodeError:
            if self.format in TEXT_FORMATS:
                self._locate_text_problem()
            self._fail("file is not UTF-8 text")
        except Exception as exc:  # noqa: BLE001 - a reader failing here is the file's fault
            if self.format in TEXT_FORMATS and not isinstance(exc, KeyError | MemoryError):
                try:
                    # The fast parsers do not say where; find the first offending line.
                    self._locate_text_problem()
                except CatalogError:
                    raise
                except Exception as inner:  # noqa: BLE001 - e.g. a gzip stream cut short
                    exc = inner
            self._fail(f"cannot read {self.format.upper()} file: {_short(exc)}{self._hint()}")

    def _hint(self) -> str:
        """For a FITS file whose size breaks the 2880-byte block rule: a note saying so.

        Only added to a failed read: a truncated file otherwise fails as "no table
        extension" or "buffer is too small", which does not say what happened.
        """
        if self.format != "fits":
            return ""
        size = self.path.stat().st_size
        if size % 2880 == 0:
            return ""
        return f" (the file is {size} bytes, not whole 2880-byte FITS blocks: truncated?)"

    # ------------------------------------------------------------------ header
    def _header(self) -> list[str]:
        fmt = self.format
        if fmt == "csv":
            return self._csv_header()
        if fmt == "ascii":
            return self._ascii_header()
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(self.path).names)
        if fmt == "fits":
            from astropy.io import fits

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(self.path, memmap=True) as hdul:
                    return list(self._table_hdu(hdul).columns.names)
        if fmt == "hdf5":
            import h5py

            with h5py.File(self.path, "r") as f:
                kind, node = _hdf5_table(f, self.key, self.name)
                self._hdf5_rows = node.shape[0] if kind == "compound" else None
                if kind == "compound":
                    return list(node.dtype.names)
                names = [n for n, o in node.items() if isinstance(o, h5py.Dataset) and o.ndim == 1]
                self._hdf5_rows = len(node[names[0]])
                return names
        self._whole = _read_whole(self.path, fmt, self.key, self.name)
        return [str(c) for c in self._whole.columns]

    def _csv_header(self) -> list[str]:
        import csv

        with _open_binary(self.path) as fh:
            first = fh.readline()
        try:
            # Only the first line is decoded here: a text-mode reader decodes a whole
            # buffer, and blamed the header for a bad byte in the rows below it.
            line = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            self._fail("file is not UTF-8 text (in the header line)")
        header = next(csv.reader([line]), None)
        if not header:
            self._fail("CSV file is empty (no header line)")
        names = [h.strip() for h in header]
        if "" in names:
            self._fail(f"CSV header has an empty column name at position {names.index('')}")
        return names

    def _ascii_header(self) -> list[str]:
        comments: list[bytes] = []
        offset = 0
        first: bytes | None = None
        with _open_binary(self.path) as fh:
            for raw in fh:
                stripped = raw.strip()
                if stripped and not stripped.startswith(b"#"):
                    first = raw
                    break
                if stripped:
                    comments.append(stripped)
                offset += len(raw)
        header: list[str] | None = None
        if comments:
            try:
                header = comments[-1].decode("utf-8-sig").lstrip("#").split()
            except UnicodeDecodeError:
                self._fail("file is not UTF-8 text (in the header line)")
        if first is None:
            if not header:
                self._fail("ASCII file is empty (no header line and no data rows)")
            self._ascii_start = offset
            return header
        try:
            tokens = first.decode("utf-8-sig").split()
        except UnicodeDecodeError as exc:
            self._fail(
                f"file is not UTF-8 text: byte 0x{first[exc.start]:02x} in data row 0", row=0
            )
        self._ascii_start = offset
        if header and len(header) == len(tokens):
            return header
        if not any(_is_number(t) for t in tokens):
            self._ascii_start = offset + len(first)
            return tokens
        return [f"col{i}" for i in range(1, len(tokens) + 1)]

    def _table_hdu(self, hdul):
        from astropy.io import fits

        if self.key is not None:
            return hdul[self.key]
        for hdu in hdul:
            if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                return hdu
        self._fail(f"FITS file has no table extension{self._hint()}")

    def units(self) -> dict[str, str]:
        """Column units the file declares (``{column: unit}``, as written): FITS ``TUNITn``,
        ECSV/VOTable column units, Parquet field metadata ``unit`` or astropy's table
        metadata; empty for CSV, ASCII and HDF5. Read from the header only."""
        with self._errors():
            if self.format in ("ecsv", "votable"):
                return dict(self._whole.attrs.get("units", {}) or {})
            if self.format == "fits":
                from astropy.io import fits

                with fits.open(self.path, memmap=True) as hdul:
                    cols = self._table_hdu(hdul).columns
                    return {c.name: str(c.unit) for c in cols if c.unit}
            if self.format == "parquet":
                return _parquet_units(self.path)
        return {}

    # ------------------------------------------------------------------ rows
    def n_rows_hint(self) -> int | None:
        """Row count from metadata, before reading (Parquet, FITS, HDF5, ECSV, VOTable);
        None for CSV and ASCII (or when the metadata cannot be read)."""
        try:
            if self._whole is not None:
                return len(self._whole)
            if self.format == "hdf5":
                return self._hdf5_rows
            if self.format == "parquet":
                import pyarrow.parquet as pq

                return pq.ParquetFile(self.path).metadata.num_rows
            if self.format == "fits":
                from astropy.io import fits

                with fits.open(self.path, memmap=True) as hdul:
                    return int(self._table_hdu(hdul).header.get("NAXIS2", 0))
        except Exception:  # noqa: BLE001 - the real read reports unreadable files properly
            return None
        return None

    def _selection(self, columns: Iterable[str] | None) -> list[str]:
        if columns is None:
            return list(self.columns)
        columns = list(dict.fromkeys(columns))
        known = set(self.columns)
        for c in columns:
            if c not in known:
                self._fail("no such column in the file", column=c)
        return columns

    def read(
        self, columns: Sequence[str] | None = None, text_columns: Iterable[str] = ()
    ) -> pd.DataFrame:
        """The named columns (default all) of every row, as a DataFrame with a RangeIndex.

        ``text_columns``: CSV/ASCII columns kept as the text written (ids). See the module
        docstring for how the other text columns are typed.
        """
        cols = self._selection(columns)
        text = set(text_columns)
        with self._errors():
            if self._whole is not None:
                return self._whole[cols].reset_index(drop=True)
            if self.format == "csv":
                import pyarrow.csv as pacsv

                with self._csv_stream() as stream:
                    table = pacsv.read_csv(stream, **self._csv_options(cols))
                return _typed(table, text)
            if self.format == "ascii":
                import pyarrow as pa

                tables = list(self._ascii_tables(cols))
                if not tables:
                    return _typed(_empty_strings(cols), text)
                return _typed(pa.concat_tables(tables), text)
            if self.format == "parquet":
                return pd.read_parquet(self.path, columns=cols)
            if self.format == "fits":
                return self._fits_rows(cols, None)
            # HDF5: astropy reads the whole table (it knows the units and mixin columns).
            return _read_whole(self.path, "hdf5", self.key, self.name)[cols]

    def iter_chunks(
        self,
        columns: Sequence[str] | None = None,
        text_columns: Iterable[str] = (),
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[Chunk]:
        """Yield :class:`Chunk` ``(offset, frame)`` of at most ``chunk_rows`` rows, in order.

        Memory stays bounded by the chunk size for CSV, ASCII, Parquet, FITS and HDF5
        (ECSV and VOTable are parsed whole, then sliced). A file without data rows yields
        nothing. Errors are raised when the reader reaches them, with absolute row numbers.
        """
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        chunk_rows = int(chunk_rows)
        cols = self._selection(columns)
        text = set(text_columns)
        fmt = self.format
        with self._errors():
            if fmt == "hdf5":
                yield from self._hdf5_chunks(cols, chunk_rows)
                return
            if self._whole is not None:
                whole = self._whole
                for start in range(0, len(whole), chunk_rows):
                    part = whole[cols].iloc[start : start + chunk_rows].reset_index(drop=True)
                    yield Chunk(start, part)
                return
            if fmt == "fits":
                n = self.n_rows_hint() or 0
                for start in range(0, n, chunk_rows):
                    yield Chunk(start, self._fits_rows(cols, slice(start, start + chunk_rows)))
                return
            if fmt == "parquet":
                import pyarrow.parquet as pq

                # pre_buffer (pyarrow's default) keeps every row group it has read ahead
                # allocated: memory grew with the file (+300 MB over 3x10^6 rows), not with
                # the chunk.
                pf = pq.ParquetFile(self.path, pre_buffer=False)
                batches = pf.iter_batches(batch_size=chunk_rows, columns=cols)
                offset = 0
                for table in _rechunk(batches, chunk_rows):
                    yield Chunk(offset, table.to_pandas())
                    offset += table.num_rows
                return
            if fmt == "csv":
                import pyarrow.csv as pacsv

                with self._csv_stream() as stream:
                    options = self._csv_options(cols)
                    reader = pacsv.open_csv(stream, **options)
                    offset = 0
                    for table in _rechunk(reader, chunk_rows):
                        yield Chunk(offset, _typed(table, text))
                        offset += table.num_rows
                return
            offset = 0
            for table in _rechunk(self._ascii_tables(cols), chunk_rows):
                yield Chunk(offset, _typed(table, text))
                offset += table.num_rows

    # ------------------------------------------------------------------ FITS / HDF5
    def _fits_rows(self, columns: list[str], rows: slice | None) -> pd.DataFrame:
        from astropy.io import fits

        out: dict[str, np.ndarray] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(self.path, memmap=True) as hdul:
                data = self._table_hdu(hdul).data
                if data is None:
                    data = {}
                for name in columns:
                    col = np.asarray(data[name])
                    if rows is not None:
                        col = col[rows]
                    if col.ndim > 1:
                        self._fail(
                            f"column has shape {col.shape[1:]} per row; a scalar is needed", name
                        )
                    if col.dtype.kind == "S":
                        col = np.char.rstrip(np.char.decode(col, "utf-8", errors="replace"))
                    elif col.dtype.byteorder not in ("=", "|"):
                        col = col.astype(col.dtype.newbyteorder("="))
                    else:
                        col = col.copy()  # detach from the memmap before the file closes
                    out[name] = col
        return pd.DataFrame(out)

    def _hdf5_chunks(self, columns: list[str], chunk_rows: int) -> Iterator[Chunk]:
        import h5py

        with h5py.File(self.path, "r") as f:
            kind, node = _hdf5_table(f, self.key, self.name)
            if kind == "compound":
                n = node.shape[0]
                datasets = None
            else:
                datasets = {c: node[c] for c in columns}
                n = len(next(iter(datasets.values()))) if datasets else 0
            for start in range(0, n, chunk_rows):
                stop = min(start + chunk_rows, n)
                if datasets is None:
                    part = node[start:stop]
                    cols = {c: part[c] for c in columns}
                else:
                    cols = {c: ds[start:stop] for c, ds in datasets.items()}
                frame = pd.DataFrame({c: _native(v) for c, v in cols.items()})
                yield Chunk(start, _decode_bytes(frame))

    # ------------------------------------------------------------------ CSV
    @contextlib.contextmanager
    def _csv_stream(self):
        import pyarrow as pa

        stream = pa.input_stream(
            str(self.path), compression="gzip" if _is_gzip(self.path) else None
        )
        try:
            yield stream
        finally:
            stream.close()

    def _csv_options(self, cols: list[str]) -> dict:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return {
            "read_options": pacsv.ReadOptions(
                column_names=self.columns, skip_rows=1, block_size=_BLOCK_BYTES
            ),
            "convert_options": pacsv.ConvertOptions(
                include_columns=cols,
                column_types=dict.fromkeys(cols, pa.string()),
                strings_can_be_null=True,
            ),
        }

    # ------------------------------------------------------------------ ASCII
    def _ascii_tables(self, cols: list[str]):
        """Arrow tables of string columns, one per block of whitespace-normalised lines."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        read_options = pacsv.ReadOptions(column_names=self.columns, block_size=_BLOCK_BYTES)
        parse_options = pacsv.ParseOptions(delimiter="\t", quote_char=False)
        convert_options = pacsv.ConvertOptions(
            include_columns=cols,
            column_types=dict.fromkeys(cols, pa.string()),
            strings_can_be_null=True,
        )
        for block in _ascii_blocks(self.path, self._ascii_start):
            if block:
                yield pacsv.read_csv(
                    pa.BufferReader(block),
                    read_options=read_options,
                    parse_options=parse_options,
                    convert_options=convert_options,
                )

    # ------------------------------------------------------------------ locating problems
    def _locate_text_problem(self) -> None:
        """Raise a CatalogError naming the first data row that is not UTF-8 or has the wrong
        number of fields; return if there is none (the caller reports the parser's error)."""
        import csv

        n_header = len(self.columns)
        ascii_table = self.format == "ascii"
        with _open_binary(self.path) as raw:
            if ascii_table:
                raw.read(self._ascii_start)  # header and leading comments
            else:
                raw.readline()
            row = 0
            for line in raw:
                if ascii_table and (not line.strip() or line.lstrip().startswith(b"#")):
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self._fail(
                        f"file is not UTF-8 text: byte 0x{line[exc.start]:02x} in data row {row}",
                        row=row,
                    )
                if not text.strip():
                    continue
                fields = text.split() if ascii_table else next(csv.reader([text]), [])
                if len(fields) != n_header:
                    self._fail(
                        f"data row {row} has {len(fields)} fields but the header has "
                        f"{n_header} (truncated or malformed line)",
                        row=row,
                    )
                row += 1


# --------------------------------------------------------------------------------------------
# text helpers
# --------------------------------------------------------------------------------------------


def _normalise_block(block: bytes) -> bytes:
    """Whitespace-separated lines -> tab-separated lines without comments or blank lines.

    One pass of bytes.split per line: about ten times faster than regular expressions over
    the block, which made ASCII several times slower than CSV to read.
    """
    return b"\n".join(
        [
            b"\t".join(fields)
            for line in block.split(b"\n")
            if (fields := line.split()) and not fields[0].startswith(b"#")
        ]
    )


def _ascii_blocks(path: Path, start: int) -> Iterator[bytes]:
    """Normalised blocks of about _BLOCK_BYTES, cut at line ends, from byte ``start`` on."""
    with _open_binary(path) as fh:
        if start:
            if isinstance(fh, gzip.GzipFile):
                fh.read(start)
            else:
                fh.seek(start)
        rest = b""
        while True:
            buf = fh.read(_BLOCK_BYTES)
            if not buf:
                if rest.strip():
                    yield _normalise_block(rest + b"\n")
                return
            buf = rest + buf
            cut = buf.rfind(b"\n")
            if cut < 0:
                rest = buf
                continue
            rest = buf[cut + 1 :]
            yield _normalise_block(buf[: cut + 1])


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _empty_strings(cols: list[str]):
    import pyarrow as pa

    return pa.table({c: pa.array([], type=pa.string()) for c in cols})


def _rechunk(batches, chunk_rows: int):
    """Arrow batches/tables of any size -> tables of exactly chunk_rows rows (last: fewer)."""
    import pyarrow as pa

    pending: list = []
    held = 0
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        pending.append(table)
        held += table.num_rows
        while held >= chunk_rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, chunk_rows)
            rest = whole.slice(chunk_rows)
            pending, held = [rest], rest.num_rows
    if held:
        yield pa.concat_tables(pending)


def _typed(table, text_columns: set[str]) -> pd.DataFrame:
    """String columns from a text file -> int64 / float64 / bool / text, per column."""
    out = {}
    for name in table.column_names:
        values = table.column(name)
        out[name] = values.to_pandas() if name in text_columns else _infer(values)
    frame = pd.DataFrame(out, columns=table.column_names)
    return frame.reset_index(drop=True)


def _infer(values) -> pd.Series:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(values)
    if values.null_count == n:
        return pd.Series(np.full(n, np.nan))
    trimmed = pc.utf8_trim_whitespace(values)
    for target in (pa.int64(), pa.float64()):
        try:
            return pc.cast(trimmed, target).to_pandas()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    if values.null_count == 0:
        lowered = pc.utf8_lower(trimmed)
        if pc.all(pc.is_in(lowered, pa.array(["true", "false"]))).as_py():
            return pc.equal(lowered, "true").to_pandas()
    return values.to_pandas()


# --------------------------------------------------------------------------------------------
# whole-table readers (units, every astropy-known format) and the writer
# --------------------------------------------------------------------------------------------


def _format_for(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower()
        if fmt not in FORMATS:
            raise CatalogError(
                f"unknown format {format!r}; supported: {', '.join(FORMATS)}", source=str(path)
            )
        return fmt
    fmt = format_from_name(path.name)
    if fmt is None:
        known = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
        raise CatalogError(
            f"cannot tell the table format from the file name (known endings: {known}); "
            "pass format=...",
            source=str(path),
        )
    return fmt


def read_table(
    path: str | os.PathLike,
    format: str | None = None,
    *,
    key=None,
    columns: Sequence[str] | None = None,
    text_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a catalogue file into a DataFrame.

    Parameters
    ----------
    path : str or path-like
    format : one of :data:`FORMATS`, or None
        None: from the file name; text endings (``.csv``, ``.txt``, ``.dat`` ...) are then
        checked against the content, so a ``.txt`` file may be CSV or whitespace ASCII and a
        ``.cat`` file holding FITS bytes is read as FITS.
    key : str or int, optional
        FITS: the HDU (name or index) holding the table, default the first table HDU.
        HDF5: the dataset or group path, default the only table in the file.
    columns : list of str, optional
        Only these columns (default all).
    text_columns : iterable of str
        CSV/ASCII columns kept exactly as written (ids with leading zeros, integers beyond
        2**53); ignored for binary formats.

    Returns
    -------
    pandas.DataFrame with a default RangeIndex; ``df.attrs["units"]`` maps column names to unit
    strings where the file declares units. Byte-string columns are decoded to ``str``.

    Raises
    ------
    FileNotFoundError if the file does not exist; CatalogError (naming the file) otherwise.
    """
    path = Path(path)
    fmt = _format_for(path, format)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such catalogue file")
    if path.is_dir():
        raise CatalogError("is a directory, not a catalogue file", source=str(path))
    if key is not None and fmt not in ("fits", "hdf5"):
        raise CatalogError(f"key= applies to FITS and HDF5 only, not {fmt}", source=str(path))
    if format is None and fmt in TEXT_FORMATS:
        fmt = detect_format(path)
    if fmt in TEXT_FORMATS:
        df = TableReader(path, fmt).read(columns, text_columns)
        df.attrs["units"] = {}
    elif fmt == "parquet" and columns is not None:
        df = TableReader(path, fmt).read(columns)
    else:
        df = _read_whole(path, fmt, key, str(path))
        if columns is not None:
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise CatalogError(
                    "no such column in the file", column=missing[0], source=str(path)
                )
            units = df.attrs.get("units", {})
            df = df[list(dict.fromkeys(columns))]
            df.attrs["units"] = {k: v for k, v in units.items() if k in df.columns}
    return _tidy(df, str(path))


def _read_whole(path: Path, fmt: str, key, source: str) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        elif fmt == "hdf5":
            df = _read_hdf5(path, key, source)
        else:
            df = _read_astropy(path, fmt, key, source)
    except CatalogError:
        raise
    except Exception as exc:  # the libraries' own errors rarely name the file
        raise CatalogError(
            f"cannot read as {fmt}: {type(exc).__name__}: {exc}", source=source
        ) from exc
    return _tidy(df, source)


def _read_astropy(path: Path, fmt: str, key, source: str) -> pd.DataFrame:
    from astropy.table import Table

    kwargs = {}
    if fmt == "fits":
        astropy_format = "fits"
        if key is not None:
            kwargs["hdu"] = key
    elif fmt == "ecsv":
        astropy_format = "ascii.ecsv"
    else:
        astropy_format = "votable"
    with warnings.catch_warnings():
        # Multi-HDU files warn that the first table is used: that is the documented behaviour.
        warnings.simplefilter("ignore")
        table = Table.read(path, format=astropy_format, **kwargs)
    return _astropy_to_pandas(table, source)


def _hdf5_table(f, key, source: str):
    """("compound", dataset) for a table dataset, or ("group", group) for one 1-d dataset per
    column (tables_io / RAIL layout, e.g. the DC2 mock)."""
    import h5py

    node = f if key is None else f[key]
    if isinstance(node, h5py.Dataset):
        return "compound", node
    datasets = []
    node.visititems(
        lambda name, obj: (
            datasets.append(obj)
            if isinstance(obj, h5py.Dataset) and obj.dtype.names is not None
            else None
        )
    )
    if len(datasets) > 1:
        raise CatalogError(
            f"holds several tables ({', '.join(d.name for d in datasets)}); pick one with key=",
            source=source,
        )
    if datasets:
        return "compound", datasets[0]
    group = node if key is not None else _single_column_group(f, source)
    columns = {n: o for n, o in group.items() if isinstance(o, h5py.Dataset) and o.ndim == 1}
    if not columns:
        raise CatalogError("no table found in the HDF5 file", source=source)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise CatalogError(
            f"columns of group {group.name!r} have different lengths {sorted(lengths)}",
            source=source,
        )
    return "group", group


def _read_hdf5(path: Path, key, source: str) -> pd.DataFrame:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is present wherever astropy HDF5 is
        raise CatalogError("reading HDF5 needs the h5py package", source=source) from exc

    with h5py.File(path, "r") as f:
        kind, node = _hdf5_table(f, key, source)
        if kind == "group":
            return pd.DataFrame(
                {
                    k: _native(v[()])
                    for k, v in node.items()
                    if isinstance(v, h5py.Dataset) and v.ndim == 1
                }
            )
        table_path = node.name
    from astropy.table import Table

    table = Table.read(path, format="hdf5", path=table_path)
    return _astropy_to_pandas(table, source)


def _single_column_group(f, source: str):
    import h5py

    groups = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and any(
            isinstance(v, h5py.Dataset) and v.ndim == 1 for v in obj.values()
        ):
            groups.append(obj)

    if any(isinstance(v, h5py.Dataset) and v.ndim == 1 for v in f.values()):
        groups.append(f)
    f.visititems(visit)
    if len(groups) != 1:
        names = ", ".join(g.name for g in groups) or "(none)"
        raise CatalogError(
            f"cannot tell which group holds the table (candidates: {names}); pick one with key=",
            source=source,
        )
    return groups[0]


def _native(values: np.ndarray) -> np.ndarray:
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    return values


def _parquet_units(path: Path) -> dict[str, str]:
    """Units of a Parquet file's columns: each field's ``unit`` metadata (the convention of
    pyarrow writers that keep units), else astropy's serialised table header."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    units = {}
    for field in schema:
        meta = field.metadata or {}
        if b"unit" in meta:
            units[field.name] = meta[b"unit"].decode("utf-8", "replace")
    yaml_meta = (schema.metadata or {}).get(b"table_meta_yaml")
    if yaml_meta and not units:
        from astropy.table.meta import get_header_from_yaml

        header = get_header_from_yaml(yaml_meta.decode("utf-8").splitlines())
        for col in header.get("datatype", []):
            if col.get("unit"):
                units[col["name"]] = str(col["unit"])
    return units


def _astropy_to_pandas(table, source: str) -> pd.DataFrame:
    units = {}
    for name in table.colnames:
        col = table[name]
        if col.ndim > 1:
            raise CatalogError(
                f"multidimensional column (shape {col.shape[1:]} per row) cannot become a "
                "DataFrame column",
                column=name,
                source=source,
            )
        if col.unit is not None:
            units[name] = col.unit.to_string()
    df = table.to_pandas(index=False)
    df.attrs["units"] = units
    return df


def _decode_bytes(df: pd.DataFrame) -> pd.DataFrame:
    for name in df.columns:
        col = df[name]
        if col.dtype.kind == "S" or (
            col.dtype == object and col.map(lambda v: isinstance(v, bytes)).any()
        ):
            # FITS/HDF5 character columns arrive as bytes padded with blanks.
            df[name] = col.map(
                lambda v: (
                    v.decode("utf-8", errors="replace").rstrip() if isinstance(v, bytes) else v
                )
            )
    return df


def _tidy(df: pd.DataFrame, source: str) -> pd.DataFrame:
    df = _decode_bytes(df)
    dupes = df.columns[df.columns.duplicated()]
    if len(dupes):
        raise CatalogError(f"duplicate column names {list(dupes)}", source=source)
    units = df.attrs.get("units", {})
    df = df.reset_index(drop=True)
    df.attrs["units"] = dict(units)
    return df


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike,
    format: str | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a DataFrame so that :func:`read_table` gives it back (values, dtypes, units).

    The format comes from the file name as in :func:`read_table` (``.txt`` writes CSV).
    Units in ``df.attrs["units"]`` are written where the format can hold them (FITS, ECSV,
    VOTable, HDF5). ASCII is written with a ``# name ...`` header line, missing values as
    ``nan``; text containing blanks cannot be written as ASCII. The index is not written.
    Returns the path written.
    """
    path = Path(path)
    fmt = _format_for(path, format)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_table needs a pandas DataFrame, got {type(df).__name__}")
    if path.exists() and not overwrite:
        raise CatalogError("file exists; pass overwrite=True to replace it", source=str(path))
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise CatalogError(f"column names must be strings, got {bad!r}", source=str(path))
    if fmt == "ascii":
        _check_ascii_writable(df, str(path))
    try:
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        elif fmt == "csv":
            df.to_csv(path, index=False)
        elif fmt == "ascii":
            body = df.to_csv(sep=" ", header=False, index=False, na_rep="nan", lineterminator="\n")
            text = "# " + " ".join(df.columns) + "\n" + body
            opener = gzip.open if path.name.lower().endswith(".gz") else open
            with opener(path, "wt", encoding="utf-8", newline="") as fh:
                fh.write(text)
        else:
            table = _pandas_to_astropy(df)
            kwargs = {}
            if fmt == "fits":
                astropy_format = "fits"
            elif fmt == "ecsv":
                astropy_format = "ascii.ecsv"
            elif fmt == "votable":
                astropy_format = "votable"
            else:
                astropy_format = "hdf5"
                kwargs = {"path": "data", "serialize_meta": True}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table.write(path, format=astropy_format, overwrite=overwrite, **kwargs)
    except Exception as exc:
        raise CatalogError(
            f"cannot write as {fmt}: {type(exc).__name__}: {exc}", source=str(path)
        ) from exc
    return path


def _check_ascii_writable(df: pd.DataFrame, source: str) -> None:
    for name in df.columns:
        if not name or re.search(r"\s", name) or name.startswith("#"):
            raise CatalogError(
                "column name cannot be written to a whitespace table", column=name, source=source
            )
        col = df[name]
        if col.dtype.kind in "biuf":
            continue
        text = col.dropna().astype(str)
        bad = text.str.contains(r"\s", regex=True) | (text == "") | text.str.startswith("#")
        if bad.any():
            row = int(np.flatnonzero(col.notna().to_numpy())[np.flatnonzero(bad.to_numpy())[0]])
            raise CatalogError(
                "empty text, text with blanks or starting with '#' cannot be written to a "
                "whitespace table",
                column=name,
                row=row,
                source=source,
            )


def _pandas_to_astropy(df: pd.DataFrame):
    from astropy import units as u
    from astropy.table import Table

    table = Table.from_pandas(df.reset_index(drop=True))
    for name, unit in (df.attrs.get("units") or {}).items():
        if name in table.colnames:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table[name].unit = u.Unit(unit, parse_strict="silent")
    return table
