"""The ``somcal`` command line.

Every command goes through the same services as the REST API (``app.services``): an
ingest, a training, a coverage or a target list made here is the one the API would make.
Progress bars go to stderr, results (tables, JSON, keys) to stdout, so output can be piped.

Exit codes: 0 success; 1 the environment (database unreachable or not migrated, training
failed, unexpected error); 2 bad input a user must fix (command line, file, column, value);
3 something named does not exist (map, catalogue, file); 4 a map is not ready yet;
130 interrupted.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
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
from rich.table import Table

from app.core.config import Settings, get_settings
from som import SOM

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from app.models import Catalogue, Map

EXIT_ENV, EXIT_INPUT, EXIT_NOT_FOUND, EXIT_NOT_READY, EXIT_INTERRUPTED = 1, 2, 3, 4, 130

cli = typer.Typer(
    help="somcal: SOM photometric-redshift calibration (Masters et al. 2015) on the command "
    "line. Start with `somcal quickstart`.",
    epilog="Exit codes: 0 ok, 1 environment (database, training), 2 bad input, 3 not found, "
    "4 map not ready, 130 interrupted. The database is DATABASE_URL (default "
    "sqlite:///./var/somcal.db) unless --database-url is given.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
apikey_cli = typer.Typer(help="API keys for write access.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(apikey_cli, name="apikey")

T = TypeVar("T")

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


class Kind(StrEnum):
    photometric = "photometric"
    spectroscopic = "spectroscopic"


_SOM_DEFAULTS = SOM.default_params()


class Lattice(StrEnum):
    rect = "rect"
    hex = "hex"


DEFAULT_LATTICE = Lattice(_SOM_DEFAULTS["lattice"])
DEFAULT_EPOCHS = int(_SOM_DEFAULTS["n_epochs"])


class Distance(StrEnum):
    euclidean = "euclidean"
    chi2 = "chi2"


class OnInvalid(StrEnum):
    reject = "reject"
    skip = "skip"


class ZSource(StrEnum):
    phot = "phot"
    spec = "spec"


class PlotKind(StrEnum):
    redshift = "redshift"
    dispersion = "dispersion"
    occupation = "occupation"
    coverage = "coverage"
    umatrix = "umatrix"
    overview = "overview"
    nz = "nz"
    all = "all"


class Nir(StrEnum):
    ultravista = "ultravista"
    euclid = "euclid"


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
        code = {
            se.NotFoundError: EXIT_NOT_FOUND,
            se.ConflictError: EXIT_NOT_READY,
        }.get(type(exc), EXIT_INPUT)
        shown = exc.errors[:20]
        details = [_row_error_line(e) for e in shown]
        if len(exc.errors) > len(shown):
            details.append(f"... and {len(exc.errors) - len(shown)} more")
        cols = exc.extra.get("available_columns")
        if cols:
            details.append(f"columns in the file: {', '.join(map(str, cols[:40]))}")
        raise _fail(exc.detail, code, details) from exc
    except PhotometryError as exc:  # som.catalogs.CatalogError included
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
    from app.services import maps as map_service

    if map_id is not None:
        m = map_service.get_map(session, map_id)
    else:
        m = session.scalars(
            select(Map).where(Map.status == "ready").order_by(Map.id.desc()).limit(1)
        ).first()
        if m is None:
            raise _fail(
                "there is no ready map; train one with `somcal train CATALOG_ID` "
                "(see `somcal maps` and `somcal catalogs`)",
                EXIT_NOT_FOUND,
            )
    map_service.require_ready(m)
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


def _parse_bins(value: str | None, name: str) -> Any:
    """A number of bins ("5") or comma-separated edges ("0,0.5,1"), as the API takes them."""
    import numpy as np

    if value is None or not value.strip():
        return None
    try:
        if "," in value:
            edges = np.array([float(v) for v in value.split(",")])
            if len(edges) < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
                raise ValueError
            return edges
        n = int(value)
        if not 1 <= n <= 1000:
            raise ValueError
        return n
    except ValueError as exc:
        raise _fail(
            f"{name} {value!r}: give a number of bins (1-1000) or increasing comma-separated "
            "edges, e.g. 0,0.5,1,2"
        ) from exc


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


# ----------------------------------------------------------------------------- db / apikey
@db_cli.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head", help="Target revision (default: the latest)."),
    database_url: DatabaseUrl = None,
) -> None:
    """Create or migrate the database schema to the latest version."""
    from app.core import migrate

    url = database_url or get_settings().database_url
    try:
        migrate.upgrade(url, revision)
    except Exception as exc:  # noqa: BLE001 - shown to the user with what to check
        typer.echo(f"error: could not upgrade {_redacted(url)}: {exc}", err=True)
        raise typer.Exit(EXIT_ENV) from exc
    typer.echo(f"database {_redacted(url)} is at revision {', '.join(migrate.head_revisions())}")


@apikey_cli.command("create")
def apikey_create(
    name: str = typer.Argument(..., help="Who or what the key is for (e.g. 'c3r2-team')."),
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from app.core.db import make_engine, make_session_factory, session_scope
    from app.services.apikeys import create_api_key

    url = database_url or get_settings().database_url
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            row, key = create_api_key(session, name)
            prefix = row.prefix
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INPUT) from exc
    except Exception as exc:  # noqa: BLE001
        typer.echo(
            f"error: could not store the key in {_redacted(url)} ({type(exc).__name__}); "
            "has `somcal db upgrade` been run?",
            err=True,
        )
        raise typer.Exit(EXIT_ENV) from exc
    finally:
        engine.dispose()
    typer.echo(key)
    print(
        f"created API key {prefix!r} for {name!r}; it is shown only now, store it safely",
        file=sys.stderr,
    )


# ----------------------------------------------------------------------------- mock
def _write_mock(path: Path, n: int, seed: int, nir: str, spec: bool) -> pd.DataFrame:
    from som.catalogs import write_table
    from som.mock import make_mock

    frame = make_mock(n, seed, nir=nir, spec=spec)
    # Written through a temporary name: an interrupted run leaves no half-written catalogue
    # that a later run would take for a finished one.
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    write_table(frame, tmp, format=_table_format(path))
    os.replace(tmp, path)
    return frame


def _table_format(path: Path) -> str:
    from som.catalogs import FORMATS

    name = path.name.lower()
    best: tuple[str, str] | None = None
    for fmt, suffixes in FORMATS.items():
        for suffix in suffixes:
            if name.endswith(suffix) and (best is None or len(suffix) > len(best[1])):
                best = (fmt, suffix)
    if best is None:
        raise _fail(
            f"{path}: cannot tell the format from the name; use .parquet, .fits, .csv or .ecsv"
        )
    return best[0]


@cli.command()
def mock(
    output: Annotated[
        Path, typer.Argument(help="File to write: .parquet, .fits, .csv or .ecsv.")
    ] = Path("var/mock_cosmos.parquet"),
    n_galaxies: Annotated[int, typer.Option("--n-galaxies", "-n", min=1)] = 200_000,
    seed: Annotated[int, typer.Option(min=0, help="One seed drives every random step.")] = 0,
    nir: Annotated[Nir, typer.Option(help="Near-infrared bands: UltraVISTA or Euclid.")] = (
        Nir.ultravista
    ),
    spec: Annotated[
        bool, typer.Option("--spec/--no-spec", help="Draw the spectroscopic sample.")
    ] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write the COSMOS-like mock catalogue (somcal's embedded default data).

    Bands u*, HSC g r i z, UltraVISTA (or Euclid) Y J H at COSMOS depths, a reference
    photo-z (z_phot) and a zCOSMOS-like + deep spectroscopic sample (z_spec, NaN without)."""
    _output_path(output, overwrite)
    _table_format(output)
    with _user_errors():
        frame = _spin(
            f"mock: {n_galaxies:,} galaxies",
            lambda: _write_mock(output, n_galaxies, seed, nir.value, spec),
        )
    n_spec = int(frame["z_spec"].notna().sum())
    _done(f"wrote {output} ({n_galaxies:,} galaxies, {n_spec:,} with a spectroscopic redshift)")
    typer.echo(str(output))
    _err().print(f"next: somcal ingest photometric {output}", highlight=False)


