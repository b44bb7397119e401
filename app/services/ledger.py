"""The coverage ledger: every ingested source and spectrum assigned to the cells of every
ready map (``assignments``), and the per-cell statistics and coverage derived from those
assignments with ``som.calibration`` (``cells``), rewritten whenever rows arrive or leave.

A spectrum is assigned by its own photometry when it has any usable feature for the map;
otherwise (e.g. the COSMOS spectroscopic compilation, which carries no photometry) it takes
the cell of the nearest photometric source within ``match_radius_arcsec`` on the sky.

The transactions that change the ledger are serialised (:func:`ledger_transaction`).
Ingests, deletions and the end of a training job all read "which catalogues and maps
exist" and then write assignments and cell statistics from it. Run concurrently, a new
spectroscopic catalogue could be missed by a map finishing its training at the same
moment. Such transactions run under this lock: a process lock (threads of one server) and,
on PostgreSQL, a transaction-scoped advisory lock (several server processes).

The lock is taken *before* a transaction's first write: on SQLite a writer holding the
database lock while waiting for ours, and another thread holding ours while waiting for
the database, would otherwise deadlock until the busy timeout.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from app.models import Assignment, Catalogue, Cell, Map
from app.services import live
from app.services.bulk import Col, bulk_insert
from app.services.map_store import mag_band, map_bands, z_edges
from app.services.phot_store import float_rows, load_rows, mags_by_catalogue, records
from som import SOM
from som import calibration as cal

DEFAULT_MATCH_RADIUS_ARCSEC = 1.0

_PROCESS_LOCK = threading.RLock()
# Arbitrary but fixed key of the advisory lock ("somcal" in ASCII, as a 64-bit integer).
ADVISORY_KEY = 0x736F6D63616C


@contextmanager
def ledger_transaction(session: Session) -> Iterator[Session]:
    """Hold the ledger lock for the session's transaction; commit inside the block."""
    with _PROCESS_LOCK:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})
        yield session


# ----------------------------------------------------------------------------- features
def feature_frame(rows: pd.DataFrame, bands: list[str] | None = None) -> pd.DataFrame:
    """Rows with ``mag_<band>``/``magerr_<band>`` for every band of the map (NaN where the
    rows' catalogue has no such band), as ``ColourFeatures`` reads them."""
    if bands is None:
        return rows
    missing = {}
    for b in bands:
        for name in (f"mag_{b}", f"magerr_{b}"):
            if name not in rows.columns:
                missing[name] = np.full(len(rows), np.nan)
    return rows.assign(**missing) if missing else rows


@dataclass
class Trusted:
    """Cells of rows on one map and how far to trust them (see ``som.trust``)."""

    cell: np.ndarray  # -1: no usable feature
    distance: np.ndarray
    n_features: np.ndarray  # usable colours (features) of each row
    percentile: np.ndarray  # of the distance among the training rows' own; NaN: unknown
    outside: np.ndarray  # outside_training: beyond the 99.5th percentile or too few colours


def assign_trusted(som: SOM, rows: pd.DataFrame) -> Trusted:
    """Cell, distance, colours used, distance percentile and ``outside_training`` of rows."""
    from som.trust import outside_training

    frame = feature_frame(rows, list(som.features._needed_bands()))
    X, E = som.features.transform(frame)
    use_errors = som.distance == "chi2"
    a = som.assign(X, E if use_errors else None, skip_empty=True)
    return Trusted(
        cell=a.cell.astype(np.int64),
        distance=a.distance.astype(np.float64),
        n_features=a.n_features.astype(np.int64),
        percentile=a.percentile.astype(np.float64),
        outside=outside_training(a),
    )


