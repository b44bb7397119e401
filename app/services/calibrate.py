"""Read-side calibration products of a map: assignment of new photometry, cell details,
coverage, gaps, targets and n(z). The numerics are ``som.calibration``'s; this module only
gathers the arrays from the store and shapes the answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import Map, Target, TargetList
from app.services import ingest as ingest_service
from app.services import ledger, map_store, phot_store
from app.services import occupation as occupation_service
from app.services.errors import (
    BadRequestError,
    InvalidInputError,
    NotFoundError,
    RowError,
    TooLargeError,
)
from app.services.phot_store import photometry_frame
from som import calibration as cal
from som.bands import REGISTRY, BandError


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame for a JSON column of the ledger (a target's ``extra``): Python
    scalars, NaN as None (JSON has no NaN, and PostgreSQL's jsonb refuses it)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _sql_float(v: Any) -> float | None:
    """A float for a nullable column: NaN as NULL."""
    return None if v is None or not math.isfinite(v) else float(v)


def _density(counts: list[int] | None, widths: np.ndarray) -> list[float] | None:
    if counts is None:
        return None
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return None
    return (c / total / widths).tolist()


def map_mag_band(m: Map, requested: str | None) -> str:
    """The band of a magnitude cut or breakdown: one of the map's own bands (the map's
    ``i`` or its reddest band when none is asked for); a registry alias of one of them
    (e.g. a survey-qualified name) is accepted."""
    bands = map_store.map_bands(m)
    if requested is None:
        return "i" if "i" in bands else bands[-1]
    if requested in bands:
        return requested
    try:
        canonical = REGISTRY.canonical(requested)
    except BandError:
        canonical = None
    if canonical in bands:
        return canonical
    reason = f"band {requested!r} is not one of map {m.id}'s bands: {', '.join(bands)}"
    raise InvalidInputError(reason, [RowError(None, "mag_band", None, reason)])


# ----------------------------------------------------------------------------- assign
@dataclass
class AssignOutput:
    frame: pd.DataFrame
    z_edges: list[float] | None
    n_unassigned: int


def photometry_rows(
    frame: pd.DataFrame,
    file: str,
    preset: str | None = None,
    mapping: dict[str, str | None] | None = None,
    *,
    on_invalid: str = "skip",
    flux_unit: str | None = None,
    negative_error: str = "limit",
    bands: list[dict[str, Any]] | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Every row a client sends for assignment, cleaned by the ingest's rules.

    Returns ``row_index``, ``source_id``, ``mag_<band>``/``magerr_<band>`` and ``reason``
    (None for a valid row, else why it cannot be used: the same rule for one row as for ten
    thousand). ``on_invalid="reject"`` refuses the whole request (422) at the first invalid
    row instead.
    """
    if on_invalid not in ("skip", "reject"):
        raise BadRequestError(f"on_invalid must be 'skip' or 'reject', got {on_invalid!r}")
    registry = ingest_service.registry_for(bands)
    columns = [str(c) for c in frame.columns]
    _, resolved, _warnings = ingest_service.resolve_mapping(
        "photometric", columns, preset, mapping, registry
    )
    units = dict(frame.attrs.get("units", {}) or {})
    plan = ingest_service.band_columns(resolved, registry, flux_unit, units, file)
    if not plan:
        raise InvalidInputError(
            f"{file}: no photometry columns recognised; send mag_<band> or flux_<band> "
            "fields (with flux_unit), or a mapping",
            [RowError(file, None, None, "no photometry")],
        )
    rules = ingest_service.Rules(
        kind="photometric",
        mapping=resolved,
        plan=plan,
        file=file,
        secure_rule=None,
        survey_default=None,
        skip_missing_redshift=False,
        negative_error=negative_error,
        # A request's rows are often few or one galaxy repeated: only the per-value rules
        # apply unless the caller asks for the column checks.
        check=check and len(frame) >= 1000,
    )
    log = ingest_service.ErrorLog(file, limit=None)
    frame = frame.reset_index(drop=True)
    checked = ingest_service.validate(frame, rules, log)
    log.finish()
    if log.file_level:
        raise InvalidInputError(
            f"{file}: invalid input, the rows cannot be used", log.items, n_errors=log.count
        )
    if log.count and on_invalid == "reject":
        raise InvalidInputError(
            f"{file}: {log.count} invalid value(s); nothing was assigned "
            f"(first {min(log.count, ingest_service.MAX_LISTED_ERRORS)} listed)",
            log.items[: ingest_service.MAX_LISTED_ERRORS],
            n_errors=log.count,
        )
    n = len(frame)
    B = len(plan)
    mags = np.full((n, B), np.nan)
    errs = np.full((n, B), np.nan)
    mags[checked.keep] = checked.columns["mags"]
    errs[checked.keep] = checked.columns["magerrs"]
    rows = photometry_frame([b.band for b in plan], mags, errs)
    ids = np.full(n, None, dtype=object)
    if "source_id" in resolved:
        ids[checked.keep] = checked.columns["source_id"]
        raw = frame[resolved["source_id"]].to_numpy(dtype=object)
        bad = np.setdiff1d(np.arange(n), checked.keep)
        ids[bad] = [None if pd.isna(v) else str(v) for v in raw[bad]]
    else:
        ids = np.arange(n).astype(str).astype(object)
    reasons = np.full(n, None, dtype=object)
    for e in log.items:
        if e.row is not None and reasons[e.row] is None:
            reasons[e.row] = f"{e.column}: {e.reason}" if e.column else e.reason
    rows.insert(0, "source_id", ids)
    rows.insert(0, "row_index", np.arange(n))
    rows["reason"] = reasons
    return rows