# ----------------------------------------------------------------------------- catalogues
def _ingest(
    factory: sessionmaker[Session],
    settings: Settings,
    kind: str,
    path: Path,
    *,
    preset: str | None = None,
    mapping: dict[str, str] | None = None,
    name: str | None = None,
    secure_rule: dict[str, Any] | None = None,
    on_invalid: str = "reject",
    skip_missing_redshift: bool | None = None,
    **options: Any,
):
    from app.services import ingest as ingest_service
    from app.services.hooks import after_catalogue_inserted

    if not path.is_file():
        raise _fail(f"{path}: no such file", EXIT_NOT_FOUND)
    req = ingest_service.IngestRequest(
        kind=kind,
        path=path,
        filename=path.name,
        name=name,
        preset=preset,
        mapping=mapping,
        secure_rule=secure_rule,
        on_invalid=on_invalid,
        skip_missing_redshift=skip_missing_redshift,
        **options,
    )
    with _user_errors():
        result = _spin(
            f"ingest {kind}: {path.name}",
            lambda: ingest_service.ingest(
                factory,
                req,
                max_rows=settings.max_rows,
                after_insert=after_catalogue_inserted(settings.match_radius_arcsec),
            ),
        )
    cat = result.catalogue
    if result.duplicate:
        _done(
            f"{path.name} is already catalogue {cat.id} ({cat.kind}, {cat.n_rows:,} rows): "
            "same content, not ingested again"
        )
    else:
        what = f"{cat.n_rows:,} rows"
        if cat.kind == "spectroscopic":
            what += f", {cat.n_secure:,} secure"
        _done(
            f"catalogue {cat.id} {cat.name!r}: {cat.kind}, {what}, bands {' '.join(cat.bands)}"
            f" (preset {cat.preset})"
            + (f"; assigned to map(s) {result.assigned_maps}" if result.assigned_maps else "")
        )
        summary = cat.summary or {}
        for map_id, placed in (summary.get("maps") or {}).items():
            # Say how many rows found a cell, so a catalogue that cannot land is never silent.
            n_cell = placed.get("by_photometry", 0) + placed.get("by_position", 0)
            line = f"  map {map_id}: {n_cell:,} of {placed.get('rows', 0):,} rows in a cell"
            if placed.get("by_position"):
                line += f" ({placed['by_position']:,} matched on the sky)"
            if placed.get("outside_training"):
                line += f", {placed['outside_training']:,} outside the training set"
            colour = "yellow" if n_cell < placed.get("rows", 0) else "green"
            _err().print(f"[{colour}]{line}", highlight=False)
        for warning in summary.get("warnings", []):
            _err().print(f"[yellow]warning: {warning}", highlight=False)
    if result.n_errors:
        _err().print(
            f"[yellow]skipped {cat.n_skipped:,} row(s) with {result.n_errors:,} invalid value(s):",
            highlight=False,
        )
        for e in result.errors[:10]:
            _err().print(f"  {_row_error_line(e)}", highlight=False)
    return result


