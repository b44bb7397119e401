"""Reading a catalogue file: the column-selective, streaming :class:`TableReader` and
:func:`read_table`, which reads a whole file (units included) into a DataFrame."""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from som.tables._text import ascii_blocks, empty_strings, is_number, rechunk, type_columns
from som.tables._whole import (
    arrow_to_pandas,
    decode_bytes,
    element_name,
    fits_table_hdu,
    hdf5_table,
    native,
    pandas_store_key,
    parquet_units,
    range_index_columns,
    read_whole,
    tidy,
    too_many_dims,
    with_range_index,
)
from som.tables.formats import (
    BLOCK_BYTES,
    DEFAULT_CHUNK_ROWS,
    FORMATS,
    TEXT_FORMATS,
    CatalogueError,
    Chunk,
    compression,
    detect_format,
    format_for,
    open_binary,
)


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


_BOM = b"\xef\xbb\xbf"


def _null_tokens() -> list[str]:
    """Cells read as missing in CSV and whitespace tables: pyarrow's defaults (empty, NA,
    NaN, nan, null, NULL, N/A ...) and astropy's printed mask ``--``."""
    import pyarrow.csv as pacsv

    return [*pacsv.ConvertOptions().null_values, "--"]


NULL_TOKENS = _null_tokens()


