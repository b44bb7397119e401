"""The ``somcal`` command line (database commands; the lead extends it with the rest)."""

from __future__ import annotations

import sys

import typer

from app.core.config import get_settings

cli = typer.Typer(help="somcal: SOM photometric-redshift calibration.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
apikey_cli = typer.Typer(help="API keys for write access.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(apikey_cli, name="apikey")


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_cli.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head", help="Target revision (default: the latest)."),
    database_url: str = typer.Option(
        None, "--database-url", help="Override SOMCAL_DATABASE_URL / DATABASE_URL."
    ),
) -> None:
    """Create or migrate the database schema to the latest version."""
    from app.core import migrate

    url = database_url or get_settings().database_url
    try:
        migrate.upgrade(url, revision)
    except Exception as exc:  # noqa: BLE001 - shown to the user with what to check
        typer.echo(f"error: could not upgrade {_redacted(url)}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"database {_redacted(url)} is at revision {', '.join(migrate.head_revisions())}")


@apikey_cli.command("create")
def apikey_create(
    name: str = typer.Argument(..., help="Who or what the key is for (e.g. 'c3r2-team')."),
    database_url: str = typer.Option(None, "--database-url"),
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
        raise typer.Exit(2) from exc
    except Exception as exc:  # noqa: BLE001
        typer.echo(
            f"error: could not store the key in {_redacted(url)} ({type(exc).__name__}); "
            "has `somcal db upgrade` been run?",
            err=True,
        )
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    typer.echo(key)
    print(
        f"created API key {prefix!r} for {name!r}; it is shown only now, store it safely",
        file=sys.stderr,
    )


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
