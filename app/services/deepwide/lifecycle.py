"""A deep/wide calibration's life: created from maps and catalogues in the ledger, queued
for (re)computation whenever a tied input changes, its inputs gathered from the ledger
and its n(z) computed by :mod:`som.deepwide` in a job (the package docstring says what is
used and why)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, object_session

from app.core.config import get_settings
from app.models import Calibration, Catalogue, Job, Map, utcnow
from app.schemas import CalibrationIn
from app.services import band_semantics, live, map_store
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, RowError
from app.services.jobs import JobContext, JobKind, register
from som import deepwide
from som.vocabulary import CalibrationStatus, JobStatus, MapStatus, TomoBinning

KIND = "calibrate_deepwide"

#: The catalogues a calibration ties: (attribute, what it is called in messages).
_CATALOGUES = (
    ("deep_catalogue_id", "deep catalogue"),
    ("wide_catalogue_id", "wide catalogue"),
    ("transfer_wide_catalogue_id", "transfer catalogue"),
    ("transfer_deep_catalogue_id", "transfer catalogue's deep side"),
)
_MAPS = (("deep_map_id", "deep map"), ("wide_map_id", "wide map"))


# ----------------------------------------------------------------------------- create
def bad_field(field: str, reason: str) -> InvalidInputError:
    return InvalidInputError(reason, [RowError(None, field, None, reason)])


def ready_map(session: Session, map_id: int, what: str) -> Map:
    m = session.get(Map, map_id)
    if m is None:
        raise NotFoundError(f"{what} {map_id} not found")
    if m.status != MapStatus.ready:
        raise ConflictError(f"{what} {map_id} is {m.status}, not ready")
    return m


def _check_bands(cat: Catalogue, m: Map, field: str, what: str, map_what: str) -> None:
    """The catalogue must carry every band the map reads, or its rows get no cell there."""
    wanted = map_store.map_bands(m)
    missing = [b for b in wanted if b not in cat.bands]
    if missing:
        raise bad_field(
            field,
            f"{what} {cat.id} does not match {map_what} {m.id}'s bands {wanted}: it lacks "
            f"{missing} (its bands: {list(cat.bands)})",
        )


def _photometric(session: Session, cat_id: int, field: str, what: str) -> Catalogue:
    cat = live.get(session, cat_id)
    if cat is None:
        gone = live.deleted_among(session, [cat_id])
        raise NotFoundError(live.how_to_restore(cat_id) if gone else f"{what} {cat_id} not found")
    if cat.kind != "photometric":
        raise bad_field(field, f"{what} {cat_id} is {cat.kind}; it must be photometric")
    return cat


def _has_photo_z(session: Session, cat_id: int) -> bool:
    n = session.scalar(
        text("SELECT count(z_phot) FROM sources WHERE catalogue_id = :c"), {"c": cat_id}
    )
    return bool(n)


def create(session: Session, req: CalibrationIn) -> tuple[Calibration, Job]:
    """Validate the request and add the calibration and its first job to the session (the
    caller commits, then starts the job). Everything checked here is cheap; what needs the
    whole computation (an empty bin, a bin without spectra) fails the job, with the reason
    on the calibration."""
    deep = ready_map(session, req.deep_map_id, "deep map")
    wide = ready_map(session, req.wide_map_id, "wide map")
    if deep.id == wide.id:
        raise bad_field("wide_map_id", "the deep map and the wide map must be two different maps")
    t_deep_id = req.transfer_deep_catalogue_id or req.deep_catalogue_id
    deep_cat = _photometric(session, req.deep_catalogue_id, "deep_catalogue_id", "deep catalogue")
    wide_cat = _photometric(session, req.wide_catalogue_id, "wide_catalogue_id", "wide catalogue")
    t_wide = _photometric(
        session, req.transfer_catalogue_id, "transfer_catalogue_id", "transfer catalogue"
    )
    t_deep = _photometric(
        session, t_deep_id, "transfer_deep_catalogue_id", "transfer catalogue's deep side"
    )
    _check_bands(deep_cat, deep, "deep_catalogue_id", "deep catalogue", "deep map")
    _check_bands(wide_cat, wide, "wide_catalogue_id", "wide catalogue", "wide map")
    _check_bands(t_wide, wide, "transfer_catalogue_id", "transfer catalogue", "wide map")
    _check_bands(
        t_deep, deep, "transfer_deep_catalogue_id", "transfer catalogue's deep side", "deep map"
    )
    if req.binning == TomoBinning.photoz:
        for cat, field in ((wide_cat, "wide_catalogue_id"), (t_wide, "transfer_catalogue_id")):
            if not _has_photo_z(session, cat.id):
                raise bad_field(
                    field, f"binning 'photoz' needs z_phot; catalogue {cat.id} has none"
                )
    z_edges = req.z_edges if req.z_edges is not None else list(map_store.z_edges(deep))
    params = {
        "deep_map_id": deep.id,
        "wide_map_id": wide.id,
        "deep_catalogue_id": deep_cat.id,
        "wide_catalogue_id": wide_cat.id,
        "transfer_wide_catalogue_id": t_wide.id,
        "transfer_deep_catalogue_id": t_deep.id,
        "bin_edges": [float(v) for v in req.bin_edges],
        "z_edges": [float(v) for v in z_edges],
        "n_realisations": req.n_realisations,
        "sample_variance": req.sample_variance,
        "random_state": req.random_state,
        "bin_conditioning": req.bin_conditioning,
        "allow_missing_transfer": req.allow_missing_transfer,
    }
    c = Calibration(
        name=(req.name or f"deep map {deep.id} / wide map {wide.id}")[:255],
        deep_map_id=deep.id,
        wide_map_id=wide.id,
        deep_catalogue_id=deep_cat.id,
        wide_catalogue_id=wide_cat.id,
        transfer_wide_catalogue_id=t_wide.id,
        transfer_deep_catalogue_id=t_deep.id,
        binning=str(req.binning),
        ensemble_method=str(req.ensemble_method),
        params=params,
        status=CalibrationStatus.queued.value,
        version=0,
    )
    session.add(c)
    session.flush()
    return c, _queue(session, c)


def _queue(session: Session, c: Calibration) -> Job:
    """A new computation job for ``c``, now its latest (in the caller's transaction)."""
    job = Job(
        kind=KIND,
        status=JobStatus.queued.value,
        progress=0.0,
        params={"calibration_id": c.id},
        attempts=0,
        max_attempts=get_settings().job_max_attempts,
    )
    session.add(job)
    session.flush()
    c.job_id = job.id
    c.status = CalibrationStatus.queued.value
    return job


def queue_for_catalogue(
    session: Session, catalogue: Catalogue, maps_by_position: set[int] | None = None
) -> list[int]:
    """Queue the recomputation of every calibration ``catalogue`` concerns (called by the
    ledger hooks in the ingest or delete transaction); the jobs queued. Spectra feed every
    calibration's p(z|c); a photometric catalogue concerns the calibrations that tie it,
    and those whose deep map is in ``maps_by_position`` (maps where spectra without
    photometry were matched again to sources on the sky: their cells may have moved).
    The ids as given (``params``) are compared, as a deleted catalogue's foreign keys are
    NULL by now."""
    moved = maps_by_position or set()
    jobs = []
    for c in session.scalars(select(Calibration).order_by(Calibration.id)):
        tied = {int(c.params.get(attr) or 0) for attr, _ in _CATALOGUES}
        if (
            catalogue.kind == "photometric"
            and catalogue.id not in tied
            and c.params.get("deep_map_id") not in moved
        ):
            continue
        if c.status == CalibrationStatus.queued and c.job_id is not None:
            waiting = session.scalar(select(Job.status).where(Job.id == c.job_id))
            if waiting == JobStatus.queued:
                continue  # its job has not started: it will read these rows
        jobs.append(_queue(session, c).id)
    return jobs


def recompute(session: Session, c: Calibration) -> Job:
    """Queue a recomputation by hand (the caller commits and starts the job)."""
    return _queue(session, c)


def input_warnings(session: Session, c: Calibration) -> list[str]:
    """What a calibration's response and ``show`` warn of (not a refusal): tied catalogues
    whose photometry was read differently in a band they share (Galactic extinction, or the
    magnitude system taken for the band: :func:`band_semantics.photometry_mismatch`). The transfer
    catalogue is compared with the side it stands for (wide with wide, its deep side with
    the deep catalogue), each with the catalogue its map was trained on, and deep with
    wide where they share a band."""
    cats: dict[str, Catalogue] = {}
    for attr, _what in _CATALOGUES:
        cat_id = getattr(c, attr)
        cat = session.get(Catalogue, cat_id) if cat_id is not None else None
        if cat is not None:
            cats[attr] = cat
    for attr, map_attr in (("deep_training", "deep_map_id"), ("wide_training", "wide_map_id")):
        m = session.get(Map, getattr(c, map_attr)) if getattr(c, map_attr) else None
        if m is not None and m.training_catalogue_id is not None:
            cat = session.get(Catalogue, m.training_catalogue_id)
            if cat is not None:
                cats[attr] = cat
    names = dict(_CATALOGUES) | {
        "deep_training": "the deep map's training catalogue",
        "wide_training": "the wide map's training catalogue",
    }
    pairs = (
        ("transfer_wide_catalogue_id", "wide_catalogue_id"),
        ("transfer_deep_catalogue_id", "deep_catalogue_id"),
        ("deep_catalogue_id", "deep_training"),
        ("transfer_deep_catalogue_id", "deep_training"),
        ("wide_catalogue_id", "wide_training"),
        ("transfer_wide_catalogue_id", "wide_training"),
        ("deep_catalogue_id", "wide_catalogue_id"),
    )
    out: list[str] = []
    seen: set[frozenset[int]] = set()
    for a, b in pairs:
        ca, cb = cats.get(a), cats.get(b)
        if ca is None or cb is None or ca.id == cb.id or frozenset((ca.id, cb.id)) in seen:
            continue
        seen.add(frozenset((ca.id, cb.id)))
        out += band_semantics.photometry_mismatch(
            ca.summary, cb.summary, f"{names[a]} {ca.id}", f"{names[b]} {cb.id}"
        )
    return out


# ----------------------------------------------------------------------------- inputs
def pair_transfer(deep_ids: np.ndarray, wide_ids: np.ndarray) -> np.ndarray:
    """For each transfer row (its ``source_id`` in ``wide_ids``) the index of its deep
    row in ``deep_ids``, or -1 when no deep row has that id.

    A deep id met once takes every transfer row of that id (the injections of one galaxy);
    a deep id met k > 1 times needs exactly k transfer rows of that id, paired in row
    order (a 1:1 pair of catalogues that repeats ids). Anything else is ambiguous: an
    error naming the id."""
    d = np.asarray(deep_ids, dtype=object).astype(str)
    w = np.asarray(wide_ids, dtype=object).astype(str)
    out = np.full(len(w), -1, dtype=np.int64)
    if len(d) == 0 or len(w) == 0:
        return out
    d_order = np.argsort(d, kind="stable")
    uniq, first, d_count = np.unique(d[d_order], return_index=True, return_counts=True)
    pos = np.clip(np.searchsorted(uniq, w), 0, len(uniq) - 1)
    found = uniq[pos] == w
    # occurrence of each transfer row among the transfer rows of its id, in row order
    w_order = np.argsort(w, kind="stable")
    w_sorted = w[w_order]
    starts = np.r_[0, np.flatnonzero(w_sorted[1:] != w_sorted[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(w_sorted)])
    occ = np.empty(len(w), dtype=np.int64)
    occ[w_order] = np.arange(len(w)) - np.repeat(starts, sizes)
    w_count = np.empty(len(w), dtype=np.int64)
    w_count[w_order] = np.repeat(sizes, sizes)
    many = found & (d_count[pos] > 1)
    bad = many & (w_count != d_count[pos])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"source id {w[i]!r} is on {int(d_count[pos[i]])} rows of the transfer "
            f"catalogue's deep side but {int(w_count[i])} rows of the transfer catalogue: "
            "rows cannot be paired (give each deep galaxy one deep row, or pair rows 1:1)"
        )
    one = found & ~many
    out[one] = d_order[first[pos[one]]]
    out[many] = d_order[first[pos[many]] + occ[many]]
    return out


def _rows(session: Session, cat_id: int, map_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """source_id, cell on the map (-1: none) and z_phot of a photometric catalogue's rows,
    in row order."""
    rows = session.execute(
        text(
            "SELECT s.source_id, a.cell, s.z_phot FROM sources s LEFT JOIN assignments a "
            "ON a.object_id = s.id AND a.catalogue_id = s.catalogue_id AND a.map_id = :m "
            "WHERE s.catalogue_id = :c ORDER BY s.row_index"
        ),
        {"m": map_id, "c": cat_id},
    ).all()
    ids = np.array([r[0] for r in rows], dtype=object)
    num = np.array([(r[1], r[2]) for r in rows], dtype=np.float64).reshape(-1, 2)
    cells = np.where(np.isnan(num[:, 0]), -1, num[:, 0]).astype(np.int64)
    return ids, cells, num[:, 1]


def _spectra(session: Session, map_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell on the map, redshift and source_id of every secure spectrum assigned to it."""
    rows = session.execute(
        text(
            "SELECT a.cell, p.z_spec, p.source_id FROM assignments a JOIN spectra p "
            "ON p.id = a.object_id AND p.catalogue_id = a.catalogue_id "
            "WHERE a.map_id = :m AND p.secure = :t ORDER BY p.catalogue_id, p.row_index"
        ),
        {"m": map_id, "t": True},
    ).all()
    num = np.array([(r[0], r[1]) for r in rows], dtype=np.float64).reshape(-1, 2)
    ids = np.array([r[2] for r in rows], dtype=object)
    return num[:, 0].astype(np.int64), num[:, 1], ids


def missing_inputs(c: Calibration) -> list[str]:
    """The tied maps and catalogues deleted since the calibration was made (a catalogue
    deleted but not purged keeps its foreign key: it is out of the ledger all the same)."""
    session = object_session(c)
    held = (
        live.deleted_among(session, (getattr(c, a) for a, _ in _CATALOGUES)) if session else set()
    )
    out = []
    for attr, what in (*_MAPS, *_CATALOGUES):
        given = c.params.get(attr)
        if given is not None and getattr(c, attr) is None:
            out.append(f"{what} {given} was deleted")
        elif attr.endswith("catalogue_id") and getattr(c, attr) in held:
            out.append(f"{what} {given} was deleted (POST /v1/catalogues/{given}/restore)")
    return out


@dataclass
class _Inputs:
    kwargs: dict[str, Any]  # deep_wide_nz's arguments
    transfer_ids: np.ndarray
    counts: dict[str, int]


def _gather(session: Session, c: Calibration) -> _Inputs:
    gone = missing_inputs(c)
    if gone:
        raise InvalidInputError(f"calibration {c.id} cannot be computed: {'; '.join(gone)}")
    deep = ready_map(session, c.deep_map_id, "deep map")  # type: ignore[arg-type]
    wide = ready_map(session, c.wide_map_id, "wide map")  # type: ignore[arg-type]
    p = c.params
    nd, nw = deep.n_rows * deep.n_cols, wide.n_rows * wide.n_cols
    w_ids, w_cells, w_zp = _rows(session, c.wide_catalogue_id, wide.id)  # type: ignore[arg-type]
    t_ids, t_wide, t_zp = _rows(session, c.transfer_wide_catalogue_id, wide.id)  # type: ignore[arg-type]
    d_ids, d_cells, _ = _rows(session, c.transfer_deep_catalogue_id, deep.id)  # type: ignore[arg-type]
    pair = pair_transfer(d_ids, t_ids)
    if len(t_ids) and not (pair >= 0).any():
        raise InvalidInputError(
            f"no row of transfer catalogue {c.transfer_wide_catalogue_id} has the source id "
            f"of a row of catalogue {c.transfer_deep_catalogue_id} (its deep side): "
            "transfer rows name the deep galaxy they inject by source_id"
        )
    t_deep = np.where(pair >= 0, d_cells[np.maximum(pair, 0)], -1)
    # Each deep galaxy weighs one in total, however many times it was injected.
    per_deep = np.bincount(pair[pair >= 0], minlength=len(d_ids))
    t_w = np.where(pair >= 0, 1.0 / np.maximum(per_deep[np.maximum(pair, 0)], 1), 0.0)
    s_cells, s_z, s_ids = _spectra(session, deep.id)
    z_edges = np.asarray(p["z_edges"], dtype=np.float64)
    bin_edges = np.asarray(p["bin_edges"], dtype=np.float64)
    n_bins = len(bin_edges) - 1
    try:
        kwargs: dict[str, Any] = dict(
            transfer_deep_cells=t_deep,
            transfer_wide_cells=t_wide,
            spec_deep_cells=s_cells,
            spec_z=s_z,
            wide_cells=w_cells,
            n_deep=nd,
            n_wide=nw,
            z_edges=z_edges,
            transfer_weights=t_w,
            n_bins=n_bins,
            allow_missing_transfer=bool(p.get("allow_missing_transfer", False)),
        )
        if c.binning == TomoBinning.photoz:
            transfer_bins = deepwide.assign_bins(t_zp, bin_edges)
            kwargs.update(
                wide_bins=deepwide.assign_bins(w_zp, bin_edges), transfer_bins=transfer_bins
            )
        else:
            T = deepwide.transfer_matrix(t_deep, t_wide, nd, nw, t_w)
            cz = deepwide.redshift_in_cells(s_cells, s_z, nd, z_edges)
            cell_bins = deepwide.assign_bins(
                deepwide.wide_cell_redshift(T, cz, c.binning), bin_edges
            )
            transfer_bins = np.where(t_wide >= 0, cell_bins[np.maximum(t_wide, 0)], -1)
            kwargs.update(cell_bins=cell_bins)
        if p.get("bin_conditioning", True) and len(s_ids):
            try:
                kwargs["spec_bin_fractions"] = deepwide.spec_bin_fractions(
                    s_ids.astype(str), t_ids.astype(str), transfer_bins, n_bins, t_w
                )
            except ValueError as exc:
                raise ValueError(
                    f"bin conditioning: {exc} (a spectrum's source_id must name an injected "
                    "deep galaxy; create the calibration with bin_conditioning false to use "
                    "spectra of galaxies that were not injected)"
                ) from exc
    except ValueError as exc:
        raise InvalidInputError(f"calibration {c.id}: {exc}") from exc
    counts = {
        "n_wide": len(w_ids),
        "n_wide_assigned": int((w_cells >= 0).sum()),
        "n_transfer": len(t_ids),
        "n_transfer_paired": int((pair >= 0).sum()),
        "n_transfer_used": int(((t_deep >= 0) & (t_wide >= 0)).sum()),
        "n_spectra": len(s_z),
        "n_deep_cells": nd,
        "n_wide_cells": nw,
    }
    return _Inputs(kwargs, t_ids.astype(str), counts)


# ----------------------------------------------------------------------------- compute
def compute(
    session: Session, c: Calibration, progress: Callable[[float, str], None] | None = None
) -> tuple[dict[str, Any], bytes]:
    """The n(z) of ``c`` from the ledger as it is: (summary, result bytes). Raises
    InvalidInputError naming the problem (an empty bin, a bin without spectra, ...).
    ``progress(fraction, message)`` hears of each step (a job's progress)."""
    report = progress or (lambda fraction, message: None)
    inputs = _gather(session, c)
    p = c.params
    n_real = int(p.get("n_realisations", 0))
    report(
        0.4,
        f"n(z) of {len(p['bin_edges']) - 1} bins"
        + (f" and {n_real} {c.ensemble_method} realisations" if n_real >= 2 else ""),
    )
    try:
        if n_real >= 2:
            extra: dict[str, Any] = {}
            if c.ensemble_method == "bootstrap_deep":
                extra["transfer_ids"] = inputs.transfer_ids
            ens = deepwide.nz_ensemble(
                **inputs.kwargs,
                n_realisations=n_real,
                method=c.ensemble_method,
                random_state=p.get("random_state"),
                sample_variance=float(p.get("sample_variance", 1.0)),
                **extra,
            )
            fid = ens.fiducial
        else:
            ens = None
            fid = deepwide.deep_wide_nz(**inputs.kwargs)
    except ValueError as exc:
        raise InvalidInputError(f"calibration {c.id}: {exc}") from exc
    cz = deepwide.redshift_in_cells(
        inputs.kwargs["spec_deep_cells"],
        inputs.kwargs["spec_z"],
        inputs.kwargs["n_deep"],
        inputs.kwargs["z_edges"],
    )
    arrays = {
        "z_edges": fid.z_edges,
        "bin_edges": np.asarray(p["bin_edges"], dtype=np.float64),
        "nz": fid.nz,
        "mean_z": fid.mean_z,
        "width": fid.width,
        "weight": fid.weight,
        "n_eff": fid.n_eff,
        "no_spec_fraction": fid.no_spec_fraction,
        "deep_occupation": fid.deep_occupation,
        "has_spectra": cz.has_spectra,
    }
    if ens is not None:
        arrays.update(realisations=ens.nz, real_mean_z=ens.mean_z, real_width=ens.width)
    report(0.85, "summarising")
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    summary = _summary(fid, ens, arrays["bin_edges"], inputs.counts, cz)
    return summary, buf.getvalue()


def _num(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def _summary(fid, ens, bin_edges, counts, cz) -> dict[str, Any]:
    lo = hi = std = wstd = None
    if ens is not None:
        lo, hi = ens.mean_z_interval()
        std, wstd = ens.mean_z_std, ens.width_std
    bins = []
    for b in range(fid.n_bins):
        bins.append(
            {
                "bin": b,
                "z_lo": float(bin_edges[b]),
                "z_hi": float(bin_edges[b + 1]),
                "mean_z": _num(fid.mean_z[b]),
                "mean_z_std": None if std is None else _num(std[b]),
                "mean_z_68_low": None if lo is None else _num(lo[b]),
                "mean_z_68_high": None if hi is None else _num(hi[b]),
                "width": _num(fid.width[b]),
                "width_std": None if wstd is None else _num(wstd[b]),
                "n_galaxies": int(fid.n_galaxies[b]),
                "weight": float(fid.weight[b]),
                "n_eff": float(fid.n_eff[b]),
                "no_spec_fraction": _num(fid.no_spec_fraction[b]),
                "no_transfer_fraction": _num(fid.no_transfer_fraction[b]),
            }
        )
    counts = {**counts, "n_deep_cells_with_spectra": int(cz.has_spectra.sum())}
    return {"bins": bins, "counts": counts}


def _fail(session: Session, job_id: int, reason: str) -> None:
    """The job failed: so did the calibration it is the latest job of (a failure of an
    older job changes nothing). The n(z) of other inputs is not kept: it would be served
    as if it were this one's."""
    session.execute(
        update(Calibration)
        .where(Calibration.job_id == job_id)
        .values(status="failed", error=reason[:4000], summary=None, result=None)
        .execution_options(synchronize_session=False)
    )


def _requeue(session: Session, job_id: int, reason: str) -> None:
    session.execute(
        update(Calibration)
        .where(Calibration.job_id == job_id)
        .values(status="queued")
        .execution_options(synchronize_session=False)
    )


def _run(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    cal_id = int(params["calibration_id"])
    with ctx.factory() as session:
        c = session.get(Calibration, cal_id)
        if c is None:
            return {"calibration_id": cal_id, "skipped": "the calibration was deleted"}
        if c.job_id != ctx.job_id:
            return {"calibration_id": cal_id, "superseded_by": c.job_id}
        c.status = CalibrationStatus.computing.value
        session.commit()
        ctx.progress(0.05, "reading the maps' assignments", force=True)
        summary, blob = compute(
            session, c, lambda f, msg: ctx.progress(0.05 + 0.85 * f, msg, force=True)
        )
    ctx.progress(0.9, "storing the n(z)", force=True)
    with ctx.factory() as session:
        c = session.get(Calibration, cal_id)
        if c is None:
            return {"calibration_id": cal_id, "skipped": "the calibration was deleted"}
        if c.job_id != ctx.job_id:
            # Inputs changed while this ran; the newer job computes and stores.
            return {"calibration_id": cal_id, "superseded_by": c.job_id}
        ctx.fence(session)
        c.summary = summary
        c.result = blob
        c.status = CalibrationStatus.ready.value
        c.error = None
        c.version = (c.version or 0) + 1
        c.computed_at = utcnow()
        session.commit()
        version = c.version
    return {"calibration_id": cal_id, "version": version, "bins": len(summary["bins"])}


register(JobKind(name=KIND, run=_run, on_failure=_fail, on_requeue=_requeue))
