"""The success model of a map: how likely a target is to give a secure redshift at its
magnitude (and in its cell), learned from two sources of attempts.

* **Recorded outcomes** of the map's campaigns: secure or failed (a target not observed
  says nothing about success), at its source's magnitude in the band the model learns in
  (``band``, by default the map's), whatever band its campaign was planned in; one whose
  magnitude in that band is unknown is left out and counted, never taken in another band.
* **Archival spectra** already in the ledger: a spectrum whose quality flag makes it secure
  is a success at its magnitude, one whose flag does not (zCOSMOS classes 1-2 and 9, say:
  the ledger's ``not_secure_quality``) a failed attempt. A star, or an object below the
  catalogue's ``z_min``, is neither (its redshift is not what was sought). Only catalogues
  that record at least one failure are used: a compilation of secure redshifts only says
  nothing of the failure rate and would pull the curve to 1. A spectrum that is also a
  recorded outcome (its id is an observed target's) counts once, as the outcome. The
  magnitude is the spectrum's own in the map's magnitude band or, for a spectrum without
  photometry (the zCOSMOS compilation), the one of the photometric source it was matched
  to on the sky. Spectra outside what the map was trained on are left out (their cell
  is not trusted for the per-cell offsets).

**Weighting.** A recorded outcome counts 1; an archival spectrum ``archival_weight``
(default :data:`ARCHIVAL_WEIGHT` = 0.5): it was taken with another instrument and
exposure, so it shapes the curve but is not let to outweigh what this programme measured
at its own depth, and the covariance (the inverse of the weighted Hessian) claims half the
information per archival spectrum. ``archival=False`` (or weight 0) fits the outcomes only.

Both sources read spectra through the map's assignments, so a deleted catalogue's spectra
do not teach anything (:mod:`app.services.live`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from app.models import Catalogue, Map, Target, TargetList, TargetOutcome
from app.services import map_store, phot_store
from app.services.errors import InvalidInputError, RowError
from app.services.ingest.validation import DEFAULT_Z_MIN, evaluate_secure
from app.services.ledger import DEFAULT_MATCH_RADIUS_ARCSEC
from som import calibration as cal
from som.calibration.followup import ExposureModel, SuccessModel
from som.vocabulary import Outcome

#: What one archival spectrum counts for against one recorded outcome (see the module).
ARCHIVAL_WEIGHT = 0.5


@dataclass(frozen=True)
class Learned:
    """A fitted model and what it was fitted from."""

    model: SuccessModel
    n_recorded: int
    n_recorded_secure: int
    n_archival: int
    n_archival_secure: int
    archival_weight: float
    archival_catalogues: list[int]
    mag_band: str
    # outcomes (secure or failed) and archival attempts whose magnitude in ``mag_band`` is
    # unknown: left out of the fit, never taken in another band
    n_recorded_no_mag: int = 0
    n_archival_no_mag: int = 0


def observed_targets(session: Session, m: Map, band: str | None = None) -> pd.DataFrame:
    """Every target of the map's campaigns with an outcome: where it is, its magnitude,
    what became of it and the exposure it got. ``mag`` is the magnitude the campaign was
    planned with (in the campaign's band, ``campaign_band``), unless ``band`` is given:
    then it is the target's magnitude in ``band`` (:func:`_mags_in_band`), NaN where that
    is unknown, so that magnitudes of campaigns planned in different bands never mix."""
    rows = session.execute(
        select(
            Target.catalogue_id,
            Target.source_id,
            Target.cell,
            Target.mag,
            TargetOutcome.outcome,
            TargetOutcome.exposure_hours,
            TargetList.params,
            Target.extra,
        )
        .join(
            TargetOutcome,
            (TargetOutcome.target_list_id == Target.target_list_id)
            & (TargetOutcome.rank == Target.rank),
        )
        .join(TargetList, TargetList.id == Target.target_list_id)
        .where(TargetList.map_id == m.id)
    ).all()
    columns = ["catalogue_id", "source_id", "cell", "mag", "outcome", "exposure_hours"]
    frame = pd.DataFrame.from_records([tuple(r)[:6] for r in rows], columns=columns)
    frame["mag"] = pd.to_numeric(frame["mag"], errors="coerce").astype(np.float64)
    frame["campaign_band"] = [str((r[6] or {}).get("mag_band") or "") or None for r in rows]
    if band is not None and len(frame):
        frame["mag"] = _mags_in_band(session, frame, [r[7] for r in rows], band)
    return frame


def _mags_in_band(
    session: Session, seen: pd.DataFrame, extras: list[dict[str, Any] | None], band: str
) -> np.ndarray:
    """Each observed target's magnitude in ``band``: the list's snapshot of its source's
    (``mag_<band>`` of the target's ``extra``, read from the ledger when it was planned),
    else its source's in the ledger now (the row of its catalogue with its source id), else
    the magnitude the campaign planned it with when the campaign was planned in ``band``;
    NaN when none of these knows it. Never a magnitude in another band."""
    key = f"mag_{band}"
    out = np.full(len(seen), np.nan)
    for k, extra in enumerate(extras):
        snap = (extra or {}).get(key)
        if isinstance(snap, int | float) and math.isfinite(float(snap)):
            out[k] = float(snap)
    missing = np.flatnonzero(~np.isfinite(out))
    if len(missing):
        out[missing] = _ledger_mags(session, seen.iloc[missing], band)
    planned = seen["mag"].to_numpy(dtype=np.float64)
    planned_in = (seen["campaign_band"] == band).to_numpy()
    still = ~np.isfinite(out) & planned_in
    out[still] = planned[still]
    return out


def _ledger_mags(session: Session, targets: pd.DataFrame, band: str) -> np.ndarray:
    """The ``band`` magnitude of each target's source in the ledger (its catalogue's first
    row with its source id), NaN where there is none or it has no magnitude in ``band``."""
    out = np.full(len(targets), np.nan)
    cat_ids = targets["catalogue_id"].to_numpy(dtype=np.int64)
    src_ids = targets["source_id"].astype(str).to_numpy()
    for cid in np.unique(cat_ids):
        at = np.flatnonzero(cat_ids == cid)
        wanted = sorted(set(src_ids[at]))
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), 500):
            rows = session.execute(
                text(
                    "SELECT source_id, mags FROM sources WHERE catalogue_id = :c "
                    "AND source_id IN :ids ORDER BY row_index"
                ).bindparams(bindparam("ids", expanding=True)),
                {"c": int(cid), "ids": wanted[start : start + 500]},
            ).all()
            for sid, blob in rows:
                found.setdefault(str(sid), blob)
        hit = [k for k in at if src_ids[k] in found]
        if hit:
            out[hit] = phot_store.mags_by_catalogue(
                session, np.full(len(hit), cid), [found[src_ids[k]] for k in hit], [band]
            )[:, 0]
    return out


def archival_attempts(
    session: Session, m: Map, band: str, skip_ids: set[str] | None = None
) -> pd.DataFrame:
    """The spectra assigned to the map that are attempts: ``catalogue_id``, ``source_id``,
    ``cell``, ``mag`` (in ``band``; NaN when neither the spectrum nor a source on the sky
    has one) and ``secure`` (see the module for what counts)."""
    rows = session.execute(
        text(
            "SELECT p.catalogue_id, p.source_id, a.cell, p.z_spec, p.secure, p.quality, "
            "p.quality_raw, p.ra, p.dec, p.mags FROM assignments a JOIN spectra p "
            "ON p.id = a.object_id AND p.catalogue_id = a.catalogue_id "
            "WHERE a.map_id = :m AND a.outside = :f ORDER BY p.catalogue_id, p.row_index"
        ),
        {"m": m.id, "f": False},
    ).all()
    columns = ["catalogue_id", "source_id", "cell", "mag", "secure"]
    if not rows:
        return pd.DataFrame(columns=columns)
    cat_ids = np.array([r[0] for r in rows], dtype=np.int64)
    z = np.array([r[3] for r in rows], dtype=np.float64)
    secure = np.array([bool(r[4]) for r in rows])
    quality = np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=np.float64)
    quality_raw = np.array(["" if r[6] is None else str(r[6]) for r in rows], dtype=object)
    attempt = np.zeros(len(rows), dtype=bool)
    for cid in np.unique(cat_ids):
        at = cat_ids == cid
        cat = session.get(Catalogue, int(cid))
        rule = (cat.secure_rule if cat else None) or {"kind": "all"}
        z_min = float(((cat.options or {}) if cat else {}).get("z_min", DEFAULT_Z_MIN))
        if rule.get("kind") == "column":
            quality_ok = secure[at]  # the secure column itself is the only flag kept
        else:
            quality_ok = evaluate_secure(int(at.sum()), rule, quality[at], quality_raw[at], None)
        failed = ~secure[at] & ~quality_ok & (z[at] >= z_min)
        # A catalogue without a failure tells nothing of the failure rate (see the module).
        if failed.any():
            attempt[np.flatnonzero(at)] = secure[at] | failed
    ids = np.array([str(r[1]) for r in rows], dtype=object)
    if skip_ids:
        attempt &= ~np.isin(ids, list(skip_ids))
    keep = np.flatnonzero(attempt)
    mags = phot_store.mags_by_catalogue(session, cat_ids[keep], [rows[k][9] for k in keep], [band])[
        :, 0
    ]
    ra = np.array([np.nan if rows[k][7] is None else rows[k][7] for k in keep], dtype=np.float64)
    dec = np.array([np.nan if rows[k][8] is None else rows[k][8] for k in keep], dtype=np.float64)
    lost = ~np.isfinite(mags)
    if lost.any():
        mags[lost] = _source_mags(session, m, ra[lost], dec[lost], band)
    return pd.DataFrame(
        {
            "catalogue_id": cat_ids[keep],
            "source_id": ids[keep],
            "cell": np.array([rows[k][2] for k in keep], dtype=np.int64),
            "mag": mags,
            "secure": secure[keep],
        }
    )


def _source_mags(
    session: Session, m: Map, ra: np.ndarray, dec: np.ndarray, band: str
) -> np.ndarray:
    """The ``band`` magnitude of the photometric source nearest each position (within the
    ledger's match radius), NaN where none: what a spectrum without photometry was placed
    by."""
    from scipy.spatial import cKDTree

    out = np.full(len(ra), np.nan)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return out
    rows = session.execute(
        text(
            "SELECT s.ra, s.dec, s.catalogue_id, s.mags FROM assignments a JOIN sources s "
            "ON s.id = a.object_id AND s.catalogue_id = a.catalogue_id "
            "WHERE a.map_id = :m AND s.ra IS NOT NULL AND s.dec IS NOT NULL"
        ),
        {"m": m.id},
    ).all()
    if not rows:
        return out
    pos = phot_store.float_rows([r[:3] for r in rows], 3)
    src_mag = phot_store.mags_by_catalogue(session, pos[:, 2], [r[3] for r in rows], [band])[:, 0]

    def unit(r: np.ndarray, d: np.ndarray) -> np.ndarray:
        r, d = np.radians(r), np.radians(d)
        return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])

    chord = 2.0 * math.sin(math.radians(DEFAULT_MATCH_RADIUS_ARCSEC / 3600.0) / 2.0)
    dist, idx = cKDTree(unit(pos[:, 0], pos[:, 1])).query(
        unit(ra[ok], dec[ok]), k=1, distance_upper_bound=chord
    )
    hit = np.isfinite(dist)
    where = np.flatnonzero(ok)[hit]
    out[where] = src_mag[idx[hit]]
    return out


def learning_band(m: Map, band: str | None) -> str:
    """The band the success model learns in: ``band`` (one of the map's, or an alias of
    one; a 422 naming ``band`` otherwise), by default the map's magnitude band."""
    try:
        return map_store.mag_band(m, band)
    except InvalidInputError as exc:
        reason = str(exc)
        raise InvalidInputError(reason, [RowError(None, "band", None, reason)]) from exc


def learn(
    session: Session,
    m: Map,
    *,
    archival: bool = True,
    archival_weight: float = ARCHIVAL_WEIGHT,
    band: str | None = None,
) -> Learned:
    """The success model of the map from its recorded outcomes and (unless ``archival`` is
    False) the archival spectra, weighted as the module says, in one magnitude band:
    ``band``, by default the map's. Every outcome's magnitude is its source's in that band
    (whatever band its campaign was planned in); one without a magnitude in the band is
    left out and counted (``n_recorded_no_mag``), as is an archival spectrum."""
    if not (math.isfinite(archival_weight) and 0.0 <= archival_weight <= 1.0):
        reason = f"archival_weight must lie in 0..1, got {archival_weight!r}"
        raise InvalidInputError(reason, [RowError(None, "archival_weight", None, reason)])
    band = learning_band(m, band)
    seen = observed_targets(session, m, band)
    seen = seen[seen["outcome"] != str(Outcome.not_observed)]
    # A spectrum that is an outcome counts once, as the outcome, even one left out here.
    outcome_ids = set(seen["source_id"].astype(str))
    known = np.isfinite(seen["mag"].to_numpy(dtype=np.float64))
    n_recorded_no_mag = int((~known).sum())
    seen = seen[known]
    rec_secure = (seen["outcome"] == str(Outcome.secure)).to_numpy()
    parts_mag = [seen["mag"].to_numpy(dtype=np.float64)]
    parts_ok = [rec_secure]
    parts_cell = [seen["cell"].to_numpy(dtype=np.int64)]
    parts_w = [np.ones(len(seen))]
    arch = pd.DataFrame(columns=["catalogue_id", "mag", "secure", "cell"])
    n_archival_no_mag = 0
    if archival and archival_weight > 0:
        arch = archival_attempts(session, m, band, outcome_ids)
        arch_known = np.isfinite(arch["mag"].to_numpy(dtype=np.float64))
        n_archival_no_mag = int((~arch_known).sum())
        arch = arch[arch_known]
        parts_mag.append(arch["mag"].to_numpy(dtype=np.float64))
        parts_ok.append(arch["secure"].to_numpy(dtype=bool))
        parts_cell.append(arch["cell"].to_numpy(dtype=np.int64))
        parts_w.append(np.full(len(arch), archival_weight))
    model = cal.fit_success_model(
        np.concatenate(parts_mag),
        np.concatenate(parts_ok).astype(bool),
        np.concatenate(parts_cell),
        m.n_rows * m.n_cols,
        weights=np.concatenate(parts_w),
    )
    arch_secure = arch["secure"].to_numpy(dtype=bool)
    return Learned(
        model=model,
        n_recorded=len(seen),
        n_recorded_secure=int(rec_secure.sum()),
        n_archival=len(arch),
        n_archival_secure=int(arch_secure.sum()),
        archival_weight=float(archival_weight) if archival else 0.0,
        archival_catalogues=sorted({int(c) for c in arch["catalogue_id"]}),
        mag_band=band,
        n_recorded_no_mag=n_recorded_no_mag,
        n_archival_no_mag=n_archival_no_mag,
    )


def success_model(session: Session, m: Map, **options: Any) -> SuccessModel:
    return learn(session, m, **options).model


def success_summary(
    session: Session, m: Map, exposure: ExposureModel, **options: Any
) -> dict[str, Any]:
    learned = learn(session, m, **options)
    model = learned.model
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
        "mag_band": learned.mag_band,
        "n_recorded": learned.n_recorded,
        "n_recorded_no_mag": learned.n_recorded_no_mag,
        "n_archival_no_mag": learned.n_archival_no_mag,
        "n_recorded_secure": learned.n_recorded_secure,
        "n_archival": learned.n_archival,
        "n_archival_secure": learned.n_archival_secure,
        "archival_weight": learned.archival_weight,
        "archival_catalogues": learned.archival_catalogues,
        "exposure": exposure.as_dict(),
        "curve": curve.to_dict(orient="records"),
    }
