"""Writing a DataFrame to any table format so that :func:`~som.tables.read_table` gives it
back (values, dtypes, units)."""

from __future__ import annotations

import gzip
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from som.tables.formats import CatalogueError, format_for


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
    fmt = format_for(path, format)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_table needs a pandas DataFrame, got {type(df).__name__}")
    if path.exists() and not overwrite:
        raise CatalogueError("file exists; pass overwrite=True to replace it", source=str(path))
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        raise CatalogueError(f"column names must be strings, got {bad!r}", source=str(path))
    if fmt == "ascii":
        _check_ascii_writable(df, str(path))
    try:
        if fmt == "parquet":
            _write_parquet(df, path)
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
            elif fmt == "ipac":
                astropy_format = "ascii.ipac"
            else:
                astropy_format = "hdf5"
                kwargs = {"path": "data", "serialize_meta": True}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table.write(path, format=astropy_format, overwrite=overwrite, **kwargs)
    except Exception as exc:
        raise CatalogueError(
            f"cannot write as {fmt}: {type(exc).__name__}: {exc}", source=str(path)
        ) from exc
    return path


def _check_ascii_writable(df: pd.DataFrame, source: str) -> None:
    for name in df.columns:
        if not name or re.search(r"\s", name) or name.startswith("#"):
            raise CatalogueError(
                "column name cannot be written to a whitespace table", column=name, source=source
            )
        col = df[name]
        if col.dtype.kind in "biuf":
            continue
        text = col.dropna().astype(str)
        bad = text.str.contains(r"\s", regex=True) | (text == "") | text.str.startswith("#")
        if bad.any():
            row = int(np.flatnonzero(col.notna().to_numpy())[np.flatnonzero(bad.to_numpy())[0]])
            raise CatalogueError(
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


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Parquet with each unit in its field's ``unit`` metadata: the convention readers of
    Parquet that keep units use (and :func:`som.tables._whole.parquet_units` reads), so a
    catalogue streamed row group by row group, as ingest reads it, still knows its units."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    units = {k: str(v) for k, v in (df.attrs.get("units") or {}).items() if k in df.columns}
    if units:
        fields = [
            f.with_metadata({**(f.metadata or {}), b"unit": units[f.name].encode("utf-8")})
            if f.name in units
            else f
            for f in table.schema
        ]
        table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    pq.write_table(table, path)
