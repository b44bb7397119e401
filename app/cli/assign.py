"""`somcal assign`: each row of a catalogue file gets its cell and the cell's statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli._common import (
    EXIT_INPUT,
    EXIT_NOT_FOUND,
    DatabaseUrl,
    MapId,
    _database,
    _done,
    _err,
    _fail,
    _output_path,
    _parse_mapping,
    _progress_callback,
    _ready_map,
    _settings,
    _table_format,
    _user_errors,
)
from app.cli.catalogues import _parse_declared
from som.vocabulary import OnInvalid


def assign(
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Catalogue: FITS, Parquet, CSV or ECSV.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output file (default: INPUT_cells.<same format>)."),
    ] = None,
    map_id: MapId = None,
    preset: Annotated[str | None, typer.Option(help="Column preset (default: detected).")] = None,
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="FIELD=COLUMN, repeatable (as in ingest).")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Name of the cell column and prefix of the rest.")] = (
        "cell"
    ),
    chunk_size: Annotated[int, typer.Option(min=1000, help="Rows per assignment step.")] = 200_000,
    flux_unit: Annotated[
        str | None, typer.Option(help="Unit of flux_<band> columns if the file does not say.")
    ] = None,
    declare_band: Annotated[
        list[str] | None,
        typer.Option(
            "--declare-band", help="NAME=WAVELENGTH_ANGSTROM or NAME=FILE (as in ingest)."
        ),
    ] = None,
    mag_system: Annotated[
        list[str] | None,
        typer.Option(
            "--mag-system",
            help="BAND=SYSTEM[:OFFSET] (as in ingest): this file's magnitudes in BAND are AB, "
            "Vega or SDSS.",
        ),
    ] = None,
    hdu: Annotated[
        str | None,
        typer.Option(
            "--hdu",
            help="Which table of a multi-table file: FITS HDU name or index (as in ingest).",
        ),
    ] = None,
    on_invalid: Annotated[
        OnInvalid,
        typer.Option(help="skip: a bad row gets cell -1 and its <prefix>_reason; reject: stop."),
    ] = OnInvalid.skip,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Assign a Parquet dataset (file or directory) on a Dask cluster: a scheduler "
            "address (tcp://host:8786) or 'local' for a cluster on this machine. OUTPUT is then "
            "a directory; columns named mag_<band>/magerr_<band> as the map was trained on.",
        ),
    ] = None,
    keep_going: Annotated[
        bool,
        typer.Option(help="With --dask: write the partitions that succeed and list the others."),
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Add each row's cell and the cell's statistics to a catalogue file.

    The same file comes out (same format unless --output says otherwise) with the columns
    <prefix> (-1: no usable colour, or an invalid row: see <prefix>_reason), <prefix>_row,
    <prefix>_col, <prefix>_distance, how far to trust it (<prefix>_n_colours, _percentile of
    the distance among the training galaxies', _outside_training) and the cell's statistics
    <prefix>_covered (never for a row outside the training set), _n_phot, _n_spec_secure,
    _zphot_median, _zphot_nmad, _zspec_median (the nearest labelled cell's where the cell
    has none: _zspec_fallback). With --dask the catalogue is a Parquet dataset assigned
    partition by partition on a Dask cluster (see docs/dask.md)."""
    from app.services import assign_file
    from app.services.ingest.request import parse_table_key

    if dask is not None:
        _assign_on_dask(
            input_path, output, map_id, dask, prefix, overwrite, keep_going, database_url
        )
        return
    output = output or assign_file.default_output(input_path)
    if output.resolve() == input_path.resolve():
        raise _fail("the output would replace the input; choose another --output")
    _output_path(output, overwrite)
    out_format = _table_format(output)
    mapping = _parse_mapping(map_)
    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        with _progress_callback(f"assign {input_path.name} to map {m.id}") as report:
            result = assign_file.assign_file(
                session,
                m,
                input_path,
                output,
                overwrite=overwrite,
                prefix=prefix,
                preset=preset,
                mapping=mapping,
                on_invalid=on_invalid,
                flux_unit=flux_unit,
                chunk_size=chunk_size,
                progress=report,
                bands=_parse_declared(declare_band, mag_system),
                table_key=parse_table_key(hdu),
            )
    # a whitespace table cannot hold free text: the reasons go to the terminal
    for row, reason in result.dropped_reasons[:10]:
        _err().print(f"[yellow]  row {row}: {reason}", highlight=False)
    _done(
        f"wrote {output}: {result.n_rows:,} rows on map {m.id}, {result.n_assigned:,} assigned "
        f"({result.n_covered:,} in covered cells, {result.n_outside_training:,} outside the "
        f"training set), {result.n_without_colour:,} without a usable colour, "
        f"{result.n_invalid:,} invalid"
        + ("" if out_format == "ascii" else f" (see {prefix}_reason)")
    )
    typer.echo(str(output))


def _assign_on_dask(
    input_path: Path,
    output: Path | None,
    map_id: int | None,
    address: str,
    prefix: str,
    overwrite: bool,
    keep_going: bool,
    database_url: str | None,
) -> None:
    """``assign --dask``: the same map and cell statistics, computed on a Dask cluster."""
    from app.services import map_store
    from app.services.assign_file import cell_stats_frame
    from som.distributed import PartitionError, assign_parquet

    if not input_path.exists():
        raise _fail(f"{input_path}: no such file or directory", EXIT_NOT_FOUND)
    output = output or input_path.with_name(input_path.stem + "_cells")
    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        som = map_store.SOM_CACHE.get(m)
        stats = cell_stats_frame(session, m, prefix)
        map_label = m.id
    try:
        with _progress_callback(f"assign {input_path.name} to map {map_label} on Dask") as report:
            summary = assign_parquet(
                som,
                input_path,
                output,
                client=address,
                cell_stats=stats,
                allow_empty=True,
                errors_ok=keep_going,
                overwrite=overwrite,
                progress=report,
            )
    except PartitionError as exc:
        raise _fail(str(exc)) from exc
    except FileExistsError as exc:
        raise _fail(f"{exc}; pass --overwrite to replace it") from exc
    failed = summary["failed"]
    message = (
        f"wrote {output}: {summary['n_rows']:,} rows on map {map_label} assigned on Dask "
        f"({summary['engine']}, {summary['rows_per_second']:,.0f} rows/s), "
        f"{summary['n_unassigned']:,} without a usable colour"
    )
    if failed:
        message += f"; {len(failed)} partition(s) failed: " + "; ".join(
            f"{f['where']}: {f['reason']}" for f in failed[:5]
        )
    _done(message)
    typer.echo(str(output))
    if failed:
        raise typer.Exit(EXIT_INPUT)
