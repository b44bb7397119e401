"""The follow-up loop in the ledger: campaigns (named, immutable target lists), the outcomes
of their targets, the success model learned from them, forecasts, and the change log with a
coverage snapshot after every change.

The science is :mod:`som.calibration.followup`'s; this module gathers its inputs from the
store, validates what callers send (naming the row) and writes in the caller's transaction.
"""

from __future__ import annotations

import math
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
    Spectrum,
    Target,
    TargetList,
    TargetOutcome,
)
from app.services import ledger, map_store
from app.services import targets as target_service
from app.services.catalogues import get_catalogue
from app.services.errors import InvalidInputError, NotFoundError, RowError
from som import calibration as cal
from som.calibration.followup import ExposureModel, SuccessModel
from som.vocabulary import ChangeAction, Outcome, PlanStrategy, choices

#: How many row errors an outcome upload lists (all are counted).
MAX_LISTED_ERRORS = 50


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


def coverage_now(session: Session, m: Map) -> dict[str, Any]:
    """The map's coverage as a snapshot records it, from the per-cell counts (the numbers of
    ``GET .../coverage`` without reading a source) and the outcomes recorded so far."""
    stats = ledger.cells_frame(session, m.id, with_pz=True)
    n_phot = stats["n_phot"].to_numpy(dtype=np.int64)
    covered = stats["covered"].to_numpy(dtype=bool)
    edges = map_store.z_edges(m)
    per_z = np.zeros(len(edges) - 1)
    per_z_covered = np.zeros(len(edges) - 1)
    for hist, is_covered in zip(stats["pz_phot"], covered, strict=True):
        if hist:
            counts = np.asarray(hist, dtype=np.float64)
            per_z += counts
            if is_covered:
                per_z_covered += counts
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
            {
                "z_min": float(lo),
                "z_max": float(hi),
                "n_galaxies": int(n),
                "n_galaxies_covered": int(nc),
            }
            for lo, hi, n, nc in zip(edges[:-1], edges[1:], per_z, per_z_covered, strict=True)
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
    session: Session, map_id: int | None, limit: int, offset: int
) -> tuple[list[LedgerChange], int]:
    query = select(LedgerChange)
    count = select(func.count()).select_from(LedgerChange)
    if map_id is not None:
        # A change to a catalogue touches every map (map_id NULL); a campaign's, one.
        touched = select(CoverageSnapshot.change_id).where(CoverageSnapshot.map_id == map_id)
        cond = (LedgerChange.map_id == map_id) | LedgerChange.id.in_(touched)
        query, count = query.where(cond), count.where(cond)
    items = session.scalars(query.order_by(LedgerChange.id).limit(limit).offset(offset)).all()
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


@dataclass
class PlannedTargets:
    frame: pd.DataFrame
    params: dict[str, Any]
    model: SuccessModel
    cell_weight: np.ndarray
    need: np.ndarray


def _observed_targets(session: Session, m: Map) -> pd.DataFrame:
    """Every target of the map's campaigns with an outcome: where it is, its magnitude,
    what became of it and the exposure it got."""
    rows = session.execute(
        select(
            Target.catalogue_id,
            Target.source_id,
            Target.cell,
            Target.mag,
            TargetOutcome.outcome,
            TargetOutcome.exposure_hours,
        )
        .join(
            TargetOutcome,
            (TargetOutcome.target_list_id == Target.target_list_id)
            & (TargetOutcome.rank == Target.rank),
        )
        .join(TargetList, TargetList.id == Target.target_list_id)
        .where(TargetList.map_id == m.id)
    ).all()
    return pd.DataFrame.from_records(
        [tuple(r) for r in rows],
        columns=["catalogue_id", "source_id", "cell", "mag", "outcome", "exposure_hours"],
    )


def success_model(session: Session, m: Map) -> SuccessModel:
    """The success rate fitted from every observed target of the map's campaigns (secure
    or failed; targets not observed say nothing about success)."""
    seen = _observed_targets(session, m)
    seen = seen[seen["outcome"] != str(Outcome.not_observed)]
    seen = seen[pd.to_numeric(seen["mag"], errors="coerce").notna()]
    return cal.fit_success_model(
        seen["mag"].to_numpy(dtype=np.float64),
        (seen["outcome"] == str(Outcome.secure)).to_numpy(),
        seen["cell"].to_numpy(dtype=np.int64),
        m.n_rows * m.n_cols,
    )