def assign_rows(
    session: Session, m: Map, rows: pd.DataFrame, include_pz: bool, max_rows: int
) -> AssignOutput:
    if len(rows) > max_rows:
        raise TooLargeError(f"{len(rows)} rows to assign; the limit is {max_rows} per request")
    som = map_store.SOM_CACHE.get(m)
    trusted = ledger.assign_trusted(som, rows)
    cells, dist = trusted.cell, trusted.distance
    invalid = rows["reason"].notna().to_numpy() if "reason" in rows else np.zeros(len(rows), bool)
    cells = np.where(invalid, -1, cells)
    ok = cells >= 0
    stats = ledger.cell_arrays(session, m)
    safe = np.where(ok, cells, 0)

    def pick(name: str) -> np.ndarray:
        return np.where(ok, stats[name][safe], np.nan)

    out = pd.DataFrame(
        {
            "row": rows["row_index"].to_numpy(),
            "id": rows["source_id"].to_numpy(),
            "cell": np.where(ok, cells, -1),
            "cell_row": np.where(ok, stats["row"][safe], -1).astype(np.int64),
            "cell_col": np.where(ok, stats["col"][safe], -1).astype(np.int64),
            "distance": np.where(ok, dist, np.nan),
            "n_colours": np.where(invalid, 0, trusted.n_features).astype(np.int64),
            "percentile": np.where(ok, trusted.percentile, np.nan),
            "outside_training": ~ok | trusted.outside,
            # Nothing outside what the map was trained on is called covered.
            "covered": ok & ~trusted.outside & stats["covered"][safe],
            "n_phot": pick("n_phot"),
            "n_spec_secure": pick("n_spec_secure"),
            "zphot_median": pick("zphot_median"),
            "zphot_nmad": pick("zphot_nmad"),
            "zspec_median": pick("zspec_median"),
        }
    )
    # A cell with no secure spectrum takes the nearest labelled cell's redshift, flagged.
    filled = ledger.zspec_fallback(session, m, som)
    out["zspec_median"] = np.where(ok, filled.values[safe], np.nan)
    out["zspec_fallback"] = ok & filled.fallback[safe]
    out["zspec_cell"] = np.where(ok, filled.source[safe], -1).astype(np.int64)
    given = rows["reason"].to_numpy(dtype=object) if "reason" in rows else np.full(len(out), None)
    out["reason"] = np.where(
        ok, None, np.where(pd.isna(given), "no usable colour for this map's bands", given)
    )
    edges = None
    if include_pz:
        widths = np.diff(map_store.z_edges(m))
        stored = ledger.cell_pz(session, m, cells)
        dens = {c: (_density(p, widths), _density(s, widths)) for c, (p, s) in stored.items()}
        out["pz_phot"] = [dens[c][0] if c >= 0 else None for c in cells]
        out["pz_spec"] = [dens[c][1] if c >= 0 else None for c in cells]
        edges = m.grid["z_edges"]
    return AssignOutput(out, edges, int((~ok).sum()))


