"""`somcal serve` (the API and dashboard), `somcal worker` (queued jobs) and
`somcal quickstart` (the whole calibration on the bundled mock, then serve)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli._common import (
    EXIT_ENV,
    DatabaseUrl,
    _database,
    _done,
    _err,
    _fail,
    _out,
    _ready_map,
    _redacted,
    _settings,
    _spin,
    _user_errors,
)
from app.cli.calibrate import _coverage_table, _targets
from app.cli.catalogues import _ingest, _write_mock
from app.cli.maps import DEFAULT_EPOCHS, DEFAULT_LATTICE, _train, request_limits
from app.cli.plot import _plots
from app.core.config import Settings
from som.vocabulary import Lattice, PlotKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.models import Catalogue, Map


# ----------------------------------------------------------------------------- serve
def _serve(settings: Settings, host: str, port: int, log_level: str) -> None:
    import uvicorn

    from app.main import create_app

    base = f"http://{host}:{port}"
    _err().print(
        f"serving somcal on {_redacted(settings.database_url)}\n"
        f"  dashboard  {base}/dashboard\n  API docs   {base}/docs\n  health     {base}/health\n"
        "press Ctrl-C to stop",
        highlight=False,
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


def serve(
    host: Annotated[
        str, typer.Option(envvar="SOMCAL_HOST", help="Interface (0.0.0.0 in a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SOMCAL_PORT", min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    database_url: DatabaseUrl = None,
) -> None:
    """Serve the REST API (/v1, docs at /docs) and the dashboard (/dashboard) with uvicorn."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.core import migrate
    from app.core.db import make_engine

    settings = _settings(database_url)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            current, _, _ = migrate.is_current(conn)
        if not current:
            _err().print(
                "[yellow]warning: the database schema is not current; /ready will say so. "
                "Run `somcal db upgrade`.",
                highlight=False,
            )
    except SQLAlchemyError as exc:
        _err().print(
            f"[yellow]warning: database not reachable yet ({type(exc).__name__}); "
            "/ready will say when it is.",
            highlight=False,
        )
    finally:
        engine.dispose()
    _serve(settings, host, port, log_level)


def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Jobs run at once.")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    database_url: DatabaseUrl = None,
) -> None:
    """Run queued jobs (training) from the database until SIGTERM or Ctrl-C.

    Running jobs are then released to other workers. Pair with SOMCAL_EMBEDDED_WORKERS=0
    on the API processes.
    """
    from app import worker as worker_process

    raise typer.Exit(worker_process.main(database_url, concurrency, log_level))


# ----------------------------------------------------------------------------- quickstart
def _find_trained_map(session: Session, cat: Catalogue, req: Any) -> Map | None:
    """A ready map trained on ``cat`` with the same settings (quickstart runs twice)."""
    from sqlalchemy import select

    from app.models import Map

    for m in session.scalars(
        select(Map).where(Map.training_catalogue_id == cat.id, Map.status == "ready")
    ):
        p = m.params or {}
        if (
            (m.n_rows, m.n_cols, m.lattice, bool(m.periodic))
            == (req.n_rows, req.n_cols, req.lattice, req.periodic)
            and p.get("n_epochs") == req.n_epochs
            and p.get("random_state") == req.random_state
        ):
            return m
    return None


