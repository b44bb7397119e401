"""The follow-up loop in the ledger: the change log with a coverage snapshot after every
change, campaigns (named, immutable target lists) and forecasts. The outcomes of the
targets are recorded by :mod:`app.services.outcomes`, the success model learned from them
and from the spectra that exist is :mod:`app.services.success`'s.

The science is :mod:`som.calibration.followup`'s; this module gathers its inputs from the
store, validates what callers send (naming the row) and writes in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import (
    CoverageSnapshot,
    LedgerChange,
    Map,
    TargetList,
    TargetOutcome,
)
from app.services import ledger, map_store, success
from app.services import targets as target_service
from app.services.errors import InvalidInputError, NotFoundError
from som import calibration as cal
from som.calibration.followup import ExposureModel, SuccessModel
from som.vocabulary import ChangeAction, Outcome, PlanStrategy, choices


# ----------------------------------------------------------------------------- change log
def log_change(
    session: Session,
    action: ChangeAction,
    key_name: str | None,
    *,
    map_id: int | None = None,
    catalogue_id: int | None = None,
    target_list_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> LedgerChange:
    """Append one entry to the change log (in the caller's transaction)."""
    change = LedgerChange(
        action=str(action),
        key_name=key_name,
        map_id=map_id,
        catalogue_id=catalogue_id,
        target_list_id=target_list_id,
        detail=detail,
    )
    session.add(change)
    session.flush()
    return change


def _per_bin(hists: Any, n_bins: int, covered: np.ndarray) -> list[dict[str, int]]:
    """Galaxies and cells, all and covered, per bin of per-cell histograms (None: none)."""
    counts = np.zeros((len(covered), n_bins), dtype=np.int64)
    for c, hist in enumerate(hists):
        if hist:
            counts[c] = np.asarray(hist, dtype=np.int64)
    occupied = counts > 0
    return [
        {
            "n_galaxies": int(counts[:, b].sum()),
            "n_galaxies_covered": int(counts[covered, b].sum()),
            "n_cells_occupied": int(occupied[:, b].sum()),
            "n_cells_covered": int((occupied[:, b] & covered).sum()),
        }
        for b in range(n_bins)
    ]


def coverage_now(session: Session, m: Map) -> dict[str, Any]:
    """The map's coverage as a snapshot records it, from the per-cell counts (the numbers of
    ``GET .../coverage`` without reading a source) and the outcomes recorded so far, split
    by photo-z bin of the map's grid and by magnitude bin (``HISTORY_MAG_EDGES``)."""
    stats = ledger.cells_frame(session, m.id, with_pz=True)
    n_phot = stats["n_phot"].to_numpy(dtype=np.int64)
    if any(n > 0 and h is None for n, h in zip(n_phot, stats["mag_phot"], strict=True)):
        # Cells last written before they kept magnitudes (migration 0011): fill them once.
        ledger.recompute(session, m, "phot")
        stats = ledger.cells_frame(session, m.id, with_pz=True)
        n_phot = stats["n_phot"].to_numpy(dtype=np.int64)
    covered = stats["covered"].to_numpy(dtype=bool)
    edges = map_store.z_edges(m)
    by_z = _per_bin(stats["pz_phot"], len(edges) - 1, covered)
    mag_bins = cal.history_mag_bins()
    by_mag = _per_bin(stats["mag_phot"], len(mag_bins), covered)
    band = ledger.history_mag_band(m)
    spent = _spent(session, m)
    return {
        "n_cells": len(stats),
        "n_cells_occupied": int((n_phot > 0).sum()),
        "n_cells_covered": int(covered.sum()),
        "n_galaxies": int(n_phot.sum()),
        "n_galaxies_covered": int(n_phot[covered].sum()),
        "n_spectra_secure": int(stats["n_spec_secure"].sum()),
        **spent,
        "by_z": [
            {"z_min": float(lo), "z_max": float(hi), **counts}
            for lo, hi, counts in zip(edges[:-1], edges[1:], by_z, strict=True)
        ],
        # every bin, so that snapshots line up; the last: no magnitude in the band
        "by_mag": [
            {"band": band, "mag_min": lo, "mag_max": hi, **counts}
            for (lo, hi), counts in zip(mag_bins, by_mag, strict=True)
        ],
    }


def _spent(session: Session, m: Map) -> dict[str, Any]:
    row = session.execute(
        select(
            func.count(),
            func.sum(func.coalesce(TargetOutcome.exposure_hours, 0.0)),
            func.count().filter(TargetOutcome.outcome == str(Outcome.secure)),
        )
        .select_from(TargetOutcome)
        .join(TargetList, TargetList.id == TargetOutcome.target_list_id)
        .where(TargetList.map_id == m.id, TargetOutcome.outcome != str(Outcome.not_observed))
    ).one()
    return {
        "n_observed": int(row[0] or 0),
        "hours_spent": float(row[1] or 0.0),
        "n_secure_outcomes": int(row[2] or 0),
    }


def snapshot(session: Session, m: Map, change: LedgerChange) -> CoverageSnapshot:
    """Record the map's coverage as it stands after ``change`` (same transaction)."""
    snap = CoverageSnapshot(map_id=m.id, change_id=change.id, **coverage_now(session, m))
    session.add(snap)
    session.flush()
    return snap


def record_ledger_change(
    session: Session,
    action: ChangeAction,
    key_name: str | None,
    maps: list[Map],
    **what: Any,
) -> LedgerChange:
    """One change-log entry and a coverage snapshot of every map it touched."""
    change = log_change(
        session, action, key_name, map_id=maps[0].id if len(maps) == 1 else None, **what
    )
    for m in maps:
        snapshot(session, m, change)
    return change


def changes(
    session: Session, map_id: int | None, limit: int, offset: int, newest_first: bool = False
) -> tuple[list[LedgerChange], int]:
    query = select(LedgerChange)
    count = select(func.count()).select_from(LedgerChange)
    if map_id is not None:
        # A change to a catalogue touches every map (map_id NULL); a campaign's, one.
        touched = select(CoverageSnapshot.change_id).where(CoverageSnapshot.map_id == map_id)
        cond = (LedgerChange.map_id == map_id) | LedgerChange.id.in_(touched)
        query, count = query.where(cond), count.where(cond)
    order = LedgerChange.id.desc() if newest_first else LedgerChange.id
    items = session.scalars(query.order_by(order).limit(limit).offset(offset)).all()
    return list(items), int(session.scalar(count) or 0)


def history(session: Session, m: Map) -> list[dict[str, Any]]:
    """Every snapshot of the map, oldest first, with the change that made it."""
    rows = session.execute(
        select(CoverageSnapshot, LedgerChange)
        .join(LedgerChange, LedgerChange.id == CoverageSnapshot.change_id)
        .where(CoverageSnapshot.map_id == m.id)
        .order_by(CoverageSnapshot.id)
    ).all()
    out = []
    for snap, change in rows:
        out.append(
            {
                "change_id": change.id,
                "action": change.action,
                "key_name": change.key_name,
                "catalogue_id": change.catalogue_id,
                "campaign_id": change.target_list_id,
                "created_at": snap.created_at,
                "n_cells": snap.n_cells,
                "n_cells_occupied": snap.n_cells_occupied,
                "n_cells_covered": snap.n_cells_covered,
                "n_galaxies": snap.n_galaxies,
                "n_galaxies_covered": snap.n_galaxies_covered,
                "fraction_cells_covered": snap.n_cells_covered / snap.n_cells
                if snap.n_cells
                else 0.0,
                "fraction_galaxies_covered": snap.n_galaxies_covered / snap.n_galaxies
                if snap.n_galaxies
                else 0.0,
                "n_spectra_secure": snap.n_spectra_secure,
                "n_observed": snap.n_observed,
                "n_secure_outcomes": snap.n_secure_outcomes,
                "hours_spent": snap.hours_spent,
                "by_z": snap.by_z or [],
                "by_mag": snap.by_mag or [],
            }
        )
    return out


# ----------------------------------------------------------------------------- campaigns
@dataclass(frozen=True, kw_only=True)
class CampaignPlan:
    """What a caller asks of a campaign: its name, the budget (targets and/or hours), the
    magnitude band and limit, targets per cell, the exposure model and the strategy."""

    name: str
    budget: int | None = None
    budget_hours: float | None = None
    mag_band: str | None = None
    mag_limit: float | None = None
    per_cell: int = 1
    strategy: PlanStrategy = PlanStrategy.expected_gain
    exposure: ExposureModel = field(default_factory=ExposureModel)
    random_state: int | None = None
    # the success model learns from the archival spectra too (app.services.success)
    archival: bool = True
    # what a gap is worth (app.services.targets.target_cell_stats): an occupation
    # catalogue's counts (a wide survey's, C3R2's split) or one photometric catalogue's
    # rows; by default the ledger's photometric rows. Candidates stay every row's.
    occupation_id: int | None = None
    catalogue_id: int | None = None


@dataclass
class PlannedTargets:
    frame: pd.DataFrame
    params: dict[str, Any]
    model: SuccessModel
    cell_weight: np.ndarray
    need: np.ndarray


def _gap_weights(
    session: Session, m: Map, plan: CampaignPlan
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The map's cells, the per-cell statistics that rank targets, and each cell's share
    of the sample the plan weights the gaps by (its occupation, catalogue or the ledger)."""
    stats, cell_stats = target_service.target_cell_stats(
        session, m, plan.occupation_id, plan.catalogue_id
    )
    counts = cell_stats["count"].to_numpy(dtype=np.float64)
    return stats, cell_stats, counts / max(counts.sum(), 1.0)


def plan_targets(
    session: Session,
    m: Map,
    plan: CampaignPlan,
    gaps: tuple[pd.DataFrame, pd.DataFrame, np.ndarray] | None = None,
) -> PlannedTargets:
    """The next campaign's targets (not saved): candidates in uncovered cells, minus
    targets already observed with a secure redshift and those that failed at comparable
    depth, ranked by the plan's strategy with the map's success model. ``gaps``: the
    plan's :func:`_gap_weights`, when the caller has them already."""
    band = map_store.mag_band(m, plan.mag_band)
    cand = target_service.target_candidates(session, m, uncovered_only=True)
    stats, cell_stats, weight = _gap_weights(session, m, plan) if gaps is None else gaps
    mag_col = f"mag_{band}"
    seen = success.observed_targets(session, m)
    exclude = np.zeros(len(cand), dtype=bool)
    n_excluded_failed = n_excluded_secure = 0
    if len(seen) and len(cand):
        key = cand["catalogue_id"].astype(int).astype(str) + "\x1f" + cand["source_id"].astype(str)
        seen_key = seen["catalogue_id"].astype(int).astype(str) + "\x1f" + seen["source_id"]
        secure = set(seen_key[seen["outcome"] == str(Outcome.secure)])
        failed = seen[seen["outcome"] == str(Outcome.failed)]
        # A target that failed more than once counts at its deepest attempt.
        depth = (
            pd.Series(
                failed["exposure_hours"].to_numpy(dtype=np.float64), index=seen_key[failed.index]
            )
            .groupby(level=0)
            .max()
        )
        is_secure = key.isin(secure).to_numpy()
        spent = key.map(depth).to_numpy(dtype=np.float64)
        at_depth = cal.failed_at_depth(cand[mag_col].to_numpy(), spent, plan.exposure)
        exclude = is_secure | at_depth
        n_excluded_secure, n_excluded_failed = int(is_secure.sum()), int(at_depth.sum())
    # The model learns in the band the campaign ranks and times its targets in.
    learned = success.learn(session, m, archival=plan.archival, band=band)
    model = learned.model
    try:
        chosen = cal.plan_campaign(
            cand,
            stats["covered"].to_numpy(),
            weight,
            strategy=plan.strategy,
            success=model,
            exposure=plan.exposure,
            budget_hours=plan.budget_hours,
            budget_targets=plan.budget,
            mag_column=mag_col,
            mag_limit=plan.mag_limit,
            per_cell=plan.per_cell,
            exclude=exclude,
            cell_stats=cell_stats,
            random_state=plan.random_state,
        )
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from exc
    frame = target_service.described_targets(chosen, cand, stats)
    params = {
        "name": plan.name,
        "budget": plan.budget,
        "budget_hours": plan.budget_hours,
        "mag_band": band,
        "mag_limit": plan.mag_limit,
        "per_cell": plan.per_cell,
        "strategy": str(plan.strategy),
        "exposure": plan.exposure.as_dict(),
        "random_state": plan.random_state,
        "occupation_id": plan.occupation_id,
        "catalogue_id": plan.catalogue_id,
        "k": m.min_secure,
        "success_model_outcomes": learned.n_recorded,
        "success_model_archival": learned.n_archival,
        "n_excluded_failed": n_excluded_failed,
        "n_excluded_secure": n_excluded_secure,
        "expected_hours": float(frame["exposure_hours"].sum()) if len(frame) else 0.0,
    }
    need = np.maximum(m.min_secure - stats["n_spec_secure"].to_numpy(dtype=np.int64), 0)
    return PlannedTargets(frame, params, model, weight, need)


def create_campaign(session: Session, m: Map, plan: CampaignPlan, key_name: str | None):
    """Plan and save a campaign, logged (with a snapshot: the coverage it starts from).
    The caller commits."""
    planned = plan_targets(session, m, plan)
    gain, n_cells = _expected(planned)
    planned.params["expected_gain"] = gain
    planned.params["expected_new_cells"] = n_cells
    tl = target_service.save_target_list(session, m, planned.frame, planned.params, name=plan.name)
    record_ledger_change(
        session,
        ChangeAction.campaign_created,
        key_name,
        [m],
        target_list_id=tl.id,
        detail={"name": plan.name, "n_targets": len(planned.frame)},
    )
    return tl, planned.frame


def _expected(planned: PlannedTargets) -> tuple[float, float]:
    f = planned.frame
    if not len(f):
        return 0.0, 0.0
    return cal.expected_coverage_gain(
        f["cell"].to_numpy(), f["p_success"].to_numpy(), planned.cell_weight, planned.need
    )


def forecast(
    session: Session, m: Map, plan: CampaignPlan, strategies: list[PlanStrategy]
) -> dict[str, Any]:
    """For each strategy, the campaign it would plan now and the coverage expected after
    it under the map's success model (what a campaign would add, without saving one)."""
    # coverage now, of the sample the plan weights the gaps by
    gaps = _gap_weights(session, m, plan)
    stats, _, weight = gaps
    now = float(weight[stats["covered"].to_numpy()].sum())
    rows = []
    for strategy in strategies:
        # the strategy changes the ranking, not what a gap is worth: weights read once
        planned = plan_targets(session, m, _replace(plan, strategy=strategy), gaps)
        gain, n_cells = _expected(planned)
        hours = float(planned.frame["exposure_hours"].sum()) if len(planned.frame) else 0.0
        overheads = plan.exposure.overhead_hours * len(planned.frame)
        hours += overheads
        rows.append(
            {
                "strategy": str(strategy),
                "n_targets": len(planned.frame),
                "hours": hours,
                "expected_secure": float(planned.frame["p_success"].sum())
                if len(planned.frame)
                else 0.0,
                "expected_new_cells": n_cells,
                "expected_gain": gain,
                "expected_fraction_covered": now + gain,
                "gain_per_hour": gain / hours if hours > 0 else 0.0,
            }
        )
    band = map_store.mag_band(m, plan.mag_band)
    learned = success.learn(session, m, archival=plan.archival, band=band)
    return {
        "map_id": m.id,
        "budget_hours": plan.budget_hours,
        "fraction_covered": now,
        "success_model_outcomes": learned.n_recorded,
        "success_model_archival": learned.n_archival,
        "strategies": rows,
    }


def _replace(plan: CampaignPlan, **changes: Any) -> CampaignPlan:
    values = {f: getattr(plan, f) for f in asdict(plan)}
    values["exposure"] = plan.exposure
    values.update(changes)
    return CampaignPlan(**values)


def get_campaign(session: Session, m: Map, campaign_id: int) -> TargetList:
    tl = session.get(TargetList, campaign_id)
    if tl is None or tl.map_id != m.id or tl.name is None:
        raise NotFoundError(f"campaign {campaign_id} not found for map {m.id}")
    return tl


def list_campaigns(session: Session, m: Map) -> list[TargetList]:
    return list(
        session.scalars(
            select(TargetList)
            .where(TargetList.map_id == m.id, TargetList.name.is_not(None))
            .order_by(TargetList.id)
        )
    )


def campaign_counts(session: Session, campaign: TargetList) -> dict[str, Any]:
    rows = session.execute(
        select(
            TargetOutcome.outcome,
            func.count(),
            func.sum(func.coalesce(TargetOutcome.exposure_hours, 0.0)),
        )
        .where(TargetOutcome.target_list_id == campaign.id)
        .group_by(TargetOutcome.outcome)
    ).all()
    counts = dict.fromkeys(choices(Outcome), 0)
    hours = 0.0
    for outcome, n, h in rows:
        counts[outcome] = int(n)
        hours += float(h or 0.0)
    return {
        "n_secure": counts[Outcome.secure],
        "n_failed": counts[Outcome.failed],
        "n_not_observed": counts[Outcome.not_observed],
        "n_pending": campaign.n_targets - sum(counts.values()),
        "hours_spent": hours,
    }


def campaign_table(session: Session, m: Map, campaign: TargetList) -> pd.DataFrame:
    """The campaign's targets as exported, with each one's outcome so far (blank: pending)
    and the exposure spent on it (NaN: none recorded)."""
    _, frame = target_service.get_target_list(session, m, campaign.id)
    outcomes = {
        o.rank: o
        for o in session.scalars(
            select(TargetOutcome).where(TargetOutcome.target_list_id == campaign.id)
        )
    }
    if len(frame):
        frame.insert(1, "target_id", frame["source_id"].astype(str))
        ranks = frame["priority"].to_numpy()
        # Blank while pending, so the column stays text in every table format (FITS has no
        # missing string).
        frame["outcome"] = [outcomes[r].outcome if r in outcomes else "" for r in ranks]
        spent = [outcomes[r].exposure_hours if r in outcomes else None for r in ranks]
        frame["exposure_spent"] = np.array(
            [np.nan if h is None else h for h in spent], dtype=np.float64
        )
    return frame


def radec_list(frame: pd.DataFrame) -> str:
    """The plain list mask-design tools read: one target per line, ``id ra dec priority``
    (degrees), with a ``#`` header line."""
    lines = ["# target_id ra_deg dec_deg priority"]
    for r in frame.itertuples(index=False):
        lines.append(f"{r.target_id} {float(r.ra):.7f} {float(r.dec):+.7f} {int(r.priority)}")
    return "\n".join(lines) + "\n"
