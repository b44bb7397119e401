"""Service benchmark: assign latency over HTTP and bulk ingest rate into PostgreSQL.

    .venv/bin/python bench/api.py                 # PostgreSQL on 127.0.0.1:5432/test
    .venv/bin/python bench/api.py --quick         # 10^5 ingest rows, fewer repeats

What it does, against a real uvicorn server on loopback and a real database (a schema of
its own, dropped at the end):

1. ingests a 10^6-row mock photometric catalogue (Parquet, read by the server from its
   data directory) with no map yet, and reports rows/s of the whole request (read,
   validate, binary COPY, commit); the SQLite rate is reported too with ``--sqlite``;
2. trains a 75x150 map on a 20,000-row mock (3 epochs) through ``POST /v1/maps``;
3. times ``POST /v1/maps/{id}/assign`` with 1, 100 and 10,000 sources (JSON rows, and a
   CSV body for 10,000), reporting p50 and p99 of the end-to-end client latency.

Goals (issue 4): 10,000 sources assigned in < 250 ms p50; ingest >= 100,000 rows/s.
The machine is shared; the load average at start and end is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _service import ThreadServer, create_key, drop_pg_schema, pg_schema, train  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")


def _serve(settings) -> ThreadServer:
    """``create_app(settings)`` served by uvicorn in a background thread."""
    from app.main import create_app

    return ThreadServer(create_app(settings))


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _setup(url: str, data_dir: Path):
    from app.core import migrate
    from app.core.config import Settings

    migrate.upgrade(url)
    key = create_key(url)
    settings = Settings(
        database_url=url,
        data_dirs=[data_dir],
        max_rows=50_000_000,
        max_upload_bytes=2 * 1024**3,
        max_assign_rows=1_000_000,
    )
    return settings, {"X-API-Key": key}


def bench_ingest(url: str, data_dir: Path, n_rows: int, label: str) -> dict:
    import httpx

    settings, auth = _setup(url, data_dir)
    with _serve(settings) as base, httpx.Client(base_url=base, timeout=3600) as client:
        t0 = time.perf_counter()
        r = client.post("/v1/catalogues/photometric", json={"path": "ingest.parquet"}, headers=auth)
        dt = time.perf_counter() - t0
    r.raise_for_status()
    assert r.json()["n_rows"] == n_rows, r.text
    rate = n_rows / dt
    print(f"ingest {label}: {n_rows:,} rows in {dt:.2f} s = {rate:,.0f} rows/s", flush=True)
    return {"backend": label, "rows": n_rows, "seconds": dt, "rows_per_s": rate}


def bench_assign(url: str, data_dir: Path, repeats: dict[int, int], train_rows: int) -> dict:
    import httpx

    from som.mock import make_mock

    settings, auth = _setup(url, data_dir)
    training = make_mock(train_rows, seed=11)
    training.to_parquet(data_dir / "train.parquet")
    queries = make_mock(10_000, seed=12)
    results: dict[str, dict] = {}
    with _serve(settings) as base, httpx.Client(base_url=base, timeout=600) as client:
        cat = client.post(
            "/v1/catalogues/photometric", json={"path": "train.parquet"}, headers=auth
        ).json()
        t0 = time.perf_counter()
        map_id, _ = train(client, auth, cat["id"], interval=0.5, n_rows=75, n_cols=150, n_epochs=3)
        train_s = time.perf_counter() - t0
        print(f"train 75x150 on {train_rows:,} rows, 3 epochs: {train_s:.1f} s", flush=True)
        results["train_seconds"] = train_s

        def payload(n: int) -> bytes:
            rows = []
            part = queries.iloc[:n]
            cols = {f"mag_{b}": part[f"mag_{b}"].to_numpy() for b in BANDS}
            ids = part["id"].to_numpy()
            for k in range(n):
                row = {"id": int(ids[k])}
                for name, values in cols.items():
                    v = values[k]
                    row[name] = None if np.isnan(v) else float(v)
                rows.append(row)
            return json.dumps({"rows": rows}).encode()

        cases = [(n, "json", payload(n), "application/json") for n in sorted(repeats)]
        csv_body = queries[["id", *[f"mag_{b}" for b in BANDS]]].to_csv(index=False).encode()
        cases.append((10_000, "csv", csv_body, "text/csv"))
        for n, kind, body, ctype in cases:
            reps = repeats.get(n, 20)
            times = []
            for i in range(reps + 3):
                t0 = time.perf_counter()
                r = client.post(
                    f"/v1/maps/{map_id}/assign", content=body, headers={"Content-Type": ctype}
                )
                dt = time.perf_counter() - t0
                r.raise_for_status()
                if i >= 3:  # the first calls load the map and warm the kernels
                    times.append(dt)
            assert r.json()["n"] == n
            p50, p99 = _percentiles(times)
            key = f"assign_{n}_{kind}"
            results[key] = {"n": n, "body": kind, "repeats": reps, "p50_ms": p50, "p99_ms": p99}
            print(
                f"assign {n:>6} sources ({kind}): p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
                f"({reps} requests)",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("DATABASE_URL_TEST", DEFAULT_PG))
    parser.add_argument("--rows", type=int, default=1_000_000, help="ingest rows")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="10^5 ingest rows, few repeats")
    parser.add_argument("--sqlite", action="store_true", help="also ingest into SQLite")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "api.json")
    args = parser.parse_args()
    if args.quick:
        args.rows = 100_000
    repeats = {1: 50, 100: 50, 10_000: 20} if args.quick else {1: 200, 100: 200, 10_000: 50}

    from som.mock import make_mock

    load0 = os.getloadavg()
    report: dict = {"load_average_start": load0, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="somcal-bench-") as tmp:
        data_dir = Path(tmp)
        print(f"generating a {args.rows:,}-row mock ...", flush=True)
        make_mock(args.rows, seed=3).to_parquet(data_dir / "ingest.parquet")

        url, schema = pg_schema(args.pg_url)
        try:
            report["ingest_postgresql"] = bench_ingest(url, data_dir, args.rows, "postgresql")
        finally:
            drop_pg_schema(args.pg_url, schema)
        if args.sqlite:
            report["ingest_sqlite"] = bench_ingest(
                f"sqlite:///{data_dir / 'bench.db'}", data_dir, args.rows, "sqlite"
            )
        url, schema = pg_schema(args.pg_url)
        try:
            report["assign_postgresql"] = bench_assign(url, data_dir, repeats, args.train_rows)
        finally:
            drop_pg_schema(args.pg_url, schema)
    report["load_average_end"] = os.getloadavg()
    print(
        f"load average (1, 5, 15 min): start {load0}, end {report['load_average_end']} "
        f"on {os.cpu_count()} CPUs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
