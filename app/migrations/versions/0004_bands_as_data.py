"""Bands as data: packed photometry arrays instead of one column per band.

``sources`` and ``spectra`` lose the sixteen ``mag_{ugrizyjh}``/``magerr_*`` columns and
gain ``mags``/``magerrs``: little-endian float64 arrays over the catalogue's own bands
(``catalogues.bands``, in that order; NaN = missing). ``catalogues`` gains ``options``
(what the ingest was asked for) and ``summary`` (what it found); ``assignments`` gains
``percentile`` and ``outside`` (how far to trust a cell; rows assigned before are trusted
as they were, not outside).

The data move: each catalogue's stored bands (a subset of u g r i z Y J H, in that order,
which is also wavelength order) are packed row by row. Downgrade unpacks them again and
refuses, naming the catalogue, when a catalogue holds a band the old schema has no column
for (rather than dropping that photometry).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")
TABLES = ("sources", "spectra")
BATCH = 20_000


def _old(band: str) -> tuple[str, str]:
    return f"mag_{band.lower()}", f"magerr_{band.lower()}"


def _json_type():
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _catalogue_bands(conn) -> dict[int, list[str]]:
    rows = conn.execute(sa.text("SELECT id, bands FROM catalogues")).all()
    out = {}
    for cid, bands in rows:
        if isinstance(bands, str):  # SQLite returns JSON as text through a plain text()
            import json

            bands = json.loads(bands)
        out[int(cid)] = list(bands or [])
    return out


def _batches(conn, table: str, catalogue_id: int, columns: list[str]):
    """The rows (``id`` first) of one catalogue in ``table``, ``BATCH`` at a time by id."""
    last = -1
    while True:
        rows = conn.execute(
            sa.text(
                f"SELECT id, {', '.join(columns)} FROM {table} "
                "WHERE catalogue_id = :c AND id > :last ORDER BY id LIMIT :n"
            ),
            {"c": catalogue_id, "last": last, "n": BATCH},
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype="<f8")


def upgrade() -> None:
    with op.batch_alter_table("catalogues") as batch:
        batch.add_column(sa.Column("options", _json_type(), nullable=True))
        batch.add_column(sa.Column("summary", _json_type(), nullable=True))
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("percentile", sa.Double(), nullable=True))
        batch.add_column(
            sa.Column("outside", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("mags", sa.LargeBinary(), nullable=True))
            batch.add_column(sa.Column("magerrs", sa.LargeBinary(), nullable=True))

    conn = op.get_bind()
    bands_of = _catalogue_bands(conn)
    for table in TABLES:
        for cid, bands in bands_of.items():
            bands = [b for b in OLD_BANDS if b in bands]
            if not bands:
                continue
            cols = [c for b in bands for c in _old(b)]
            for rows in _batches(conn, table, cid, cols):
                updates = []
                for row in rows:
                    vals = _nan(row[1:])
                    mags, errs = vals[0::2], vals[1::2]
                    updates.append({"i": row[0], "m": mags.tobytes(), "e": errs.tobytes()})
                conn.execute(
                    sa.text(f"UPDATE {table} SET mags = :m, magerrs = :e WHERE id = :i"), updates
                )
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for band in OLD_BANDS:
                for col in _old(band):
                    batch.drop_column(col)


def downgrade() -> None:
    conn = op.get_bind()
    bands_of = _catalogue_bands(conn)
    for cid, bands in bands_of.items():
        foreign = [b for b in bands if b not in OLD_BANDS]
        if foreign:
            raise RuntimeError(
                f"catalogue {cid} holds bands {foreign} that revision 0003 has no columns for; "
                "delete that catalogue (or keep this revision) before downgrading"
            )
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for band in OLD_BANDS:
                for col in _old(band):
                    batch.add_column(sa.Column(col, sa.Double(), nullable=True))
    for table in TABLES:
        for cid, bands in bands_of.items():
            if not bands:
                continue
            sets = ", ".join(
                f"{m} = :m{k}, {e} = :e{k}" for k, (m, e) in enumerate(_old(b) for b in bands)
            )
            empty = np.full(len(bands), np.nan)
            for rows in _batches(conn, table, cid, ["mags", "magerrs"]):
                updates = []
                for rid, mags, errs in rows:
                    m = np.frombuffer(mags, "<f8") if mags is not None else empty
                    e = np.frombuffer(errs, "<f8") if errs is not None else empty
                    item = {"i": rid}
                    for k in range(len(bands)):
                        item[f"m{k}"] = None if np.isnan(m[k]) else float(m[k])
                        item[f"e{k}"] = None if np.isnan(e[k]) else float(e[k])
                    updates.append(item)
                conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :i"), updates)
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("mags")
            batch.drop_column("magerrs")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("outside")
        batch.drop_column("percentile")
    # Not recreated on SQLite (plain ALTER TABLE ... DROP COLUMN, SQLite >= 3.35): copying
    # catalogues into a new table drops the old one, and with foreign keys on that deletes
    # every source and spectrum (ON DELETE CASCADE).
    with op.batch_alter_table("catalogues", recreate="never") as batch:
        batch.drop_column("summary")
        batch.drop_column("options")