_INT_COLUMNS = ("cell", "cell_row", "cell_col", "n_phot", "n_spec_secure", "zspec_cell")


def assign_results(output: AssignOutput) -> list[dict[str, Any]]:
    """The rows of an assignment as the ``results`` of ``AssignOut``: a row without a cell
    has no cell, position or cell statistics (None), not -1."""
    frame = output.frame
    ok = frame["cell"].to_numpy() >= 0
    columns: dict[str, list[Any]] = {}
    for col in frame.columns:
        values = frame[col].to_numpy()
        if col in _INT_COLUMNS:
            as_int = np.where(ok, np.nan_to_num(values.astype(np.float64), nan=-1), -1)
            columns[col] = [int(v) if keep else None for v, keep in zip(as_int, ok, strict=True)]
        elif values.dtype == object:  # text (id, reason) or p(z) lists; pandas' missing: None
            columns[col] = [None if isinstance(v, float) and v != v else v for v in values]
        else:
            columns[col] = values.tolist()
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


# ----------------------------------------------------------------------------- cells
def cell_detail(session: Session, m: Map, cell: int, max_spectra: int = 100) -> dict[str, Any]:
    n_cells = m.n_rows * m.n_cols
    if not 0 <= cell < n_cells:
        raise NotFoundError(f"cell {cell} not in map {m.id} (cells 0..{n_cells - 1})")
    som = map_store.SOM_CACHE.get(m)
    # Scalars of every cell (for the neighbours) but the p(z) of this one only: parsing
    # the histograms of all cells cost two thirds of the request.
    stats = ledger.cells_frame(session, m.id)
    scalar = stats.loc[[cell]].to_dict(orient="records")[0]
    pz_phot, pz_spec = ledger.cell_pz(session, m, np.asarray([cell])).get(cell, (None, None))
    features = som.features
    raw = features.inverse_transform(som.weights_[cell])
    widths = np.diff(map_store.z_edges(m))
    neighbours = [int(c) for c in som.neighbours(cell)]
    spectra = session.execute(
        text(
            "SELECT p.source_id, p.catalogue_id, p.ra, p.dec, p.z_spec, p.quality_raw, p.secure, "
            "p.survey FROM assignments a JOIN spectra p ON p.id = a.object_id "
            "AND p.catalogue_id = a.catalogue_id WHERE a.map_id = :m AND a.cell = :c "
            "ORDER BY p.secure DESC, p.z_spec LIMIT :n"
        ),
        {"m": m.id, "c": cell, "n": max_spectra},
    ).all()
    return {
        "map_id": m.id,
        **scalar,
        "weights": {
            "feature_names": list(features.feature_names_),
            "normalised": [float(v) for v in som.weights_[cell]],
            "values": [float(v) for v in raw],
        },
        "z_edges": m.grid["z_edges"],
        "pz_phot": _density(pz_phot, widths),
        "pz_spec": _density(pz_spec, widths),
        "neighbours": [
            {
                "cell": c,
                "covered": bool(stats.at[c, "covered"]),
                "n_phot": int(stats.at[c, "n_phot"]),
                "n_spec_secure": int(stats.at[c, "n_spec_secure"]),
            }
            for c in neighbours
        ],
        "spectra": [
            {
                "source_id": s[0],
                "catalogue_id": s[1],
                "ra": s[2],
                "dec": s[3],
                "z_spec": s[4],
                "quality": s[5],
                "secure": bool(s[6]),
                "survey": s[7],
            }
            for s in spectra
        ],
    }


# ----------------------------------------------------------------------------- coverage
def _same_bins(requested: Any, stored: np.ndarray | None, name: str, what: str) -> None:
    """An occupation is binned when it is computed: a request may ask for its bins (by
    count or edges) but not for others."""
    if requested is None:
        return
    if stored is None:
        reason = f"the occupation is not split by {what}"
        raise InvalidInputError(reason, [RowError(None, name, None, reason)])
    if isinstance(requested, (int, np.integer)):
        same = int(requested) == len(stored) - 1
    else:
        edges = np.asarray(requested, dtype=float)
        same = edges.shape == stored.shape and np.allclose(edges, stored, rtol=0, atol=1e-9)
    if not same:
        reason = (
            f"the occupation's {what} bins are fixed when it is computed: edges "
            f"{', '.join(f'{e:g}' for e in stored)}"
        )
        raise InvalidInputError(reason, [RowError(None, name, None, reason)])


