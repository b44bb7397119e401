"""Migrations upgrade from empty and downgrade to empty on SQLite and PostgreSQL, and the
migrated schema is exactly what the ORM models describe."""

from __future__ import annotations

import json

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


def _rows(url: str, sql: str) -> list:
    """Every row ``sql`` selects, read on a connection of its own."""
    from sqlalchemy import text

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).all()
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


def test_0004_moves_band_columns_into_packed_arrays_and_back(empty_db_url):
    """Data written by the fixed-column schema (0003) survives 0004 and its downgrade bit for
    bit: each catalogue's bands packed in its band order, NULL as NaN, and back."""
    import numpy as np
    from sqlalchemy import text

    from app.services.phot_store import unpack

    migrate.upgrade(empty_db_url, "0003")
    old = ["u", "g", "r", "i", "z", "y", "j", "h"]
    rng = np.random.default_rng(4)
    mags = rng.uniform(18, 26, (6, 8))
    mags[rng.random((6, 8)) < 0.2] = np.nan
    errs = np.where(np.isnan(mags), np.nan, 0.05)
    cats = {1: ["u", "g", "r", "i", "z", "Y", "J", "H"], 2: ["g", "r", "i"]}
    engine = make_engine(empty_db_url)
    with engine.begin() as conn:
        for cid, bands in cats.items():
            conn.execute(
                text(
                    "INSERT INTO catalogues (id, kind, name, filename, file_format, sha256, "
                    "size_bytes, column_mapping, bands, n_rows, n_skipped, status, created_at) "
                    "VALUES (:id, 'photometric', 'c', 'c.csv', 'csv', :sha, 1, '{}', :bands, 3, "
                    "0, 'ready', CURRENT_TIMESTAMP)"
                ),
                {"id": cid, "sha": str(cid) * 64, "bands": json.dumps(bands)},
            )
        for row in range(6):
            cid = 1 if row < 3 else 2
            used = [old.index(b.lower()) for b in cats[cid]]
            values = {f"mag_{old[k]}": _none(mags[row, k]) for k in used}
            values |= {f"magerr_{old[k]}": _none(errs[row, k]) for k in used}
            names = ", ".join(values)
            conn.execute(
                text(
                    f"INSERT INTO sources (catalogue_id, row_index, source_id, {names}) "
                    f"VALUES (:cid, :row, :sid, {', '.join(':' + n for n in values)})"
                ),
                {"cid": cid, "row": row, "sid": str(row), **values},
            )
    engine.dispose()

    migrate.upgrade(empty_db_url, "0004")
    stored = _rows(
        empty_db_url,
        "SELECT row_index, catalogue_id, mags, magerrs FROM sources ORDER BY row_index",
    )
    for row, cid, m, e in stored:
        used = [old.index(b.lower()) for b in cats[cid]]
        np.testing.assert_array_equal(unpack([m], len(used))[0], mags[row, used])
        np.testing.assert_array_equal(unpack([e], len(used))[0], errs[row, used])

    migrate.downgrade(empty_db_url, "0003")
    columns = ", ".join(f"mag_{b}" for b in old)
    back = _rows(empty_db_url, f"SELECT {columns} FROM sources ORDER BY row_index")
    got = np.array([[np.nan if v is None else v for v in r] for r in back])
    for row in range(6):
        used = [old.index(b.lower()) for b in cats[1 if row < 3 else 2]]
        np.testing.assert_array_equal(got[row, used], mags[row, used])
        assert np.isnan(np.delete(got[row], used)).all()


def _none(value: float) -> float | None:
    import math

    return None if math.isnan(value) else float(value)


def test_0006_renames_the_stored_catalog_id_key_and_back(empty_db_url):
    """Parameters stored under the old spelling are read under the one spelling after 0006;
    everything else in them is kept, and the downgrade restores the old key."""
    from sqlalchemy import text

    migrate.upgrade(empty_db_url, "0005")
    old = {"catalog_id": 7, "n_epochs": 3, "random_state": 1, "distance": "euclidean"}
    engine = make_engine(empty_db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, kind, status, progress, params, created_at, attempts, "
                "max_attempts) VALUES (1, 'train_map', 'succeeded', 1, :p, CURRENT_TIMESTAMP, "
                "1, 1)"
            ),
            {"p": json.dumps({"map_id": 1, **old})},
        )
        conn.execute(
            text(
                "INSERT INTO maps (id, name, status, n_rows, n_cols, lattice, periodic, grid, "
                "features, params, min_secure, created_at) VALUES (1, 'm', 'ready', 2, 2, "
                "'hex', false, '{}', '{}', :p, 1, CURRENT_TIMESTAMP)"
            ),
            {"p": json.dumps(old)},
        )
    engine.dispose()

    def stored() -> list[dict]:
        rows = _rows(empty_db_url, "SELECT params FROM maps UNION ALL SELECT params FROM jobs")
        return [json.loads(p) if isinstance(p, str) else p for (p,) in rows]

    migrate.upgrade(empty_db_url, "0006")
    for params in stored():
        assert "catalog_id" not in params and params["catalogue_id"] == 7
        assert params["n_epochs"] == 3 and params["distance"] == "euclidean"
    migrate.downgrade(empty_db_url, "0005")
    for params in stored():
        assert "catalogue_id" not in params and params["catalog_id"] == 7


