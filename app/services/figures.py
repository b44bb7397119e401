"""Per-cell arrays and figures of a map, shared by the CLI (``somcal plot``), the API
(``GET /v1/maps/{id}/plots/{kind}.png``) and the dashboard, so all three show the same
numbers drawn the same way. The drawing is ``som.plotting``'s, the n(z) ``som.calibration``'s
(through ``app.services.coverage`` and ``app.services.nz``); this module gathers the arrays
from the store.

Which redshift colours the "redshift" and "dispersion" maps: ``z_source="phot"`` (default)
uses the reference photometric redshifts of every galaxy in the cell, as Masters et al.
(2015, Fig. 4) colour their map with the COSMOS 30-band photo-z; ``"spec"`` uses the secure
spectroscopic redshifts, available only in covered cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sqlalchemy.orm import Session

from app.models import Map
from app.services import coverage as coverage_service
from app.services import ledger, map_store
from app.services import nz as nz_service
from app.services.errors import InvalidInputError, NotFoundError, RowError
from app.services.map_queries import increasing_edges
from som import plotting as plots
from som.vocabulary import PlotKind, RedshiftSource, choices

PLOT_KINDS = choices(PlotKind)
Z_SOURCES = choices(RedshiftSource)
# Tomographic bins in photo-z when none are asked for: four bins over the range where the
# mock (and COSMOS-depth data) holds most galaxies.
DEFAULT_TOMO_EDGES = (0.2, 0.5, 0.8, 1.2, 2.0)
MAX_TOMO_BINS = 20


@dataclass
class MapArrays:
    """Every per-cell quantity the figures and the dashboard draw, index = cell."""

    n_rows: int
    n_cols: int
    lattice: str
    n_phot: np.ndarray
    zphot_median: np.ndarray
    zphot_nmad: np.ndarray
    zspec_median: np.ndarray
    zspec_std: np.ndarray
    n_spec: np.ndarray
    n_spec_secure: np.ndarray
    covered: np.ndarray
    umatrix: np.ndarray  # (n_rows, n_cols)

    @property
    def occupied(self) -> np.ndarray:
        return self.n_phot > 0


def map_arrays(session: Session, m: Map) -> MapArrays:
    """Per-cell statistics of a ready map and its U-matrix."""
    map_store.require_ready(m)
    frame = ledger.cells_frame(session, m.id)
    n_cells = m.n_rows * m.n_cols
    if len(frame) != n_cells:
        raise NotFoundError(f"map {m.id} has {len(frame)} of its {n_cells} cells stored")
    som = map_store.SOM_CACHE.get(m)
    return MapArrays(
        n_rows=m.n_rows,
        n_cols=m.n_cols,
        lattice=m.lattice,
        n_phot=frame["n_phot"].to_numpy(dtype=np.int64),
        zphot_median=frame["zphot_median"].to_numpy(dtype=float),
        zphot_nmad=frame["zphot_nmad"].to_numpy(dtype=float),
        zspec_median=frame["zspec_median"].to_numpy(dtype=float),
        zspec_std=frame["zspec_std"].to_numpy(dtype=float),
        n_spec=frame["n_spec"].to_numpy(dtype=np.int64),
        n_spec_secure=frame["n_spec_secure"].to_numpy(dtype=np.int64),
        covered=frame["covered"].to_numpy(dtype=bool),
        umatrix=som.distance_map(),
    )


def _rounded(values: np.ndarray, digits: int = 4) -> list[float]:
    # Four decimals is finer than any redshift statistic here and halves the payload
    # (NaN stays NaN: null in the answer).
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def dashboard_arrays(session: Session, m: Map, catalogue_id: int | None = None) -> dict[str, Any]:
    """What the dashboard draws a map from: its description, coverage summary and every
    per-cell array (index = cell), in one answer (``GET /v1/maps/{id}/arrays``). With an
    occupation catalogue, ``n_phot`` and the summary are its counts'."""
    a = map_arrays(session, m)
    if catalogue_id is None:
        cov = coverage_service.coverage(session, m, None, 10, None)
    else:
        cov = coverage_service.coverage(session, m, None, None, None, catalogue_id=catalogue_id)
        a.n_phot = np.asarray(cov["cells"]["n_phot"], dtype=np.int64)
    quality = m.quality or {}
    return {
        "map_id": m.id,
        "name": m.name,
        "n_rows": m.n_rows,
        "n_cols": m.n_cols,
        "n_cells": m.n_rows * m.n_cols,
        "lattice": m.lattice,
        "periodic": bool(m.periodic),
        "k": m.min_secure,
        "feature_names": list((m.features or {}).get("feature_names", [])),
        "quality": {
            key: quality.get(key) for key in ("quantization_error", "topographic_error", "n_train")
        },
        "summary": cov["summary"],
        "catalogue": cov["catalogue"],
        "n_spectra": cov["n_spectra"],
        "n_spectra_secure": cov["n_spectra_secure"],
        "arrays": {
            "n_phot": a.n_phot.tolist(),
            "zphot_median": _rounded(a.zphot_median),
            "zphot_nmad": _rounded(a.zphot_nmad),
            "zspec_median": _rounded(a.zspec_median),
            "zspec_std": _rounded(a.zspec_std),
            "n_spec": a.n_spec.tolist(),
            "n_spec_secure": a.n_spec_secure.tolist(),
            "covered": a.covered.astype(int).tolist(),
            "umatrix": _rounded(a.umatrix.reshape(-1)),
        },
    }