def _occupation_coverage(
    session: Session, m: Map, catalogue_id: int, mag_band: str | None, mag_bins: Any, z_bins: Any
) -> dict[str, Any]:
    cat, occ = occupation_service.load(session, m, catalogue_id)
    by_mag = mag_band is not None
    if by_mag:
        if occ.mag_edges is None:
            reason = f"occupation catalogue {cat.id} is not split by magnitude"
            raise InvalidInputError(reason, [RowError(None, "mag_band", None, reason)])
        band = map_mag_band(m, mag_band)
        if occ.mag_column not in (band, f"mag_{band}"):
            reason = (
                f"occupation catalogue {cat.id} is split by {occ.mag_column!r}, "
                f"not by band {band!r}"
            )
            raise InvalidInputError(reason, [RowError(None, "mag_band", None, reason)])
    _same_bins(mag_bins if by_mag else None, occ.mag_edges, "mag_bins", "magnitude")
    _same_bins(z_bins, occ.z_edges, "z_bins", "photo-z")
    stats = ledger.cells_frame(session, m.id)
    summary = occ.coverage_summary(stats["covered"].to_numpy())
    if not by_mag:
        summary.by_magnitude = None
    if z_bins is None:
        summary.by_redshift = None
    out = summary.to_dict()
    out["n_outside_training"] = occ.n_outside_training
    return {
        "map_id": m.id,
        "k": m.min_secure,
        "catalogue": occupation_service.sample_ref(cat),
        "summary": out,
        "n_spectra": int(stats["n_spec"].sum()),
        "n_spectra_secure": int(stats["n_spec_secure"].sum()),
        "n_outside_training": occ.n_outside_training,
        "n_spectra_outside_training": ledger.n_outside(session, m.id, "spectroscopic"),
        "cells": {
            "n_cells": occ.n_cells,
            "covered": [bool(c) for c in stats["covered"].to_numpy()],
            "n_phot": occ.counts.tolist(),
            "n_spec_secure": stats["n_spec_secure"].astype(int).tolist(),
        },
    }


