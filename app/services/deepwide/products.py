"""What a computed deep/wide calibration gives: its description, the stored n(z) as arrays,
JSON, files (qp, SACC, 2pt FITS) and a figure, and the deep-field targets ranked by the
weight their cells carry in the wide n(z)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from app.models import Calibration
from app.services import ledger, map_store, nz_export
from app.services import targets as target_service
from app.services.deepwide.lifecycle import bad_field, input_warnings, missing_inputs, ready_map
from app.services.errors import ConflictError, NotFoundError
from som import nz_formats
from som.vocabulary import CalibrationStatus


# ----------------------------------------------------------------------------- reads
def get(session: Session, cal_id: int) -> Calibration:
    c = session.get(Calibration, cal_id)
    if c is None:
        raise NotFoundError(f"calibration {cal_id} not found")
    return c


def list_all(session: Session) -> list[Calibration]:
    return list(session.scalars(select(Calibration).order_by(Calibration.id)))


def describe(c: Calibration) -> dict[str, Any]:
    """What ``GET /v1/calibrations/{id}`` answers."""
    summary = c.summary or {}
    return {
        "id": c.id,
        "name": c.name,
        "deep_map_id": c.deep_map_id,
        "wide_map_id": c.wide_map_id,
        "deep_catalogue_id": c.deep_catalogue_id,
        "wide_catalogue_id": c.wide_catalogue_id,
        "transfer_catalogue_id": c.transfer_wide_catalogue_id,
        "transfer_deep_catalogue_id": c.transfer_deep_catalogue_id,
        "binning": c.binning,
        "ensemble_method": c.ensemble_method,
        "params": c.params,
        "status": c.status,
        "error": c.error,
        "missing": missing_inputs(c),
        "warnings": input_warnings(session, c) if (session := object_session(c)) else [],
        "job_id": c.job_id,
        "version": c.version or 0,
        "created_at": c.created_at,
        "computed_at": c.computed_at,
        "bins": summary.get("bins"),
        "counts": summary.get("counts"),
    }


def delete(session: Session, c: Calibration) -> None:
    session.delete(c)


@dataclass
class Result:
    """The stored n(z) of a calibration, as arrays."""

    calibration: Calibration
    arrays: dict[str, np.ndarray]

    @property
    def names(self) -> list[str]:
        return [f"source_{b}" for b in range(self.arrays["nz"].shape[0])]

    @property
    def realisations(self) -> np.ndarray | None:
        return self.arrays.get("realisations")


def result(session: Session, c: Calibration) -> Result:
    """The last computed n(z): 409 naming why there is none (or why it cannot be used)."""
    gone = missing_inputs(c)
    if gone:
        raise ConflictError(f"calibration {c.id} cannot be used: {'; '.join(gone)}")
    if c.result is None:
        if c.status == CalibrationStatus.failed:
            raise ConflictError(f"calibration {c.id} failed: {c.error}")
        raise ConflictError(f"calibration {c.id} is {c.status}: no n(z) yet; follow job {c.job_id}")
    with np.load(io.BytesIO(c.result)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return Result(c, arrays)


def _floats(a: np.ndarray) -> list:
    return np.where(np.isfinite(a), a, np.nan).tolist()


def nz_answer(res: Result, include_realisations: bool) -> dict[str, Any]:
    a, c = res.arrays, res.calibration
    real = res.realisations
    return {
        "calibration_id": c.id,
        "status": c.status,
        "version": c.version,
        "computed_at": c.computed_at,
        "names": res.names,
        "z_edges": a["z_edges"].tolist(),
        "bin_edges": a["bin_edges"].tolist(),
        "nz": _floats(a["nz"]),
        "nz_std": None if real is None else _floats(np.nanstd(real, axis=0, ddof=1)),
        "realisations": _floats(real) if include_realisations and real is not None else None,
        "mean_z": _floats(a["mean_z"]),
        "mean_z_std": None
        if real is None
        else _floats(np.nanstd(a["real_mean_z"], axis=0, ddof=1)),
        "n_eff": a["n_eff"].tolist(),
        "no_spec_fraction": _floats(a["no_spec_fraction"]),
    }


def ensemble(res: Result) -> nz_formats.NzEnsemble:
    """The n(z) and its realisations as the formats' container (qp, SACC, 2pt FITS)."""
    a, c = res.arrays, res.calibration
    return nz_formats.NzEnsemble(
        z_edges=a["z_edges"],
        fiducial=a["nz"],
        realisations=res.realisations,
        names=res.names,
        n_eff=a["n_eff"],
        metadata={
            "calibration_id": c.id,
            "version": c.version,
            "computed_at": c.computed_at.isoformat() if c.computed_at else None,
            "deep_map_id": c.deep_map_id,
            "wide_map_id": c.wide_map_id,
            "binning": c.binning,
            "bin_edges": a["bin_edges"].tolist(),
            "ensemble_method": c.ensemble_method,
            "n_realisations": 0 if res.realisations is None else len(res.realisations),
        },
    )