def quickstart(
    workdir: Annotated[
        Path, typer.Option(help="Where the mock, the target list and the plots go.")
    ] = Path("var"),
    n_galaxies: Annotated[int, typer.Option("--n-galaxies", "-n", min=1000)] = 200_000,
    rows: Annotated[int, typer.Option(min=2, max=request_limits("n_rows")["max"])] = 75,
    cols: Annotated[int, typer.Option(min=2, max=request_limits("n_cols")["max"])] = 150,
    lattice: Annotated[Lattice, typer.Option()] = DEFAULT_LATTICE,
    epochs: Annotated[int, typer.Option(**request_limits("n_epochs"))] = DEFAULT_EPOCHS,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    retrain: Annotated[
        bool, typer.Option(help="Train a new map even if an identical one is ready.")
    ] = False,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API and dashboard at the end.")
    ] = True,
    host: Annotated[str, typer.Option(envvar="SOMCAL_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="SOMCAL_PORT", min=1, max=65535)] = 8000,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the whole calibration on the bundled mock, then serve the dashboard.

    Migrates the database, writes the COSMOS-like mock, ingests its photometry, trains a
    75×150 map, ingests its spectroscopic sample, computes coverage and targets, draws the
    plots, then serves the API and dashboard (--no-serve to stop there). Running it again
    reuses what is already there."""
    from app.core import migrate
    from app.services import coverage as coverage_service
    from app.services.training import train_request

    started = time.monotonic()
    settings = _settings(database_url)
    url = settings.database_url
    try:
        _spin("database schema", lambda: migrate.upgrade(url))
    except Exception as exc:  # noqa: BLE001
        raise _fail(f"could not migrate {_redacted(url)}: {exc}", EXIT_ENV) from exc
    _done(f"database {_redacted(url)} is current")

    workdir.mkdir(parents=True, exist_ok=True)
    mock_path = workdir / f"mock_cosmos_n{n_galaxies}_seed{seed}.parquet"
    if mock_path.exists():
        _done(f"mock catalogue {mock_path} exists; reused")
    else:
        with _user_errors():
            frame = _spin(
                f"mock: {n_galaxies:,} COSMOS-like galaxies",
                lambda: _write_mock(mock_path, n_galaxies, seed, "ultravista", True),
            )
        _done(
            f"mock catalogue {mock_path}: {n_galaxies:,} galaxies, "
            f"{int(frame['z_spec'].notna().sum()):,} with spectra"
        )
        del frame

    with _database(settings) as factory:
        phot = _ingest(factory, settings, "photometric", mock_path, preset="somcal_mock")
        req = train_request(
            catalogue_id=phot.catalogue.id,
            n_rows=rows,
            n_cols=cols,
            lattice=lattice.value,
            n_epochs=epochs,
            random_state=seed,
            name=f"quickstart mock {rows}x{cols}",
        )
        with factory() as session:
            existing = None if retrain else _find_trained_map(session, phot.catalogue, req)
        if existing is not None:
            map_id = existing.id
            _done(f"map {map_id} ({rows}×{cols}, {epochs} epochs) is already trained; reused")
        else:
            map_id = _train(factory, settings, req)
        _ingest(factory, settings, "spectroscopic", mock_path, preset="somcal_mock")

        with factory() as session, _user_errors():
            m = _ready_map(session, map_id)
            cov = _spin("coverage", lambda: coverage_service.coverage(session, m, None, 10, None))
            _out().print(_coverage_table(cov, m))
            targets_path = workdir / f"targets_map{m.id}.csv"
            _targets(session, m, targets_path, overwrite=True)
            plot_dir = workdir / "plots"
            kinds = [k.value for k in PlotKind]
            plot_paths = _plots(
                session, m, kinds, [plot_dir / f"map{m.id}_{k}.png" for k in kinds], dpi=100
            )
    elapsed = time.monotonic() - started
    base = f"http://{host}:{port}"
    out = _out()
    out.print(f"\n[bold green]somcal quickstart done in {elapsed / 60:.1f} min[/]", highlight=False)
    out.print(
        f"  database     {_redacted(url)}\n"
        f"  mock         {mock_path}\n"
        f"  map          {map_id} ({rows}×{cols} {lattice.value})\n"
        f"  targets      {targets_path}\n"
        f"  plots        {plot_dir}/ ({len(plot_paths)} PNG: {', '.join(kinds)})",
        highlight=False,
    )
    if serve_after:
        out.print(
            f"  try          curl '{base}/v1/maps/{map_id}/targets?budget=20&format=csv'\n",
            highlight=False,
        )
        _serve(settings, host, port, "info")
    else:
        # The command as it was invoked (.venv/bin/somcal from scripts/quickstart.sh).
        prog = sys.argv[0] if Path(sys.argv[0]).name == "somcal" else "somcal"
        serve_cmd = f"{prog} serve" + (
            f" --database-url '{_redacted(url)}'" if database_url else ""
        )
        out.print(
            f"  serve with   {serve_cmd}\n  then open    {base}/dashboard",
            highlight=False,
        )
