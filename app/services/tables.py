"""Reading catalogue files (FITS, Parquet, CSV, ECSV, VOTable, HDF5) with located errors.

The format is decided by content first (FITS, Parquet and HDF5 have signature bytes, ECSV
a header line, VOTable its XML root), then by the file name.

CSV, Parquet and FITS are read here, column-selectively: a COSMOS2020 FITS file has about a
thousand columns of which an ingest needs twenty, so only those are materialised (FITS via
memmap), and CSV goes through Arrow's multi-threaded parser. ECSV, VOTable and HDF5 go
through ``som.catalogs.read_table``, which reads whole tables (fine for their usual sizes).
"""

from __future__ import annotations

import csv
import gzip
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from app.services.errors import InvalidInputError, RowError

FORMATS = ("fits", "parquet", "csv", "ecsv", "votable", "hdf5")
_SUFFIXES = {
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".txt": "csv",
    ".ecsv": "ecsv",
    ".vot": "votable",
    ".votable": "votable",
    ".xml": "votable",
    ".hdf5": "hdf5",
    ".h5": "hdf5",
    ".hdf": "hdf5",
}
_SIGNED = {"fits": b"SIMPLE  =", "parquet": b"PAR1", "hdf5": b"\x89HDF\r\n\x1a\n"}


def _fail(file: str, reason: str, column: str | None = None, row: int | None = None):
    where = f" column {column!r}:" if column else ""
    raise InvalidInputError(f"{file}:{where} {reason}", [RowError(file, column, row, reason)])


