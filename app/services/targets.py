"""Spectroscopic targets for a map's gaps (C3R2's selection): the candidates among the
ledger's photometric rows, the per-cell statistics that rank them (the ledger's counts, an
occupation catalogue's, or one photometric catalogue's), the ranking, and target lists
stored as snapshots."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import Catalogue, Map, Target, TargetList
from app.services import ledger, map_store, phot_store
from app.services import occupation as occupation_service
from app.services.catalogues import get_catalogue
from app.services.coverage import catalogue_cells
from app.services.errors import InvalidInputError, NotFoundError, RowError
from som import calibration as cal
from som.vocabulary import CatalogueKind


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame for a JSON column of the ledger (a target's ``extra``): Python
    scalars, NaN as None (JSON has no NaN, and PostgreSQL's jsonb refuses it)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _sql_float(v: Any) -> float | None:
    """A float for a nullable column: NaN as NULL."""
    return None if v is None or not math.isfinite(v) else float(v)


def targets(
    session: Session,
    m: Map,
    *,
    budget: int | None,
    budget_hours: float | None,
    mag_band: str | None,
    mag_limit: float | None,
    per_cell: int,
    occupation_id: int | None = None,
    catalogue_id: int | None = None,
) -> pd.DataFrame:
    """Targets for the gaps, the most populated first. Candidates are the ledger's
    photometric rows (a deep field's); the gaps are weighted by those rows, with
    ``occupation_id`` by an occupation catalogue's counts (the wide survey's): C3R2's
    split of deep targets and wide weights, or with ``catalogue_id`` by one photometric
    catalogue's rows on the map (the candidates stay every row's)."""
    band = map_store.mag_band(m, mag_band)  # one of the map's bands
    cand = target_candidates(session, m, uncovered_only=True)
    stats, cell_stats = target_cell_stats(session, m, occupation_id, catalogue_id)
    return rank_targets(
        session,
        m,
        cand,
        stats["covered"].to_numpy(),
        cell_stats,
        band=band,
        budget=budget,
        budget_hours=budget_hours,
        mag_limit=mag_limit,
        per_cell=per_cell,
    )


def target_candidates(
    session: Session, m: Map, *, uncovered_only: bool, catalogue_id: int | None = None
) -> pd.DataFrame:
    """Sources assigned to the map that may be targets: ``id``, ``catalogue_id``,
    ``source_id``, ``ra``, ``dec``, ``cell``, ``distance`` and ``mag_<band>`` of the map's
    bands; only in cells the map calls uncovered (``uncovered_only``), only of one
    catalogue (``catalogue_id``). What every target selection, saved or not, starts from."""
    bands = map_store.map_bands(m)
    sql = (
        "SELECT s.id, s.catalogue_id, s.source_id, s.ra, s.dec, a.cell, a.distance, s.mags "
        "FROM assignments a JOIN sources s ON s.id = a.object_id "
        "AND s.catalogue_id = a.catalogue_id "
    )
    if uncovered_only:
        sql += "JOIN cells c ON c.map_id = a.map_id AND c.cell = a.cell "
    sql += "WHERE a.map_id = :m AND a.outside = :f"
    params: dict[str, Any] = {"m": m.id, "f": False}
    if uncovered_only:
        sql += " AND c.covered = :f"
    if catalogue_id is not None:
        sql += " AND a.catalogue_id = :c"
        params["c"] = catalogue_id
    rows = session.execute(text(sql), params).all()
    # A galaxy outside what the map was trained on does not stand for its cell: its
    # spectrum would not calibrate the cell, so it is never a target (it is counted apart).
    names = ["id", "catalogue_id", "source_id", "ra", "dec", "cell", "distance"]
    cand = pd.DataFrame.from_records([tuple(r)[:7] for r in rows], columns=names)
    for c in names:
        if c != "source_id":
            cand[c] = pd.to_numeric(cand[c], errors="coerce")
    mags = phot_store.mags_by_catalogue(
        session, cand["catalogue_id"].to_numpy(), [r[7] for r in rows], bands
    )
    for k, b in enumerate(bands):
        cand[f"mag_{b}"] = mags[:, k]
    cand["cell"] = cand["cell"].astype(np.int64)
    return cand


def weighting_catalogue(
    session: Session, occupation_id: int | None, catalogue_id: int | None
) -> Catalogue | None:
    """The photometric catalogue ``catalogue_id`` whose rows weight the gaps, checked: at
    most one of ``occupation_id`` and ``catalogue_id`` (422 naming both), an unknown or
    deleted catalogue is a 404, a spectroscopic or an occupation one a 422 naming
    ``catalogue_id``. None without ``catalogue_id``."""
    if occupation_id is not None and catalogue_id is not None:
        reason = (
            "give occupation_id (an occupation catalogue's counts) or catalogue_id (a "
            "photometric catalogue's rows) to weight the gaps, not both"
        )
        raise InvalidInputError(
            reason,
            [
                RowError(None, "occupation_id", None, reason),
                RowError(None, "catalogue_id", None, reason),
            ],
        )
    if catalogue_id is None:
        return None
    cat = get_catalogue(session, catalogue_id)
    if cat.kind == CatalogueKind.occupation:
        reason = (
            f"catalogue {cat.id} is an occupation catalogue: give it as occupation_id; "
            "catalogue_id weights the gaps by a photometric catalogue's rows"
        )
        raise InvalidInputError(reason, [RowError(None, "catalogue_id", None, reason)])
    if cat.kind != CatalogueKind.photometric:
        reason = (
            f"catalogue {cat.id} is {cat.kind}: give a photometric catalogue to weight "
            "the gaps by (the spectra are what covers the cells)"
        )
        raise InvalidInputError(reason, [RowError(None, "catalogue_id", None, reason)])
    return cat


def target_cell_stats(
    session: Session,
    m: Map,
    occupation_id: int | None = None,
    catalogue_id: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The map's cells (:func:`ledger.cells_frame`) and the per-cell statistics that rank
    targets: ``count`` (what a gap is worth: the ledger's photometric rows, an occupation
    catalogue's counts, or one photometric catalogue's rows inside what the map was
    trained on), ``z_median`` and ``z_nmad``."""
    cat = weighting_catalogue(session, occupation_id, catalogue_id)
    stats = ledger.cells_frame(session, m.id)
    weight_counts = stats["n_phot"].to_numpy()
    if occupation_id is not None:
        weight_counts = occupation_service.load(session, m, occupation_id)[1].counts
    elif cat is not None:
        weight_counts = catalogue_cells(session, m, cat)[0]
    cell_stats = pd.DataFrame(
        {
            "count": weight_counts,
            "z_median": stats["zphot_median"].to_numpy(),
            "z_nmad": stats["zphot_nmad"].to_numpy(),
        }
    )
    return stats, cell_stats