@cli.command()
def ingest(
    kind: Annotated[Kind, typer.Argument(help="photometric or spectroscopic.")],
    path: Annotated[Path, typer.Argument(help="FITS, Parquet, CSV, ECSV, VOTable or HDF5 file.")],
    preset: Annotated[
        str | None,
        typer.Option(
            help="Column preset: somcal, somcal_mock, cosmos2015, cosmos2020_classic, "
            "cosmos2020_farmer, zcosmos, cosmos_specz_compilation (default: detected)."
        ),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="FIELD=COLUMN, repeatable: map a file column to a somcal field "
            "(source_id, ra, dec, z_phot, z_spec, quality, secure, survey, star, and "
            "mag_<b>, magerr_<b>, flux_<b>, fluxerr_<b> for any band of `somcal bands` or a "
            "declared one, e.g. flux_Ks=KS_FLUX); overrides the preset.",
        ),
    ] = None,
    flux_unit: Annotated[
        str | None,
        typer.Option(
            help="Unit of flux columns (nJy, uJy, mJy, Jy, nanomaggy) if the file does not say."
        ),
    ] = None,
    declare_band: Annotated[
        list[str] | None,
        typer.Option(
            "--declare-band",
            help="NAME=WAVELENGTH_ANGSTROM (or NAME=FILTER_CURVE_FILE), repeatable: a band the "
            "registry does not know.",
        ),
    ] = None,
    negative_error: Annotated[
        str, typer.Option(help="limit: a negative error is an upper limit; invalid: an error.")
    ] = "limit",
    z_min: Annotated[
        float, typer.Option(help="Spectra below this redshift (stars) are never secure.")
    ] = 0.002,
    check: Annotated[
        bool,
        typer.Option(help="Refuse columns that do not look like what they are declared as."),
    ] = True,
    name: Annotated[str | None, typer.Option(help="Catalogue name (default: file stem).")] = None,
    secure_rule: Annotated[
        str | None,
        typer.Option(
            help='Which quality flags are secure, as JSON, e.g. \'{"kind": "range", "min": 3, '
            '"max": 5, "modulo": 10}\' (zCOSMOS 3.x, 4.x).'
        ),
    ] = None,
    on_invalid: Annotated[
        OnInvalid, typer.Option(help="reject: refuse the file on any bad value; skip: drop rows.")
    ] = OnInvalid.reject,
    database_url: DatabaseUrl = None,
) -> None:
    """Ingest a photometric or spectroscopic catalogue file.

    One transaction: a failure stores nothing, and a file already ingested is recognised.
    New sources and spectra are assigned to every ready map and coverage is updated. Prints
    the catalogue id on stdout."""
    rule = None
    if secure_rule:
        try:
            rule = json.loads(secure_rule)
        except json.JSONDecodeError as exc:
            raise _fail(f"--secure-rule is not valid JSON: {exc}") from exc
    settings = _settings(database_url)
    with _database(settings) as factory:
        result = _ingest(
            factory,
            settings,
            kind.value,
            path,
            preset=preset,
            mapping=_parse_mapping(map_),
            name=name,
            secure_rule=rule,
            on_invalid=on_invalid.value,
            flux_unit=flux_unit,
            bands=_parse_declared(declare_band),
            negative_error=negative_error,
            z_min=z_min,
            check=check,
        )
    typer.echo(result.catalogue.id)


