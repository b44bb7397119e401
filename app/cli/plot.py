"""`somcal plot`: figures of a map as PNG files."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import (
    DatabaseUrl,
    MapId,
    _database,
    _fail,
    _output_path,
    _progress,
    _ready_map,
    _settings,
    _user_errors,
)
from som.vocabulary import PlotKind, RedshiftSource

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.models import Map


# `plot` draws one figure of som.vocabulary.PlotKind, or every one of them with `all`.
PlotChoice = StrEnum("PlotChoice", [*((k.name, k.value) for k in PlotKind), ("all", "all")])


# ----------------------------------------------------------------------------- plots
def _plots(
    session: Session,
    m: Map,
    kinds: list[str],
    paths: list[Path],
    *,
    dpi: float,
    **options: Any,
) -> list[Path]:
    from app.services import figures

    written = []
    with _progress() as progress:
        task = progress.add_task(f"plots of map {m.id}", total=len(kinds), note="")
        for kind, path in zip(kinds, paths, strict=True):
            progress.update(task, note=kind)
            png = figures.map_png(session, m, kind, dpi=dpi, **options)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)
            written.append(path)
            progress.update(task, advance=1)
    return written


def plot(
    kind: Annotated[
        PlotChoice,
        typer.Argument(help=" | ".join(PlotChoice)),
    ],
    map_id: MapId = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="PNG file (default: somcal_map<id>_<kind>.png); with `all` a directory.",
        ),
    ] = None,
    z_source: Annotated[
        RedshiftSource,
        typer.Option(help="Redshifts of the redshift/dispersion maps: phot or spec."),
    ] = RedshiftSource.phot,
    tomo_bins: Annotated[
        str | None, typer.Option(help="nz: photo-z edges of the tomographic bins.")
    ] = None,
    catalogue: Annotated[
        int | None,
        typer.Option("--catalogue", "--catalogue", min=1, help="nz: photometric sample."),
    ] = None,
    n_boot: Annotated[int, typer.Option(min=0, max=10_000, help="nz: bootstrap draws.")] = 100,
    dpi: Annotated[int, typer.Option(min=50, max=600)] = 100,
    overwrite: Annotated[bool, typer.Option(help="Replace existing files.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Draw a figure of a map as PNG.

    The Masters et al. (2015) maps (median redshift, dispersion, occupation, coverage with
    the uncovered cells marked), the U-matrix, the 2×2 overview, or n(z) per tomographic
    bin; `all` writes every one into a directory. Hexagonal maps are drawn as hexagons."""
    from app.services import figures

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        edges = figures.parse_edges(tomo_bins, "--tomo-bins")
        m = _ready_map(session, map_id)
        if kind is PlotChoice.all:
            kinds = [k.value for k in PlotKind]
            folder = output or Path(f"somcal_map{m.id}_plots")
            paths = [folder / f"map{m.id}_{k}.png" for k in kinds]
        else:
            kinds = [kind.value]
            paths = [output or Path(f"somcal_map{m.id}_{kind.value}.png")]
        for p in paths:
            if p.suffix.lower() != ".png":
                raise _fail(f"{p}: plots are PNG; name the file *.png")
            _output_path(p, overwrite)
        written = _plots(
            session,
            m,
            kinds,
            paths,
            dpi=dpi,
            z_source=z_source.value,
            tomo_edges=edges,
            catalogue_id=catalogue,
            n_boot=n_boot,
        )
    for p in written:
        typer.echo(str(p))
