"""API read latency while a 75x150 map trains in a separate ``somcal worker`` process.

    .venv/bin/python bench/worker.py                      # PostgreSQL on 127.0.0.1:5432/test
    .venv/bin/python bench/worker.py --worker-threads 2   # let the worker's numba use 2 threads
    .venv/bin/python bench/worker.py --embedded           # for comparison: train in the API

What it does, on loopback against PostgreSQL (a schema of its own, dropped at the end):

1. starts the API (``uvicorn app.main:create_app --factory``, ``SOMCAL_EMBEDDED_WORKERS=0``)
   and one ``somcal worker`` process (``NUMBA_NUM_THREADS=--worker-threads``);
2. ingests a ``make_mock`` catalogue (``--train-rows``) and trains a 10x10 map to read;
3. times ``--requests`` sequential reads, cycling over ``GET /v1/maps``,
   ``/v1/maps/{id}``, ``/v1/maps/{id}/cells``, ``/v1/jobs/{id}`` and ``/v1/catalogues``,
   with nothing training (idle);
4. queues a 75x150 map (``--epochs``) and times the same reads while the worker fits it
   (job progress between 0.05 and 0.8, i.e. the SOM epochs, not loading or storing);
5. times the same reads again once the map is stored (idle after), so that a change in
   the shared machine's load during the run shows as idle-before differing from idle-after;
6. prints median and p95 of each phase and the ratio training/idle, idle being both idle
   phases pooled (goal: <= 1.5x).

The machine is shared (2 cores here): the worker and the API compete for CPU unless the
worker is held to fewer threads than there are cores, as it would be on a host of its own.
The load average at start and end is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _service import (  # noqa: E402
    ServerProcess,
    WorkerProcess,
    create_key,
    drop_pg_schema,
    fitting,
    pg_schema,
    start_training,
    train,
    wait_for_job,
)

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _stats(samples: list[float]) -> tuple[float, float]:
    a = np.asarray(samples) * 1000.0
    return float(np.median(a)), float(np.percentile(a, 95))


def main() -> None:
    import httpx

    from app.core import migrate
    from som.mock import make_mock

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg-url", default=os.environ.get("DATABASE_URL_TEST", DEFAULT_PG))
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the 75x150 map")
    ap.add_argument("--requests", type=int, default=400, help="reads per phase (at most)")
    ap.add_argument("--worker-threads", type=int, default=1, help="NUMBA_NUM_THREADS")
    ap.add_argument(
        "--worker-nice",
        type=int,
        default=None,
        help="SOMCAL_WORKER_NICE for the worker (default: the setting's default, 10)",
    )
    ap.add_argument(
        "--embedded",
        action="store_true",
        help="train in the API process (SOMCAL_EMBEDDED_WORKERS=1, the SQLite default's "
        "arrangement) instead of a worker process, for comparison",
    )
    args = ap.parse_args()

    load0 = os.getloadavg()
    url, schema = pg_schema(args.pg_url, "somcal_bench_worker")
    try:
        migrate.upgrade(url)
        key = create_key(url)
        auth = {"X-API-Key": key}
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            data = tmp_path / "data"
            data.mkdir()
            make_mock(args.train_rows, seed=21).to_parquet(data / "train.parquet")
            env = {
                "SOMCAL_DATABASE_URL": url,
                "SOMCAL_EMBEDDED_WORKERS": "1" if args.embedded else "0",
                "SOMCAL_DATA_DIRS": str(data),
                "SOMCAL_UPLOAD_TMP_DIR": str(tmp_path),
            }
            api = ServerProcess(env, tmp_path / "api.log")
            worker_env = {**env, "NUMBA_NUM_THREADS": str(args.worker_threads)}
            if args.worker_nice is not None:
                worker_env["SOMCAL_WORKER_NICE"] = str(args.worker_nice)
            worker = None
            try:
                base = api.start()
                if not args.embedded:
                    worker = WorkerProcess(worker_env, tmp_path / "worker.log")
                with httpx.Client(base_url=base, timeout=120) as client:
                    cat = client.post(
                        "/v1/catalogues/photometric", json={"path": "train.parquet"}, headers=auth
                    )
                    cat.raise_for_status()
                    cat_id = cat.json()["id"]
                    small_map, job = train(
                        client, auth, cat_id, interval=0.2, n_rows=10, n_cols=10, n_epochs=3
                    )
                    small_job = job["id"]
                    reads = [
                        "/v1/maps",
                        f"/v1/maps/{small_map}",
                        f"/v1/maps/{small_map}/cells",
                        f"/v1/jobs/{small_job}",
                        "/v1/catalogues",
                    ]

                    def read(k: int) -> float:
                        t0 = time.perf_counter()
                        client.get(reads[k % len(reads)]).raise_for_status()
                        return time.perf_counter() - t0

                    for k in range(25):  # warm the API (imports, caches, connections)
                        read(k)
                    idle = [read(k) for k in range(args.requests)]

                    accepted = start_training(
                        client, auth, cat_id, n_rows=75, n_cols=150, n_epochs=args.epochs
                    )
                    big_job = accepted["job"]["id"]
                    t_start = time.perf_counter()
                    wait_for_job(client, big_job, fitting, timeout=1800, interval=0.2)
                    busy: list[float] = []
                    k = 0
                    while len(busy) < args.requests:
                        job = client.get(f"/v1/jobs/{big_job}").json()  # not timed
                        if job["status"] != "running" or job["progress"] >= 0.8:
                            break
                        for _ in range(5):
                            busy.append(read(k))
                            k += 1
                    job = wait_for_job(client, big_job, timeout=1800, interval=0.2)
                    train_s = time.perf_counter() - t_start
                    if job["status"] != "succeeded":
                        raise RuntimeError(f"75x150 map failed: {job['error']}")
                    after = [read(k) for k in range(args.requests)]
            finally:
                if worker is not None:
                    worker.stop()
                api.stop()
    finally:
        drop_pg_schema(args.pg_url, schema)
    load1 = os.getloadavg()

    a50, a95 = _stats(idle)
    c50, c95 = _stats(after)
    i50, i95 = _stats(idle + after)
    b50, b95 = _stats(busy)
    where = (
        "inside the API process"
        if args.embedded
        else f"in a separate worker process (NUMBA_NUM_THREADS={args.worker_threads}, "
        f"SOMCAL_WORKER_NICE={'default' if args.worker_nice is None else args.worker_nice})"
    )
    print(
        f"75x150 map, {args.epochs} epochs on {args.train_rows:,} rows, {where}: "
        f"{train_s:.1f} s; "
        f"{os.cpu_count()} cores; load average {load0[0]:.2f} -> {load1[0]:.2f}"
    )
    print(f"{'reads':<26}{'n':>6}{'median ms':>11}{'p95 ms':>9}")
    print(f"{'idle before':<26}{len(idle):>6}{a50:>11.2f}{a95:>9.2f}")
    print(f"{'while the map trains':<26}{len(busy):>6}{b50:>11.2f}{b95:>9.2f}")
    print(f"{'idle after':<26}{len(after):>6}{c50:>11.2f}{c95:>9.2f}")
    print(f"{'idle (both)':<26}{len(idle) + len(after):>6}{i50:>11.2f}{i95:>9.2f}")
    print(f"ratio training/idle: median x{b50 / i50:.2f}, p95 x{b95 / i95:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
