"""What every command shares: consoles, exit codes and error messages, progress bars,
settings and the database, and the formatting of numbers and tables."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from app.core.config import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from app.models import Map


EXIT_ENV, EXIT_INPUT, EXIT_NOT_FOUND, EXIT_NOT_READY, EXIT_INTERRUPTED = 1, 2, 3, 4, 130

#: Who the ledger's change log names for a change made on the command line: the command
#: works on the database directly, with no API key to name.
CLI_ACTOR = "cli"

T = TypeVar("T")

# options several commands take
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; overrides SOMCAL_DATABASE_URL / DATABASE_URL.",
        show_default=False,
    ),
]
MapId = Annotated[
    int | None,
    typer.Option("--map-id", "-m", help="Map id (default: the most recent ready map).", min=1),
]
# what a target selection takes (somcal targets, calibration targets, campaign create)
TargetBudget = Annotated[int | None, typer.Option(min=0, help="Number of targets.")]
TargetHours = Annotated[
    float | None, typer.Option(min=0, help="Telescope hours (simple exposure-time model).")
]
TargetMagBand = Annotated[str | None, typer.Option(help="Band of the magnitude limit.")]
TargetMagLimit = Annotated[float | None, typer.Option(help="Faintest magnitude to target.")]
TargetsPerCell = Annotated[int, typer.Option(min=1, max=1000, help="Targets per cell at most.")]
GapOccupation = Annotated[
    int | None,
    typer.Option(
        min=1, help="Weight the gaps by this occupation catalogue (a wide survey's counts)."
    ),
]
GapCatalogue = Annotated[
    int | None,
    typer.Option(
        "--catalogue-id",
        min=1,
        help="Weight the gaps by this photometric catalogue's rows (a deep field's own); "
        "candidates stay every photometric row. Not with --occupation-id.",
    ),
]


# ----------------------------------------------------------------------------- output helpers
def _out() -> Console:
    return Console(soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _fail(message: str, code: int = EXIT_INPUT, details: list[str] | None = None) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    for line in details or []:
        typer.echo(f"  {line}", err=True)
    return typer.Exit(code)


def _row_error_line(e: Any) -> str:
    where = ", ".join(
        part
        for part in (
            e.file,
            f"column {e.column!r}" if e.column else None,
            f"row {e.row}" if e.row is not None else None,
        )
        if part
    )
    return f"{where}: {e.reason}" if where else e.reason


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn service, file and database errors into a message and an exit code."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from app.services import errors as se
    from som.photometry import PhotometryError

    try:
        yield
    except typer.Exit:
        raise
    except se.ServiceError as exc:
        if isinstance(exc, se.NotFoundError):
            code = EXIT_NOT_FOUND
        elif isinstance(exc, se.ConflictError):
            code = EXIT_NOT_READY
        else:  # a 5xx is ours (the environment), a 4xx the user's input
            code = EXIT_ENV if exc.status_code >= 500 else EXIT_INPUT
        shown = exc.errors[:20]
        details = [_row_error_line(e) for e in shown]
        if len(exc.errors) > len(shown):
            details.append(f"... and {len(exc.errors) - len(shown)} more")
        cols = exc.extra.get("available_columns")
        if cols:
            details.append(f"columns in the file: {', '.join(map(str, cols[:40]))}")
        raise _fail(exc.detail, code, details) from exc
    except PhotometryError as exc:  # som.tables.CatalogueError included
        raise _fail(str(exc), EXIT_INPUT) from exc
    except (FileNotFoundError, FileExistsError, IsADirectoryError) as exc:
        code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else EXIT_INPUT
        raise _fail(str(exc), code) from exc
    except (OperationalError, ProgrammingError) as exc:
        raise _fail(
            f"database error: {type(exc.orig).__name__}: {str(exc.orig).strip()[:300]}",
            EXIT_ENV,
            ["is the database reachable and migrated? run `somcal db upgrade`"],
        ) from exc


def _progress(console: Console | None = None) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console or _err(),
    )


def _spin(label: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` showing an indeterminate bar (steps that cannot report progress)."""
    with _progress() as progress:
        task = progress.add_task(label, total=None, note="")
        result = fn()
        progress.update(task, total=1, completed=1)
    return result