def _exec(url: str, sql: str, **params) -> None:
    from sqlalchemy import text

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def _log(url: str, action: str, catalogue_id: int) -> None:
    _exec(
        url,
        "INSERT INTO ledger_changes (created_at, action, key_name, catalogue_id) "
        "VALUES (CURRENT_TIMESTAMP, :a, 'k', :c)",
        a=action,
        c=catalogue_id,
    )


def test_0010_soft_delete_keeps_rows_and_widens_the_log_then_back(empty_db_url):
    """Catalogues and their rows survive 0010 (all in the ledger); the log takes the
    restore and purge actions (the CHECK is widened in place on SQLite, whose tables that
    reference the log keep their rows); the downgrade purges what is deleted, drops the
    entries the old schema cannot name, and refuses them again."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    migrate.upgrade(empty_db_url, "0009")
    for cid in (1, 2):
        _exec(
            empty_db_url,
            "INSERT INTO catalogues (id, kind, name, filename, file_format, sha256, size_bytes, "
            "column_mapping, bands, n_rows, n_skipped, status, created_at) VALUES (:id, "
            "'photometric', 'c', 'c.csv', 'csv', :sha, 1, '{}', '[\"i\"]', 2, 0, 'ready', "
            "CURRENT_TIMESTAMP)",
            id=cid,
            sha=str(cid) * 64,
        )
        for row in range(2):
            _exec(
                empty_db_url,
                "INSERT INTO sources (catalogue_id, row_index, source_id) VALUES (:c, :r, :s)",
                c=cid,
                r=row,
                s=f"{cid}-{row}",
            )
    _log(empty_db_url, "catalogue_ingested", 1)
    _exec(
        empty_db_url,
        "INSERT INTO maps (id, name, status, n_rows, n_cols, lattice, periodic, grid, "
        "min_secure, created_at) VALUES (1, 'm', 'ready', 2, 2, 'hex', false, '{}', 1, "
        "CURRENT_TIMESTAMP)",
    )
    _exec(
        empty_db_url,
        "INSERT INTO coverage_snapshots (map_id, change_id, created_at, n_cells, "
        "n_cells_occupied, n_cells_covered, n_galaxies, n_galaxies_covered, n_spectra_secure, "
        "n_observed, n_secure_outcomes, hours_spent) VALUES (1, 1, CURRENT_TIMESTAMP, 4, 1, 0, "
        "2, 0, 0, 0, 0, 0)",
    )
    with pytest.raises(IntegrityError):
        _log(empty_db_url, "catalogue_restored", 1)

    migrate.upgrade(empty_db_url, "0010")
    assert _rows(empty_db_url, "SELECT id, deleted_at FROM catalogues ORDER BY id") == [
        (1, None),
        (2, None),
    ]
    assert _rows(empty_db_url, "SELECT count(*) FROM sources")[0][0] == 4
    assert _rows(empty_db_url, "SELECT count(*) FROM coverage_snapshots")[0][0] == 1
    _exec(empty_db_url, "UPDATE catalogues SET deleted_at = CURRENT_TIMESTAMP WHERE id = 2")
    _log(empty_db_url, "catalogue_deleted", 2)
    _log(empty_db_url, "catalogue_purged", 2)
    _log(empty_db_url, "catalogue_restored", 1)
    with pytest.raises(IntegrityError):
        _log(empty_db_url, "catalogue_renamed", 1)  # still a closed list

    migrate.downgrade(empty_db_url, "0009")
    assert _rows(empty_db_url, "SELECT id FROM catalogues") == [(1,)]
    assert _rows(empty_db_url, "SELECT catalogue_id, count(*) FROM sources GROUP BY 1") == [(1, 2)]
    assert [r[0] for r in _rows(empty_db_url, "SELECT action FROM ledger_changes ORDER BY id")] == [
        "catalogue_ingested",
        "catalogue_deleted",
    ]
    assert _rows(empty_db_url, "SELECT count(*) FROM coverage_snapshots")[0][0] == 1
    with pytest.raises(IntegrityError):
        _log(empty_db_url, "catalogue_restored", 1)
    migrate.upgrade(empty_db_url)
    _log(empty_db_url, "catalogue_purged", 1)


def test_0011_adds_the_magnitude_split_and_back(empty_db_url):
    """Cells and snapshots survive 0011 with the magnitude split NULL (filled at the next
    recomputation), and its downgrade with everything else they hold."""
    migrate.upgrade(empty_db_url, "0010")
    _exec(
        empty_db_url,
        "INSERT INTO maps (id, name, status, n_rows, n_cols, lattice, periodic, grid, "
        "min_secure, created_at) VALUES (1, 'm', 'ready', 1, 2, 'hex', false, '{}', 1, "
        "CURRENT_TIMESTAMP)",
    )
    for c in (0, 1):
        _exec(
            empty_db_url,
            "INSERT INTO cells (map_id, cell, row, col, n_phot, n_spec, n_spec_secure, covered, "
            "pz_phot) VALUES (1, :c, 0, :c, 3, 0, 0, false, '[1, 2]')",
            c=c,
        )
    _log(empty_db_url, "catalogue_ingested", 1)
    _exec(
        empty_db_url,
        "INSERT INTO coverage_snapshots (map_id, change_id, created_at, n_cells, "
        "n_cells_occupied, n_cells_covered, n_galaxies, n_galaxies_covered, n_spectra_secure, "
        "n_observed, n_secure_outcomes, hours_spent, by_z) VALUES (1, 1, CURRENT_TIMESTAMP, 2, "
        "2, 0, 6, 0, 0, 0, 0, 0, '[]')",
    )
    migrate.upgrade(empty_db_url, "0011")
    assert _rows(empty_db_url, "SELECT cell, n_phot, mag_phot FROM cells ORDER BY cell") == [
        (0, 3, None),
        (1, 3, None),
    ]
    assert _rows(empty_db_url, "SELECT n_galaxies, by_mag FROM coverage_snapshots") == [(6, None)]
    _exec(empty_db_url, "UPDATE cells SET mag_phot = '[0, 3]'")
    migrate.downgrade(empty_db_url, "0010")
    assert _rows(empty_db_url, "SELECT count(*), sum(n_phot) FROM cells") == [(2, 6)]
    assert _rows(empty_db_url, "SELECT n_galaxies FROM coverage_snapshots") == [(6,)]
    migrate.upgrade(empty_db_url)


def test_every_step_down_and_up_keeps_the_ledgers_rows(
    empty_db_url, mock_catalogue, tmp_path, harness
):
    """A SQLite migration rebuilds a table by copying it and dropping the original; with
    foreign keys on, dropping ``catalogues`` deleted every source, spectrum and assignment
    through ON DELETE CASCADE (it did, in 0008's batch rebuild). Rows ingested at head keep
    through each step down to 0005 and back up, on both databases."""
    from fastapi.testclient import TestClient

    from app.core.config import Settings
    from app.main import create_app

    migrate.upgrade(empty_db_url)
    settings = Settings(database_url=empty_db_url, upload_tmp_dir=tmp_path)
    key = {"X-API-Key": harness.create_key(empty_db_url, "tests")}
    frame = mock_catalogue(150, seed=4, spec_fraction=0.4)
    with TestClient(create_app(settings)) as client:
        assert harness.upload(client, key, "photometric", frame, "phot.csv").status_code == 201
        spec = frame[frame["z_spec"].notna()]
        assert harness.upload(client, key, "spectroscopic", spec, "spec.csv").status_code == 201
    counts = "SELECT (SELECT COUNT(*) FROM sources), (SELECT COUNT(*) FROM spectra)"
    expected = tuple(_rows(empty_db_url, counts)[0])
    assert expected == (150, len(spec))
    heads = migrate.head_revisions()
    steps = ["0010", "0009", "0008", "0007", "0006", "0005"]
    for revision in steps:
        migrate.downgrade(empty_db_url, revision)
        assert tuple(_rows(empty_db_url, counts)[0]) == expected, f"down to {revision}"
    for revision in [*steps[::-1][1:], *heads]:
        migrate.upgrade(empty_db_url, revision)
        assert tuple(_rows(empty_db_url, counts)[0]) == expected, f"up to {revision}"
