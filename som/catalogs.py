"""Catalogue files to pandas DataFrames and back, and the zCOSMOS-bright reader.

Formats are picked from the file name (case-insensitive, ``.gz`` allowed where the format
allows it) or given explicitly:

=========  ==========================================  ==============================
format     suffixes                                    engine
=========  ==========================================  ==============================
fits       .fits .fit .fts (+ .gz)                     astropy.io.fits via Table
parquet    .parquet .pq                                pandas / pyarrow
csv        .csv .csv.gz .txt                           pandas (exact float round trip)
ecsv       .ecsv (+ .gz)                               astropy
votable    .vot .votable .xml                          astropy
hdf5       .hdf5 .h5 .hdf                              astropy (needs h5py), or h5py for
                                                       one-dataset-per-column groups
=========  ==========================================  ==============================

Column units known to astropy (FITS TUNIT, ECSV, VOTable) travel in ``df.attrs["units"]``
(a dict column -> unit string); :class:`som.photometry.ColourFeatures` checks flux columns
against them, and :func:`write_table` writes them back.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from som.photometry import PhotometryError, _sentinel_mask, _to_float64

__all__ = [
    "FORMATS",
    "ZCOSMOS_ALL_BANDS",
    "ZCOSMOS_BANDS",
    "CatalogError",
    "read_table",
    "read_zcosmos",
    "write_table",
    "zcosmos_secure",
]

#: Supported formats and the file-name endings that select them (longest match wins).
FORMATS: dict[str, tuple[str, ...]] = {
    "fits": (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz"),
    "parquet": (".parquet", ".pq"),
    "csv": (".csv", ".csv.gz", ".txt"),
    "ecsv": (".ecsv", ".ecsv.gz"),
    "votable": (".vot", ".votable", ".xml"),
    "hdf5": (".hdf5", ".h5", ".hdf"),
}

#: The seven bands (six colours) the validation bench uses on zCOSMOS.
ZCOSMOS_BANDS = ("u", "g", "r", "i", "z", "J", "Ks")

#: Every broad band :func:`read_zcosmos` returns, in wavelength order.
ZCOSMOS_ALL_BANDS = ("u", "B", "V", "g", "r", "i", "z", "J", "Ks")

# Output band -> column stem in the zCOSMOS x COSMOS file (value "{stem}_photzi25", error
# "e{stem}_photzi25"). u is CFHT u*, B..z Subaru Suprime-Cam, J UKIRT WFCAM, Ks CFHT WIRCam.
_ZCOSMOS_STEMS = {
    "u": "u",
    "B": "b",
    "V": "v",
    "g": "g",
    "r": "r",
    "i": "i",
    "z": "z",
    "J": "j",
    "Ks": "k",
}
_ZCOSMOS_SENTINELS = (-99.0, -99.9)

# pandas < 3 parses CSV floats up to one ulp off unless asked for round-trip precision (which
# pandas 3 makes the default and deprecates): exact values keep stored catalogues bit-for-bit.
_CSV_EXACT = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


class CatalogError(PhotometryError):
    """A catalogue file could not be read or written, or its content is not what it claims.

    Subclass of :class:`~som.photometry.PhotometryError`, so ``column``, ``row`` and ``source``
    (the file) are set as far as they are known.
    """


# --------------------------------------------------------------------------------------------
# generic tables
# --------------------------------------------------------------------------------------------


def _format_for(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower()
        if fmt not in FORMATS:
            raise CatalogError(
                f"unknown format {format!r}; supported: {', '.join(FORMATS)}", source=str(path)
            )
        return fmt
    name = path.name.lower()
    best = None
    for fmt, suffixes in FORMATS.items():
        for suffix in suffixes:
            if name.endswith(suffix) and (best is None or len(suffix) > len(best[1])):
                best = (fmt, suffix)
    if best is None:
        known = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
        raise CatalogError(
            f"cannot tell the table format from the file name (known endings: {known}); "
            "pass format=...",
            source=str(path),
        )
    return best[0]


def read_table(path: str | os.PathLike, format: str | None = None, *, key=None) -> pd.DataFrame:
    """Read a catalogue file into a DataFrame.

    Parameters
    ----------
    path : str or path-like
    format : {"fits", "parquet", "csv", "ecsv", "votable", "hdf5"} or None
        None: from the file name (see module docstring).
    key : str or int, optional
        FITS: the HDU (name or index) holding the table, default the first table HDU.
        HDF5: the dataset or group path, default the only table in the file.

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
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        elif fmt == "csv":
            df = pd.read_csv(path, low_memory=False, **_CSV_EXACT)
        elif fmt == "hdf5":
            df = _read_hdf5(path, key)
        else:
            df = _read_astropy(path, fmt, key)
    except CatalogError:
        raise
    except Exception as exc:  # the libraries' own errors rarely name the file
        raise CatalogError(
            f"cannot read as {fmt}: {type(exc).__name__}: {exc}", source=str(path)
        ) from exc
    return _tidy(df, str(path))


