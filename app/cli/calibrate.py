"""Calibration products of a map: `somcal coverage`, `gaps`, `targets` and `nz`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from app.cli._common import (
    DatabaseUrl,
    GapCatalogue,
    GapOccupation,
    MapId,
    TargetBudget,
    TargetHours,
    TargetMagBand,
    TargetMagLimit,
    TargetsPerCell,
    _database,
    _done,
    _fail,
    _fmt,
    _out,
    _output_path,
    _pct,
    _ready_map,
    _settings,
    _spin,
    _table_format,
    _user_errors,
    _write_frame,
)

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

    from app.models import Map
    from app.services.map_queries import TargetChoice


# ----------------------------------------------------------------------------- coverage / gaps
CatalogueOption = Annotated[
    int | None,
    typer.Option(
        "--catalogue-id",
        min=1,
        help="Count one photometric catalogue's rows, or an occupation catalogue of the map "
        "(`somcal occupation`), instead of every photometric row of the ledger.",
    ),
]


def _coverage_table(cov: dict[str, Any], m: Map) -> Table:
    s = cov["summary"]
    table = Table(title=f"coverage of map {m.id} ({m.n_rows}×{m.n_cols}), k = {cov['k']}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [
        ("cells", _fmt(s["n_cells"])),
        ("occupied cells", _fmt(s["n_cells_occupied"])),
        ("covered cells", _fmt(s["n_cells_covered"])),
        ("occupied cells covered", _pct(s["fraction_occupied_cells_covered"])),
        ("galaxies", _fmt(s["n_galaxies"])),
        ("galaxies in covered cells", _pct(s["fraction_galaxies_covered"])),
        ("spectra (secure)", f"{cov['n_spectra']:,} ({cov['n_spectra_secure']:,})"),
        # Counted apart from everything above: their cells do not describe them.
        ("galaxies outside the training set", _fmt(cov.get("n_outside_training", 0))),
        ("spectra outside the training set", _fmt(cov.get("n_spectra_outside_training", 0))),
    ]
    if s.get("n_unassigned"):
        rows.append(("sources without a cell", _fmt(s["n_unassigned"])))
    for r in rows:
        table.add_row(*r)
    return table


def _breakdown_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("bin", "galaxies", "covered"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{_fmt(r.get('bin_lo'), 2)} – {_fmt(r.get('bin_hi'), 2)}",
            _fmt(r.get("n_galaxies")),
            _pct(r.get("fraction_covered")),
        )
    return table


def _parse_bins(value: str | None, option: str) -> Any:
    """Bins as the API takes them (app.services.map_queries.parse_bins), named by option."""
    from app.services.errors import InvalidInputError
    from app.services.map_queries import parse_bins

    try:
        return parse_bins(value, option)
    except InvalidInputError as exc:
        raise _fail(exc.detail) from exc


def coverage(
    map_id: MapId = None,
    mag_band: Annotated[
        str | None, typer.Option(help="Break coverage down by this band's magnitude.")
    ] = None,
    mag_bins: Annotated[
        str | None, typer.Option(help="Magnitude bins: a number or comma-separated edges.")
    ] = None,
    z_bins: Annotated[
        str | None, typer.Option(help="Photo-z bins: a number or comma-separated edges.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (summary only).")] = False,
    catalogue_id: CatalogueOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Spectroscopic coverage of a map: cells and galaxies covered.

    Optionally broken down by magnitude (--mag-band, --mag-bins) and photo-z (--z-bins).
    With --catalogue-id, of one photometric catalogue's rows, or of an occupation catalogue
    (`somcal occupation`): its counts, its own bins."""
    from app.services import coverage as coverage_service

    mb = _parse_bins(mag_bins, "--mag-bins")
    zb = _parse_bins(z_bins, "--z-bins")
    if mb is not None and mag_band is None:
        raise _fail("--mag-bins needs --mag-band")
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        if catalogue_id is not None:
            cov = _spin(
                "coverage",
                lambda: coverage_service.coverage(session, m, mag_band, mb, zb, catalogue_id),
            )
        else:
            cov = _spin(
                "coverage",
                lambda: coverage_service.coverage(
                    session, m, mag_band, 10 if mb is None else mb, zb
                ),
            )
    if as_json:
        cov = {k: v for k, v in cov.items() if k != "cells"}
        typer.echo(json.dumps(cov, indent=2))
        return
    out = _out()
    out.print(_coverage_table(cov, m))
    s = cov["summary"]
    if s.get("by_magnitude"):
        out.print(_breakdown_table(f"by {mag_band} magnitude", s["by_magnitude"]))
    if s.get("by_redshift"):
        out.print(_breakdown_table("by photo-z", s["by_redshift"]))