def coverage(
    session: Session,
    m: Map,
    mag_band: str | None,
    mag_bins: Any,
    z_bins: Any,
    catalogue_id: int | None = None,
) -> dict[str, Any]:
    """Coverage of the ledger's photometric rows, or (``catalogue_id``) of an occupation
    catalogue: the same summary from its counts, its bins the ones it was computed with."""
    if catalogue_id is not None:
        return _occupation_coverage(session, m, catalogue_id, mag_band, mag_bins, z_bins)
    stats = ledger.cells_frame(session, m.id)
    covered = stats["covered"].to_numpy()
    n_cells = len(stats)
    if mag_band is None and z_bins is None:
        # From the per-cell counts: the same numbers without reading every source.
        n_phot = stats["n_phot"].to_numpy()
        occupied = np.flatnonzero(n_phot > 0)
        summary = cal.coverage_summary(occupied, covered, weights=n_phot[occupied])
        summary.n_galaxies = int(n_phot.sum())
    else:
        band = map_mag_band(m, mag_band) if mag_band is not None else None
        # Only trusted rows, as in the per-cell counts of the unbinned summary: a galaxy
        # outside what the map was trained on is counted apart, not in any bin. The
        # photometry is read only when a magnitude is binned.
        rows = session.execute(
            text(
                "SELECT a.cell, s.z_phot, s.catalogue_id"
                + (", s.mags" if band else "")
                + " FROM assignments a JOIN sources s ON s.id = a.object_id "
                "AND s.catalogue_id = a.catalogue_id WHERE a.map_id = :m AND a.outside = :f"
            ),
            {"m": m.id, "f": False},
        ).all()
        arr = phot_store.float_rows([r[:3] for r in rows], 3)
        if band:
            arr[:, 2] = phot_store.mags_by_catalogue(
                session, arr[:, 2], [r[3] for r in rows], [band]
            )[:, 0]
        try:
            summary = cal.coverage_summary(
                arr[:, 0].astype(np.int64),
                covered,
                mags=arr[:, 2] if band else None,
                mag_bins=mag_bins if band else None,
                z=arr[:, 1] if z_bins is not None else None,
                z_bins=z_bins,
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
    n_sources = ledger.count_sources(session)
    out = summary.to_dict()
    n_outside = ledger.n_outside(session, m.id, "photometric")
    out["n_outside_training"] = n_outside
    out["n_unassigned"] = max(n_sources - out["n_galaxies"] - n_outside, 0)
    return {
        "map_id": m.id,
        "k": m.min_secure,
        "catalogue": occupation_service.sample_ref(None),
        "summary": out,
        "n_spectra": int(stats["n_spec"].sum()),
        "n_spectra_secure": int(stats["n_spec_secure"].sum()),
        # Counted apart: never in a covered cell's numbers, nor in the fractions above.
        "n_outside_training": n_outside,
        "n_spectra_outside_training": ledger.n_outside(session, m.id, "spectroscopic"),
        "cells": {
            "n_cells": n_cells,
            "covered": [bool(c) for c in covered],
            "n_phot": stats["n_phot"].astype(int).tolist(),
            "n_spec_secure": stats["n_spec_secure"].astype(int).tolist(),
        },
    }


def gaps(
    session: Session, m: Map, limit: int, offset: int, catalogue_id: int | None = None
) -> dict[str, Any]:
    """Uncovered cells ranked by the ledger's photometric rows in them, or (``catalogue_id``)
    by an occupation catalogue's counts: a survey's gaps without its rows."""
    stats = ledger.cells_frame(session, m.id)
    n_phot = stats["n_phot"].to_numpy()
    cat = None
    n_outside = None
    if catalogue_id is not None:
        cat, occ = occupation_service.load(session, m, catalogue_id)
        n_phot, n_outside = occ.counts, occ.n_outside_training
    occupied = np.flatnonzero(n_phot > 0)
    frame = cal.gaps(
        occupied, stats["covered"].to_numpy(), len(stats), weights=n_phot[occupied].astype(float)
    )
    frame["n_galaxies"] = frame["weight"].round().astype(int)
    frame = frame.drop(columns=["weight"])
    for col in ("row", "col", "zphot_median", "zphot_nmad", "n_spec", "n_spec_secure"):
        frame[col] = stats[col].to_numpy()[frame["cell"].to_numpy()]
    page = frame.iloc[offset : offset + limit]
    if n_outside is None:
        n_outside = ledger.n_outside(session, m.id, "photometric")
    return {
        "map_id": m.id,
        "k": m.min_secure,
        "catalogue": occupation_service.sample_ref(cat),
        "n_gaps": len(frame),
        "n_outside_training": n_outside,
        "n_galaxies_in_gaps": int(frame["n_galaxies"].sum()),
        "fraction_in_gaps": float(frame["fraction"].sum()) if len(frame) else 0.0,
        "limit": limit,
        "offset": offset,
        "gaps": page.to_dict(orient="records"),
    }


# ----------------------------------------------------------------------------- targets
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
) -> pd.DataFrame:
    """Targets for the gaps, the most populated first. Candidates are the ledger's
    photometric rows (a deep field's); the gaps are weighted by those rows, or with
    ``occupation_id`` by an occupation catalogue's counts (the wide survey's): C3R2's
    split of deep targets and wide weights."""
    band = map_mag_band(m, mag_band)  # one of the map's bands
    cand = target_candidates(session, m, uncovered_only=True)
    stats, cell_stats = target_cell_stats(session, m, occupation_id)
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