def _read_astropy(path: Path, fmt: str, key) -> pd.DataFrame:
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
    return _astropy_to_pandas(table, str(path))


def _read_hdf5(path: Path, key) -> pd.DataFrame:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is present wherever astropy HDF5 is
        raise CatalogError("reading HDF5 needs the h5py package", source=str(path)) from exc

    with h5py.File(path, "r") as f:
        node = f if key is None else f[key]
        datasets = []
        if isinstance(node, h5py.Dataset):
            datasets = [node.name]
        else:
            node.visititems(
                lambda name, obj: (
                    datasets.append(obj.name)
                    if isinstance(obj, h5py.Dataset) and obj.dtype.names is not None
                    else None
                )
            )
        if datasets:
            if len(datasets) > 1:
                raise CatalogError(
                    f"holds several tables ({', '.join(datasets)}); pick one with key=",
                    source=str(path),
                )
            table_path = datasets[0]
        else:
            table_path = None
        if table_path is None:
            # One dataset per column in a group (tables_io / RAIL layout, e.g. the DC2 mock).
            group = node if key is not None else _single_column_group(f, path)
            columns = {}
            for name, obj in group.items():
                if isinstance(obj, h5py.Dataset) and obj.ndim == 1:
                    columns[name] = obj[()]
            if not columns:
                raise CatalogError("no table found in the HDF5 file", source=str(path))
            lengths = {len(v) for v in columns.values()}
            if len(lengths) != 1:
                raise CatalogError(
                    f"columns of group {group.name!r} have different lengths {sorted(lengths)}",
                    source=str(path),
                )
            return pd.DataFrame({k: _native(v) for k, v in columns.items()})
    from astropy.table import Table

    table = Table.read(path, format="hdf5", path=table_path)
    return _astropy_to_pandas(table, str(path))


def _single_column_group(f, path: Path):
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
            source=str(path),
        )
    return groups[0]


def _native(values: np.ndarray) -> np.ndarray:
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    return values


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
    # ECSV/FITS carry the description in meta; keep only what is JSON-friendly text.
    return df


def _tidy(df: pd.DataFrame, source: str) -> pd.DataFrame:
    for name in df.columns:
        col = df[name]
        if col.dtype == object and col.map(lambda v: isinstance(v, bytes)).any():
            # FITS character columns arrive as bytes padded with blanks.
            df[name] = col.map(
                lambda v: (
                    v.decode("utf-8", errors="replace").rstrip() if isinstance(v, bytes) else v
                )
            )
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

    The format comes from the file name as in :func:`read_table`. Units in
    ``df.attrs["units"]`` are written where the format can hold them (FITS, ECSV, VOTable,
    HDF5). The index is not written. Returns the path written.
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
    try:
        if fmt == "parquet":
            df.to_parquet(path, index=False)
        elif fmt == "csv":
            df.to_csv(path, index=False)
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


# --------------------------------------------------------------------------------------------
# zCOSMOS-bright
# --------------------------------------------------------------------------------------------