def success_summary(session: Session, m: Map, exposure: ExposureModel) -> dict[str, Any]:
    model = success_model(session, m)
    if model.fitted:
        lo, hi = model.mag_range
        grid = np.round(np.arange(np.floor(lo * 2) / 2, np.ceil(hi * 2) / 2 + 0.01, 0.5), 2)
    else:  # nothing learned: no curve to show
        grid = np.zeros(0)
    curve = model.curve(grid)
    curve["hours_per_secure"] = model.hours_per_secure(curve["mag"].to_numpy(), exposure)
    return {
        "map_id": m.id,
        **model.to_dict(),
        "exposure": exposure.as_dict(),
        "curve": curve.to_dict(orient="records"),
    }


def plan_targets(session: Session, m: Map, plan: CampaignPlan) -> PlannedTargets:
    """The next campaign's targets (not saved): candidates in uncovered cells, minus
    targets already observed with a secure redshift and those that failed at comparable
    depth, ranked by the plan's strategy with the map's success model."""
    band = map_store.mag_band(m, plan.mag_band)
    cand = target_service.target_candidates(session, m, uncovered_only=True)
    stats, cell_stats = target_service.target_cell_stats(session, m)
    mag_col = f"mag_{band}"
    seen = _observed_targets(session, m)
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
    model = success_model(session, m)
    n_phot = stats["n_phot"].to_numpy(dtype=np.float64)
    weight = n_phot / max(n_phot.sum(), 1.0)
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
        "k": m.min_secure,
        "success_model_outcomes": model.n_outcomes,
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
    stats = ledger.cells_frame(session, m.id)
    n_phot = stats["n_phot"].to_numpy(dtype=np.float64)
    now = float(n_phot[stats["covered"].to_numpy()].sum() / max(n_phot.sum(), 1.0))
    rows = []
    for strategy in strategies:
        planned = plan_targets(session, m, _replace(plan, strategy=strategy))
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
    model = success_model(session, m)
    return {
        "map_id": m.id,
        "budget_hours": plan.budget_hours,
        "fraction_covered": now,
        "success_model_outcomes": model.n_outcomes,
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


# ----------------------------------------------------------------------------- outcomes
_OUTCOME_COLUMNS = ("target_id", "outcome", "exposure_hours", "z_spec")


def _float_or_none(v: Any) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    f = float(v)
    return None if math.isnan(f) else f


def record_outcomes(
    session: Session,
    m: Map,
    campaign: TargetList,
    frame: pd.DataFrame,
    key_name: str | None,
    *,
    file: str = "outcomes",
    source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record a campaign's outcomes from a table (``target_id``, ``outcome``, and for a
    failure ``exposure_hours``; optional ``z_spec``). Every row is checked before anything
    is written: an unknown target, an unknown outcome, a failure without its exposure, or
    an outcome that contradicts another row or one already recorded is an error naming
    the row, and nothing is stored. Repeating an outcome already recorded is harmless.
    The caller commits."""
    columns = [str(c) for c in frame.columns]
    missing = [c for c in ("target_id", "outcome") if c not in columns]
    if missing:
        raise InvalidInputError(
            f"{file}: missing column(s) {', '.join(missing)}; an outcome table has "
            "target_id, outcome (secure, failed, not_observed) and, for a failure, "
            "exposure_hours",
            [RowError(file, c, None, "missing column") for c in missing],
        )
    targets = session.execute(
        select(Target.rank, Target.source_id).where(Target.target_list_id == campaign.id)
    ).all()
    by_id: dict[str, list[int]] = {}
    for rank, source_id in targets:
        by_id.setdefault(str(source_id), []).append(int(rank))
    recorded = {
        o.rank: o
        for o in session.scalars(
            select(TargetOutcome).where(TargetOutcome.target_list_id == campaign.id)
        )
    }
    errors: list[RowError] = []
    wanted: dict[int, tuple[str, float | None, float | None, int]] = {}
    values = {
        c: frame[c].tolist() if c in columns else [None] * len(frame) for c in _OUTCOME_COLUMNS
    }
    for row in range(len(frame)):
        raw_id = values["target_id"][row]
        target_id = "" if raw_id is None or pd.isna(raw_id) else str(raw_id).strip()
        ranks = by_id.get(target_id)
        if not ranks:
            errors.append(
                RowError(
                    file,
                    "target_id",
                    row,
                    f"unknown target id {target_id!r} in campaign {campaign.id}",
                )
            )
            continue
        if len(ranks) > 1:
            errors.append(
                RowError(
                    file,
                    "target_id",
                    row,
                    f"target id {target_id!r} names {len(ranks)} targets of campaign "
                    f"{campaign.id} (from different catalogues)",
                )
            )
            continue
        outcome = str(values["outcome"][row]).strip()
        if outcome not in choices(Outcome):
            errors.append(
                RowError(
                    file,
                    "outcome",
                    row,
                    f"outcome {outcome!r} is not one of {', '.join(choices(Outcome))}",
                )
            )
            continue
        try:
            hours = _float_or_none(values["exposure_hours"][row])
            z = _float_or_none(values["z_spec"][row])
        except (TypeError, ValueError):
            errors.append(RowError(file, "exposure_hours", row, "not a number"))
            continue
        if hours is not None and (not math.isfinite(hours) or hours < 0):
            errors.append(RowError(file, "exposure_hours", row, f"{hours} is not >= 0"))
            continue
        if outcome == Outcome.failed and hours is None:
            errors.append(
                RowError(
                    file,
                    "exposure_hours",
                    row,
                    "a failure needs the exposure spent (it decides whether the target is "
                    "worth another attempt)",
                )
            )
            continue
        rank = ranks[0]
        if rank in wanted and wanted[rank][0] != outcome:
            errors.append(
                RowError(
                    file,
                    "outcome",
                    row,
                    f"target {target_id!r} is {outcome} here but {wanted[rank][0]} in row "
                    f"{wanted[rank][3]}",
                )
            )
            continue
        before = recorded.get(rank)
        if before is not None and before.outcome != outcome:
            errors.append(
                RowError(
                    file,
                    "outcome",
                    row,
                    f"target {target_id!r} was already recorded as {before.outcome} "
                    f"(change {before.change_id}); an outcome is not rewritten",
                )
            )
            continue
        wanted.setdefault(rank, (outcome, hours, z, row))
    if errors:
        raise InvalidInputError(
            f"{file}: {len(errors)} row(s) cannot be recorded; nothing was stored "
            f"(first {min(len(errors), MAX_LISTED_ERRORS)} listed)",
            errors[:MAX_LISTED_ERRORS],
            n_errors=len(errors),
        )
    new = {rank: v for rank, v in wanted.items() if rank not in recorded}
    counts = dict.fromkeys(choices(Outcome), 0)
    for outcome, *_ in new.values():
        counts[outcome] += 1
    change = None
    if new:
        change = log_change(
            session,
            ChangeAction.outcomes_recorded,
            key_name,
            map_id=m.id,
            target_list_id=campaign.id,
            detail={"file": file, "n_recorded": len(new), **counts, **(source or {})},
        )
        session.execute(
            TargetOutcome.__table__.insert(),
            [
                {
                    "target_list_id": campaign.id,
                    "rank": rank,
                    "outcome": outcome,
                    "exposure_hours": hours,
                    "z_spec": z,
                    "change_id": change.id,
                }
                for rank, (outcome, hours, z, _row) in sorted(new.items())
            ],
        )
        snapshot(session, m, change)
    return {
        "campaign_id": campaign.id,
        "change_id": change.id if change else None,
        "n_rows": len(frame),
        "n_recorded": len(new),
        "n_unchanged": len(wanted) - len(new),
        "recorded": counts,
    }


def outcomes_from_catalogue(
    session: Session, m: Map, campaign: TargetList, catalogue_id: int, key_name: str | None
) -> dict[str, Any]:
    """Outcomes from an ingested spectroscopic catalogue that carries the campaign's target
    ids (``source_id``): a secure redshift is ``secure``, an insecure one ``failed`` at the
    campaign's planned exposure for that target (the catalogue does not say the exposure).
    Rows of the catalogue that are not targets of the campaign are left alone."""
    cat = get_catalogue(session, catalogue_id)
    if cat.kind != "spectroscopic":
        raise InvalidInputError(
            f"catalogue {cat.id} is {cat.kind}; outcomes come from a spectroscopic catalogue",
            [RowError(None, "catalogue_id", None, "not a spectroscopic catalogue")],
        )
    targets = session.execute(
        select(Target.source_id, Target.extra).where(Target.target_list_id == campaign.id)
    ).all()
    planned = {str(s): (extra or {}).get("exposure_hours") for s, extra in targets}
    spectra = session.execute(
        select(Spectrum.row_index, Spectrum.source_id, Spectrum.secure, Spectrum.z_spec)
        .where(Spectrum.catalogue_id == cat.id, Spectrum.source_id.in_(list(planned)))
        .order_by(Spectrum.row_index)
    ).all()
    rows = []
    for _, source_id, secure, z in spectra:
        outcome = Outcome.secure if secure else Outcome.failed
        rows.append(
            {
                "target_id": str(source_id),
                "outcome": str(outcome),
                "exposure_hours": planned[str(source_id)],
                "z_spec": z if secure else None,
            }
        )
    frame = pd.DataFrame(rows, columns=list(_OUTCOME_COLUMNS))
    result = record_outcomes(
        session,
        m,
        campaign,
        frame,
        key_name,
        file=f"catalogue {cat.id} ({cat.name})",
        source={"catalogue_id": cat.id},
    )
    result["n_matched"] = len(rows)
    return result
