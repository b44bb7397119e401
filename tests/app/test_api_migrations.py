"""Migrations upgrade from empty and downgrade to empty on SQLite and PostgreSQL, and the
migrated schema is exactly what the ORM models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.core import migrate
from app.core.db import make_engine
from app.models import metadata


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_and_downgrade_to_empty(empty_db_url):
    assert _tables(empty_db_url) == set()
    migrate.upgrade(empty_db_url)
    assert _tables(empty_db_url) == set(metadata.tables) | {"alembic_version"}
    engine = make_engine(empty_db_url)
    with engine.connect() as conn:
        ok, current, head = migrate.is_current(conn)
    engine.dispose()
    assert ok and current == head
    migrate.downgrade(empty_db_url, "base")
    assert _tables(empty_db_url) <= {"alembic_version"}
    # And back up again: a downgrade must leave nothing that blocks the next upgrade.
    migrate.upgrade(empty_db_url)
    assert "sources" in _tables(empty_db_url)


def test_migrated_schema_matches_models(empty_db_url):
    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    engine.dispose()
    assert diff == []