def rank_targets(
    session: Session,
    m: Map,
    cand: pd.DataFrame,
    covered: np.ndarray,
    cell_stats: pd.DataFrame,
    *,
    band: str,
    budget: int | None,
    budget_hours: float | None,
    mag_limit: float | None,
    per_cell: int,
) -> pd.DataFrame:
    """The C3R2 ranking of ``som.calibration.select_targets`` over candidates of
    :func:`target_candidates`: cells not ``covered`` by ``cell_stats['count']`` (what a
    cell is worth), shown as :func:`described_targets` shows them."""
    try:
        chosen = cal.select_targets(
            cand,
            covered,
            cell_stats,
            budget_targets=budget,
            budget_hours=budget_hours,
            mag_column=f"mag_{band}",
            mag_limit=mag_limit,
            per_cell=per_cell,
        )
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    return described_targets(chosen, cand, ledger.cell_arrays(session, m))


def described_targets(chosen: pd.DataFrame, cand: pd.DataFrame, stats: Any) -> pd.DataFrame:
    """A selection from :func:`target_candidates` as a target list shows it: the ledger's
    row id replaced by ``source_id`` and ``catalogue_id``, and the cell's row and column
    (``stats``: the map's cells, a frame or arrays with ``row`` and ``col`` by cell)."""
    chosen = chosen.copy()
    lookup = cand.set_index("id")
    ids = chosen["id"].to_numpy()
    chosen.insert(1, "source_id", lookup.loc[ids, "source_id"].to_numpy())
    chosen.insert(2, "catalogue_id", lookup.loc[ids, "catalogue_id"].astype(int).to_numpy())
    chosen = chosen.drop(columns=["id"])
    cells = chosen["cell"].to_numpy()
    rows, cols = np.asarray(stats["row"]), np.asarray(stats["col"])
    chosen.insert(chosen.columns.get_loc("cell") + 1, "cell_row", rows[cells].astype(np.int64))
    chosen.insert(chosen.columns.get_loc("cell_row") + 1, "cell_col", cols[cells].astype(np.int64))
    return chosen