# ----------------------------------------------------------------------------- n(z)
def parse_edges(value: str | None, name: str = "tomo_bins") -> np.ndarray | None:
    """Comma-separated, strictly increasing bin edges ("0.2,0.5,0.8"), or None."""
    if value is None or not str(value).strip():
        return None
    try:
        edges = increasing_edges(value)
    except ValueError:
        edges = None
    if edges is None or edges.size - 1 > MAX_TOMO_BINS:
        raise InvalidInputError(
            f"{name} must be 2 to {MAX_TOMO_BINS + 1} comma-separated, increasing numbers "
            f"(bin edges, e.g. 0.2,0.5,0.8,1.2), got {value!r}",
            [RowError(None, name, None, f"invalid value {value!r}")],
        )
    return edges


def tomographic_nz(
    session: Session,
    m: Map,
    *,
    tomo_edges: np.ndarray | None = None,
    catalogue_id: int | None = None,
    n_boot: int = 100,
    random_state: int | None = 0,
    k: int | None = None,
    gold: bool = False,
    include_realisations: bool = False,
) -> list[dict[str, Any]]:
    """The n(z) of each tomographic bin (sources selected by photo-z in [lo, hi)) through
    the map's spectra, each with its bootstrap band (and its bootstrap n(z) with
    ``include_realisations``); a bin whose n(z) cannot be computed (no member, or no member
    in a covered cell) carries ``error`` instead."""
    edges = np.asarray(tomo_edges if tomo_edges is not None else DEFAULT_TOMO_EDGES, float)
    cells, z_phot, outside = nz_service.sample_assignments(session, m, catalogue_id)
    out: list[dict[str, Any]] = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        with np.errstate(invalid="ignore"):
            member = (z_phot >= lo) & (z_phot < hi)
        entry: dict[str, Any] = {
            "tomo_bin": i,
            "z_lo": float(lo),
            "z_hi": float(hi),
            "n_members": int(member.sum()),
        }
        if not member.any():
            entry["error"] = (
                f"no source with {lo:g} <= z_phot < {hi:g}"
                if np.isfinite(z_phot).any()
                # Say why every bin is empty rather than leave a table of blanks.
                else "no source of the sample has a photo-z (z_phot) to bin by: ingest the "
                "catalogue with one (mapping z_phot=<column>), or ask for the n(z) of the "
                "whole sample (POST /v1/maps/{id}/nz)"
            )
            out.append(entry)
            continue
        try:
            entry.update(
                nz_service.nz(
                    session,
                    m,
                    cells[member],
                    None,
                    k,
                    gold,
                    n_boot,
                    random_state,
                    outside=outside[member],
                    include_realisations=include_realisations,
                )
            )
        except InvalidInputError as exc:
            entry["error"] = exc.detail
        out.append(entry)
    return out


