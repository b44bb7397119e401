"""Alembic environment for somcal.

The URL comes, in order, from: a connection handed over in ``config.attributes``
(tests, ``somcal db upgrade``), ``sqlalchemy.url`` set on the Config programmatically,
or somcal's settings. SQLite runs in batch mode because it cannot ALTER most things in
place; batch mode copies the table instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from app import models  # noqa: F401  (registers the tables on the metadata)
from app.core.config import get_settings
from app.core.db import make_engine

config = context.config
target_metadata = models.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    """Run the migrations on ``connection``; on SQLite, check the foreign keys afterwards.

    SQLite enforces them (``PRAGMA foreign_keys=ON`` on every connection), and batch mode
    rebuilds a table by copying it and dropping the original: dropping a parent
    (``catalogues``, ``maps``) that way deletes every child row through ON DELETE CASCADE.
    A migration must therefore never rebuild a parent table on SQLite (add or drop columns
    in place, ``recreate="never"``, or rewrite its stored SQL as 0008 and 0010 do); the
    check catches one that leaves dangling rows instead."""
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(
                    f"the migration left {len(broken)} rows whose foreign key points nowhere "
                    f"(first: table {broken[0][0]}, row {broken[0][1]}); nothing was changed"
                )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _migrate(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