def zcosmos_secure(cc) -> np.ndarray:
    """Secure-redshift mask from zCOSMOS confidence classes.

    The class digit is ``cc mod 10`` (the tens mark broad-line AGN, 1x.x, and secondary targets,
    2x.x). Secure means that digit is 3 or 4, any decimal: 3.1-3.5, 4.1-4.5, 13.x, 14.x, 23.x,
    24.x (Lilly et al. 2009: >99% spectroscopic verification). Not secure: 0.x, 1.x, 2.x,
    9.x (single-line), 18.x and NaN/negative classes. The digit is rounded to 0.1 first so
    that floating-point remainders such as 14.5 % 10 = 4.499999... cannot move a class.
    """
    cc = np.asarray(cc, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        digit = np.round(np.mod(cc, 10.0), 1)
        return np.isfinite(cc) & (cc >= 0) & (digit >= 3.0) & (digit < 5.0)


def read_zcosmos(path: str | os.PathLike) -> pd.DataFrame:
    """zCOSMOS-bright spectroscopic redshifts with COSMOS photometry, in somcal's shape.

    Reads the zCOSMOS-bright DR3 x COSMOS (Capak et al. 2007; Ilbert et al. 2009) CSV
    (``zcosmos_bright20k_cosmos_photometry.csv``) or any table with the same columns.

    Returns a DataFrame with columns ``id`` (int64, id_zcosmos), ``ra``, ``dec`` (deg),
    ``z_spec``, ``z_quality`` (the confidence class ``cc`` as a float), ``secure`` (bool, see
    :func:`zcosmos_secure`) and ``mag_{b}``, ``magerr_{b}`` (AB) for b in
    :data:`ZCOSMOS_ALL_BANDS` (u B V g r i z J Ks), ready for
    ``ColourFeatures(bands=ZCOSMOS_BANDS)``.

    Missing photometry becomes NaN: the sentinels -99 and -99.9, rows without a photometric
    counterpart (NaN in the file), and measurements whose error is negative, which the COSMOS
    catalogue uses to flag a magnitude that is only an upper limit (one u-band value with error
    -1 in the 17,358-row file). Stars are kept: they have ``z_spec == 0`` (708 rows, many of them
    with a secure class), so select ``z_spec > 0`` for galaxy samples.
    """
    df = read_table(path)
    source = str(path)
    needed = ["id_zcosmos", "zpec", "cc", "alpha", "delta"]
    for stem in _ZCOSMOS_STEMS.values():
        needed += [f"{stem}_photzi25", f"e{stem}_photzi25"]
    absent = [c for c in needed if c not in df.columns]
    if absent:
        raise CatalogError(f"not a zCOSMOS x COSMOS table: missing columns {absent}", source=source)

    out = pd.DataFrame(
        {
            "id": _numeric(df, "id_zcosmos", source),
            "ra": _numeric(df, "alpha", source),
            "dec": _numeric(df, "delta", source),
            "z_spec": _numeric(df, "zpec", source),
            "z_quality": _numeric(df, "cc", source),
        }
    )
    for col in ("id", "ra", "dec", "z_spec", "z_quality"):
        bad = ~np.isfinite(out[col].to_numpy())
        if bad.any():
            raise CatalogError(
                "missing value", column=col, row=int(np.flatnonzero(bad)[0]), source=source
            )
    ids = out["id"].to_numpy()
    if np.any(ids != np.round(ids)):
        row = int(np.flatnonzero(ids != np.round(ids))[0])
        raise CatalogError("non-integer id", column="id_zcosmos", row=row, source=source)
    out["id"] = ids.astype(np.int64)
    out["secure"] = zcosmos_secure(out["z_quality"].to_numpy())

    for band, stem in _ZCOSMOS_STEMS.items():
        mag = _numeric(df, f"{stem}_photzi25", source)
        err = _numeric(df, f"e{stem}_photzi25", source)
        missing = _is_sentinel(mag) | _is_sentinel(err)
        upper_limit = ~missing & (err < 0)
        missing |= upper_limit
        out[f"mag_{band}"] = np.where(missing, np.nan, mag)
        out[f"magerr_{band}"] = np.where(missing, np.nan, err)
        bad = np.isfinite(out[f"mag_{band}"].to_numpy()) & ~(out[f"mag_{band}"].to_numpy() > 0)
        if bad.any():
            raise CatalogError(
                f"non-positive AB magnitude {mag[np.flatnonzero(bad)[0]]:g}",
                column=f"{stem}_photzi25",
                row=int(np.flatnonzero(bad)[0]),
                source=source,
            )
    out.attrs["source"] = source
    return out


def _numeric(df: pd.DataFrame, column: str, source: str) -> np.ndarray:
    try:
        return _to_float64(df[column], column, source)
    except PhotometryError as exc:
        raise CatalogError(exc.reason, column=exc.column, row=exc.row, source=source) from exc


def _is_sentinel(values: np.ndarray) -> np.ndarray:
    return _sentinel_mask(values, _ZCOSMOS_SENTINELS)
