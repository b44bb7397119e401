"""The table formats, their file-name endings and detection by content, and the error
every reader and writer raises."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from som.photometry import PhotometryError

#: Supported formats and the file-name endings that select them (longest match wins).
FORMATS: dict[str, tuple[str, ...]] = {
    "fits": (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz"),
    "parquet": (".parquet", ".pq"),
    "csv": (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz"),
    "ascii": (".dat", ".cat", ".in", ".ascii", ".dat.gz", ".cat.gz", ".in.gz", ".ascii.gz"),
    "ecsv": (".ecsv", ".ecsv.gz"),
    "votable": (".vot", ".votable", ".xml"),
    "hdf5": (".hdf5", ".h5", ".hdf"),
    "ipac": (".tbl", ".ipac", ".tbl.gz", ".ipac.gz"),
}

#: Formats read as text (typed after reading; ``text_columns`` applies).
TEXT_FORMATS = ("csv", "ascii")

#: Rows per chunk of :meth:`TableReader.iter_chunks` unless asked otherwise.
DEFAULT_CHUNK_ROWS = 100_000

# Endings that say "text" without saying which kind: the content decides (CSV or ASCII).
_SNIFFED = (".txt", ".txt.gz")
_SIGNED = {"fits": b"SIMPLE  =", "parquet": b"PAR1", "hdf5": b"\x89HDF\r\n\x1a\n"}
_COMPRESSION = (".gz", ".bz2", ".xz")
BLOCK_BYTES = 8 << 20


class CatalogueError(PhotometryError):
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


#: Whole-file compressions read transparently, by their magic bytes (not the name).
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
_OPENERS = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
_ZIP = b"PK\x03\x04"


def compression(path: Path) -> str | None:
    """``"gzip"``, ``"bz2"``, ``"xz"`` or None, from the file's first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def is_gzip(path: Path) -> bool:
    return compression(path) == "gzip"


def open_binary(path: Path):
    kind = compression(path)
    return _OPENERS[kind](path, "rb") if kind else open(path, "rb")


def detect_format(path: str | os.PathLike, name: str | None = None) -> str:
    """The format of a file: by content first, then by ``name`` (default: the path's name).

    Raises CatalogueError for a corrupt gzip stream and for a name promising FITS, Parquet or
    HDF5 whose bytes do not carry that format's signature.
    """
    path = Path(path)
    file = name or path.name
    with open(path, "rb") as fh:
        head = fh.read(512)
    kind = compression(path)
    if kind is not None:
        try:
            with _OPENERS[kind](path, "rb") as packed:
                head = packed.read(512)
        except (OSError, EOFError, zlib.error, lzma.LZMAError):
            # A stream cut short raises EOFError and damaged data zlib.error, not OSError.
            raise CatalogueError(f"corrupt {kind} stream", source=file) from None
    if head.startswith(_ZIP) and not file.lower().endswith((".parquet", ".pq")):
        raise CatalogueError(
            "a ZIP archive (an Excel workbook, or zipped files) is not a table; unzip it, "
            "or export the sheet as CSV, and send the table itself (gzip, bzip2 and xz "
            "compressed files are read as they are)",
            source=file,
        )
    for fmt, magic in _SIGNED.items():
        if head.startswith(magic):
            return fmt
    stripped = head.lstrip()
    if stripped.startswith(b"# %ECSV"):
        return "ecsv"
    if stripped.startswith(b"<?xml") and b"VOTABLE" in head.upper():
        return "votable"
    if stripped.startswith((b"\\", b"|")) and b"|" in head:
        return "ipac"  # IRSA's table: "\keyword = value" lines, then "|name|name|" headers
    fmt = format_from_name(file)
    if fmt in _SIGNED:
        # The name promises a binary format whose signature the bytes do not carry.
        raise CatalogueError(
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
        with open_binary(path) as fh:
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
        if b"," in line or b";" in line:
            return "csv"
        return "ascii" if comments or len(line.split()) > 1 else "csv"
    return "ascii" if comments else "csv"


def format_for(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower()
        if fmt not in FORMATS:
            raise CatalogueError(
                f"unknown format {format!r}; supported: {', '.join(FORMATS)}", source=str(path)
            )
        return fmt
    fmt = format_from_name(path.name)
    if fmt is None:
        known = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
        raise CatalogueError(
            f"cannot tell the table format from the file name (known endings: {known}); "
            "pass format=...",
            source=str(path),
        )
    return fmt