@contextmanager
def _progress_callback(label: str) -> Iterator[Callable[[float, str], None]]:
    """A rich bar driven by ``report(fraction, message)``: the progress convention of the
    services, of som.distributed and of a job's progress, so one kind of bar draws them all.
    The bar appears at the first report, so work refused before it starts draws none."""
    progress = _progress()
    task = None

    def report(fraction: float, message: str = "") -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task(label, total=100, note="")
        progress.update(task, completed=100 * min(max(fraction, 0.0), 1.0), note=message)

    try:
        yield report
    finally:
        if task is not None:
            progress.stop()


def _done(message: str) -> None:
    _err().print(f"[green]✓[/green] {message}", highlight=False)


# ----------------------------------------------------------------------------- database
def _settings(database_url: str | None) -> Settings:
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


@contextmanager
def _database(settings: Settings, *, check_schema: bool = True) -> Iterator[sessionmaker[Session]]:
    """A session factory on the configured database, whose schema must be current."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.core import migrate
    from app.core.db import make_engine, make_session_factory

    url = settings.database_url
    try:
        engine: Engine = make_engine(url)
    except Exception as exc:  # noqa: BLE001 - bad URL, missing driver: shown with the URL
        raise _fail(f"cannot use database URL {_redacted(url)}: {exc}", EXIT_ENV) from exc
    try:
        if check_schema:
            try:
                with engine.connect() as conn:
                    current, have, head = migrate.is_current(conn)
            except SQLAlchemyError as exc:
                raise _fail(
                    f"cannot connect to {_redacted(url)}: {type(exc).__name__}: "
                    f"{str(getattr(exc, 'orig', exc)).strip()[:300]}",
                    EXIT_ENV,
                ) from exc
            if not current:
                state = f"at revision {', '.join(have)}" if have else "empty"
                raise _fail(
                    f"database {_redacted(url)} is {state}; somcal needs revision "
                    f"{', '.join(head)}",
                    EXIT_ENV,
                    [f"run: somcal db upgrade --database-url '{_redacted(url)}'"],
                )
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _ready_map(session: Session, map_id: int | None) -> Map:
    from sqlalchemy import select

    from app.models import Map
    from app.services import map_store

    if map_id is not None:
        m = map_store.get_map(session, map_id)
    else:
        m = session.scalars(
            select(Map).where(Map.status == "ready").order_by(Map.id.desc()).limit(1)
        ).first()
        if m is None:
            raise _fail(
                "there is no ready map; train one with `somcal train CATALOG_ID` "
                "(see `somcal maps` and `somcal catalogues`)",
                EXIT_NOT_FOUND,
            )
    map_store.require_ready(m)
    return m


def _parse_mapping(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field.strip():
            raise _fail(
                f"--map {item!r}: expected FIELD=COLUMN, e.g. --map z_spec=ZSPEC "
                "(an empty COLUMN unmaps a preset column)"
            )
        mapping[field.strip()] = column.strip()
    return mapping


def _output_path(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise _fail(f"{path} exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _pct(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def _table_format(path: Path) -> str:
    """The table format an output file's name asks for (som.tables' endings)."""
    from som.tables import format_from_name

    fmt = format_from_name(path.name)
    if fmt is None:
        raise _fail(
            f"{path}: cannot tell the format from the name; use .parquet, .fits, .csv or .ecsv"
        )
    return fmt


def _write_frame(frame: pd.DataFrame, path: Path, overwrite: bool, header: dict | None = None):
    """Write ``frame`` to ``path``; as FITS with ``header``'s cards (``fits_header``)."""
    from som.tables import write_table

    fmt = _table_format(path)
    if fmt == "fits" and header:
        from astropy.table import Table as AstropyTable

        table = AstropyTable.from_pandas(frame)
        table.meta.update(header)
        table.write(path, format="fits", overwrite=overwrite)
        return path
    return write_table(frame, path, format=fmt, overwrite=overwrite)
