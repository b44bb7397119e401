r"""Column-shaped catalogue files: one reader for the library, the command line and the service.

Formats
-------
=========  ==============================================  ======================================
format     file-name endings (case-insensitive)            read with
=========  ==============================================  ======================================
fits       .fits .fit .fts (+ .gz)                         astropy.io.fits (memmap, per column)
parquet    .parquet .pq                                    pyarrow (per column, per row group)
csv        .csv .tsv .txt (+ .gz)                          pyarrow.csv (delimiter , ; or tab
                                                           from the header line)
ascii      .dat .cat .in .ascii .txt (+ .gz)               pyarrow.csv on whitespace-normalised
                                                           blocks (see "Whitespace tables")
ecsv       .ecsv (+ .gz)                                   astropy
votable    .vot .votable .xml                              astropy
hdf5       .hdf5 .h5 .hdf                                  astropy / h5py (one dataset per column);
                                                           pandas HDFStore (needs PyTables)
ipac       .tbl .ipac (+ .gz)                              astropy (IRSA's IPAC table, ``null``)
=========  ==============================================  ======================================

:func:`detect_format` decides by content first (FITS, Parquet and HDF5 signature bytes, the
``# %ECSV`` line, a VOTable XML root, an IPAC first line starting with a backslash or ``|``),
then by the name; ``.txt`` and unknown endings are sniffed as CSV (a comma or semicolon in the
first non-comment line) or whitespace ASCII. A name promising
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

CSV (``csv``)
-------------
The header is the first line that is neither blank nor a ``#`` comment (a UTF-8 byte-order
mark is ignored); its delimiter (comma, semicolon or tab, whichever it holds most outside
quotes) is the file's. Quoted fields may hold the delimiter. Windows line ends are fine.

FITS
----
The table is the HDU ``key=`` names (EXTNAME or index), else the first table HDU that is not
a FITS_LDAC image header (SExtractor ``LDAC_IMHEAD``), so ``LDAC_OBJECTS`` is read. A vector
column (shape (n, k): SDSS ``MODELMAG``, SExtractor ``MAG_APER``) is read as k columns
``NAME[0]`` .. ``NAME[k-1]`` (0-based, as TOPCAT writes them); map the element that holds a
band. Columns with more than one index are refused when named. Integer ``TNULL`` values are
missing (pandas nullable integers), ``TSCAL``/``TZERO`` are applied (unsigned 64-bit ids stay
exact), any byte order is read.

Values as written
-----------------
CSV and ASCII columns are read as text and typed afterwards, per column: int64 if every value
is an integer (uint64 beyond 2**63; float64 if some are missing, unless a value exceeds 2**53:
then nullable ``Int64``/``UInt64``, so ids stay exact), else float64 if every value is a number
(``nan``/``inf`` included), else bool for ``true``/``false`` columns without gaps, else
text. Columns named in ``text_columns`` are never typed: ids keep leading zeros
(``"000123"``) and integers beyond 2**53 (or 2**63) exactly. Missing values are the usual
null tokens (empty field, ``NA``, ``NaN``, ``nan``, ``null``, ``N/A``, ``--`` ...). Binary
formats (FITS, Parquet, HDF5, ECSV, VOTable, IPAC) give their stored types; ``text_columns``
does not change them. Integer columns with missing values (Parquet nulls, FITS ``TNULL``,
masked ECSV/VOTable/IPAC cells) are pandas nullable integers, never float64.

Streaming
---------
:meth:`TableReader.iter_chunks` yields :class:`Chunk` ``(offset, frame)`` pairs of at most
``chunk_rows`` rows with bounded memory for CSV, ASCII, Parquet, FITS and HDF5 (ECSV,
VOTable, IPAC and pandas HDFStore files are parsed whole and then sliced). ``offset`` is the
0-based data-row number of the chunk's first row; each frame has a fresh RangeIndex. Text
columns are typed chunk by chunk, so a column can be int64 in one chunk and float64 in the
next; concatenated, the chunks hold the same values as :meth:`TableReader.read`.

Errors
------
Everything is reported as :class:`CatalogueError` (a :class:`~som.photometry.PhotometryError`)
with ``reason``, and ``column``/``row`` where known: rows are 0-based data rows (header and
comment lines excluded), e.g. ``data row 1 has 4 fields but the header has 3`` or ``file is
not UTF-8 text: byte 0xe9 in data row 1``. ``source`` is the name given to the reader.

Units known to astropy (FITS TUNIT, ECSV, VOTable) travel in ``df.attrs["units"]`` in
:func:`read_table`, which :func:`write_table` writes back.

Modules: :mod:`~som.tables.formats` (formats, detection, errors), :mod:`~som.tables.reader`
(:class:`TableReader`, :func:`read_table`), :mod:`~som.tables.writer` (:func:`write_table`);
every public name is re-exported here.
"""

from som.tables._whole import CHOOSE_TABLE
from som.tables.formats import (
    DEFAULT_CHUNK_ROWS,
    FORMATS,
    TEXT_FORMATS,
    CatalogueError,
    Chunk,
    detect_format,
    format_from_name,
)
from som.tables.reader import TableReader, read_table
from som.tables.writer import write_table

__all__ = [
    "CHOOSE_TABLE",
    "DEFAULT_CHUNK_ROWS",
    "FORMATS",
    "TEXT_FORMATS",
    "CatalogueError",
    "Chunk",
    "TableReader",
    "detect_format",
    "format_from_name",
    "read_table",
    "write_table",
]
