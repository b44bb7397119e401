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


def test_more_requests_than_threads_on_one_connection_all_answer(clean_db, harness, tmp_path):
    """A sync handler's session keeps its connection until the response is serialised,
    which takes a worker thread again. With more concurrent requests than threads (40) and
    fewer connections, requests waiting for a connection in threads used to take every
    thread, so the ones holding connections could not finish: a stall until the pool timed
    out, then 500s. Requests now wait for a connection on the event loop."""
    import asyncio

    import httpx

    env = {
        "SOMCAL_DATABASE_URL": clean_db,
        "SOMCAL_UPLOAD_TMP_DIR": str(tmp_path),
        "SOMCAL_DB_POOL_SIZE": "1",
        "SOMCAL_DB_MAX_OVERFLOW": "0",
        "SOMCAL_DB_POOL_TIMEOUT": "20",
        "SOMCAL_EMBEDDED_WORKERS": "0",
    }

    async def burst(base: str) -> list[int]:
        limits = httpx.Limits(max_connections=120, max_keepalive_connections=120)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.get("/v1/catalogues") for _ in range(120)), return_exceptions=True
            )
        return [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]

    with harness.ServerProcess(env, tmp_path / "server.log") as server:
        statuses = asyncio.run(burst(server.base_url))
    assert statuses == [200] * 120, (tmp_path / "server.log").read_text()[-3000:]