def gaps(
    map_id: MapId = None,
    limit: Annotated[int, typer.Option(min=1, help="Gaps shown.")] = 20,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write every gap (CSV, FITS, ...).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    catalogue_id: CatalogueOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Uncovered cells that hold galaxies, the most populated first (with --catalogue-id,
    an occupation catalogue's galaxies)."""
    import pandas as pd

    from app.services import coverage as coverage_service

    if output is not None:
        _output_path(output, overwrite)
        _table_format(output)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        g = _spin(
            "gaps",
            lambda: coverage_service.gaps(session, m, 10**9 if output else limit, 0, catalogue_id),
        )
    rows = g["gaps"]
    table = Table(
        title=f"map {m.id}: {g['n_gaps']:,} gaps hold {g['n_galaxies_in_gaps']:,} galaxies "
        f"({_pct(g['fraction_in_gaps'])})"
    )
    cols = ("cell", "row", "col", "n_galaxies", "zphot_median", "zphot_nmad", "n_spec")
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows[:limit]:
        table.add_row(*(_fmt(r.get(c)) for c in cols))
    _out().print(table)
    if output is not None:
        _write_frame(pd.DataFrame.from_records(rows), output, overwrite)
        _done(f"wrote {len(rows):,} gaps to {output}")


# ----------------------------------------------------------------------------- targets
def _targets(
    session: Session,
    m: Map,
    output: Path,
    choice: TargetChoice | None = None,
    *,
    overwrite: bool = False,
) -> pd.DataFrame:
    from app.services.map_queries import fits_header, select_targets

    chosen = _spin("targets", lambda: select_targets(session, m, choice))
    frame = chosen.frame
    _write_frame(frame, output, overwrite, fits_header(chosen.params, m.id))
    n_cells = int(frame["cell"].nunique()) if len(frame) else 0
    _done(f"wrote {len(frame):,} targets in {n_cells:,} uncovered cells to {output}")
    return frame


def targets(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Target list: .csv or .fits (also .parquet).")
    ] = Path("targets.csv"),
    map_id: MapId = None,
    budget: TargetBudget = None,
    budget_hours: TargetHours = None,
    mag_band: TargetMagBand = None,
    mag_limit: TargetMagLimit = None,
    per_cell: TargetsPerCell = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    occupation_id: GapOccupation = None,
    catalogue_id: GapCatalogue = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the spectroscopic target list for the gaps (CSV or FITS).

    C3R2-style: the most populated uncovered cells first, in each the source closest to
    the cell's weight vector, round-robin up to --per-cell, cut at the budget."""
    from app.services.map_queries import TargetChoice

    _output_path(output, overwrite)
    _table_format(output)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        choice = TargetChoice(
            budget=budget,
            budget_hours=budget_hours,
            mag_band=mag_band,
            mag_limit=mag_limit,
            per_cell=per_cell,
            occupation_id=occupation_id,
            catalogue_id=catalogue_id,
        )
        _targets(session, m, output, choice, overwrite=overwrite)
    typer.echo(str(output))


# ----------------------------------------------------------------------------- n(z)
def nz(
    map_id: MapId = None,
    catalogue: Annotated[
        int | None,
        typer.Option("--catalogue", min=1, help="Photometric sample (default: every source)."),
    ] = None,
    tomo_bins: Annotated[
        str, typer.Option(help="Photo-z edges of the tomographic bins, comma-separated.")
    ] = "0.2,0.5,0.8,1.2,2.0",
    n_boot: Annotated[int, typer.Option(min=0, max=10_000, help="Bootstrap draws.")] = 100,
    seed: Annotated[int, typer.Option(min=0, help="Bootstrap seed.")] = 0,
    k: Annotated[int | None, typer.Option(min=1, help="Secure spectra per covered cell.")] = None,
    gold: Annotated[bool, typer.Option(help="Drop members in uncovered cells (KiDS gold).")] = (
        False
    ),
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="n(z) table (CSV, FITS, Parquet), or the --format file."
        ),
    ] = None,
    nz_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Write -o as an n(z) file the pipelines read: qp (RAIL, HDF5 ensemble), "
            "sacc (DESC, one NZ tracer per bin) or fits (CosmoSIS/2pt NZ_SOURCE); each "
            "with the fiducial n(z) and the bootstrap realisations.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the n(z) as JSON.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """n(z) per tomographic bin through the map's secure spectra.

    Sources are put in bins by photo-z; each bin's n(z) comes with bootstrap errors and the
    fraction of the bin in uncovered cells. With --format, -o is a qp, SACC or CosmoSIS/2pt
    FITS file of the bins' n(z) and their bootstrap realisations (bins without an n(z) are
    left out and named)."""
    import pandas as pd

    from app.services import figures
    from som.nz_formats import FORMATS

    if nz_format is not None:
        nz_format = nz_format.lower()
        if nz_format not in FORMATS:
            raise _fail(f"--format {nz_format!r}: choose one of {', '.join(FORMATS)}")
        if output is None:
            raise _fail("--format needs --output/-o, the file to write")
        _output_path(output, overwrite)
    elif output is not None:
        _output_path(output, overwrite)
        _table_format(output)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        edges = figures.parse_edges(tomo_bins, "--tomo-bins")
        m = _ready_map(session, map_id)
        results = _spin(
            "n(z)",
            lambda: figures.tomographic_nz(
                session,
                m,
                tomo_edges=edges,
                catalogue_id=catalogue,
                n_boot=n_boot,
                random_state=seed,
                k=k,
                gold=gold,
                include_realisations=nz_format is not None,
            ),
        )
    if as_json:
        # the realisations fetched for --format go to the file, not the screen
        shown = [{key: v for key, v in r.items() if key != "realisations"} for r in results]
        typer.echo(json.dumps(shown, indent=2))
    else:
        table = Table(title=f"n(z) per tomographic bin, map {m.id}")
        for c in ("bin", "photo-z", "members", "<z>", "±", "uncovered", "spectra used", "outside"):
            table.add_column(c, justify="right")
        for r in results:
            if "error" in r:
                table.add_row(
                    str(r["tomo_bin"]),
                    f"{r['z_lo']:g}–{r['z_hi']:g}",
                    _fmt(r["n_members"]),
                    f"[yellow]{r['error']}",
                    "",
                    "",
                    "",
                    "",
                )
                continue
            table.add_row(
                str(r["tomo_bin"]),
                f"{r['z_lo']:g}–{r['z_hi']:g}",
                _fmt(r["n_members"]),
                _fmt(r["mean_z"], 4),
                _fmt(r["mean_z_err"], 4),
                _pct(r["uncovered_fraction"]),
                _fmt(r["n_spec_used"]),
                _fmt(r["n_outside_training"]),
            )
        _out().print(table)
    if output is not None and nz_format is not None:
        _write_nz_file(results, output, nz_format, m, catalogue, n_boot, seed, k, gold, edges)
    elif output is not None:
        records = []
        for r in results:
            if "error" in r:
                continue
            b = r["bins"]
            for i, v in enumerate(r["nz"]):
                records.append(
                    {
                        "tomo_bin": r["tomo_bin"],
                        "zphot_lo": r["z_lo"],
                        "zphot_hi": r["z_hi"],
                        "z_lo": b[i],
                        "z_hi": b[i + 1],
                        "nz": v if v is not None else float("nan"),
                        "nz_err": r["nz_err"][i] if r["nz_err"][i] is not None else float("nan"),
                    }
                )
        _write_frame(pd.DataFrame.from_records(records), output, overwrite)
        _done(f"wrote the n(z) of {len({r['tomo_bin'] for r in records})} bin(s) to {output}")


def _write_nz_file(
    results: list[dict[str, Any]],
    output: Path,
    nz_format: str,
    m: Map,
    catalogue: int | None,
    n_boot: int,
    seed: int,
    k: int | None,
    gold: bool,
    edges: Any,
) -> None:
    """The bins' n(z) (and realisations) as one qp, SACC or CosmoSIS/2pt FITS file."""
    from app.services import nz_export
    from app.services.errors import ServiceError

    ok = [r for r in results if "error" not in r]
    for r in results:
        if "error" in r:
            typer.echo(f"bin {r['tomo_bin']} left out: {r['error']}", err=True)
    if not ok:
        raise _fail("no tomographic bin has an n(z); nothing written")
    meta = {
        "map_id": m.id,
        "catalogue_id": catalogue if catalogue is not None else "all",
        "tomo_edges": [float(e) for e in edges] if edges is not None else None,
        "tomo_bins": [r["tomo_bin"] for r in ok],
        "n_boot": n_boot,
        "seed": seed,
        "k": ok[0]["k"],
        "gold": gold,
    }
    try:
        ens = nz_export.ensemble(ok, [f"source_{r['tomo_bin']}" for r in ok], meta)
        nz_export.write(ens, output, nz_format)
    except ServiceError as exc:
        raise _fail(exc.detail) from exc
    _done(
        f"wrote the n(z) of {len(ok)} bin(s) with {ens.n_real} realisation(s) to {output} "
        f"({nz_format})"
    )
