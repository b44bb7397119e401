"""Load: bench/load.py's machinery, briefly, on the real server: no request may fail.

The figures themselves (req/s, p50/p99) come from running bench/load.py by hand and are
in docs/operations.md; a test asserts no timing. What it does assert: with 64 concurrent
clients on every endpoint the load script measures, every answer is a 2xx, and the
script's accounting counts what it sent.
"""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_sixty_four_clients_on_every_endpoint_get_no_error(clean_db, mock_catalogue, bench_module):
    load = bench_module("load")
    args = load.parse_args(
        [
            "--clients",
            "64",
            "--seconds",
            "1",
            "--max-requests",
            "128",
            "--warmup",
            "1",
            "--sources",
            "600",
            "--map-size",
            "8",
            "--epochs",
            "3",
        ]
    )
    backend = "postgresql" if clean_db.startswith("postgresql") else "sqlite"
    results = load.bench_backend(
        backend, clean_db, args, mock=mock_catalogue(1600, seed=51, spec_fraction=0.3)
    )
    assert len(results) == 7  # assign x2, cells, cell, coverage, gaps, targets
    for r in results:
        assert r.errors == {}, (r.endpoint, r.errors)
        assert 64 <= r.completed <= 128 and r.rps > 0  # every client got answers
        assert r.p50_ms <= r.p99_ms
