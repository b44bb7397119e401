"""``somcal calibration create|list|show|nz|targets|recompute``: deep/wide calibrations,
through the same service as ``/v1/calibrations``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from app.cli._common import (
    EXIT_ENV,
    DatabaseUrl,
    TargetBudget,
    TargetHours,
    TargetMagBand,
    TargetMagLimit,
    TargetsPerCell,
    _database,
    _done,
    _err,
    _fail,
    _fmt,
    _out,
    _output_path,
    _pct,
    _progress,
    _settings,
    _table_format,
    _user_errors,
    _write_frame,
)
from som.vocabulary import EnsembleMethod, TomoBinning

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

calibration_cli = typer.Typer(
    help="Deep/wide (SOMPZ) calibrations: a deep map, a wide map, a transfer catalogue and "
    "the spectra; recomputed as spectra arrive.",
    no_args_is_help=True,
)

CalibrationId = Annotated[int, typer.Argument(help="Calibration id.", min=1)]


def _edges(text: str, option: str) -> list[float]:
    from app.services.map_queries import increasing_edges

    try:
        return [float(v) for v in increasing_edges(text)]
    except ValueError as exc:
        raise _fail(f"{option} {text!r}: give increasing comma-separated edges") from exc


def _run_job(factory: sessionmaker[Session], job_id: int, label: str) -> None:
    """Run the calibration's job here (no server needed), with a progress bar fed by the
    job row; a failed job is an error naming its reason."""
    from app.services.jobs import JobRunner, get_job

    runner = JobRunner(factory, workers=1)
    future = runner.start(job_id)
    try:
        with _progress() as progress:
            task = progress.add_task(label, total=100, note="queued")
            while True:
                with factory() as session:
                    job = get_job(session, job_id)
                    status, fraction, note = job.status, job.progress or 0.0, job.message or ""
                progress.update(task, completed=100 * fraction, note=note)
                if status in ("succeeded", "failed") or (future is not None and future.done()):
                    break
                time.sleep(0.2)
        if future is not None:
            future.result()
    finally:
        runner.shutdown(wait=False)
    with factory() as session:
        job = get_job(session, job_id)
        if job.status != "succeeded":
            raise _fail(f"{label} failed: {job.error}", EXIT_ENV)


def _show(c_out: dict) -> None:
    table = Table(
        title=f"calibration {c_out['id']} {c_out['name']!r}: {c_out['status']}"
        f" (version {c_out['version']}, {c_out['binning']} binning, "
        f"{c_out['ensemble_method']} ensemble)"
    )
    for col in ("bin", "z", "galaxies", "N_eff", "<z>", "σ<z>", "width", "no spectra"):
        table.add_column(col, justify="right")
    for b in c_out["bins"] or []:
        table.add_row(
            str(b["bin"]),
            f"{b['z_lo']:g}–{b['z_hi']:g}",
            _fmt(b["n_galaxies"]),
            _fmt(b["n_eff"], 1),
            _fmt(b["mean_z"], 4),
            _fmt(b["mean_z_std"], 4),
            _fmt(b["width"], 3),
            _pct(b["no_spec_fraction"]),
        )
    _out().print(table)
    if c_out["error"]:
        _err().print(f"[red]error:[/red] {c_out['error']}", highlight=False)
    for line in c_out["missing"]:
        _err().print(f"[yellow]{line}[/yellow]", highlight=False)
    for line in c_out.get("warnings") or []:
        _err().print(f"[yellow]warning: {line}[/yellow]", highlight=False)


def create(
    deep_map: Annotated[int, typer.Option("--deep-map", min=1, help="Deep map id.")],
    wide_map: Annotated[int, typer.Option("--wide-map", min=1, help="Wide map id.")],
    deep: Annotated[
        int, typer.Option("--deep", min=1, help="Deep photometric catalogue (targets, transfer).")
    ],
    wide: Annotated[int, typer.Option("--wide", min=1, help="Wide photometric sample.")],
    transfer: Annotated[
        int,
        typer.Option(
            "--transfer",
            min=1,
            help="Transfer catalogue: wide-noise photometry, source_id = deep galaxy injected.",
        ),
    ],
    transfer_deep: Annotated[
        int | None,
        typer.Option(min=1, help="Deep photometry of the transfer objects (default: --deep)."),
    ] = None,
    binning: Annotated[TomoBinning, typer.Option(help="How wide galaxies are binned.")] = (
        TomoBinning.mean
    ),
    bin_edges: Annotated[str, typer.Option(help="Tomographic bin edges.")] = "0,0.4,0.7,1,1.5",
    z_edges: Annotated[
        str | None, typer.Option(help="Redshift grid of the n(z) (default: the deep map's).")
    ] = None,
    ensemble: Annotated[EnsembleMethod, typer.Option(help="How realisations are drawn.")] = (
        EnsembleMethod.dirichlet
    ),
    realisations: Annotated[int, typer.Option(min=0, help="Realisations (0: none).")] = 100,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the ensemble.")] = 0,
    bin_conditioning: Annotated[
        bool, typer.Option(help="Weight spectra by their galaxy's bin membership.")
    ] = True,
    name: Annotated[str | None, typer.Option(help="Calibration name.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a deep/wide calibration and compute its n(z) here (with a progress bar).

    Later ingests and deletions queue its recomputation (run by `somcal worker` or the
    server, or `somcal calibration recompute ID`). Prints the new id on stdout."""
    from pydantic import ValidationError

    from app.schemas import CalibrationIn
    from app.services import deepwide
    from app.services.errors import InvalidInputError, RowError

    with _user_errors():
        try:
            req = CalibrationIn(
                name=name,
                deep_map_id=deep_map,
                wide_map_id=wide_map,
                deep_catalogue_id=deep,
                wide_catalogue_id=wide,
                transfer_catalogue_id=transfer,
                transfer_deep_catalogue_id=transfer_deep,
                binning=binning.value,
                bin_edges=_edges(bin_edges, "--bin-edges"),
                z_edges=_edges(z_edges, "--z-edges") if z_edges else None,
                ensemble_method=ensemble.value,
                n_realisations=realisations,
                random_state=seed,
                bin_conditioning=bin_conditioning,
            )
        except ValidationError as exc:
            raise InvalidInputError(
                "cannot create this calibration",
                [
                    RowError(None, ".".join(map(str, e["loc"])), None, e["msg"])
                    for e in exc.errors()
                ],
            ) from exc
    with _database(_settings(database_url)) as factory:
        with _user_errors(), factory() as session:
            c, job = deepwide.create(session, req)
            session.commit()
            cal_id, job_id = c.id, job.id
        _run_job(factory, job_id, f"calibration {cal_id}")
        with factory() as session:
            _show(deepwide.describe(deepwide.get(session, cal_id)))
    _done(f"calibration {cal_id} ready")
    typer.echo(cal_id)