_TARGET_FIXED = ("priority", "source_id", "catalogue_id", "ra", "dec", "cell")


def save_target_list(
    session: Session, m: Map, frame: pd.DataFrame, params: dict[str, Any], name: str | None = None
) -> TargetList:
    """Store a target list as a snapshot (later ingests or deletions leave it as it was);
    with a ``name`` it is a campaign."""
    tl = TargetList(map_id=m.id, name=name, params=params, n_targets=len(frame))
    session.add(tl)
    session.flush()
    if params.get("occupation_id") is not None:
        occ = occupation_service.load(session, m, int(params["occupation_id"]))[1]
        total = max(occ.n_galaxies, 1)
    elif params.get("catalogue_id") is not None:
        cat = weighting_catalogue(session, None, int(params["catalogue_id"]))
        total = max(int(catalogue_cells(session, m, cat)[0].sum()), 1)
    else:
        total = max(int(np.nansum(ledger.cell_arrays(session, m)["n_phot"])), 1)
    mag_col = f"mag_{params['mag_band']}"
    extra_cols = [c for c in frame.columns if c not in _TARGET_FIXED]
    extras = _json_records(frame[extra_cols]) if extra_cols else [{} for _ in range(len(frame))]
    rows = [
        {
            "target_list_id": tl.id,
            "rank": int(r.priority),
            "catalogue_id": int(r.catalogue_id),
            "source_id": str(r.source_id),
            "ra": _sql_float(r.ra),
            "dec": _sql_float(r.dec),
            "mag": _sql_float(getattr(r, mag_col)),
            "cell": int(r.cell),
            "priority": float(r.cell_n_galaxies) / total,
            "extra": extra,
        }
        for r, extra in zip(frame.itertuples(index=False), extras, strict=True)
    ]
    if rows:
        session.execute(Target.__table__.insert(), rows)
    return tl


def get_target_list(session: Session, m: Map, list_id: int) -> tuple[TargetList, pd.DataFrame]:
    tl = session.get(TargetList, list_id)
    if tl is None or tl.map_id != m.id:
        raise NotFoundError(f"target list {list_id} not found for map {m.id}")
    rows = session.scalars(
        select(Target).where(Target.target_list_id == tl.id).order_by(Target.rank)
    ).all()
    records = [
        {
            "priority": t.rank,
            "source_id": t.source_id,
            "catalogue_id": t.catalogue_id,
            "ra": t.ra,
            "dec": t.dec,
            "cell": t.cell,
            "sample_fraction": t.priority,
            **(t.extra or {}),
        }
        for t in rows
    ]
    frame = pd.DataFrame.from_records(records)
    return tl, frame


def list_target_lists(session: Session, m: Map) -> list[TargetList]:
    return list(
        session.scalars(select(TargetList).where(TargetList.map_id == m.id).order_by(TargetList.id))
    )
