"""A map's read-side requests as the API and the command line both take them: bins written
as text (``"5"`` or ``"0,0.5,1"``) and a target selection with the parameters that made it.

Routes and ``somcal`` commands call these so that a value refused, or a target list made,
is the same through either door; only the name the caller shows for a parameter differs
(``mag_bins`` in a query string, ``--mag-bins`` on the command line).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from app.models import Map
from app.services import map_store
from app.services import targets as target_service
from app.services.errors import InvalidInputError, RowError

__all__ = [
    "MAX_BINS",
    "TargetChoice",
    "TargetSelection",
    "fits_header",
    "increasing_edges",
    "parse_bins",
    "select_targets",
]

MAX_BINS = 1000


def increasing_edges(text: str) -> np.ndarray:
    """Bin edges written as comma-separated numbers (``"0,0.5,1"``); ValueError unless
    there are at least two, all finite and strictly increasing. The callers word the
    message for their parameter."""
    edges = np.array([float(v) for v in str(text).split(",")], dtype=float)
    if len(edges) < 2 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ValueError(f"not increasing bin edges: {text!r}")
    return edges


def parse_bins(value: str | None, name: str) -> int | np.ndarray | None:
    """A number of bins (``"5"``, 1 to :data:`MAX_BINS`) or strictly increasing
    comma-separated edges (``"0,0.5,1,2"``); None when ``value`` is empty. ``name`` is the
    parameter as the caller knows it, for the message."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        if "," in text:
            return increasing_edges(text)
        n = int(text)
        if not 1 <= n <= MAX_BINS:
            raise ValueError
        return n
    except ValueError as exc:
        raise InvalidInputError(
            f"{name} {value!r}: give a number of bins (1-{MAX_BINS}) or increasing "
            "comma-separated edges, e.g. 0,0.5,1,2",
            [RowError(None, name, None, f"invalid value {value!r}")],
        ) from exc


@dataclass(frozen=True, kw_only=True)
class TargetChoice:
    """What chooses a target list, as a caller gives it: the budget in targets or hours,
    the band and limit of the faintest magnitude, and the targets per cell at most. The
    query string of ``GET .../targets``, the body of ``POST .../target-lists`` and the
    options of ``somcal targets`` each become one of these."""

    budget: int | None = None
    budget_hours: float | None = None
    mag_band: str | None = None
    mag_limit: float | None = None
    per_cell: int = 1
    occupation_id: int | None = None  # gaps weighted by this occupation catalogue
    catalogue_id: int | None = None  # or by this photometric catalogue's rows


@dataclass
class TargetSelection:
    """A target list and the parameters that chose it (``mag_band`` as resolved for the map,
    ``k`` the secure spectra that make a cell covered): what a saved list or a FITS header
    records."""

    frame: pd.DataFrame
    params: dict[str, Any]


def select_targets(session: Session, m: Map, choice: TargetChoice | None = None) -> TargetSelection:
    """The spectroscopic targets for the map's gaps (:func:`app.services.targets.targets`)
    with the parameters that chose them (``choice`` None: every default)."""
    choice = choice if choice is not None else TargetChoice()
    params = asdict(choice)
    frame = target_service.targets(session, m, **params)
    params["mag_band"] = map_store.mag_band(m, choice.mag_band)
    params["k"] = m.min_secure
    return TargetSelection(frame, params)


def fits_header(params: dict[str, Any], map_id: int) -> dict[str, Any]:
    """The FITS header cards that record a table's parameters (a target list's, downloaded
    or written by ``somcal targets``): each set scalar under its name cut to a FITS keyword
    (upper case, 8 characters), then ``MAP_ID``."""
    cards = {
        key.upper()[:8]: value
        for key, value in params.items()
        if value is not None and not isinstance(value, dict | list)
    }
    cards["MAP_ID"] = map_id
    return cards
