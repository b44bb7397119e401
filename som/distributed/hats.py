"""HATS catalogues through the ``hats`` package: which pixel files to read, and the
metadata that makes an assigned copy a HATS catalogue again (readable by ``lsdb``).

A HATS catalogue (or a collection of one with its margins) is recognised by its
properties file and opened with ``hats.read_hats``; its pixel files are the partitions
``hats`` lists, never guessed from folder names. Assignment is row by row, so margins
(copies of neighbouring pixels' rows) are not needed and are not assigned: the output is
the main catalogue only, with ``hats.properties``, ``partition_info.csv`` and the
``dataset/_metadata`` / ``_common_metadata`` files that ``hats`` writes.
"""

from __future__ import annotations

from pathlib import Path

from ._common import dask_extra

_PROPERTY_FILES = ("hats.properties", "properties", "collection.properties")


def _hats():
    return dask_extra("hats", "reading a HATS catalogue needs the hats package")


def open_catalogue(path: Path):
    """The main catalogue (``hats.catalog.Catalog``) at ``path``, or None when ``path`` is
    not a HATS catalogue or collection. A broken HATS catalogue raises hats' error."""
    if not any((path / name).is_file() for name in _PROPERTY_FILES):
        return None
    hats = _hats()
    from hats.catalog import Catalog, CatalogCollection

    catalogue = hats.read_hats(path)
    if isinstance(catalogue, CatalogCollection):
        catalogue = catalogue.main_catalog
    if not isinstance(catalogue, Catalog):
        raise ValueError(
            f"{path}: a HATS {type(catalogue).__name__}, not a catalogue of objects or "
            "sources; somcal assigns the rows of an object or source catalogue"
        )
    return catalogue


def catalogue_dir(catalogue) -> Path:
    return Path(str(catalogue.catalog_base_dir)).resolve()


def pixel_files(catalogue) -> list[Path]:
    """The catalogue's pixel files, in the order of its partition list."""
    from hats.io import paths

    base = catalogue.catalog_base_dir
    return [
        Path(str(paths.pixel_catalog_file(base, pixel))) for pixel in catalogue.get_healpix_pixels()
    ]


def spatial_columns(catalogue) -> list[str]:
    """Columns a HATS table must keep: its coordinates and its spatial index."""
    info = catalogue.catalog_info
    cols = [info.ra_column, info.dec_column, getattr(info, "healpix_column", None)]
    return [c for c in cols if c]


def write_metadata(catalogue, output: Path, n_rows: int, name: str, written: list[str]) -> None:
    """Make the pixel files written under ``output`` (same layout as the input; ``written``
    their relative paths) a HATS catalogue: properties, partition list and Parquet
    metadata, written by ``hats``. Pixels that failed (``errors_ok``) are left out."""
    hats = _hats()
    from hats.catalog import PartitionInfo
    from hats.io import paths

    pixels = sorted({paths.get_healpix_from_path(rel) for rel in written})
    info = catalogue.catalog_info.copy_and_update(catalog_name=name, total_rows=int(n_rows))
    info.to_properties_file(output)
    PartitionInfo.from_healpix(pixels).write_to_file(catalog_path=output)
    hats.io.write_parquet_metadata(output)
