"""The outcomes of a campaign's targets: recorded from a table (CSV/FITS/JSON rows) or from
an ingested spectroscopic catalogue that carries the campaign's target ids, every row
checked before anything is written, each recording a logged change with a coverage
snapshot."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Map, Spectrum, Target, TargetList, TargetOutcome
from app.services.catalogues import get_catalogue
from app.services.errors import InvalidInputError, RowError
from app.services.followup import log_change, snapshot
from som.vocabulary import ChangeAction, Outcome, choices

#: How many row errors an outcome upload lists (all are counted).
MAX_LISTED_ERRORS = 50


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
