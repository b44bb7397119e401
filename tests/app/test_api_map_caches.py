"""The service's caches of maps (deserialised SOMs) and of their cells: bounded, least
recently used first out, stale when the cells change, and safe under concurrent requests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np

from app.services.ledger import _CellCache
from app.services.map_store import _SomCache
from som import SOM


def _map(map_id: int, version: int = 0, weights: bytes | None = None):
    return SimpleNamespace(
        id=map_id,
        trained_at=datetime(2026, 1, 1, tzinfo=UTC),
        cells_version=version,
        weights=weights,
    )


def test_cell_cache_is_bounded_lru_and_stale_when_cells_change():
    cache = _CellCache(size=2)
    a, b, c = _map(1), _map(2), _map(3)
    cache.put(a, "A")
    cache.put(b, "B")
    assert cache.get(a) == "A"  # a is now the most recently used
    cache.put(c, "C")  # evicts b, the least recently used
    assert cache.get(b) is None and cache.get(a) == "A" and cache.get(c) == "C"
    assert cache.get(_map(1, version=1)) is None  # the cells were rewritten: stale


def test_som_cache_deserialises_once_and_survives_concurrent_readers():
    X = np.random.default_rng(0).normal(size=(200, 3))
    blob = SOM(3, 3, n_epochs=2, random_state=0).fit(X).to_bytes()
    cache = _SomCache(size=2)
    maps = [_map(i, weights=blob) for i in range(1, 5)]
    errors: list[BaseException] = []

    def read(k: int) -> None:
        try:
            for j in range(40):
                som = cache.get(maps[(k + j) % len(maps)])
                assert som.weights_.shape == (9, 3)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(cache._items) <= 2
    first = cache.get(maps[0])
    assert cache.get(maps[0]) is first  # a hit returns the same object, not a new one