def _parse_declared(items: list[str] | None) -> list[dict[str, Any]] | None:
    out = []
    for item in items or []:
        band, sep, value = item.partition("=")
        if not sep or not band.strip() or not value.strip():
            raise _fail(f"--declare-band {item!r}: expected NAME=WAVELENGTH or NAME=FILE")
        try:
            out.append({"name": band.strip(), "wavelength": float(value)})
        except ValueError:
            out.append({"name": band.strip(), "filter_curve": value.strip()})
    return out or None


@cli.command()
def bands() -> None:
    """List the photometric bands somcal knows (names are case-sensitive: y is not Y)."""
    from som.bands import REGISTRY

    for b in sorted(REGISTRY, key=lambda b: b.wavelength):
        aliases = f"  (also {', '.join(b.aliases)})" if b.aliases else ""
        typer.echo(f"{b.name:<12} {b.wavelength:>8.0f} Å  {b.filter or b.survey}{aliases}")


@cli.command()
def catalogs(database_url: DatabaseUrl = None) -> None:
    """List the ingested catalogues."""
    from app.services import catalogs as catalog_service

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        items, total = catalog_service.list_catalogues(session, None, 10_000, 0)
        table = Table(title=f"{total} catalogue(s)")
        for col in ("id", "kind", "name", "rows", "secure", "bands", "preset", "file"):
            table.add_column(
                col,
                justify="right" if col in ("id", "rows", "secure") else "left",
                no_wrap=col in ("id", "kind", "rows", "secure"),
                overflow="fold",
            )
        for c in items:
            table.add_row(
                str(c.id),
                c.kind,
                c.name,
                _fmt(c.n_rows),
                _fmt(c.n_secure),
                " ".join(c.bands),
                c.preset or "",
                c.filename,
            )
        _out().print(table)


