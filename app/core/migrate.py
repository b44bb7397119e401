"""Run Alembic programmatically (``somcal db upgrade``, ``/ready``, tests).

The migration scripts ship inside the package (``app/migrations``, package data of the
wheel), so an installed somcal finds them wherever it is installed. The Config is built in
code: neither a working directory nor an ``alembic.ini`` is assumed (the repository's
``alembic.ini`` is only for running the ``alembic`` command by hand while developing).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from app.core.db import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolation would choke on '%' in passwords/options.
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def _run(engine_or_url: Engine | str, fn, revision: str) -> None:
    if isinstance(engine_or_url, str):
        engine = make_engine(engine_or_url)
        try:
            _run(engine, fn, revision)
        finally:
            engine.dispose()
        return
    with engine_or_url.begin() as conn:
        fn(alembic_config(connection=conn), revision)


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    _run(engine_or_url, command.upgrade, revision)


def downgrade(engine_or_url: Engine | str, revision: str = "base") -> None:
    _run(engine_or_url, command.downgrade, revision)


def is_current(connection: Connection) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    current = current_revisions(connection)
    head = head_revisions()
    return set(current) == set(head), current, head
