"""Sustained load on the service: requests/s and p50/p99 latency at 1, 16 and 64 clients.

    .venv/bin/python bench/load.py                      # SQLite, and PostgreSQL if reachable
    .venv/bin/python bench/load.py --backend sqlite --seconds 3 --max-requests 500

What it does, per database backend:

1. starts the real service (``uvicorn app.main:create_app --factory``, one worker) as a child
   process on 127.0.0.1:<free port>: a SQLite file in a temporary directory, or a schema of
   its own on the PostgreSQL at ``DATABASE_URL_TEST`` (127.0.0.1:5432/test), dropped after;
2. loads it through the API: a ``som.mock.make_mock`` photometric catalogue, its
   spectroscopic subset, and a map trained on it (30x30 by default);
3. for each endpoint and each client count, runs that many concurrent asyncio/httpx clients
   in closed loop (each sends its next request when the previous answer is in) until
   ``--max-requests`` are sent or ``--seconds`` have passed, after a short warm-up;
4. prints one table: completed requests, sustained req/s, p50 and p99 of the client-side
   latency, and errors (any non-2xx or transport failure). Any error makes the exit code 1.

The client runs in this process and the server in another, on the same (shared, 2-core)
machine: at 64 clients the client's own CPU is part of what is measured. Nothing listens
or is contacted beyond loopback. Figures go to bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _service import (  # noqa: E402
    LOOPBACK,
    ServerProcess,
    create_key,
    drop_pg_schema,
    pg_base_url,
    pg_reachable,
    pg_schema,
    train,
    upload,
)

BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")


@dataclass
class Endpoint:
    name: str
    method: str
    path: str
    body: bytes | None = None
    expect_n: int | None = None  # assign: number of results the answer must hold


@dataclass
class Result:
    backend: str
    endpoint: str
    clients: int
    completed: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]


def _rows_payload(frame, n: int) -> bytes:
    part = frame.iloc[:n]
    rows = []
    for rec in part.to_dict("records"):
        row = {"id": str(rec["id"])}
        for band in BANDS:
            for name in (f"mag_{band}", f"magerr_{band}"):
                v = rec.get(name)
                row[name] = None if v is None or not np.isfinite(v) else float(v)
        rows.append(row)
    return json.dumps({"rows": rows}).encode()


def _preload(client, auth: dict, mock, n_sources: int, map_size: int, epochs: int):
    """Catalogues and a trained map, through the API; returns (map_id, query frame).

    ``mock`` has the columns of ``som.mock.make_mock`` (id, z_spec, mag_*, magerr_*): the
    first ``n_sources`` rows are loaded, the rest are what clients send to /assign.
    """
    sources, queries = mock.iloc[:n_sources], mock.iloc[n_sources:]
    if len(queries) < 1000:
        raise ValueError("the mock needs 1,000 rows beyond the loaded sources for /assign")
    r = upload(client, auth, "photometric", sources, "mock_phot.csv")
    r.raise_for_status()
    cat_id = r.json()["id"]
    r = upload(
        client, auth, "spectroscopic", sources, "mock_spec.csv", skip_missing_redshift="true"
    )
    r.raise_for_status()
    n_spec = r.json()["n_rows"]
    t0 = time.perf_counter()
    map_id, _ = train(
        client, auth, cat_id, interval=0.2, n_rows=map_size, n_cols=map_size, n_epochs=epochs
    )
    print(
        f"  loaded {n_sources:,} sources, {n_spec:,} spectra; {map_size}x{map_size} map "
        f"trained in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return map_id, queries


def _endpoints(client, map_id: int, queries) -> list[Endpoint]:
    cells = client.get(f"/v1/maps/{map_id}/cells", params={"order": "n_phot", "limit": 1}).json()
    busy_cell = cells["items"][0]["cell"]
    base = f"/v1/maps/{map_id}"
    return [
        Endpoint("POST assign (1 source)", "POST", f"{base}/assign", _rows_payload(queries, 1), 1),
        Endpoint(
            "POST assign (1,000 sources)",
            "POST",
            f"{base}/assign",
            _rows_payload(queries, 1000),
            1000,
        ),
        Endpoint("GET cells (page of 500)", "GET", f"{base}/cells"),
        Endpoint("GET cell (one)", "GET", f"{base}/cells/{busy_cell}"),
        Endpoint("GET coverage", "GET", f"{base}/coverage"),
        Endpoint("GET gaps (100)", "GET", f"{base}/gaps"),
        Endpoint("GET targets (budget 100)", "GET", f"{base}/targets?budget=100"),
    ]


async def _run(
    base_url: str,
    ep: Endpoint,
    clients: int,
    seconds: float,
    max_requests: int,
    warmup: int,
) -> tuple[list[float], Counter, float]:
    import httpx

    headers = {"Content-Type": "application/json"} if ep.body is not None else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        for _ in range(warmup):
            r = await client.request(ep.method, ep.path, content=ep.body, headers=headers)
            r.raise_for_status()
        if ep.expect_n is not None:  # the answer is a real one, not only a 200
            assert r.json()["n"] == ep.expect_n, r.text[:200]
        latencies: list[float] = []
        errors: Counter = Counter()
        sent = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal sent
            # Every client sends at least one request, however late the event loop first
            # runs it: on a loaded machine the deadline could pass before most clients
            # started, and the run then measured a handful of requests, not 64 clients.
            first = True
            while sent < max_requests and (first or time.perf_counter() < deadline):
                first = False
                sent += 1
                t0 = time.perf_counter()
                try:
                    r = await client.request(ep.method, ep.path, content=ep.body, headers=headers)
                    if not 200 <= r.status_code < 300:
                        errors[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return latencies, errors, wall


def bench_backend(label: str, url: str, args, mock=None) -> list[Result]:
    """Start a server on ``url`` (migrated), load it, run every endpoint at every client
    count; ``mock`` defaults to ``make_mock(args.sources + 1000, args.seed)``."""
    import httpx

    if mock is None:
        from som.mock import make_mock

        mock = make_mock(args.sources + 1000, seed=args.seed)

    key = create_key(url, "load")
    auth = {"X-API-Key": key}
    with tempfile.TemporaryDirectory(prefix="somcal-load-") as tmp:
        env = {"SOMCAL_DATABASE_URL": url, "SOMCAL_UPLOAD_TMP_DIR": tmp}
        server = ServerProcess(env, Path(tmp) / "server.log", workers=args.workers)
        base = server.start()
        assert urlsplit(base).hostname == LOOPBACK  # loopback only, by construction
        results: list[Result] = []
        try:
            with httpx.Client(base_url=base, timeout=600) as client:
                map_id, queries = _preload(
                    client, auth, mock, args.sources, args.map_size, args.epochs
                )
                endpoints = _endpoints(client, map_id, queries)
            for ep in endpoints:
                for clients in args.clients:
                    lat, errors, wall = asyncio.run(
                        _run(base, ep, clients, args.seconds, args.max_requests, args.warmup)
                    )
                    ms = np.asarray(lat) * 1000.0
                    res = Result(
                        backend=label,
                        endpoint=ep.name,
                        clients=clients,
                        completed=len(lat),
                        seconds=wall,
                        rps=len(lat) / wall,
                        p50_ms=float(np.percentile(ms, 50)),
                        p99_ms=float(np.percentile(ms, 99)),
                        errors=dict(errors),
                    )
                    results.append(res)
                    print("  " + _row(res), flush=True)
        finally:
            server.stop()
            if any(r.errors for r in results):
                # The server's own account of the failures (tracebacks), before the
                # temporary directory that holds its log is removed.
                _print_log_tail(Path(tmp) / "server.log")
    return results


def _print_log_tail(path: Path, lines: int = 80) -> None:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    print(f"  --- last {min(lines, len(text))} lines of {path.name} ---", flush=True)
    for line in text[-lines:]:
        print("  " + line, flush=True)


HEADER = (
    "| backend | endpoint | clients | requests | req/s | p50 ms | p99 ms | errors |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|"
)


def _row(r: Result) -> str:
    errors = sum(r.errors.values())
    detail = f" {r.errors}" if errors else ""
    return (
        f"| {r.backend} | {r.endpoint} | {r.clients} | {r.completed:,} | {r.rps:,.1f} | "
        f"{r.p50_ms:,.1f} | {r.p99_ms:,.1f} | {errors}{detail} |"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", default="1,16,64", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound per run")
    parser.add_argument("--max-requests", type=int, default=3000, help="count bound per run")
    parser.add_argument("--warmup", type=int, default=3, help="requests before timing")
    parser.add_argument("--sources", type=int, default=5000, help="mock sources loaded")
    parser.add_argument("--map-size", type=int, default=30, help="map is N x N cells")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    return args


def main() -> int:
    args = parse_args()

    load0 = os.getloadavg()
    results: list[Result] = []
    skipped: dict[str, str] = {}
    if args.backend in ("sqlite", "both"):
        print("backend sqlite", flush=True)
        with tempfile.TemporaryDirectory(prefix="somcal-load-db-") as tmp:
            from app.core import migrate

            url = f"sqlite:///{Path(tmp) / 'load.db'}"
            migrate.upgrade(url)
            results += bench_backend("sqlite", url, args)
    if args.backend in ("postgresql", "both"):
        base = pg_base_url()
        reason = pg_reachable(base)
        if reason:
            skipped["postgresql"] = f"not reachable ({reason})"
            print(f"backend postgresql skipped: {skipped['postgresql']}", flush=True)
        else:
            print("backend postgresql", flush=True)
            from app.core import migrate

            url, schema = pg_schema(base, "somcal_load")
            try:
                migrate.upgrade(url)
                results += bench_backend("postgresql", url, args)
            finally:
                drop_pg_schema(base, schema)
    load1 = os.getloadavg()

    print()
    print(HEADER)
    for r in results:
        print(_row(r))
    n_errors = sum(sum(r.errors.values()) for r in results)
    total = sum(r.completed for r in results)
    print(
        f"\n{total:,} requests, {n_errors} errors (non-2xx or transport); "
        f"load average start {load0[0]:.2f}, end {load1[0]:.2f} on {os.cpu_count()} CPUs; "
        f"{args.seconds:g} s or {args.max_requests} requests per run, "
        f"{args.workers} uvicorn worker(s)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "cpus": os.cpu_count(),
                "load_average_start": load0,
                "load_average_end": load1,
                "skipped": skipped,
                "results": [r.__dict__ for r in results],
                "errors": n_errors,
            },
            indent=1,
        )
    )
    if n_errors:
        print("FAIL: some requests did not succeed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
