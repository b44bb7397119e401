"""`somcal occupation`: a survey's occupation of a map (per-cell counts, no rows) from a
Parquet or HATS dataset on Dask, registered in the ledger as an occupation catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli._common import (
    EXIT_INPUT,
    EXIT_NOT_FOUND,
    DatabaseUrl,
    _database,
    _done,
    _fail,
    _progress_callback,
    _ready_map,
    _settings,
    _user_errors,
)


def _edges(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        edges = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise _fail(f"{option}: comma-separated numbers expected, got {text!r}") from exc
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise _fail(f"{option}: at least two increasing bin edges expected, got {text!r}")
    return edges


def _is_occupation_table(path: Path) -> bool:
    import pyarrow.parquet as pq

    from som.occupation import METADATA_KEY

    if not path.is_file():
        return False
    try:
        return METADATA_KEY in (pq.read_schema(path).metadata or {})
    except Exception:  # noqa: BLE001 - not Parquet: a dataset file to compute from
        return False


def occupation(
    dataset: Annotated[
        Path,
        typer.Argument(
            metavar="DATASET",
            help="Parquet file or directory, HATS catalogue, the output of `somcal assign "
            "--dask` with this map (its cells are used), or an occupation table to register.",
        ),
    ],
    map_id: Annotated[
        int | None,
        typer.Option("--map", "--map-id", "-m", min=1, help="Map id (default: latest ready)."),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Dask scheduler (tcp://host:8786) or 'local'; default: this process.",
        ),
    ] = None,
    mag_column: Annotated[
        str | None, typer.Option(help="Column of the magnitude split (e.g. mag_i).")
    ] = None,
    mag_edges: Annotated[
        str | None, typer.Option(help="Magnitude bin edges, comma-separated.")
    ] = None,
    z_column: Annotated[str | None, typer.Option(help="Column of the photo-z split.")] = None,
    z_edges: Annotated[str | None, typer.Option(help="Photo-z bin edges, comma-separated.")] = None,
    weight_column: Annotated[str | None, typer.Option(help="Column of galaxy weights.")] = None,
    healpix_order: Annotated[
        int | None, typer.Option(min=0, max=12, help="Split by HEALPix pixel at this order.")
    ] = None,
    ra_column: Annotated[str | None, typer.Option(help="RA column (HATS: its own).")] = None,
    dec_column: Annotated[str | None, typer.Option(help="Dec column (HATS: its own).")] = None,
    rows_per_task: Annotated[
        int, typer.Option(min=1, help="Rows per Dask partition (row groups are never split).")
    ] = 1_000_000,
    name: Annotated[str | None, typer.Option(help="Catalogue name (default: DATASET's).")] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the occupation table (Parquet) here."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Count a survey on a map, partition by partition on Dask, and register the counts as
    an occupation catalogue: coverage, gaps, targets and n(z) then take --catalogue-id
    (API: catalogue_id / occupation_id) to read it. Rows are never stored: per cell the
    galaxies and their weight, per magnitude bin, photo-z bin and HEALPix pixel on request.
    The catalogue id is printed on stdout."""
    from app.services import map_store
    from app.services import occupation as occupation_service
    from som.distributed import PartitionError, occupation_parquet

    if not dataset.exists():
        raise _fail(f"{dataset}: no such file or directory", EXIT_NOT_FOUND)
    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        rate: dict = {}
        if _is_occupation_table(dataset):
            reg = occupation_service.register_file(session, m, dataset, str(dataset), name)
        else:
            som = map_store.SOM_CACHE.get(m)
            try:
                with _progress_callback(f"occupation of map {m.id} by {dataset.name}") as report:
                    occ = occupation_parquet(
                        som, dataset, client=dask,
                        mag_column=mag_column, mag_edges=_edges(mag_edges, "--mag-edges"),
                        z_column=z_column, z_edges=_edges(z_edges, "--z-edges"),
                        weight_column=weight_column, healpix_order=healpix_order,
                        ra_column=ra_column, dec_column=dec_column,
                        rows_per_task=rows_per_task, progress=report,
                    )  # fmt: skip
            except PartitionError as exc:
                raise _fail(str(exc)) from exc
            except ValueError as exc:
                raise _fail(str(exc), EXIT_INPUT) from exc
            rate = occ.provenance
            if output is not None:
                occ.write_parquet(output)
            fmt = (occupation_service.FROM_HATS if occ.provenance.get("hats")
                   else occupation_service.FROM_PARQUET)  # fmt: skip
            reg = occupation_service.register(
                session, m, occ, name=name or dataset.name, filename=str(dataset.resolve()),
                file_format=fmt,
            )  # fmt: skip
        cat = reg.catalogue
        summary = cat.summary or {}
        _done(
            ("already registered: " if reg.duplicate else "")
            + f"occupation catalogue {cat.id} of map {m.id}: {cat.n_rows:,} rows, "
            f"{summary.get('galaxies', 0):,} in cells, {summary.get('unassigned', 0):,} without "
            f"a usable colour, {summary.get('outside_training', 0):,} outside the training set"
            + (f" ({rate['rows_per_second']:,.0f} rows/s)" if rate.get("rows_per_second") else "")
        )
    typer.echo(str(cat.id))