def _strip_compression(name: str) -> str:
    for ext in (".gz", ".bz2", ".xz"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def detect_format(path: Path, filename: str | None = None) -> str:
    file = filename or path.name
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                head = gz.read(512)
        except (OSError, EOFError, zlib.error):
            # A stream cut short raises EOFError and damaged data zlib.error, not OSError.
            _fail(file, "corrupt gzip stream")
    for fmt, magic in _SIGNED.items():
        if head.startswith(magic):
            return fmt
    stripped = head.lstrip()
    if stripped.startswith(b"# %ECSV"):
        return "ecsv"
    if stripped.startswith(b"<?xml") and b"VOTABLE" in head.upper():
        return "votable"
    suffix = Path(_strip_compression(file.lower())).suffix
    fmt = _SUFFIXES.get(suffix)
    if fmt in _SIGNED:
        # The name promises a binary format whose signature the bytes do not carry.
        _fail(
            file,
            f"not a valid {fmt.upper()} file (no {fmt.upper()} signature; truncated "
            "or mislabelled?)",
        )
    return fmt or "csv"


def _dupes(names: list[str], case_insensitive: bool) -> list[str]:
    keys = [n.lower() if case_insensitive else n for n in names]
    counts = Counter(keys)
    return sorted({n for n, k in zip(names, keys, strict=True) if counts[k] > 1})


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


class TableFile:
    """One catalogue file: its column names, then the columns an ingest asks for."""

    def __init__(self, path: Path, fmt: str, file: str) -> None:
        if fmt not in FORMATS:
            _fail(file, f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
        self.path, self.fmt, self.file = path, fmt, file
        self._whole: pd.DataFrame | None = None
        self.columns = self._header()
        dupes = _dupes(self.columns, case_insensitive=(fmt == "fits"))
        if dupes:
            _fail(file, f"duplicate column names: {', '.join(dupes)}", column=dupes[0])

    # ------------------------------------------------------------------ header
    def _header(self) -> list[str]:
        try:
            if self.fmt == "csv":
                return self._csv_header()
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                return list(pq.read_schema(self.path).names)
            if self.fmt == "fits":
                from astropy.io import fits

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with fits.open(self.path, memmap=True) as hdul:
                        return list(self._table_hdu(hdul).columns.names)
            self._whole = self._read_with_som()
            return [str(c) for c in self._whole.columns]
        except InvalidInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - a reader failing here is the file's fault
            _fail(self.file, f"cannot read {self.fmt.upper()} file: {_short(exc)}{self._hint()}")
        raise AssertionError  # unreachable

    def _hint(self) -> str:
        """For a FITS file whose size breaks the 2880-byte block rule: a note saying so.

        Only added to a failed read: a truncated file otherwise fails as "no table
        extension" or "buffer is too small", which does not say what happened.
        """
        if self.fmt != "fits":
            return ""
        size = self.path.stat().st_size
        if size % 2880 == 0:
            return ""
        return f" (the file is {size} bytes, not whole 2880-byte FITS blocks: truncated?)"

    def _csv_header(self) -> list[str]:
        opener = gzip.open if _is_gzip(self.path) else open
        with opener(self.path, "rb") as fh:
            first = fh.readline()
        try:
            # Only the first line is decoded here: a text-mode reader decodes a whole
            # buffer, and blamed the header for a bad byte in the rows below it.
            line = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            _fail(self.file, "file is not UTF-8 text (in the header line)")
        header = next(csv.reader([line]), None)
        if not header:
            _fail(self.file, "CSV file is empty (no header line)")
        names = [h.strip() for h in header]
        if "" in names:
            _fail(self.file, f"CSV header has an empty column name at position {names.index('')}")
        return names

    def _table_hdu(self, hdul):
        from astropy.io import fits

        for hdu in hdul:
            if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                return hdu
        _fail(self.file, f"FITS file has no table extension{self._hint()}")

    def _read_with_som(self) -> pd.DataFrame:
        from som.catalogs import CatalogError, read_table

        try:
            return read_table(self.path, format=self.fmt)
        except CatalogError as exc:
            _fail(self.file, exc.reason, column=exc.column, row=exc.row)
        raise AssertionError  # unreachable

    # ------------------------------------------------------------------ rows
    def n_rows_hint(self) -> int | None:
        """Row count from metadata, before reading (Parquet, FITS); else None."""
        try:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                return pq.ParquetFile(self.path).metadata.num_rows
            if self.fmt == "fits":
                from astropy.io import fits

                with fits.open(self.path, memmap=True) as hdul:
                    return int(self._table_hdu(hdul).header.get("NAXIS2", 0))
            if self._whole is not None:
                return len(self._whole)
        except Exception:  # noqa: BLE001 - the real read reports unreadable files properly
            return None
        return None

    def read(self, columns: list[str], text_columns: tuple[str, ...] = ()) -> pd.DataFrame:
        try:
            if self._whole is not None:
                return self._whole[columns].reset_index(drop=True)
            if self.fmt == "csv":
                return self._read_csv(columns, text_columns)
            if self.fmt == "parquet":
                return pd.read_parquet(self.path, columns=columns)
            if self.fmt == "fits":
                return self._read_fits(columns)
        except InvalidInputError:
            raise
        except UnicodeDecodeError:
            _fail(self.file, "file is not UTF-8 text")
        except Exception as exc:  # noqa: BLE001
            _fail(self.file, f"cannot read {self.fmt.upper()} file: {_short(exc)}{self._hint()}")
        raise AssertionError  # unreachable

    def _read_fits(self, columns: list[str]) -> pd.DataFrame:
        from astropy.io import fits

        out: dict[str, np.ndarray] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(self.path, memmap=True) as hdul:
                data = self._table_hdu(hdul).data
                for name in columns:
                    col = np.asarray(data[name])
                    if col.ndim > 1:
                        _fail(
                            self.file,
                            f"column has shape {col.shape[1:]} per row; a scalar is needed",
                            name,
                        )
                    if col.dtype.kind == "S":
                        col = np.char.rstrip(np.char.decode(col, "utf-8", errors="replace"))
                    elif col.dtype.byteorder not in ("=", "|"):
                        col = col.astype(col.dtype.newbyteorder("="))
                    else:
                        col = col.copy()  # detach from the memmap before the file closes
                    out[name] = col
        return pd.DataFrame(out)

    def _read_csv(self, columns: list[str], text_columns) -> pd.DataFrame:
        dtype = {c: "string" for c in text_columns if c in columns}
        try:
            frame = pd.read_csv(
                self.path,
                usecols=columns,
                engine="pyarrow",
                dtype=dtype or None,
                encoding="utf-8",
            )
        except Exception as exc:  # noqa: BLE001
            # The fast parser does not say where; find the first offending line ourselves.
            self._locate_csv_problem()
            _fail(self.file, f"cannot parse CSV: {_short(exc)}")
        # Arrow types a column holding bytes that are not UTF-8 as binary instead of
        # failing; in a text file that is an encoding error, located like the others.
        for name in frame.columns:
            if frame[name].dtype == object and any(isinstance(v, bytes) for v in frame[name]):
                self._locate_csv_problem()
        return frame

    def _locate_csv_problem(self) -> None:
        opener = gzip.open if _is_gzip(self.path) else open
        with opener(self.path, "rb") as raw:
            header = raw.readline()
            try:
                n_header = len(next(csv.reader([header.decode("utf-8-sig")])))
            except (UnicodeDecodeError, StopIteration):
                _fail(self.file, "file is not UTF-8 text (in the header line)")
            for row, line in enumerate(raw):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    _fail(
                        self.file,
                        f"file is not UTF-8 text: byte 0x{line[exc.start]:02x} in data row {row}",
                        row=row,
                    )
                if not text.strip():
                    continue
                fields = next(csv.reader([text]), [])
                if len(fields) != n_header:
                    _fail(
                        self.file,
                        f"data row {row} has {len(fields)} fields but the header has "
                        f"{n_header} (truncated or malformed line)",
                        row=row,
                    )
