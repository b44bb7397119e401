"""The bulk loader writes exactly what it is given, on both databases, by every path."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.core.db import make_engine
from app.services import bulk
from app.services.bulk import Col, bulk_insert
from app.services.phot_store import pack, unpack


def _catalogue(conn) -> int:
    conn.execute(
        text(
            "INSERT INTO catalogues (kind, name, filename, file_format, sha256, size_bytes, "
            "column_mapping, bands, n_rows, n_skipped, status, created_at) VALUES "
            "('photometric', 'x', 'x.csv', 'csv', :sha, 1, '{}', '[]', 0, 0, 'ready', "
            "CURRENT_TIMESTAMP)"
        ),
        {"sha": "a" * 64},
    )
    return int(conn.execute(text("SELECT max(id) FROM catalogues")).scalar())


@pytest.mark.parametrize("max_groups", [bulk.MAX_GROUPS, 1])
def test_roundtrip_with_nulls_and_unicode(clean_db, monkeypatch, max_groups):
    # max_groups=1 forces psycopg's row-by-row writer on PostgreSQL (many NULL patterns).
    monkeypatch.setattr(bulk, "MAX_GROUPS", max_groups)
    n = 500
    rng = np.random.default_rng(3)
    ids = np.array([f"id{i}" if i % 7 else f"é-{i}" for i in range(n)], dtype=object)
    ids[5] = None
    mags = rng.normal(22, 1, (n, 3))
    mags[rng.random((n, 3)) < 0.2] = np.nan
    engine = make_engine(clean_db)
    with engine.begin() as conn:
        cat = _catalogue(conn)
        cols = [
            Col("catalogue_id", "int4", np.full(n, cat)),
            Col("row_index", "int4", np.arange(n)),
            Col("source_id", "text", ids),
            Col("ra", "float8", mags[:, 0]),
            Col("mags", "bytea", pack(mags[:, :2])),
            Col("z_phot", "float8", mags[:, 2]),
        ]
        # source_id is NOT NULL: the one None must be refused by the database...
        with pytest.raises(IntegrityError), conn.begin_nested():
            bulk_insert(conn, "sources", cols, references_valid=True)
        ids[5] = "five"
        bulk_insert(conn, "sources", cols, references_valid=True)
        rows = conn.execute(
            text("SELECT row_index, source_id, ra, z_phot, mags FROM sources ORDER BY 1")
        ).all()
    engine.dispose()
    assert [r[1] for r in rows] == list(ids)
    got = np.array([[np.nan if v is None else v for v in r[2:4]] for r in rows], dtype=float)
    np.testing.assert_array_equal(got, mags[:, [0, 2]])  # bit-exact, NaN where NULL
    # packed photometry (fixed-width bytea) comes back bit for bit, NaN included
    np.testing.assert_array_equal(unpack([r[4] for r in rows], 2), mags[:, :2])


def test_foreign_keys_are_checked_again_after_a_trusted_load(clean_db):
    engine = make_engine(clean_db)
    with engine.begin() as conn:
        cat = _catalogue(conn)
        cols = [
            Col("catalogue_id", "int4", np.full(3, cat)),
            Col("row_index", "int4", np.arange(3)),
            Col("source_id", "text", np.array(["a", "b", "c"], dtype=object)),
        ]
        bulk_insert(conn, "sources", cols, references_valid=True)
        bad = [
            Col("catalogue_id", "int4", np.full(1, cat + 1000)),
            Col("row_index", "int4", np.arange(1)),
            Col("source_id", "text", np.array(["z"], dtype=object)),
        ]
        with pytest.raises(IntegrityError), conn.begin_nested():
            bulk_insert(conn, "sources", bad)
    engine.dispose()
