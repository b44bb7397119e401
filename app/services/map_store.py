"""Trained maps in the store: looking a map up, its bands (and the band of a magnitude
cut) and redshift grid, and the
deserialised ``SOM`` of a ready map, cached (the ledger of what is assigned to a map and
its cell statistics is :mod:`app.services.ledger`'s)."""

from __future__ import annotations

import threading

import numpy as np
from cachetools import LRUCache
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Map
from app.services.errors import ConflictError, InvalidInputError, NotFoundError, RowError
from som import SOM
from som.bands import REGISTRY, BandError
from som.vocabulary import MapStatus


def get_map(session: Session, map_id: int) -> Map:
    m = session.get(Map, map_id)
    if m is None:
        raise NotFoundError(f"map {map_id} not found")
    return m


def require_ready(m: Map) -> None:
    if m.status != MapStatus.ready:
        raise ConflictError(
            f"map {m.id} is {m.status}, not ready"
            + (f": {m.error}" if m.error else "; follow its job for progress")
        )


def ready_maps(session: Session) -> list[Map]:
    return list(session.scalars(select(Map).where(Map.status == "ready").order_by(Map.id)))


class _SomCache:
    """Deserialised maps, least recently used dropped first. A ready map never changes, so
    an entry never goes stale; the trained-at stamp in the key guards against an id reused
    after a reset. cachetools' caches are not thread-safe: the lock guards every access
    (the deserialisation itself runs outside it)."""

    def __init__(self, size: int = 8) -> None:
        self._items: LRUCache[tuple[int, str], SOM] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, m: Map) -> SOM:
        key = (m.id, m.trained_at.isoformat() if m.trained_at else "")
        with self._lock:
            som = self._items.get(key)
        if som is not None:
            return som
        if m.weights is None:
            raise NotFoundError(f"map {m.id} has no trained weights")
        som = SOM.from_bytes(m.weights, source=f"map {m.id}")
        with self._lock:
            self._items[key] = som
        return som


SOM_CACHE = _SomCache()


def map_bands(m: Map) -> list[str]:
    """Every band the map's features read: the colour bands, then the magnitude band if it
    is not one of them."""
    features = m.features or {}
    bands = list(features.get("bands", []))
    extra = features.get("magnitude_band")
    return bands + [extra] if extra and extra not in bands else bands


def z_edges(m: Map) -> np.ndarray:
    return np.asarray(m.grid["z_edges"], dtype=np.float64)


def mag_band(m: Map, requested: str | None) -> str:
    """The band of a magnitude cut or breakdown: one of the map's own bands (the map's
    ``i`` or its reddest band when none is asked for); a registry alias of one of them
    (e.g. a survey-qualified name) is accepted."""
    bands = map_bands(m)
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


def pz_density(counts: list[int] | None, widths: np.ndarray) -> list[float] | None:
    """Stored per-cell redshift counts as a density (unit area over bins of ``widths``);
    None for a cell with none."""
    if counts is None:
        return None
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return None
    return (c / total / widths).tolist()