# ----------------------------------------------------------------------------- assignment
@dataclass
class AssignReport:
    n_rows: int
    n_by_photometry: int
    n_by_position: int
    n_outside_training: int = 0

    @property
    def n_unassigned(self) -> int:
        return self.n_rows - self.n_by_photometry - self.n_by_position

    def counts(self) -> dict[str, int]:
        """How the rows landed: by their photometry, by a position match, not at all, and
        how many of those placed are outside the training set."""
        return {
            "rows": self.n_rows,
            "by_photometry": self.n_by_photometry,
            "by_position": self.n_by_position,
            "unassigned": self.n_unassigned,
            "outside_training": self.n_outside_training,
        }


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def match_by_position(
    session: Session, map_id: int, ra: np.ndarray, dec: np.ndarray, radius_arcsec: float
) -> Trusted:
    """The nearest assigned photometric source within the radius, for each position: its
    cell, distance and trust (a spectrum placed by its position takes its source's).
    Unmatched rows: cell -1, distance and percentile NaN, not outside."""
    from scipy.spatial import cKDTree

    n = len(ra)
    out = Trusted(
        cell=np.full(n, -1, dtype=np.int64),
        distance=np.full(n, np.nan),
        n_features=np.zeros(n, dtype=np.int64),
        percentile=np.full(n, np.nan),
        outside=np.zeros(n, dtype=bool),
    )
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any() or radius_arcsec <= 0:
        return out
    rows = session.execute(
        text(
            "SELECT s.ra, s.dec, a.cell, a.distance, a.percentile, a.outside FROM assignments a "
            "JOIN sources s ON s.id = a.object_id AND s.catalogue_id = a.catalogue_id "
            "WHERE a.map_id = :m AND s.ra IS NOT NULL AND s.dec IS NOT NULL"
        ),
        {"m": map_id},
    ).all()
    if not rows:
        return out
    arr = float_rows(rows, 6)
    tree = cKDTree(_unit_vectors(arr[:, 0], arr[:, 1]))
    chord = 2.0 * math.sin(math.radians(radius_arcsec / 3600.0) / 2.0)
    d, idx = tree.query(_unit_vectors(ra[ok], dec[ok]), k=1, distance_upper_bound=chord)
    hit = np.isfinite(d)
    where, src = np.flatnonzero(ok)[hit], idx[hit]
    out.cell[where] = arr[src, 2].astype(np.int64)
    out.distance[where] = arr[src, 3]
    out.percentile[where] = arr[src, 4]
    out.outside[where] = arr[src, 5] == 1.0
    return out


def _match_rows(
    session: Session, map_id: int, rows: pd.DataFrame, which: np.ndarray, radius_arcsec: float
) -> Trusted:
    """:func:`match_by_position` for the rows ``which`` (indices or a mask) of ``rows``."""
    ra = rows["ra"].to_numpy(dtype=float)[which]
    dec = rows["dec"].to_numpy(dtype=float)[which]
    return match_by_position(session, map_id, ra, dec, radius_arcsec)


def _write_assignments(
    session: Session, map_id: int, catalogue_id: int, object_ids: np.ndarray, t: Trusted
) -> int:
    """Insert the rows of ``t`` that have a cell; returns how many."""
    keep = t.cell >= 0
    n = int(keep.sum())
    bulk_insert(
        session.connection(),
        "assignments",
        [
            Col("map_id", "int4", np.full(n, map_id, dtype=np.int32)),
            Col("catalogue_id", "int4", np.full(n, catalogue_id, dtype=np.int32)),
            Col("object_id", "int8", np.asarray(object_ids, dtype=np.int64)[keep]),
            Col("cell", "int4", t.cell[keep].astype(np.int32)),
            Col("distance", "float8", t.distance[keep]),
            Col("percentile", "float8", t.percentile[keep]),
            Col("outside", "bool", t.outside[keep]),
        ],
        # The map and the catalogue are rows this ledger transaction holds.
        references_valid=True,
    )
    return n


def assign_catalogue(
    session: Session,
    m: Map,
    som: SOM,
    catalogue: Catalogue,
    rows: pd.DataFrame,
    match_radius_arcsec: float = DEFAULT_MATCH_RADIUS_ARCSEC,
) -> AssignReport:
    """Write the assignments of ``rows`` (with ``object_id``) of a catalogue to map ``m``."""
    t = assign_trusted(som, rows)
    n_phot = int((t.cell >= 0).sum())
    n_pos = 0
    if catalogue.kind == "spectroscopic" and (t.cell < 0).any():
        lost = np.flatnonzero(t.cell < 0)
        matched = _match_rows(session, m.id, rows, lost, match_radius_arcsec)
        t.cell[lost], t.distance[lost] = matched.cell, matched.distance
        t.percentile[lost], t.outside[lost] = matched.percentile, matched.outside
        n_pos = int((matched.cell >= 0).sum())
    _write_assignments(session, m.id, catalogue.id, rows["object_id"].to_numpy(), t)
    return AssignReport(len(rows), n_phot, n_pos, int(t.outside[t.cell >= 0].sum()))


