"""Whole-table readers (Parquet, HDF5 and every astropy-known format) and the conversions to a
pandas DataFrame shared by the reader and :func:`~som.tables.read_table`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from som.tables.formats import CatalogueError


def read_whole(path: Path, fmt: str, key, source: str, columns=None) -> pd.DataFrame:
    """The whole table (or, for astropy formats, the columns needed for ``columns``)."""
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(path)
            ranges = range_index_columns(schema)
            physical = None if columns is None else [c for c in columns if c not in ranges]
            df = with_range_index(
                arrow_to_pandas(pq.read_table(path, columns=physical)), ranges, columns, 0
            )
            units = parquet_units(path)
            df.attrs["units"] = {k: v for k, v in units.items() if k in df.columns}
        elif fmt == "hdf5":
            df = read_hdf5(path, key, source)
        else:
            df = read_astropy(path, fmt, key, source, columns)
    except CatalogueError:
        raise
    except Exception as exc:  # the libraries' own errors rarely name the file
        raise CatalogueError(
            f"cannot read as {fmt}: {type(exc).__name__}: {exc}", source=source
        ) from exc
    return tidy(df, source)


#: Integer Arrow types -> pandas' nullable dtypes, for integer columns with nulls: the
#: default conversion makes them float64, which loses ids beyond 2**53 (Rubin objectId,
#: Gaia source_id, DES COADD_OBJECT_ID).
_NULLABLE_INTS = {
    "int8": pd.Int8Dtype(),
    "int16": pd.Int16Dtype(),
    "int32": pd.Int32Dtype(),
    "int64": pd.Int64Dtype(),
    "uint8": pd.UInt8Dtype(),
    "uint16": pd.UInt16Dtype(),
    "uint32": pd.UInt32Dtype(),
    "uint64": pd.UInt64Dtype(),
}


def range_index_columns(schema) -> dict[str, tuple[int, int]]:
    """Named pandas RangeIndexes of a Parquet schema, ``{name: (start, step)}``.

    ``df.set_index("objectId").to_parquet()`` with consecutive ids stores no column at all,
    only ``{"kind": "range", "name": "objectId", "start": ...}`` in the pandas metadata.
    """
    meta = schema.pandas_metadata or {}
    out = {}
    for index in meta.get("index_columns", []):
        named = isinstance(index, dict) and index.get("kind") == "range" and index.get("name")
        if named and index["name"] not in schema.names:
            out[str(index["name"])] = (int(index["start"]), int(index["step"]))
    return out


def with_range_index(df: pd.DataFrame, ranges: dict, wanted, offset: int) -> pd.DataFrame:
    """``df`` with the named range-index columns in ``wanted`` (rows from ``offset``)."""
    for position, (name, (start, step)) in enumerate(ranges.items()):
        if wanted is None or name in wanted:
            values = start + step * (offset + np.arange(len(df), dtype=np.int64))
            df.insert(min(position, len(df.columns)), name, values)
    if wanted is not None:
        df = df[list(wanted)]
    return df


def arrow_to_pandas(table) -> pd.DataFrame:
    """An Arrow table (Parquet) as a DataFrame, every stored column a column.

    Integer columns with nulls become pandas' nullable integers, not float64 (exact ids);
    a column pandas wrote as the index (``df.set_index("objectId").to_parquet()``) stays a
    column instead of vanishing into the index; dictionary columns become categoricals.
    """
    import pyarrow as pa

    nullable = [
        name
        for name, col in zip(table.column_names, table.columns, strict=True)
        if pa.types.is_integer(col.type) and col.null_count
    ]
    # ignore_metadata: pandas' metadata would turn its index columns back into the index.
    if not nullable:
        df = table.to_pandas(ignore_metadata=True)
        df.index = pd.RangeIndex(table.num_rows)
        return df
    out = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if name in nullable:
            out[name] = col.to_pandas(types_mapper=lambda t: _NULLABLE_INTS.get(str(t)))
        else:
            out[name] = col.to_pandas()
    return pd.DataFrame(out, columns=table.column_names, index=pd.RangeIndex(table.num_rows))


#: How a refusal to guess between several tables ends: the caller names one with ``key=``
#: (a service replaces it with the name of its own option).
CHOOSE_TABLE = "pick one with key="

#: SExtractor FITS_LDAC: this HDU holds the image header as text, the catalogue follows.
LDAC_HEADER_HDU = "LDAC_IMHEAD"


def fits_table_hdu(hdul, key, source: str):
    """The HDU holding the table: ``key`` (EXTNAME or index) if given, else the first table
    HDU that is not a FITS_LDAC image header (so ``LDAC_OBJECTS`` for SExtractor files)."""
    from astropy.io import fits

    def listing() -> str:
        return ", ".join(
            f"{i} {h.name or '(no name)'} ({type(h).__name__})" for i, h in enumerate(hdul)
        )

    tables = (fits.BinTableHDU, fits.TableHDU)
    if key is not None:
        try:
            hdu = hdul[key]
        except (KeyError, IndexError):
            raise CatalogueError(
                f"no HDU {key!r} in the file; its HDUs are: {listing()}", source=source
            ) from None
        if not isinstance(hdu, tables):
            raise CatalogueError(
                f"HDU {key!r} is not a table ({type(hdu).__name__}); its HDUs are: {listing()}",
                source=source,
            )
        return hdu
    found = [h for h in hdul if isinstance(h, tables)]
    if not found:
        return None
    for hdu in found:
        if hdu.name.upper() != LDAC_HEADER_HDU:
            return hdu
    return found[0]


def element_name(column: str, index: int) -> str:
    """The name of one element of a vector column: ``MODELMAG[2]`` (0-based, as TOPCAT)."""
    return f"{column}[{index}]"


def base_name(name: str) -> str:
    """``MODELMAG[2]`` -> ``MODELMAG``; other names unchanged."""
    if name.endswith("]") and "[" in name:
        head, _, tail = name[:-1].rpartition("[")
        if tail.isdigit():
            return head
    return name


def too_many_dims(column: str, shape: tuple, source: str) -> CatalogueError:
    return CatalogueError(
        f"column has shape {shape} per row; only scalar columns and vectors (one index, read "
        "as NAME[0], NAME[1] ...) can be read; leave it out by naming the columns you need",
        column=column,
        source=source,
    )


def read_astropy(path: Path, fmt: str, key, source: str, columns=None) -> pd.DataFrame:
    from astropy.table import Table

    kwargs = {}
    if fmt == "fits":
        from astropy.io import fits

        astropy_format = "fits"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=True) as hdul:
                hdu = fits_table_hdu(hdul, key, source)
                if hdu is None:
                    raise CatalogueError("FITS file has no table extension", source=source)
                kwargs["hdu"] = hdul.index_of(hdu)
    elif fmt == "ecsv":
        astropy_format = "ascii.ecsv"
    elif fmt == "ipac":
        astropy_format = "ascii.ipac"
    else:
        astropy_format = "votable"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = Table.read(path, format=astropy_format, **kwargs)
    if columns is not None:
        wanted = {base_name(c) for c in columns} | set(columns)
        table = table[[c for c in table.colnames if c in wanted]]
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
            f"holds several tables ({', '.join(d.name for d in datasets)}); {CHOOSE_TABLE}",
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


def pandas_store_key(f, key, source: str) -> str | None:
    """The key of the pandas ``HDFStore`` frame to read (``df.to_hdf``), or None when the
    file is not a pandas store. Several frames and no ``key``: an error listing them."""
    frames = []

    def visit(name, obj):
        if "pandas_type" in obj.attrs:
            frames.append("/" + name)

    f.visititems(visit)
    if not frames:
        return None
    if key is not None:
        wanted = "/" + str(key).strip("/")
        if wanted not in frames:
            raise CatalogueError(
                f"no pandas frame {key!r} in the HDF5 file; it holds: {', '.join(frames)}",
                source=source,
            )
        return wanted
    if len(frames) > 1:
        raise CatalogueError(
            f"holds several pandas frames ({', '.join(frames)}); {CHOOSE_TABLE}",
            source=source,
        )
    return frames[0]


def read_pandas_store(path: Path, store_key: str, source: str) -> pd.DataFrame:
    try:
        import tables  # noqa: F401 - pandas reads HDFStore files through PyTables
    except ImportError:
        raise CatalogueError(
            "this HDF5 file is a pandas HDFStore (df.to_hdf), which needs the PyTables "
            "package (pip install tables); or write the table as Parquet",
            source=source,
        ) from None
    df = pd.read_hdf(path, key=store_key)
    if not isinstance(df, pd.DataFrame):
        raise CatalogueError(f"pandas object {store_key!r} is not a table", source=source)
    # A named index (objectId) is data, not row numbers.
    return df.reset_index(drop=all(n is None for n in df.index.names))


def read_hdf5(path: Path, key, source: str) -> pd.DataFrame:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is present wherever astropy HDF5 is
        raise CatalogueError("reading HDF5 needs the h5py package", source=source) from exc

    with h5py.File(path, "r") as f:
        store_key = pandas_store_key(f, key, source)
    if store_key is not None:
        return read_pandas_store(path, store_key, source)
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
            f"cannot tell which group holds the table (candidates: {names}); {CHOOSE_TABLE}",
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
    """An astropy Table as a DataFrame: masked values missing (nullable integers), units in
    ``attrs["units"]``, a vector column (shape (n, k): SDSS ``MODELMAG``, SExtractor
    ``MAG_APER``) as k columns ``NAME[0]`` .. ``NAME[k-1]``."""
    from astropy.table import Table

    units = {}
    flat = Table()
    for name in table.colnames:
        col = table[name]
        if col.ndim > 2:
            raise too_many_dims(name, col.shape[1:], source)
        parts = (
            [(element_name(name, i), col[:, i]) for i in range(col.shape[1])]
            if col.ndim == 2
            else [(name, col)]
        )
        for part_name, part in parts:
            flat[part_name] = part
            if col.unit is not None:
                units[part_name] = col.unit.to_string()
    table = flat
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