def nz_figure(results: list[dict[str, Any]], title: str) -> Figure:
    ok = [r for r in results if "error" not in r]
    if not ok:
        reasons = "; ".join(f"bin {r['tomo_bin']}: {r['error']}" for r in results)
        raise InvalidInputError(f"no tomographic bin has an n(z): {reasons}")
    nan = float("nan")
    return plots.plot_nz(
        ok[0]["bins"],
        [[nan if v is None else v for v in r["nz"]] for r in ok],
        [
            None
            if all(v is None for v in r["nz_err"])
            else [nan if v is None else v for v in r["nz_err"]]
            for r in ok
        ],
        [
            f"{r['z_lo']:g} ≤ z_phot < {r['z_hi']:g}  ({r['n_members']:,}, "
            f"{r['uncovered_fraction']:.0%} uncovered)"
            for r in ok
        ],
        # nz_service.nz's answer: None where undefined
        mean_z=[r.get("mean_z") for r in ok],
        mean_z_err=[r.get("mean_z_err") for r in ok],
        title=title,
    )


# ----------------------------------------------------------------------------- figures
def map_figure(
    session: Session,
    m: Map,
    kind: str,
    *,
    z_source: str = "phot",
    tomo_edges: np.ndarray | None = None,
    catalogue_id: int | None = None,
    n_boot: int = 100,
    random_state: int | None = 0,
) -> Figure:
    """The figure ``kind`` (one of ``PLOT_KINDS``) of a ready map."""
    if kind not in PLOT_KINDS:
        raise InvalidInputError(
            f"unknown plot kind {kind!r}; kinds are: {', '.join(PLOT_KINDS)}",
            [RowError(None, "kind", None, f"unknown kind {kind!r}")],
        )
    if z_source not in Z_SOURCES:
        raise InvalidInputError(
            f"z_source must be 'phot' or 'spec', got {z_source!r}",
            [RowError(None, "z_source", None, f"invalid value {z_source!r}")],
        )
    map_store.require_ready(m)
    label = f"map {m.id} ({m.n_rows}×{m.n_cols} {m.lattice})"
    if kind == "nz":
        results = tomographic_nz(
            session,
            m,
            tomo_edges=tomo_edges,
            catalogue_id=catalogue_id,
            n_boot=n_boot,
            random_state=random_state,
        )
        return nz_figure(results, f"n(z) per tomographic bin, {label}")
    a = map_arrays(session, m)
    grid = (a.n_rows, a.n_cols, a.lattice)
    empty = ~a.occupied
    if kind == "redshift":
        if z_source == "phot":
            values, what = a.zphot_median, "median photo-z"
        else:
            values, what = a.zspec_median, "median spectroscopic z (secure)"
        return plots.plot_redshift_map(
            values,
            *grid,
            title=f"{what.capitalize()} per cell, {label}",
            cbar_label=what,
            mask=empty,
            mask_label="empty cell",
        )
    if kind == "dispersion":
        if z_source == "phot":
            values, what = a.zphot_nmad, r"$\sigma_{\rm NMAD}$(photo-z)"
        else:
            values, what = a.zspec_std, r"$\sigma$(spectroscopic z)"
        return plots.plot_dispersion_map(
            values,
            *grid,
            title=f"Redshift dispersion per cell, {label}",
            cbar_label=what,
            mask=empty,
            mask_label="empty cell",
        )
    if kind == "occupation":
        return plots.plot_occupation_map(
            a.n_phot, *grid, title=f"Occupation ({int(a.n_phot.sum()):,} galaxies), {label}"
        )
    if kind == "coverage":
        return plots.plot_coverage_map(
            a.n_spec_secure, a.covered, a.occupied, *grid, counts=a.n_phot
        )
    if kind == "umatrix":
        return plots.plot_umatrix(a.umatrix, a.lattice, title=f"U-matrix, {label}")
    return plots.plot_overview(
        a.zphot_median,
        a.zphot_nmad,
        a.n_phot,
        a.n_spec_secure,
        a.covered,
        *grid,
        title=f"somcal {label}: {m.name}",
    )


def map_png(session: Session, m: Map, kind: str, *, dpi: float | None = None, **kwargs) -> bytes:
    return plots.figure_to_png(map_figure(session, m, kind, **kwargs), dpi=dpi)
