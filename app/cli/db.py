"""`somcal db upgrade` and `somcal apikey create`."""

from __future__ import annotations

import sys

import typer

from app.cli._common import EXIT_ENV, EXIT_INPUT, DatabaseUrl, _redacted
from app.core.config import get_settings


# ----------------------------------------------------------------------------- db / apikey
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