@cli.command()
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
        f"on catalogue {req.catalog_id} as job {job_id}",
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


@cli.command()
def train(
    catalog_id: Annotated[int, typer.Argument(help="Photometric catalogue id.", min=1)],
    rows: Annotated[int, typer.Option(min=1, max=1000, help="Map rows.")] = 75,
    cols: Annotated[int, typer.Option(min=1, max=1000, help="Map columns.")] = 150,
    lattice: Annotated[Lattice, typer.Option(help="Square or hexagonal cells.")] = DEFAULT_LATTICE,
    periodic: Annotated[bool, typer.Option(help="Toroidal map (no edges).")] = False,
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="Batch epochs.")] = DEFAULT_EPOCHS,
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
    from app.services.training import TrainingRequest

    req = TrainingRequest(
        catalog_id=catalog_id,
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


@cli.command()
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


# ----------------------------------------------------------------------------- coverage / gaps
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


@cli.command()
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
    database_url: DatabaseUrl = None,
) -> None:
    """Spectroscopic coverage of a map: cells and galaxies covered.

    Optionally broken down by magnitude (--mag-band, --mag-bins) and photo-z (--z-bins)."""
    from app.services import calibrate

    mb = _parse_bins(mag_bins, "--mag-bins")
    zb = _parse_bins(z_bins, "--z-bins")
    if mb is not None and mag_band is None:
        raise _fail("--mag-bins needs --mag-band")
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        cov = _spin(
            "coverage",
            lambda: calibrate.coverage(session, m, mag_band, 10 if mb is None else mb, zb),
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


def _write_frame(frame: pd.DataFrame, path: Path, overwrite: bool, meta: dict | None = None):
    from som.catalogs import write_table

    fmt = _table_format(path)
    if fmt == "fits" and meta:
        from astropy.table import Table as AstropyTable

        table = AstropyTable.from_pandas(frame)
        for key, value in meta.items():
            if value is not None:
                table.meta[key.upper()[:8]] = value
        table.write(path, format="fits", overwrite=overwrite)
        return path
    return write_table(frame, path, format=fmt, overwrite=overwrite)


@cli.command()
def gaps(
    map_id: MapId = None,
    limit: Annotated[int, typer.Option(min=1, help="Gaps shown.")] = 20,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write every gap (CSV, FITS, ...).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Uncovered cells that hold galaxies, the most populated first."""
    import pandas as pd

    from app.services import calibrate

    if output is not None:
        _output_path(output, overwrite)
        _table_format(output)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        g = _spin("gaps", lambda: calibrate.gaps(session, m, 10**9 if output else limit, 0))
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
    *,
    budget: int | None = None,
    budget_hours: float | None = None,
    mag_band: str | None = None,
    mag_limit: float | None = None,
    per_cell: int = 1,
    overwrite: bool = False,
) -> pd.DataFrame:
    from app.services import calibrate

    frame = _spin(
        "targets",
        lambda: calibrate.targets(
            session,
            m,
            budget=budget,
            budget_hours=budget_hours,
            mag_band=mag_band,
            mag_limit=mag_limit,
            per_cell=per_cell,
        ),
    )
    meta = {
        "budget": budget,
        "budget_hours": budget_hours,
        "mag_band": calibrate.map_mag_band(m, mag_band),
        "mag_limit": mag_limit,
        "per_cell": per_cell,
        "k": m.min_secure,
        "map_id": m.id,
    }
    _write_frame(frame, output, overwrite, meta)
    n_cells = int(frame["cell"].nunique()) if len(frame) else 0
    _done(f"wrote {len(frame):,} targets in {n_cells:,} uncovered cells to {output}")
    return frame


@cli.command()
def targets(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Target list: .csv or .fits (also .parquet).")
    ] = Path("targets.csv"),
    map_id: MapId = None,
    budget: Annotated[int | None, typer.Option(min=0, help="Number of targets.")] = None,
    budget_hours: Annotated[
        float | None, typer.Option(min=0, help="Telescope hours (simple exposure-time model).")
    ] = None,
    mag_band: Annotated[str | None, typer.Option(help="Band of the magnitude limit.")] = None,
    mag_limit: Annotated[float | None, typer.Option(help="Faintest magnitude to target.")] = None,
    per_cell: Annotated[int, typer.Option(min=1, max=1000, help="Targets per cell at most.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the spectroscopic target list for the gaps (CSV or FITS).

    C3R2-style: the most populated uncovered cells first, in each the source closest to
    the cell's weight vector, round-robin up to --per-cell, cut at the budget."""
    _output_path(output, overwrite)
    _table_format(output)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        _targets(
            session,
            m,
            output,
            budget=budget,
            budget_hours=budget_hours,
            mag_band=mag_band,
            mag_limit=mag_limit,
            per_cell=per_cell,
            overwrite=overwrite,
        )
    typer.echo(str(output))


# ----------------------------------------------------------------------------- n(z)
@cli.command()
def nz(
    map_id: MapId = None,
    catalog: Annotated[
        int | None, typer.Option(min=1, help="Photometric sample (default: every source).")
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
        Path | None, typer.Option("--output", "-o", help="n(z) table (CSV, FITS, Parquet).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the n(z) as JSON.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """n(z) per tomographic bin through the map's secure spectra.

    Sources are put in bins by photo-z; each bin's n(z) comes with bootstrap errors and the
    fraction of the bin in uncovered cells."""
    import pandas as pd

    from app.services import figures

    if output is not None:
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
                catalog_id=catalog,
                n_boot=n_boot,
                random_state=seed,
                k=k,
                gold=gold,
            ),
        )
    if as_json:
        typer.echo(json.dumps(results, indent=2))
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
    if output is not None:
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


@cli.command()
def plot(
    kind: Annotated[
        PlotKind,
        typer.Argument(
            help="redshift | dispersion | occupation | coverage | umatrix | overview | nz | all"
        ),
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
        ZSource, typer.Option(help="Redshifts of the redshift/dispersion maps: phot or spec.")
    ] = ZSource.phot,
    tomo_bins: Annotated[
        str | None, typer.Option(help="nz: photo-z edges of the tomographic bins.")
    ] = None,
    catalog: Annotated[int | None, typer.Option(min=1, help="nz: photometric sample.")] = None,
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
        if kind is PlotKind.all:
            kinds = list(figures.PLOT_KINDS)
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
            catalog_id=catalog,
            n_boot=n_boot,
        )
    for p in written:
        typer.echo(str(p))


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


@cli.command()
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


@cli.command()
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Jobs run at once.")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    database_url: DatabaseUrl = None,
) -> None:
    """Run queued jobs (training) from the database until SIGTERM/Ctrl-C (running jobs are
    then released to other workers). Pair with SOMCAL_EMBEDDED_WORKERS=0 on the API."""
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


@cli.command()
def quickstart(
    workdir: Annotated[
        Path, typer.Option(help="Where the mock, the target list and the plots go.")
    ] = Path("var"),
    n_galaxies: Annotated[int, typer.Option("--n-galaxies", "-n", min=1000)] = 200_000,
    rows: Annotated[int, typer.Option(min=2, max=1000)] = 75,
    cols: Annotated[int, typer.Option(min=2, max=1000)] = 150,
    lattice: Annotated[Lattice, typer.Option()] = DEFAULT_LATTICE,
    epochs: Annotated[int, typer.Option(min=1, max=1000)] = DEFAULT_EPOCHS,
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
    from app.services import calibrate
    from app.services.training import TrainingRequest

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
        req = TrainingRequest(
            catalog_id=phot.catalogue.id,
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
            cov = _spin("coverage", lambda: calibrate.coverage(session, m, None, 10, None))
            _out().print(_coverage_table(cov, m))
            targets_path = workdir / f"targets_map{m.id}.csv"
            _targets(session, m, targets_path, overwrite=True)
            plot_dir = workdir / "plots"
            from app.services import figures

            kinds = list(figures.PLOT_KINDS)
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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