def _delimiter(header: str) -> str:
    """The CSV delimiter, from the header line: the most frequent of comma, tab and
    semicolon outside quotes (European spreadsheets write ``;``), comma by default."""
    unquoted = "".join(header.split('"')[::2])
    counts = {d: unquoted.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _all_numbers(fields: list[str]) -> bool:
    return any(f.strip() for f in fields) and all(is_number(f) or not f.strip() for f in fields)


def _dashes(fields: list[str]) -> bool:
    return any(f.strip() for f in fields) and all(set(f.strip()) <= {"-"} for f in fields)


#: SExtractor's ASCII_HEAD: "#   5 MAG_APER   Fixed aperture magnitude vector   [mag]".
_SEXTRACTOR_LINE = re.compile(rb"^#\s*(\d+)\s+(\S+)")


def _sextractor_names(comments: list[bytes], n_fields: int) -> list[str] | None:
    """Column names from a SExtractor ASCII_HEAD header, a vector column (its numbers skip,
    ``#  5 MAG_APER`` then ``#  8 MAGERR_APER``) as NAME[0], NAME[1] ...; None otherwise."""
    matches = [_SEXTRACTOR_LINE.match(c) for c in comments]
    if not comments or not all(matches):
        return None
    numbered = [(int(m.group(1)), m.group(2).decode("utf-8", "replace")) for m in matches]
    if numbered[0][0] != 1:
        return None
    names: list[str] = []
    for i, (number, name) in enumerate(numbered):
        following = numbered[i + 1][0] if i + 1 < len(numbered) else n_fields + 1
        width = following - number
        if width < 1:
            return None
        names += [name] if width == 1 else [element_name(name, j) for j in range(width)]
    return names if len(names) == n_fields else None


def _fits_nulls(column, values: np.ndarray):
    """An integer column's TNULL values as missing (pandas nullable integers)."""
    null = column.null
    if null is None or values.dtype.kind not in "iu" or isinstance(null, str):
        return values
    try:
        stored = int(null)
    except (TypeError, ValueError):
        return values
    # TNULL is the stored value; data[...] has TZERO applied (e.g. unsigned integers).
    scale = 1 if column.bscale in (None, "") else column.bscale
    zero = 0 if column.bzero in (None, "") else column.bzero
    if scale != 1:
        return values
    target = stored + int(zero)
    info = np.iinfo(values.dtype)
    if not info.min <= target <= info.max:
        return values
    mask = values == target
    if not mask.any():
        return values
    return pd.arrays.IntegerArray(values, mask)


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
        What errors call the file (``CatalogueError.source``), default the path. A service
        passes the uploaded file's name here.
    key : str or int, optional
        FITS: the HDU (EXTNAME or index) holding the table, default the first table HDU
        that is not a FITS_LDAC image header (``LDAC_OBJECTS`` in SExtractor catalogues).
        HDF5: the dataset or group path (or pandas ``HDFStore`` key), default the only
        table in the file.

    Attributes
    ----------
    columns : list of str
        The file's column names, in file order (read at construction; duplicate names are
        refused, case-insensitively for FITS). A FITS vector column (``MAG_APER`` with 12
        values per row) is listed element by element, ``MAG_APER[0]`` .. ``MAG_APER[11]``.
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
        self._fits_elements: dict[str, tuple[str, int]] = {}  # "MAG[2]" -> ("MAG", 2)
        self._fits_deep: dict[str, tuple] = {}  # columns with more than one index
        self._fits_vla: set[str] = set()  # variable-length array columns
        self._csv_skip = 0  # lines before the CSV header (comments, blanks)
        self._csv_delimiter = ","
        self._csv_header_lines = 1  # 0 when the header is the last "#" comment line
        self._csv_after = 0  # lines under the header that are not data (VizieR units, ---)
        self._ranges: dict[str, tuple[int, int]] = {}  # Parquet: pandas RangeIndex columns
        #: FITS: the HDU read (index, EXTNAME) and every table HDU of the file
        self.hdu: tuple[int, str] | None = None
        self.table_hdus: list[tuple[int, str]] = []
        with self._errors():
            self.columns: list[str] = self._header()
        dupes = _dupes(self.columns, case_insensitive=(fmt == "fits"))
        if dupes:
            self._fail(f"duplicate column names: {', '.join(dupes)}", column=dupes[0])

    # ------------------------------------------------------------------ errors
    def _fail(self, reason: str, column: str | None = None, row: int | None = None):
        raise CatalogueError(reason, column=column, row=row, source=self.name)

    @contextlib.contextmanager
    def _errors(self):
        """Every failure as CatalogueError; a failed text parse is first located to its row."""
        try:
            yield
        except CatalogueError:
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
                except CatalogueError:
                    raise
                except Exception as inner:  # noqa: BLE001 - e.g. a gzip stream cut short
                    exc = inner
            self._fail(f"cannot read {self.format.upper()} file: {_short(exc)}{self._hint()}")

    def _hint(self) -> str:
        """For a FITS file whose size breaks the 2880-byte block rule: a note saying so.

        Only added to a failed read: a truncated file otherwise fails as "no table
        extension" or "buffer is too small", which does not say what happened.
        """
        if self.format != "fits" or compression(self.path) is not None:
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

            schema = pq.read_schema(self.path)
            self._ranges = range_index_columns(schema)
            return [*self._ranges, *schema.names]
        if fmt == "fits":
            from astropy.io import fits

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(self.path, memmap=True) as hdul:
                    hdu = self._table_hdu(hdul)
                    self.table_hdus = [
                        (i, h.name)
                        for i, h in enumerate(hdul)
                        if isinstance(h, fits.BinTableHDU | fits.TableHDU)
                    ]
                    self.hdu = (hdul.index_of(hdu), hdu.name)
                    return self._fits_names(hdu)
        if fmt == "hdf5":
            import h5py

            with h5py.File(self.path, "r") as f:
                if pandas_store_key(f, self.key, self.name) is not None:
                    self._whole = read_whole(self.path, fmt, self.key, self.name)
                    return [str(c) for c in self._whole.columns]
                kind, node = hdf5_table(f, self.key, self.name)
                self._hdf5_rows = node.shape[0] if kind == "compound" else None
                if kind == "compound":
                    return list(node.dtype.names)
                names = [n for n, o in node.items() if isinstance(o, h5py.Dataset) and o.ndim == 1]
                self._hdf5_rows = len(node[names[0]])
                return names
        self._whole = read_whole(self.path, fmt, self.key, self.name)
        return [str(c) for c in self._whole.columns]

    def _fits_names(self, hdu) -> list[str]:
        """Column names, a vector column (shape (k,) per row) as its k elements."""
        names: list[str] = []
        dtype = hdu.columns.dtype
        for column in hdu.columns:
            name = column.name
            shape = dtype[name].shape
            if str(column.format).lstrip("0123456789")[:1] in ("P", "Q"):
                # variable-length arrays: the record holds a (length, offset) descriptor
                self._fits_vla.add(name)
                names.append(name)
            elif len(shape) == 1:
                for i in range(shape[0]):
                    self._fits_elements[element_name(name, i)] = (name, i)
                    names.append(element_name(name, i))
            else:
                if len(shape) > 1:
                    self._fits_deep[name] = shape
                names.append(name)
        return names

    def _csv_header(self) -> list[str]:
        import csv

        skipped = 0
        last_comment = None
        with open_binary(self.path) as fh:
            first = fh.readline()
            # Lines before the header that start with "#" (TOPCAT, IRSA and pipeline
            # provenance) and blank lines are comments.
            while first and (not first.strip() or first.lstrip(_BOM).startswith(b"#")):
                if first.strip():
                    last_comment = first
                skipped += 1
                first = fh.readline()
            following = [fh.readline(), fh.readline()]
        try:
            # Only the first line is decoded here: a text-mode reader decodes a whole
            # buffer, and blamed the header for a bad byte in the rows below it.
            line = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            self._fail("file is not UTF-8 text (in the header line)")
        self._csv_skip = skipped
        self._csv_delimiter = delimiter = _delimiter(line)

        def fields(text: str) -> list[str]:
            return next(csv.reader([text], delimiter=delimiter), [])

        header = fields(line)
        if not header:
            self._fail("CSV file is empty (no header line)")
        if last_comment is not None and _all_numbers(header):
            # "#id,mag_g,mag_r" and then numbers: the header is that comment line.
            named = fields(last_comment.decode("utf-8-sig", "replace").strip().lstrip("#"))
            if len(named) == len(header) and not _all_numbers(named):
                header, self._csv_header_lines = named, 0
        else:
            # VizieR's TSV: a line of units and a line of dashes under the header.
            after = [f.decode("utf-8", "replace").rstrip("\r\n") for f in following]
            for n_lines in (1, 2):
                if _dashes(fields(after[n_lines - 1])):
                    self._csv_after = n_lines
                    break
        names = [h.strip() for h in header]
        if "" in names:
            self._fail(f"CSV header has an empty column name at position {names.index('')}")
        return names

    def _ascii_header(self) -> list[str]:
        comments: list[bytes] = []
        offset = 0
        first: bytes | None = None
        with open_binary(self.path) as fh:
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
        sextractor = _sextractor_names(comments, len(tokens))
        if sextractor is not None:
            return sextractor
        if header and len(header) == len(tokens):
            return header
        if not any(is_number(t) for t in tokens):
            self._ascii_start = offset + len(first)
            return tokens
        return [f"col{i}" for i in range(1, len(tokens) + 1)]

    def _table_hdu(self, hdul):
        hdu = fits_table_hdu(hdul, self.key, self.name)
        if hdu is None:
            self._fail(f"FITS file has no table extension{self._hint()}")
        return hdu

    def units(self) -> dict[str, str]:
        """Column units the file declares (``{column: unit}``, as written): FITS ``TUNITn``,
        ECSV/VOTable column units, Parquet field metadata ``unit`` or astropy's table
        metadata; empty for CSV, ASCII and HDF5. Read from the header only."""
        with self._errors():
            if self.format in ("ecsv", "votable", "ipac"):
                return dict(self._whole.attrs.get("units", {}) or {})
            if self.format == "fits":
                from astropy.io import fits

                with fits.open(self.path, memmap=True) as hdul:
                    cols = self._table_hdu(hdul).columns
                    units = {c.name: str(c.unit) for c in cols if c.unit}
                for element, (base, _) in self._fits_elements.items():
                    if base in units:
                        units[element] = units[base]
                return units
            if self.format == "parquet":
                return parquet_units(self.path)
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

    def _physical(self, cols: list[str]) -> list[str]:
        """Parquet columns to read for ``cols``: a pandas RangeIndex column is made, not read
        (one stored column is read to know the rows when nothing else is asked for)."""
        physical = [c for c in cols if c not in self._ranges]
        stored = [c for c in self.columns if c not in self._ranges]
        return physical or stored[:1]

    def _selection(self, columns: Iterable[str] | None) -> list[str]:
        columns = list(self.columns if columns is None else dict.fromkeys(columns))
        known = set(self.columns)
        for c in columns:
            if c not in known:
                vector = [e for e, (b, _) in self._fits_elements.items() if b == c]
                if vector:
                    self._fail(
                        f"column is a vector of {len(vector)} values per row; name one "
                        f"element, {vector[0]} .. {vector[-1]} (0-based)",
                        column=c,
                    )
                self._fail("no such column in the file", column=c)
            if c in self._fits_deep:
                raise too_many_dims(c, self._fits_deep[c], self.name)
            if c in self._fits_vla:
                self._fail(
                    "column holds a variable-length array per row (FITS format P/Q); only "
                    "scalar and fixed-length vector columns can be read",
                    column=c,
                )
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
                return type_columns(table, text)
            if self.format == "ascii":
                import pyarrow as pa

                tables = list(self._ascii_tables(cols))
                if not tables:
                    return type_columns(empty_strings(cols), text)
                return type_columns(pa.concat_tables(tables), text)
            if self.format == "parquet":
                import pyarrow.parquet as pq

                physical = self._physical(cols)
                table = arrow_to_pandas(pq.read_table(self.path, columns=physical))
                return with_range_index(table, self._ranges, cols, 0)
            if self.format == "fits":
                with self._fits_hdu() as hdu:
                    return self._fits_rows(hdu, cols, None)
            # HDF5: astropy reads the whole table (it knows the units and mixin columns).
            return read_whole(self.path, "hdf5", self.key, self.name)[cols]

    def iter_chunks(
        self,
        columns: Sequence[str] | None = None,
        text_columns: Iterable[str] = (),
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[Chunk]:
        """Yield :class:`Chunk` ``(offset, frame)`` of at most ``chunk_rows`` rows, in order.

        Memory stays bounded by the chunk size for CSV, ASCII, Parquet, FITS and HDF5
        (ECSV, VOTable, IPAC and pandas HDFStore files are parsed whole, then sliced). A file
        without data rows yields nothing. Errors are raised when the reader reaches them, with
        absolute row numbers.
        """
        if int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
        chunk_rows = int(chunk_rows)
        cols = self._selection(columns)
        text = set(text_columns)
        fmt = self.format
        with self._errors():
            if self._whole is not None:
                whole = self._whole
                for start in range(0, len(whole), chunk_rows):
                    part = whole[cols].iloc[start : start + chunk_rows].reset_index(drop=True)
                    yield Chunk(start, part)
                return
            if fmt == "hdf5":
                yield from self._hdf5_chunks(cols, chunk_rows)
                return
            if fmt == "fits":
                # One open for all chunks: a .fits.gz is decompressed once, not per chunk.
                with self._fits_hdu() as hdu:
                    n = int(hdu.header.get("NAXIS2", 0))
                    for start in range(0, n, chunk_rows):
                        rows = slice(start, start + chunk_rows)
                        yield Chunk(start, self._fits_rows(hdu, cols, rows))
                return
            if fmt == "parquet":
                import pyarrow.parquet as pq

                # pre_buffer (pyarrow's default) keeps every row group it has read ahead
                # allocated: memory grew with the file (+300 MB over 3x10^6 rows), not with
                # the chunk.
                pf = pq.ParquetFile(self.path, pre_buffer=False)
                physical = self._physical(cols)
                batches = pf.iter_batches(batch_size=chunk_rows, columns=physical)
                offset = 0
                for table in rechunk(batches, chunk_rows):
                    frame = with_range_index(arrow_to_pandas(table), self._ranges, cols, offset)
                    yield Chunk(offset, frame)
                    offset += table.num_rows
                return
            if fmt == "csv":
                import pyarrow.csv as pacsv

                with self._csv_stream() as stream:
                    options = self._csv_options(cols)
                    reader = pacsv.open_csv(stream, **options)
                    offset = 0
                    for table in rechunk(reader, chunk_rows):
                        yield Chunk(offset, type_columns(table, text))
                        offset += table.num_rows
                return
            offset = 0
            for table in rechunk(self._ascii_tables(cols), chunk_rows):
                yield Chunk(offset, type_columns(table, text))
                offset += table.num_rows

    # ------------------------------------------------------------------ FITS / HDF5
    @contextlib.contextmanager
    def _fits_hdu(self):
        from astropy.io import fits

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(self.path, memmap=True) as hdul:
                yield self._table_hdu(hdul)

    def _fits_rows(self, hdu, columns: list[str], rows: slice | None) -> pd.DataFrame:
        """The columns (or vector elements) of ``rows``: scaled (TSCAL/TZERO, unsigned
        integers), native byte order, TNULL integers missing (pandas nullable integers)."""
        out: dict[str, np.ndarray] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = hdu.data
            for name in columns:
                base, index = self._fits_elements.get(name, (name, None))
                if data is None:
                    out[name] = np.zeros(0)
                    continue
                col = data[base]
                if rows is not None:
                    col = col[rows]
                col = np.asarray(col)
                if index is not None:
                    col = col[:, index]
                if col.ndim > 1:
                    raise too_many_dims(name, col.shape[1:], self.name)
                if col.dtype.kind == "S":
                    col = np.char.rstrip(np.char.decode(col, "utf-8", errors="replace"))
                elif col.dtype.byteorder not in ("=", "|"):
                    col = col.astype(col.dtype.newbyteorder("="))
                else:
                    col = col.copy()  # detach from the memmap before the file closes
                out[name] = _fits_nulls(hdu.columns[base], col)
        return pd.DataFrame(out)

    def _hdf5_chunks(self, columns: list[str], chunk_rows: int) -> Iterator[Chunk]:
        import h5py

        with h5py.File(self.path, "r") as f:
            kind, node = hdf5_table(f, self.key, self.name)
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
                frame = pd.DataFrame({c: native(v) for c, v in cols.items()})
                yield Chunk(start, decode_bytes(frame))

    # ------------------------------------------------------------------ CSV
    @contextlib.contextmanager
    def _csv_stream(self):
        import pyarrow as pa

        kind = compression(self.path)
        if kind in ("gzip", "bz2"):
            stream = pa.input_stream(str(self.path), compression=kind)
        elif kind is not None:  # xz: Arrow has no codec; Python's lzma feeds it
            stream = pa.PythonFile(open_binary(self.path), mode="r")
        else:
            stream = pa.input_stream(str(self.path))
        try:
            yield stream
        finally:
            stream.close()

    def _csv_options(self, cols: list[str]) -> dict:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return {
            "read_options": pacsv.ReadOptions(
                column_names=self.columns,
                skip_rows=self._csv_skip + self._csv_header_lines + self._csv_after,
                block_size=BLOCK_BYTES,
            ),
            "parse_options": pacsv.ParseOptions(delimiter=self._csv_delimiter),
            "convert_options": pacsv.ConvertOptions(
                include_columns=cols,
                column_types=dict.fromkeys(cols, pa.string()),
                strings_can_be_null=True,
                null_values=NULL_TOKENS,
            ),
        }

    # ------------------------------------------------------------------ ASCII
    def _ascii_tables(self, cols: list[str]):
        """Arrow tables of string columns, one per block of whitespace-normalised lines."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        read_options = pacsv.ReadOptions(column_names=self.columns, block_size=BLOCK_BYTES)
        parse_options = pacsv.ParseOptions(delimiter="\t", quote_char=False)
        convert_options = pacsv.ConvertOptions(
            include_columns=cols,
            column_types=dict.fromkeys(cols, pa.string()),
            strings_can_be_null=True,
            null_values=NULL_TOKENS,
        )
        for block in ascii_blocks(self.path, self._ascii_start):
            if block:
                yield pacsv.read_csv(
                    pa.BufferReader(block),
                    read_options=read_options,
                    parse_options=parse_options,
                    convert_options=convert_options,
                )

    # ------------------------------------------------------------------ locating problems
    def _locate_text_problem(self) -> None:
        """Raise a CatalogueError naming the first data row that is not UTF-8 or has the wrong
        number of fields; return if there is none (the caller reports the parser's error)."""
        import csv

        n_header = len(self.columns)
        ascii_table = self.format == "ascii"
        with open_binary(self.path) as raw:
            if ascii_table:
                raw.read(self._ascii_start)  # header and leading comments
            else:
                for _ in range(self._csv_skip + self._csv_header_lines + self._csv_after):
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
                fields = (
                    text.split()
                    if ascii_table
                    else next(csv.reader([text], delimiter=self._csv_delimiter), [])
                )
                if len(fields) != n_header:
                    self._fail(
                        f"data row {row} has {len(fields)} fields but the header has "
                        f"{n_header} (truncated or malformed line)",
                        row=row,
                    )
                row += 1


def _fits_fallback(path: Path, key, columns, error: CatalogueError) -> pd.DataFrame:
    """A FITS table astropy's Table.read refuses (an ASCII table HDU whose TNULL is ``*``)
    read by :class:`TableReader`, which applies TNULL, TSCAL/TZERO itself; ``error`` if that
    fails too."""
    try:
        reader = TableReader(path, "fits", key=key)
        df = reader.read(columns)
        units = reader.units()
    except CatalogueError:
        raise error from None
    df.attrs["units"] = {k: v for k, v in units.items() if k in df.columns}
    return df


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
        FITS: the HDU (EXTNAME or index) holding the table, default the first table HDU
        that is not a FITS_LDAC image header. HDF5: the dataset or group path (or pandas
        ``HDFStore`` key), default the only table in the file.
    columns : list of str, optional
        Only these columns (default all). An element of a vector column is ``NAME[i]``.
    text_columns : iterable of str
        CSV/ASCII columns kept exactly as written (ids with leading zeros, integers beyond
        2**53); ignored for binary formats.

    Returns
    -------
    pandas.DataFrame with a default RangeIndex; ``df.attrs["units"]`` maps column names to unit
    strings where the file declares units. Byte-string columns are decoded to ``str``. A
    vector column (FITS ``MODELMAG`` of shape (n, 5)) becomes ``MODELMAG[0]`` ..
    ``MODELMAG[4]``; missing values are NaN, or <NA> in nullable integer columns.

    Raises
    ------
    FileNotFoundError if the file does not exist; CatalogueError (naming the file) otherwise.
    """
    path = Path(path)
    fmt = format_for(path, format)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such catalogue file")
    if path.is_dir():
        raise CatalogueError("is a directory, not a catalogue file", source=str(path))
    if format is None and fmt in TEXT_FORMATS:
        fmt = detect_format(path)  # a SExtractor .cat may be FITS_LDAC
    if key is not None and fmt not in ("fits", "hdf5"):
        raise CatalogueError(f"key= applies to FITS and HDF5 only, not {fmt}", source=str(path))
    if fmt in TEXT_FORMATS:
        df = TableReader(path, fmt).read(columns, text_columns)
        df.attrs["units"] = {}
    elif fmt == "parquet" and columns is not None:
        df = TableReader(path, fmt).read(columns)
    else:
        try:
            df = read_whole(path, fmt, key, str(path), columns)
        except CatalogueError as exc:
            if fmt != "fits" or exc.column is not None:
                raise
            df = _fits_fallback(path, key, columns, exc)
        if columns is not None:
            missing = [c for c in columns if c not in df.columns]
            if missing:
                raise CatalogueError(
                    "no such column in the file", column=missing[0], source=str(path)
                )
            units = df.attrs.get("units", {})
            df = df[list(dict.fromkeys(columns))]
            df.attrs["units"] = {k: v for k, v in units.items() if k in df.columns}
    return tidy(df, str(path))
