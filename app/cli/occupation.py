"""`somcal occupation`: a survey's occupation of a map (per-cell counts, no rows) from a
Parquet or HATS dataset on Dask, registered in the ledger as an occupation catalogue
(`somcal occupation DATASET`, short for `somcal occupation compute DATASET`); `list` and
`show` what is registered, `skymap` writes the uncovered share per HEALPix pixel as a PNG
or a FITS HEALPix map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from app.cli._common import (
    CLI_ACTOR,
    EXIT_INPUT,
    EXIT_NOT_FOUND,
    DatabaseUrl,
    _database,
    _done,
    _fail,
    _out,
    _progress_callback,
    _ready_map,
    _settings,
    _user_errors,
)
from som.occupation import MAX_HEALPIX_ORDER


class _DatasetOrCommand(TyperGroup):
    """``somcal occupation DATASET ...`` keeps meaning ``compute`` (as it did before the
    group had other commands): anything that is not a command name or the group's help
    goes to ``compute``. A dataset named like a command: ``somcal occupation compute list``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["compute", *args]
        return super().parse_args(ctx, args)


occupation_cli = typer.Typer(
    cls=_DatasetOrCommand,
    help="Occupation catalogues: a survey's per-cell counts on a map (no rows). "
    "`somcal occupation DATASET --map ID` computes and registers one (`compute`).",
    no_args_is_help=True,
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


@occupation_cli.command("compute")
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
        int | None,
        typer.Option(
            min=0,
            max=MAX_HEALPIX_ORDER,
            help="Split by HEALPix pixel at this order (4 for a Euclid-sized survey: at "
            "most ~10^7 stored entries; read coarser with `skymap --order`).",
        ),
    ] = None,  # fmt: skip
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
            reg = occupation_service.register_file(
                session, m, dataset, str(dataset), name, key_name=CLI_ACTOR
            )
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
                file_format=fmt, key_name=CLI_ACTOR,
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


def _format_of(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix == ".png":
        return "png"
    if suffix in (".fits", ".fit", ".fts") or out.name.lower().endswith(".fits.gz"):
        return "fits"
    raise _fail(f"--out {out}: .png or .fits expected")


@occupation_cli.command("skymap")
def skymap(
    catalogue_id: Annotated[int, typer.Argument(metavar="ID", min=1, help="Occupation id.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="FILE.png (Mollweide) or FILE.fits (HEALPix).")
    ],
    map_id: Annotated[
        int | None,
        typer.Option("--map", "--map-id", "-m", min=1, help="Map id (default: the occupation's)."),
    ] = None,
    order: Annotated[
        int | None,
        typer.Option(
            min=0, max=MAX_HEALPIX_ORDER, help="Degrade the stored sky split to this coarser order."
        ),
    ] = None,  # fmt: skip
    overwrite: Annotated[bool, typer.Option(help="Replace FILE if it exists.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The share of an occupation's galaxies in cells without spectroscopy, per HEALPix
    pixel: a PNG (the API's sky figure) or a FITS HEALPix map (NESTED; PIXTYPE, ORDERING,
    NSIDE, ORDER in the header; columns FRACTION_UNCOVERED, N_GALAXIES, N_UNCOVERED): the
    HEALPix FITS convention healpy.read_map reads; its pixels are astropy-healpix's."""
    from app.services import map_store
    from app.services import occupation as occupation_service

    fmt = _format_of(out)
    if out.exists() and not overwrite:
        raise _fail(f"{out} exists; pass --overwrite to replace it")
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        _, row = occupation_service.occupation_row(session, catalogue_id)
        m = map_store.get_map(session, map_id or row.map_id)
        map_store.require_ready(m)
        occ, frame = occupation_service.sky(session, m, catalogue_id, order)
        if fmt == "fits":
            data = occupation_service.sky_fits(occ, frame, m, catalogue_id)
        else:
            from som.plotting import figure_to_png, plot_uncovered_sky

            fig = plot_uncovered_sky(
                frame["pixel"].to_numpy(), frame["fraction_uncovered"].to_numpy(),
                occ.healpix_order, title=f"map {m.id}, occupation {catalogue_id}",
            )  # fmt: skip
            data = figure_to_png(fig)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        tmp.write_bytes(data)  # written whole, then renamed: never a half-written map
        tmp.replace(out)
        _done(
            f"{out}: {len(frame):,} pixels at order {occ.healpix_order}, "
            f"{int(frame['n_uncovered'].sum()):,} of {int(frame['n_galaxies'].sum()):,} "
            "galaxies in uncovered cells"
        )


@occupation_cli.command("list")
def list_occupations(
    map_id: Annotated[
        int | None, typer.Option("--map", "--map-id", "-m", min=1, help="Only this map's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The occupation catalogues (of one map, or all): id, map, rows, galaxies, splits."""
    from sqlalchemy import select

    from app.models import Map
    from app.services import map_store
    from app.services import occupation as occupation_service

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        maps = ([map_store.get_map(session, map_id)] if map_id
                else session.scalars(select(Map).order_by(Map.id)).all())  # fmt: skip
        items = [occupation_service.describe(session, c) for m in maps
                 for c in occupation_service.list_for_map(session, m)]  # fmt: skip
        if as_json:
            typer.echo(json.dumps([_jsonable(d) for d in items], indent=1))
            return
        table = Table(title=f"{len(items)} occupation catalogue(s)")
        for col in ("id", "map", "name", "rows", "galaxies", "mag bins", "z bins", "order"):
            table.add_column(col)
        for d in items:
            table.add_row(
                str(d["catalogue"].id), str(d["map_id"]), d["catalogue"].name,
                f"{d['n_rows']:,}", f"{d['n_galaxies']:,}",
                str(len(d["mag_edges"]) - 1) if d["mag_edges"] else "–",
                str(len(d["z_edges"]) - 1) if d["z_edges"] else "–",
                str(d["healpix_order"]) if d["healpix_order"] is not None else "–",
            )  # fmt: skip
        _out().print(table)


@occupation_cli.command("show")
def show_occupation(
    catalogue_id: Annotated[int, typer.Argument(metavar="ID", min=1, help="Occupation id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """One occupation catalogue as JSON: the catalogue, its map, the dataset and its
    checksum, the counters, the splits and the provenance (the API's OccupationOut)."""
    from app.services import occupation as occupation_service

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        cat, _ = occupation_service.occupation_row(session, catalogue_id)
        typer.echo(json.dumps(_jsonable(occupation_service.describe(session, cat)), indent=1))


def _jsonable(described: dict) -> dict:
    """``describe``'s dict in the API's shape (``OccupationOut``), JSON-ready."""
    from app.schemas import OccupationOut

    return OccupationOut.model_validate(described).model_dump(mode="json")