def list_(database_url: DatabaseUrl = None) -> None:
    """List the deep/wide calibrations."""
    from app.services import deepwide

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        items = [deepwide.describe(c) for c in deepwide.list_all(session)]
    table = Table(title=f"{len(items)} calibration(s)")
    for col in ("id", "name", "status", "deep map", "wide map", "binning", "version", "computed"):
        table.add_column(col)
    for c in items:
        status = c["status"] + (f": {c['error'][:60]}" if c["error"] else "")
        if c["missing"]:
            status += f" ({'; '.join(c['missing'])})"
        table.add_row(
            str(c["id"]),
            c["name"],
            status,
            str(c["deep_map_id"] or "–"),
            str(c["wide_map_id"] or "–"),
            c["binning"],
            str(c["version"]),
            c["computed_at"].strftime("%Y-%m-%d %H:%M") if c["computed_at"] else "–",
        )
    _out().print(table)


def show(
    calibration_id: CalibrationId,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """A calibration: status, per-bin ⟨z⟩ and its spread, N_eff, weight without spectra."""
    from app.schemas import CalibrationOut
    from app.services import deepwide

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        out = deepwide.describe(deepwide.get(session, calibration_id))
    if as_json:
        typer.echo(CalibrationOut(**out).model_dump_json(indent=2))
        return
    _show(out)


def nz(
    calibration_id: CalibrationId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The n(z) file (--format).")
    ] = None,
    nz_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="json (stdout unless -o), or a file the pipelines read: qp, sacc or fits "
            "(CosmoSIS/2pt); files hold the fiducial n(z) and the realisations.",
        ),
    ] = "json",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The deep/wide n(z) per bin, as JSON or a qp, SACC or CosmoSIS/2pt FITS file."""
    from app.schemas import CalibrationNzOut
    from app.services import deepwide
    from som.nz_formats import FORMATS

    nz_format = nz_format.lower()
    if nz_format != "json" and nz_format not in FORMATS:
        raise _fail(f"--format {nz_format!r}: choose json or one of {', '.join(FORMATS)}")
    if nz_format != "json" and output is None:
        raise _fail("--format qp|sacc|fits needs --output/-o, the file to write")
    if output is not None:
        _output_path(output, overwrite)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        res = deepwide.result(session, deepwide.get(session, calibration_id))
        if nz_format == "json":
            text = CalibrationNzOut(**deepwide.nz_answer(res, False)).model_dump_json(indent=2)
            if output is None:
                typer.echo(text)
                return
            output.write_text(text)
        else:
            content, _, _ = deepwide.nz_file(res, nz_format)
            output.write_bytes(content)  # type: ignore[union-attr]
    _done(f"wrote the n(z) of calibration {calibration_id} to {output} ({nz_format})")


def targets(
    calibration_id: CalibrationId,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Target list: .csv or .fits (also .parquet).")
    ] = Path("targets.csv"),
    tomo_bin: Annotated[
        int | None, typer.Option("--bin", min=0, help="Aim at one tomographic bin.")
    ] = None,
    budget: TargetBudget = None,
    budget_hours: TargetHours = None,
    mag_band: TargetMagBand = None,
    mag_limit: TargetMagLimit = None,
    per_cell: TargetsPerCell = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Targets for the deep cells whose missing redshifts weigh most in the wide n(z)."""
    from app.services import deepwide
    from app.services.map_queries import fits_header

    _output_path(output, overwrite)
    _table_format(output)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        c = deepwide.get(session, calibration_id)
        frame, params = deepwide.targets(
            session,
            deepwide.result(session, c),
            tomo_bin=tomo_bin,
            budget=budget,
            budget_hours=budget_hours,
            mag_band=mag_band,
            mag_limit=mag_limit,
            per_cell=per_cell,
        )
        _write_frame(frame, output, overwrite, fits_header(params, c.deep_map_id or 0))
    n_cells = int(frame["cell"].nunique()) if len(frame) else 0
    _done(f"wrote {len(frame):,} targets in {n_cells:,} deep cells without spectra to {output}")
    typer.echo(str(output))


def recompute(calibration_id: CalibrationId, database_url: DatabaseUrl = None) -> None:
    """Recompute a calibration's n(z) here (with a progress bar)."""
    from app.services import deepwide

    with _database(_settings(database_url)) as factory:
        with _user_errors(), factory() as session:
            job = deepwide.recompute(session, deepwide.get(session, calibration_id))
            session.commit()
            job_id = job.id
        _run_job(factory, job_id, f"calibration {calibration_id}")
        with factory() as session:
            _show(deepwide.describe(deepwide.get(session, calibration_id)))


calibration_cli.command("create")(create)
calibration_cli.command("list")(list_)
calibration_cli.command("show")(show)
calibration_cli.command("nz")(nz)
calibration_cli.command("targets")(targets)
calibration_cli.command("recompute")(recompute)

__all__ = ["calibration_cli"]