def target_cell_stats(
    session: Session, m: Map, occupation_id: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The map's cells (:func:`ledger.cells_frame`) and the per-cell statistics that rank
    targets: ``count`` (what a gap is worth: the ledger's photometric rows, or an
    occupation catalogue's counts), ``z_median`` and ``z_nmad``."""
    stats = ledger.cells_frame(session, m.id)
    weight_counts = stats["n_phot"].to_numpy()
    if occupation_id is not None:
        weight_counts = occupation_service.load(session, m, occupation_id)[1].counts
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
    chosen.insert(
        chosen.columns.get_loc("cell_row") + 1, "cell_col", cols[cells].astype(np.int64)
    )
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


# ----------------------------------------------------------------------------- n(z)
def nz(
    session: Session,
    m: Map,
    sample_cells: np.ndarray,
    bins: np.ndarray | None,
    k: int | None,
    gold: bool,
    n_boot: int,
    random_state: int | None,
    outside: np.ndarray | None = None,
    include_realisations: bool = False,
    sample_counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """n(z) of a sample (its cells on the map) through the map's secure spectra.

    ``outside`` marks members outside what the map was trained on: their cell says nothing
    about their redshift, so they are left out of the n(z) and counted apart
    (``n_outside_training``). ``include_realisations`` adds the bootstrap n(z)
    (``realisations``, n_boot × n_z; None without bootstrap). ``sample_counts`` (members
    per cell, ``sample_cells`` None) gives the sample as an occupation: a survey's n(z)
    without its rows."""
    n_out = 0
    if outside is not None:
        outside = np.asarray(outside, dtype=bool)
        n_out = int(outside.sum())
        sample_cells = np.asarray(sample_cells)[~outside]
    spec_cells, spec_z, secure = ledger.spec_assigned(session, m.id)
    edges = bins if bins is not None else map_store.z_edges(m)
    try:
        result = cal.nz(
            sample_cells,
            m.n_rows * m.n_cols,
            spec_cells,
            spec_z,
            edges,
            sample_counts=sample_counts,
            spec_secure=secure,
            k=int(k or m.min_secure),
            gold=gold,
            n_boot=n_boot,
            random_state=random_state,
        )
    except ValueError as exc:
        raise InvalidInputError(f"n(z) cannot be computed: {exc}") from exc
    return {
        "map_id": m.id,
        **result.to_dict(include_realisations=include_realisations),
        "n_outside_training": n_out,
    }


def occupation_nz(
    session: Session,
    m: Map,
    catalogue_id: int,
    z_bin: int | None,
    bins: np.ndarray | None,
    k: int | None,
    gold: bool,
    n_boot: int,
    random_state: int | None,
    include_realisations: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """n(z) of an occupation catalogue (or of one photo-z bin of it: a tomographic bin)
    from its counts: the same numbers as from the rows it counts. Returns the n(z), the
    sample's description and the catalogue."""
    cat, occ = occupation_service.load(session, m, catalogue_id)
    sample: dict[str, Any] = {"catalogue_id": cat.id, "n_rows": occ.n_rows}
    if z_bin is not None:
        try:
            occ = occ.z_bin(z_bin)
        except ValueError as exc:
            raise InvalidInputError(
                f"occupation catalogue {cat.id}: {exc}", [RowError(None, "z_bin", None, str(exc))]
            ) from exc
        sample["z_bin"] = z_bin
        sample["n_rows"] = occ.n_rows
    sample["n_assigned"] = occ.n_galaxies
    sample["n_outside_training"] = occ.n_outside_training
    result = nz(
        session, m, None, bins, k, gold, n_boot, random_state,
        include_realisations=include_realisations, sample_counts=occ.counts,
    )  # fmt: skip
    result["n_outside_training"] = occ.n_outside_training
    return result, sample, cat


def sample_assignments(
    session: Session, m: Map, catalogue_id: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells, photometric redshifts and outside_training flags of a photometric catalogue's
    sources on the map (every photometric source assigned to it when ``catalogue_id`` is
    None): the sample of an n(z)."""
    query = (
        "SELECT a.cell, s.z_phot, a.outside FROM assignments a JOIN sources s "
        "ON s.id = a.object_id AND s.catalogue_id = a.catalogue_id WHERE a.map_id = :m"
    )
    params: dict[str, int] = {"m": m.id}
    if catalogue_id is not None:
        from app.services.catalogues import get_catalogue

        cat = get_catalogue(session, catalogue_id)
        if cat.kind != "photometric":
            raise InvalidInputError(
                f"catalogue {cat.id} is {cat.kind}; the n(z) sample must be photometric",
                [RowError(None, "catalogue_id", None, "not a photometric catalogue")],
            )
        query += " AND a.catalogue_id = :c"
        params["c"] = cat.id
    arr = phot_store.float_rows(session.execute(text(query), params).all(), 3)
    return arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2] == 1.0
