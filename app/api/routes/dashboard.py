"""The web dashboard: the page at /dashboard (static HTML + JS, no build step, nothing fetched
from outside the server), the compact per-cell arrays it draws the map from, and the colour
maps it draws with (the figures' own, sampled from matplotlib)."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from app.api.deps import IdPath, ReadDep, SessionDep
from app.schemas import ErrorResponse
from app.services import calibrate, figures
from app.services import maps as map_service
from som.plotting import map_colormap_stops

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> FileResponse:
    # no-cache: after an upgrade the page must pick up the matching script.
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )


class ColourMapsOut(BaseModel):
    """The colour map of each map figure as evenly spaced stops, first to last colour."""

    n: int = Field(description="Stops per colour map.")
    colormaps: dict[str, list[str]] = Field(
        description="Plot kind (redshift, dispersion, occupation, coverage, umatrix) -> "
        "`#rrggbb` stops of the colour map its figure draws with."
    )


@cache
def _colour_maps(n: int) -> ColourMapsOut:
    return ColourMapsOut(n=n, colormaps=map_colormap_stops(n))


@router.get(
    "/v1/plots/colormaps",
    tags=["maps"],
    summary="The colour maps of the map figures (what the dashboard draws with)",
    description="256 `#rrggbb` stops per colour map, sampled from matplotlib, so a page "
    "colouring cells by interpolating them shows the colours of the PNG figures.",
    response_model=ColourMapsOut,
)
def colour_maps() -> ColourMapsOut:
    return _colour_maps(256)


def _floats(values: np.ndarray, digits: int = 4) -> list[float | None]:
    # Four decimals is finer than any redshift statistic here and halves the payload.
    return [round(float(v), digits) if math.isfinite(v) else None for v in values]


@router.get(
    "/v1/maps/{map_id}/arrays",
    tags=["maps"],
    summary="Per-cell arrays of a map in one compact answer (what the dashboard draws)",
    description="Every array has one entry per cell, index = cell = row * n_cols + col (row 0 "
    "at the bottom; hexagonal maps shift odd rows right by half a cell). `null` where a "
    "statistic is undefined (no galaxy, no secure spectrum). `umatrix` is the mean "
    "feature-space distance of a cell's weights to its neighbours'. `summary` is the coverage "
    "summary of `GET /v1/maps/{id}/coverage`.",
    responses={
        404: {"model": ErrorResponse, "description": "Unknown map"},
        409: {"model": ErrorResponse, "description": "Map not ready"},
    },
)
def map_arrays(map_id: IdPath, session: SessionDep, _auth: ReadDep) -> JSONResponse:
    m = map_service.get_map(session, map_id)
    a = figures.map_arrays(session, m)
    cov = calibrate.coverage(session, m, None, 10, None)
    payload: dict[str, Any] = {
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
            key: (m.quality or {}).get(key)
            for key in ("quantization_error", "topographic_error", "n_train")
        },
        "summary": cov["summary"],
        "n_spectra": cov["n_spectra"],
        "n_spectra_secure": cov["n_spectra_secure"],
        "arrays": {
            "n_phot": a.n_phot.tolist(),
            "zphot_median": _floats(a.zphot_median),
            "zphot_nmad": _floats(a.zphot_nmad),
            "zspec_median": _floats(a.zspec_median),
            "zspec_std": _floats(a.zspec_std),
            "n_spec": a.n_spec.tolist(),
            "n_spec_secure": a.n_spec_secure.tolist(),
            "covered": a.covered.astype(int).tolist(),
            "umatrix": _floats(a.umatrix.reshape(-1)),
        },
    }
    return JSONResponse(payload)