def rematch_by_position(session: Session, m: Map, som: SOM, match_radius_arcsec: float) -> int:
    """Redo the positional assignments of spectra that have no usable photometry.

    Called after photometric sources arrive or leave: the nearest source of such a
    spectrum may have changed (or appeared, or gone). Returns how many spectra are matched.
    """
    bands = map_bands(m)
    matched = 0
    spec_cats = session.scalars(live.live_catalogues(["spectroscopic"])).all()
    for cat in spec_cats:
        rows = load_rows(session, "spectroscopic", cat.id, bands)
        if len(rows) == 0:
            continue
        X, _ = som.features.transform(feature_frame(rows, bands))
        lost = ~np.isfinite(X).any(axis=1)
        if not lost.any():
            continue
        ids = rows["object_id"].to_numpy(dtype=np.int64)[lost]
        for start in range(0, len(ids), _IN_LIST_MAX):
            part = ids[start : start + _IN_LIST_MAX]
            session.execute(
                text(
                    "DELETE FROM assignments WHERE map_id = :m AND catalogue_id = :c AND "
                    f"object_id IN ({', '.join(str(int(i)) for i in part)})"
                ),
                {"m": m.id, "c": cat.id},
            )
        found = _match_rows(session, m.id, rows, lost, match_radius_arcsec)
        matched += _write_assignments(session, m.id, cat.id, ids, found)
    return matched


