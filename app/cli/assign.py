"""`somcal assign`: each row of a catalogue file gets its cell and the cell's statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli._common import (
    EXIT_ENV,
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
    _progress,
    _ready_map,
    _settings,
    _spin,
    _table_format,
    _user_errors,
)
from som.vocabulary import OnInvalid

# ----------------------------------------------------------------------------- assign
ASSIGN_STATS = (  # the cell's statistics
    ("covered", "covered"),
    ("n_phot", "n_phot"),
    ("n_spec_secure", "n_spec_secure"),
    ("zphot_median", "zphot_median"),
    ("zphot_nmad", "zphot_nmad"),
    ("zspec_median", "zspec_median"),
)


# Per row, beside the cell's statistics: how far to trust the cell, the borrowed redshift's
# flag and why a row could not be used (the Dask path writes its own trust columns).
ASSIGN_ROW = ("n_colours", "percentile", "outside_training", "zspec_fallback", "reason")


_ASSIGN_TYPES = {"covered": bool, "outside_training": bool, "zspec_fallback": bool, "reason": str}


def _default_assign_output(path: Path) -> Path:
    from som.catalogs import FORMATS

    name = path.name
    for suffixes in FORMATS.values():
        for suffix in sorted(suffixes, key=len, reverse=True):
            if name.lower().endswith(suffix):
                return path.with_name(name[: -len(suffix)] + "_cells" + name[-len(suffix) :])
    return path.with_name(name + "_cells")


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
    import numpy as np

    from app.services import calibrate
    from som.catalogs import read_table, write_table

    if dask is not None:
        _assign_on_dask(
            input_path, output, map_id, dask, prefix, overwrite, keep_going, database_url
        )
        return
    output = output or _default_assign_output(input_path)
    if output.resolve() == input_path.resolve():
        raise _fail("the output would replace the input; choose another --output")
    _output_path(output, overwrite)
    out_format = _table_format(output)
    mapping = _parse_mapping(map_)
    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        if not input_path.is_file():
            raise _fail(f"{input_path}: no such file", EXIT_NOT_FOUND)
        frame = _spin(f"read {input_path.name}", lambda: read_table(input_path))
        new_cols = [prefix] + [
            f"{prefix}_{s}"
            for s in ("row", "col", "distance", *(a for a, _ in ASSIGN_STATS), *ASSIGN_ROW)
        ]
        clash = [c for c in new_cols if c in frame.columns]
        if clash:
            raise _fail(
                f"{input_path.name} already has column(s) {', '.join(clash)}; choose another "
                "--prefix"
            )
        rows = calibrate.photometry_rows(
            frame,
            input_path.name,
            preset,
            mapping,
            on_invalid=on_invalid.value,
            flux_unit=flux_unit,
        )
        n = len(rows)
        parts = []
        with _progress() as progress:
            task = progress.add_task(f"assign to map {m.id}", total=n, note="")
            for start in range(0, n, chunk_size):
                chunk = rows.iloc[start : start + chunk_size]
                parts.append(
                    calibrate.assign_rows(session, m, chunk, False, max_rows=chunk_size).frame
                )
                progress.update(task, advance=len(chunk))
        import pandas as pd

        res = pd.concat(parts, ignore_index=True) if parts else None
        if res is None or len(res) != len(frame):
            raise _fail(f"{input_path.name}: assignment lost rows; nothing written", EXIT_ENV)
        frame[prefix] = res["cell"].to_numpy(dtype=np.int64)
        frame[f"{prefix}_row"] = res["cell_row"].to_numpy(dtype=np.int64)
        frame[f"{prefix}_col"] = res["cell_col"].to_numpy(dtype=np.int64)
        frame[f"{prefix}_distance"] = res["distance"].to_numpy(dtype=np.float64)
        for name, src in (*ASSIGN_STATS, *((n, n) for n in ASSIGN_ROW)):
            values = res[src]
            kind = _ASSIGN_TYPES.get(name, np.float64)
            frame[f"{prefix}_{name}"] = (
                values.fillna("").astype(str) if kind is str else values.to_numpy().astype(kind)
            )
        reasons = frame.pop(f"{prefix}_reason") if out_format == "ascii" else None
        if reasons is not None:
            # a whitespace table cannot hold free text: the reasons go to the terminal
            for row in np.flatnonzero(reasons.to_numpy() != "")[:10]:
                _err().print(f"[yellow]  row {row}: {reasons.iloc[row]}", highlight=False)
        _spin(
            f"write {output.name}",
            lambda: write_table(frame, output, format=out_format, overwrite=overwrite),
        )
    n_out = int((frame[prefix] < 0).sum())
    n_cov = int(frame[f"{prefix}_covered"].sum())
    n_far = int((frame[f"{prefix}_outside_training"] & (frame[prefix] >= 0)).sum())
    n_invalid = int(rows["reason"].notna().sum())
    _done(
        f"wrote {output}: {len(frame):,} rows on map {m.id}, {len(frame) - n_out:,} assigned "
        f"({n_cov:,} in covered cells, {n_far:,} outside the training set), "
        f"{n_out - n_invalid:,} without a usable colour, {n_invalid:,} invalid"
        + ("" if reasons is not None else f" (see {prefix}_reason)")
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
    import numpy as np
    import pandas as pd

    from app.services import maps as map_service
    from som.distributed import PartitionError, assign_parquet

    if not input_path.exists():
        raise _fail(f"{input_path}: no such file or directory", EXIT_NOT_FOUND)
    output = output or input_path.with_name(input_path.stem + "_cells")
    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        som = map_service.SOM_CACHE.get(m)
        arrays = map_service.cell_arrays(session, m)
        stats = pd.DataFrame(
            {f"{prefix}_{name}": np.asarray(arrays[src]) for name, src in ASSIGN_STATS}
        )
        map_label = m.id
    try:
        summary = assign_parquet(
            som,
            input_path,
            output,
            client=address,
            cell_stats=stats,
            allow_empty=True,
            errors_ok=keep_going,
            overwrite=overwrite,
            progress=True,
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
