"""Whole-table readers (Parquet, HDF5 and every astropy-known format) and the conversions to a
pandas DataFrame shared by the reader and :func:`~som.tables.read_table`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from som.tables.formats import CatalogueError


def read_whole(path: Path, fmt: str, key, source: str) -> pd.DataFrame:
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        elif fmt == "hdf5":
            df = read_hdf5(path, key, source)
        else:
            df = read_astropy(path, fmt, key, source)
    except CatalogueError:
        raise
    except Exception as exc:  # the libraries' own errors rarely name the file
        raise CatalogueError(
            f"cannot read as {fmt}: {type(exc).__name__}: {exc}", source=source
        ) from exc
    return tidy(df, source)


def read_astropy(path: Path, fmt: str, key, source: str) -> pd.DataFrame:
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
    return astropy_to_pandas(table, source)


def hdf5_table(f, key, source: str):
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
        raise CatalogueError(
            f"holds several tables ({', '.join(d.name for d in datasets)}); pick one with key=",
            source=source,
        )
    if datasets:
        return "compound", datasets[0]
    group = node if key is not None else single_column_group(f, source)
    columns = {n: o for n, o in group.items() if isinstance(o, h5py.Dataset) and o.ndim == 1}
    if not columns:
        raise CatalogueError("no table found in the HDF5 file", source=source)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise CatalogueError(
            f"columns of group {group.name!r} have different lengths {sorted(lengths)}",
            source=source,
        )
    return "group", group


def read_hdf5(path: Path, key, source: str) -> pd.DataFrame:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is present wherever astropy HDF5 is
        raise CatalogueError("reading HDF5 needs the h5py package", source=source) from exc

    with h5py.File(path, "r") as f:
        kind, node = hdf5_table(f, key, source)
        if kind == "group":
            return pd.DataFrame(
                {
                    k: native(v[()])
                    for k, v in node.items()
                    if isinstance(v, h5py.Dataset) and v.ndim == 1
                }
            )
        table_path = node.name
    from astropy.table import Table

    table = Table.read(path, format="hdf5", path=table_path)
    return astropy_to_pandas(table, source)


def single_column_group(f, source: str):
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
        raise CatalogueError(
            f"cannot tell which group holds the table (candidates: {names}); pick one with key=",
            source=source,
        )
    return groups[0]


def native(values: np.ndarray) -> np.ndarray:
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    return values


def parquet_units(path: Path) -> dict[str, str]:
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


def astropy_to_pandas(table, source: str) -> pd.DataFrame:
    units = {}
    for name in table.colnames:
        col = table[name]
        if col.ndim > 1:
            raise CatalogueError(
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


def decode_bytes(df: pd.DataFrame) -> pd.DataFrame:
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


def tidy(df: pd.DataFrame, source: str) -> pd.DataFrame:
    df = decode_bytes(df)
    dupes = df.columns[df.columns.duplicated()]
    if len(dupes):
        raise CatalogueError(f"duplicate column names {list(dupes)}", source=source)
    units = df.attrs.get("units", {})
    df = df.reset_index(drop=True)
    df.attrs["units"] = dict(units)
    return df
