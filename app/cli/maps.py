"""Maps: `somcal train` (a job with a progress bar) and `somcal maps`."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from app.cli._common import (
    EXIT_ENV,
    EXIT_INTERRUPTED,
    DatabaseUrl,
    _database,
    _done,
    _err,
    _fail,
    _fmt,
    _out,
    _progress,
    _settings,
    _user_errors,
)
from app.core.config import Settings
from app.schemas import TrainMapIn
from som import SOM
from som.vocabulary import Distance, Lattice

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


# `train` and `quickstart` default to what SOM(n_rows, n_cols) does without options
_SOM_DEFAULTS = SOM.default_params()
DEFAULT_LATTICE = Lattice(_SOM_DEFAULTS["lattice"])
DEFAULT_EPOCHS = int(_SOM_DEFAULTS["n_epochs"])


def request_limits(field: str) -> dict[str, Any]:
    """``min``/``max`` of a training-request field, so the CLI's options refuse exactly what
    the API refuses (one definition: :class:`app.schemas.TrainMapIn`)."""
    limits: dict[str, Any] = {}
    for rule in TrainMapIn.model_fields[field].metadata:
        if getattr(rule, "ge", None) is not None:
            limits["min"] = rule.ge
        if getattr(rule, "le", None) is not None:
            limits["max"] = rule.le
    return limits


def maps(database_url: DatabaseUrl = None) -> None:
    """List the maps with their status."""
    from sqlalchemy import select

    from app.models import Map

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        items = session.scalars(select(Map).order_by(Map.id)).all()
        table = Table(title=f"{len(items)} map(s)")
        for col in ("id", "name", "status", "grid", "catalogue", "trained", "QE", "TE"):
            table.add_column(col)
        for m in items:
            q = m.quality or {}
            table.add_row(
                str(m.id),
                m.name,
                m.status + (f": {m.error[:60]}" if m.error else ""),
                f"{m.n_rows}×{m.n_cols} {m.lattice}{' torus' if m.periodic else ''}",
                str(m.training_catalogue_id or "–"),
                m.trained_at.strftime("%Y-%m-%d %H:%M") if m.trained_at else "–",
                _fmt(q.get("quantization_error")),
                _fmt(q.get("topographic_error")),
            )
        _out().print(table)


# ----------------------------------------------------------------------------- train
def _train(
    factory: sessionmaker[Session], settings: Settings, req: Any, *, poll_seconds: float = 0.25
) -> int:
    """Train a map through the job service with a progress bar fed by the job row; returns
    the map id. Ctrl-C marks the job and map failed before leaving."""
    from app.services import training
    from app.services.jobs import JobRunner, get_job

    runner = JobRunner(factory, workers=1)
    with _user_errors(), factory() as session:
        m, job_id = training.create_training(session, runner, req, settings.coverage_min_secure)
        session.commit()
        map_id = m.id
    _err().print(
        f"training map {map_id} ({req.n_rows}×{req.n_cols} {req.lattice}, {req.n_epochs} epochs) "
        f"on catalogue {req.catalogue_id} as job {job_id}",
        highlight=False,
    )
    on_failure = training.mark_failed(factory)
    future = runner.start(
        job_id,
        training.run_training(factory, map_id, settings.match_radius_arcsec),
        on_failure=on_failure,
    )
    try:
        with _progress() as progress:
            task = progress.add_task(f"train map {map_id}", total=100, note="queued")
            while True:
                with factory() as session:
                    job = get_job(session, job_id)
                    status, fraction, note = job.status, job.progress or 0.0, job.message or ""
                progress.update(task, completed=100 * fraction, note=note)
                if status in ("succeeded", "failed") or future.done():
                    break
                time.sleep(poll_seconds)
        future.result()
    except KeyboardInterrupt:
        _interrupt_training(factory, job_id, on_failure)
    finally:
        runner.shutdown(wait=False)
    with factory() as session:
        job = get_job(session, job_id)
        if job.status != "succeeded":
            raise _fail(f"training map {map_id} failed: {job.error}", EXIT_ENV)
        result = job.result or {}
    covered = result.get("n_cells_covered") or 0
    _done(
        f"map {map_id} ready: quantization error {_fmt(result.get('quantization_error'))}, "
        f"topographic error {_fmt(result.get('topographic_error'))}, "
        + (
            f"{covered:,} cells covered by the spectra already ingested"
            if covered
            else "no spectra yet (coverage follows as soon as they are ingested)"
        )
    )
    return map_id


def _interrupt_training(factory, job_id: int, on_failure) -> None:
    from sqlalchemy import update

    from app.models import Job, utcnow

    reason = "interrupted by the user (Ctrl-C)"
    on_failure(job_id, reason)
    with factory() as session:
        now = utcnow()
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(status="failed", error=reason, finished_at=now, updated_at=now)
        )
        session.commit()
    typer.echo(f"interrupted: job {job_id} and its map marked failed", err=True)
    sys.stderr.flush()
    # The training thread sits in numba kernels and cannot be stopped; leave without it.
    os._exit(EXIT_INTERRUPTED)


def train(
    catalogue_id: Annotated[int, typer.Argument(help="Photometric catalogue id.", min=1)],
    rows: Annotated[int, typer.Option(**request_limits("n_rows"), help="Map rows.")] = 75,
    cols: Annotated[int, typer.Option(**request_limits("n_cols"), help="Map columns.")] = 150,
    lattice: Annotated[Lattice, typer.Option(help="Square or hexagonal cells.")] = DEFAULT_LATTICE,
    periodic: Annotated[bool, typer.Option(help="Toroidal map (no edges).")] = False,
    epochs: Annotated[
        int, typer.Option(**request_limits("n_epochs"), help="Batch epochs.")
    ] = DEFAULT_EPOCHS,
    bands: Annotated[
        str | None, typer.Option(help="Bands for colours, e.g. u,g,r,i,z,Y,J,H (default: all).")
    ] = None,
    magnitude_band: Annotated[
        str | None, typer.Option(help="Add this band's magnitude as a feature.")
    ] = None,
    colours: Annotated[
        str | None,
        typer.Option(help="Colours instead of adjacent bands', e.g. u-g,g-i,i-Ks."),
    ] = None,
    distance: Annotated[
        Distance, typer.Option(help="chi2 weights each colour by its error.")
    ] = Distance.euclidean,
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random step.")] = 0,
    name: Annotated[str | None, typer.Option(help="Map name.")] = None,
    min_secure: Annotated[
        int | None, typer.Option(min=1, help="Secure spectra that make a cell covered.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Train a map on a photometric catalogue (with a progress bar).

    Then every ingested source and spectrum is assigned to it and its cell statistics and
    coverage are computed. Prints the new map id on stdout."""
    from app.services.training import train_request

    with _user_errors():
        req = train_request(
            catalogue_id=catalogue_id,
            n_rows=rows,
            n_cols=cols,
            lattice=lattice.value,
            periodic=periodic,
            n_epochs=epochs,
            bands=[b.strip() for b in bands.split(",") if b.strip()] if bands else None,
            magnitude_band=magnitude_band,
            colours=[c.strip() for c in colours.split(",") if c.strip()] if colours else None,
            distance=distance.value,
            random_state=seed,
            name=name,
            min_secure=min_secure,
        )
    settings = _settings(database_url)
    with _database(settings) as factory:
        map_id = _train(factory, settings, req)
    typer.echo(map_id)