# ----------------------------------------------------------------------------- statistics
def phot_assigned(session: Session, map_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells and photometric redshifts of every source assigned to the map."""
    rows = session.execute(
        text(
            "SELECT a.cell, s.z_phot FROM assignments a "
            "JOIN sources s ON s.id = a.object_id AND s.catalogue_id = a.catalogue_id "
            "WHERE a.map_id = :m AND a.outside = :f"
        ),
        {"m": map_id, "f": False},
    ).all()
    arr = float_rows(rows, 2)
    return arr[:, 0].astype(np.int64), arr[:, 1]


def history_mag_band(m: Map) -> str:
    """The band of the coverage history's magnitude bins: the map's default magnitude band
    (its ``i``, or its reddest band), as for target selection."""
    return mag_band(m, None)


def phot_assigned_mags(session: Session, m: Map) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`phot_assigned` with each source's magnitude in :func:`history_mag_band` (NaN
    where its catalogue lacks the band or it has no measurement)."""
    rows = session.execute(
        text(
            "SELECT a.cell, s.z_phot, s.catalogue_id, s.mags FROM assignments a "
            "JOIN sources s ON s.id = a.object_id AND s.catalogue_id = a.catalogue_id "
            "WHERE a.map_id = :m AND a.outside = :f"
        ),
        {"m": m.id, "f": False},
    ).all()
    arr = float_rows([r[:3] for r in rows], 3)
    mags = mags_by_catalogue(session, arr[:, 2], [r[3] for r in rows], [history_mag_band(m)])
    return arr[:, 0].astype(np.int64), arr[:, 1], mags[:, 0]


def phot_values(session: Session, m: Map) -> dict[str, list]:
    """The photometric columns of every cell of the map, from what is assigned to it."""
    return phot_cell_values(m, *phot_assigned_mags(session, m))


def spec_assigned(session: Session, map_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells, redshifts and secure flags of every spectrum assigned to the map."""
    rows = session.execute(
        text(
            "SELECT a.cell, p.z_spec, p.secure, a.outside FROM assignments a "
            "JOIN spectra p ON p.id = a.object_id AND p.catalogue_id = a.catalogue_id "
            "WHERE a.map_id = :m"
        ),
        {"m": map_id},
    ).all()
    arr = float_rows(rows, 4)
    # A spectrum outside what the map was trained on cannot make its cell covered: it is
    # kept (counted in n_spec) but never secure for the map.
    secure = arr[:, 2].astype(bool) & (arr[:, 3] != 1.0)
    return arr[:, 0].astype(np.int64), arr[:, 1], secure


def n_outside(session: Session, map_id: int, kind: str) -> int:
    """Rows of ``kind`` assigned to the map but flagged outside_training."""
    return _count_assigned(session, map_id, kind, Assignment.outside)


def _sql_nulls(values: np.ndarray) -> list[float | None]:
    """A float column for the ``cells`` table: NaN (an undefined statistic) as NULL, so a
    rewrite compares equal to what was stored."""
    return [None if not math.isfinite(v) else float(v) for v in values]


def _hist_lists(hist: np.ndarray) -> list[list[int] | None]:
    counts = np.rint(hist).astype(np.int64)
    nonzero = counts.sum(axis=1) > 0
    return [row.tolist() if nz else None for row, nz in zip(counts, nonzero, strict=True)]


def phot_cell_values(
    m: Map, cells: np.ndarray, z_phot: np.ndarray, mags: np.ndarray | None = None
) -> dict[str, list]:
    """``mags``: each source's magnitude in :func:`history_mag_band` (None: none known)."""
    n_cells = m.n_rows * m.n_cols
    st = cal.cell_statistics(cells, z_phot, n_cells)
    pz = cal.cell_pz(cells, z_phot, n_cells, z_edges(m), normalise=False)
    if mags is None:
        mags = np.full(len(cells), np.nan)
    return {
        "mag_phot": _hist_lists(cal.cell_mag_histogram(cells, mags, n_cells)),
        "n_phot": st["count"].astype(int).tolist(),
        "zphot_mean": _sql_nulls(st["z_mean"].to_numpy()),
        "zphot_median": _sql_nulls(st["z_median"].to_numpy()),
        "zphot_std": _sql_nulls(st["z_std"].to_numpy()),
        "zphot_nmad": _sql_nulls(st["z_nmad"].to_numpy()),
        "pz_phot": _hist_lists(pz),
    }


def spec_cell_values(
    m: Map, cells: np.ndarray, z_spec: np.ndarray, secure: np.ndarray
) -> dict[str, list]:
    """Spectroscopic statistics per cell; redshift statistics and p(z) use secure spectra."""
    n_cells = m.n_rows * m.n_cols
    n_spec = cal.cell_spec_counts(cells, n_cells)
    n_secure = cal.cell_spec_counts(cells, n_cells, secure)
    covered = cal.covered_cells(cells, n_cells, secure, k=int(m.min_secure))
    sec = secure.astype(bool)
    st = cal.cell_statistics(cells[sec], z_spec[sec], n_cells)
    pz = cal.cell_pz(cells[sec], z_spec[sec], n_cells, z_edges(m), normalise=False)
    return {
        "n_spec": n_spec.astype(int).tolist(),
        "n_spec_secure": n_secure.astype(int).tolist(),
        "zspec_mean": _sql_nulls(st["z_mean"].to_numpy()),
        "zspec_median": _sql_nulls(st["z_median"].to_numpy()),
        "zspec_std": _sql_nulls(st["z_std"].to_numpy()),
        "covered": [bool(c) for c in covered],
        "pz_spec": _hist_lists(pz),
    }


def write_new_cells(session: Session, m: Map, values: dict[str, list]) -> None:
    n_cells = m.n_rows * m.n_cols
    rows, cols = np.divmod(np.arange(n_cells), m.n_cols)
    records = [
        {
            "map_id": m.id,
            "cell": c,
            "row": int(rows[c]),
            "col": int(cols[c]),
            **{k: v[c] for k, v in values.items()},
        }
        for c in range(n_cells)
    ]
    session.execute(Cell.__table__.insert(), records)
    m.cells_version = (m.cells_version or 0) + 1


#: The statistics of a cell's photometric sources and of its spectra, as ``cells`` columns.
_PHOT_SCALARS = ("n_phot", "zphot_mean", "zphot_median", "zphot_std", "zphot_nmad")
_SPEC_SCALARS = ("n_spec", "n_spec_secure", "zspec_mean", "zspec_median", "zspec_std", "covered")
_COMPARE = {
    "phot": (*_PHOT_SCALARS, "pz_phot", "mag_phot"),
    "spec": (*_SPEC_SCALARS, "pz_spec"),
}


def update_cells(session: Session, m: Map, values: dict[str, list], part: str) -> int:
    """Rewrite the cells whose ``part`` ("phot" or "spec") values changed; returns how many."""
    names = _COMPARE[part]
    current = session.execute(
        select(Cell.cell, *[getattr(Cell, n) for n in names])
        .where(Cell.map_id == m.id)
        .order_by(Cell.cell)
    ).all()
    changed = []
    for row in current:
        c = row[0]
        new = tuple(values[n][c] for n in names)
        if tuple(row[1:]) != new:
            changed.append({"map_id": m.id, "cell": c, **dict(zip(names, new, strict=True))})
    if changed:
        session.execute(update(Cell), changed)
        m.cells_version = (m.cells_version or 0) + 1
    return len(changed)


def recompute(session: Session, m: Map, part: str) -> int:
    if part == "phot":
        return update_cells(session, m, phot_values(session, m), "phot")
    cells, z, secure = spec_assigned(session, m.id)
    return update_cells(session, m, spec_cell_values(m, cells, z, secure), "spec")


def cells_frame(session: Session, map_id: int, with_pz: bool = False) -> pd.DataFrame:
    """All cells of a map as a frame indexed by cell (scalar columns; p(z) on request)."""
    names = ["cell", *CELL_SCALARS]
    if with_pz:
        names += ["pz_phot", "pz_spec", "mag_phot"]
    rows = session.execute(
        select(*[getattr(Cell, n) for n in names]).where(Cell.map_id == map_id).order_by(Cell.cell)
    ).all()
    frame = pd.DataFrame.from_records(records(rows), columns=names)
    for n in CELL_SCALARS:
        if n.startswith(("zphot_", "zspec_")):
            frame[n] = pd.to_numeric(frame[n], errors="coerce").astype(float)
    frame["covered"] = frame["covered"].astype(bool)
    return frame.set_index("cell", drop=False)


def count_sources(session: Session) -> int:
    """Photometric sources in the ledger (a deleted catalogue's are not)."""
    return live.live_source_count(session)


def n_assigned(session: Session, map_id: int, kind: str) -> int:
    return _count_assigned(session, map_id, kind)


def _count_assigned(session: Session, map_id: int, kind: str, *where: Any) -> int:
    """Rows of catalogues of ``kind`` assigned to the map (and meeting ``where``)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Assignment)
            .join(Catalogue, Catalogue.id == Assignment.catalogue_id)
            .where(Assignment.map_id == map_id, Catalogue.kind == kind, *where)
        )
        or 0
    )


CELL_SCALARS = ("row", "col", *_PHOT_SCALARS, *_SPEC_SCALARS)
_IN_LIST_MAX = 1000


# ----------------------------------------------------------------------------- cached reads
class _CellCache:
    """Per map, something computed from its cells (their scalar columns, the nearest
    labelled cell of each), valid while ``maps.cells_version`` is unchanged; least recently
    used maps dropped first. cachetools' caches are not thread-safe: the lock guards every
    access (the computation itself runs outside it)."""

    def __init__(self, size: int = 8) -> None:
        self._items: LRUCache[int, tuple[tuple, Any]] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    @staticmethod
    def key(m: Map) -> tuple:
        return (m.trained_at.isoformat() if m.trained_at else "", m.cells_version)

    def get(self, m: Map) -> Any | None:
        with self._lock:
            item = self._items.get(m.id)
        return item[1] if item is not None and item[0] == self.key(m) else None

    def put(self, m: Map, value: Any) -> None:
        with self._lock:
            self._items[m.id] = (self.key(m), value)


CELL_CACHE = _CellCache()
_FALLBACK_CACHE = _CellCache()


def cell_arrays(session: Session, m: Map) -> dict[str, np.ndarray]:
    """Scalar cell columns as arrays of length n_cells (index = cell), read-only, cached."""
    cached = CELL_CACHE.get(m)
    if cached is not None:
        return cached
    rows = session.execute(
        text(f"SELECT cell, {', '.join(CELL_SCALARS)} FROM cells WHERE map_id = :m"),
        {"m": m.id},
    ).all()
    # None (NULL) becomes NaN and booleans 0/1 in a float array.
    arr = float_rows(rows, len(CELL_SCALARS) + 1)
    n_cells = m.n_rows * m.n_cols
    out = {name: np.full(n_cells, np.nan) for name in CELL_SCALARS}
    idx = arr[:, 0].astype(np.int64)
    for k, name in enumerate(CELL_SCALARS, start=1):
        out[name][idx] = arr[:, k]
    out["covered"] = out["covered"] == 1.0
    for values in out.values():
        values.flags.writeable = False
    CELL_CACHE.put(m, out)
    return out


def zspec_fallback(session: Session, m: Map, som: SOM) -> cal.FilledCells:
    """Each cell's spectroscopic median redshift, or the nearest labelled cell's on the map
    (flagged), cached with the cell arrays: finding nearest cells takes ~0.3 s on a 75x150
    map, too much for every assign request."""
    cached = _FALLBACK_CACHE.get(m)
    if cached is not None:
        return cached
    filled = cal.fill_unlabelled_cells(cell_arrays(session, m)["zspec_median"], som)
    _FALLBACK_CACHE.put(m, filled)
    return filled


def cell_pz(session: Session, m: Map, cells: np.ndarray) -> dict[int, tuple[Any, Any]]:
    """Stored p(z) histograms (counts) of the given cells: {cell: (pz_phot, pz_spec)}."""
    wanted = [int(c) for c in np.unique(cells[cells >= 0])]
    out: dict[int, tuple[Any, Any]] = {}
    for start in range(0, len(wanted), _IN_LIST_MAX):
        part = wanted[start : start + _IN_LIST_MAX]
        rows = session.execute(
            select(Cell.cell, Cell.pz_phot, Cell.pz_spec).where(
                Cell.map_id == m.id, Cell.cell.in_(part)
            )
        ).all()
        out.update({r[0]: (r[1], r[2]) for r in rows})
    return out