def nz_file(res: Result, fmt: str) -> tuple[bytes, str, str]:
    return nz_export.to_bytes(ensemble(res), fmt)


def nz_png(res: Result, dpi: float | None = None) -> bytes:
    """The per-bin n(z) with its ensemble's ±1σ band and ⟨z⟩ markers, as PNG."""
    from som import plotting

    a, c = res.arrays, res.calibration
    real = res.realisations
    edges = a["bin_edges"]
    labels = [f"bin {b}: {edges[b]:g}–{edges[b + 1]:g}" for b in range(a["nz"].shape[0])]
    std = None if real is None else np.nanstd(real, axis=0, ddof=1)
    mstd = None if real is None else np.nanstd(a["real_mean_z"], axis=0, ddof=1)
    fig = plotting.plot_nz(
        a["z_edges"],
        list(a["nz"]),
        None if std is None else list(std),
        labels,
        mean_z=list(a["mean_z"]),
        mean_z_err=None if mstd is None else list(mstd),
        title=f"deep/wide n(z), calibration {c.id} ({c.binning} binning)",
        band_label=f"±1σ ({c.ensemble_method}, {0 if real is None else len(real)} realisations)",
    )
    return plotting.figure_to_png(fig, dpi=dpi)


# ----------------------------------------------------------------------------- targets
def deep_cell_weights(res: Result, tomo_bin: int | None) -> np.ndarray:
    """w_c: each deep cell's weight in the wide n(z), Σ_ĉ p(ĉ) p(c|ĉ) — in one bin
    (p(c|b)), or over the binned wide sample (Σ_b p(b) p(c|b), p(b) the bin's share of
    the wide weight)."""
    occ = res.arrays["deep_occupation"]
    if tomo_bin is not None:
        if not 0 <= tomo_bin < occ.shape[0]:
            raise bad_field(
                "bin", f"bin {tomo_bin} is not a bin of this calibration (0-{occ.shape[0] - 1})"
            )
        return occ[tomo_bin]
    share = res.arrays["weight"] / res.arrays["weight"].sum()
    return share @ occ


def targets(
    session: Session,
    res: Result,
    *,
    tomo_bin: int | None,
    budget: int | None,
    budget_hours: float | None,
    mag_band: str | None,
    mag_limit: float | None,
    per_cell: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Sources of the deep catalogue in the deep cells without spectra, the cells with the
    most weight in the wide n(z) first (the C3R2 ranking of
    :func:`app.services.targets.rank_targets`, by w_c instead of galaxy counts)."""
    c = res.calibration
    deep = ready_map(session, c.deep_map_id, "deep map")  # type: ignore[arg-type]
    band = map_store.mag_band(deep, mag_band)
    w = deep_cell_weights(res, tomo_bin)
    # A cell that carries no weight in the wide n(z) would calibrate nothing: it is treated
    # as if covered, so it never holds a target; so is a cell with spectra.
    done = res.arrays["has_spectra"] | ~(w > 0)
    stats = ledger.cell_arrays(session, deep)
    cell_stats = pd.DataFrame(
        {"count": w, "z_median": stats["zphot_median"], "z_nmad": stats["zphot_nmad"]}
    )
    cand = target_service.target_candidates(
        session, deep, uncovered_only=False, catalogue_id=c.deep_catalogue_id
    )
    chosen = target_service.rank_targets(
        session,
        deep,
        cand,
        done,
        cell_stats,
        band=band,
        budget=budget,
        budget_hours=budget_hours,
        mag_limit=mag_limit,
        per_cell=per_cell,
    )
    chosen = chosen.rename(columns={"cell_n_galaxies": "cell_weight"})
    params = {
        "bin": tomo_bin,
        "budget": budget,
        "budget_hours": budget_hours,
        "mag_band": band,
        "mag_limit": mag_limit,
        "per_cell": per_cell,
        "version": c.version,
        "n_cells_wanted": int((~done).sum()),
        "weight_without_spectra": float(w[~res.arrays["has_spectra"]].sum()),
    }
    return chosen, params
