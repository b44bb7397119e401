"""Fault demonstration against the real service: what a client sees, and what is stored.

    .venv/bin/python bench/faults.py                 # all scenarios
    .venv/bin/python bench/faults.py --rows 100000   # a smaller catalogue for the crash

Scenarios (each against ``uvicorn app.main:create_app --factory`` in a child process on
127.0.0.1, see bench/_service.py):

1. PostgreSQL crashes mid-ingest. A private cluster (initdb/pg_ctl in a temporary
   directory, never the shared one) is stopped with ``pg_ctl -m immediate`` the moment
   ``pg_stat_activity`` shows the ingest's ``COPY`` running. Expected: the upload gets
   503 + Retry-After; while the database is down every API call gets 503 + Retry-After
   (``/health`` stays 200); when it is back the service answers again without a restart,
   nothing of the failed ingest is stored, and the same file then lands whole.
2. The server is SIGKILLed while a map trains. Expected: at the next start the job and the
   map are failed ("interrupted"), the map has no weights, cells or assignments.
3. Two different catalogues uploaded at the same instant to a service with a ready map:
   both land, with their rows and their assignments.
4. The same file uploaded twice at the same instant: it lands once; the other upload is
   answered "duplicate" (200) with the same catalogue.

Prints a table (scenario, observation, verdict); exit code 1 if any verdict is FAIL.
The same behaviours are asserted in tests/app/test_faults_and_races.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _service import (  # noqa: E402
    ServerProcess,
    ThrowawayPostgres,
    create_key,
    csv_bytes,
    run_together,
    start_training,
    train,
    upload,
    wait_for_job,
)

ROWS: list[tuple[str, str, bool]] = []


def record(scenario: str, observation: str, ok: bool) -> None:
    ROWS.append((scenario, observation, ok))
    print(f"  [{'ok' if ok else 'FAIL'}] {scenario}: {observation}", flush=True)


def _counts(url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.core.db import make_engine, make_session_factory
    from app.models import Assignment, Catalogue, Cell, Source

    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        out = {
            m.__tablename__: int(s.scalar(select(func.count()).select_from(m)))
            for m in (Catalogue, Source, Assignment, Cell)
        }
    engine.dispose()
    return out


# ----------------------------------------------------------------------------- 1
def crash_mid_ingest(mock, tmp: Path) -> None:
    import httpx
    import psycopg

    from app.core import migrate

    name = "1. PostgreSQL crashes mid-ingest"
    reason = ThrowawayPostgres.unavailable_reason()
    if reason:
        record(name, f"skipped: {reason}", True)
        return
    content = csv_bytes(mock)
    with ThrowawayPostgres() as pg:
        migrate.upgrade(pg.url)
        auth = {"X-API-Key": create_key(pg.url)}
        env = {"SOMCAL_DATABASE_URL": pg.url, "SOMCAL_UPLOAD_TMP_DIR": str(tmp)}
        with (
            ServerProcess(env, tmp / "crash.log") as server,
            httpx.Client(base_url=server.base_url, timeout=600) as client,
        ):
            answer: dict = {}

            def send() -> None:
                answer["r"] = upload(client, auth, "photometric", content, "big.csv")

            thread = threading.Thread(target=send)
            thread.start()
            conninfo = pg.url.replace("postgresql+psycopg", "postgresql")
            seen_copy = False
            with psycopg.connect(conninfo, autocommit=True) as admin:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline and thread.is_alive():
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE state = 'active' AND query ILIKE 'COPY sources%'"
                    ).fetchone()
                    if row[0]:
                        seen_copy = True
                        break
                    time.sleep(0.01)
            t_crash = time.perf_counter()
            pg.stop("immediate")
            thread.join(timeout=120)
            r = answer["r"]
            record(
                name,
                f"COPY seen running: {seen_copy}; upload answered {r.status_code} "
                f"Retry-After={r.headers.get('retry-after')} ({r.json()['detail']!r})",
                seen_copy and r.status_code == 503 and bool(r.headers.get("retry-after")),
            )
            outage = []
            for path in ("/v1/catalogues", "/v1/maps", "/ready", "/v1/catalogues/1"):
                resp = client.get(path)
                outage.append((path, resp.status_code, resp.headers.get("retry-after")))
            health = client.get("/health").status_code
            record(
                name,
                "while down: "
                + ", ".join(f"{p} {s} (Retry-After {ra})" for p, s, ra in outage)
                + f"; /health {health}",
                all(s == 503 and ra for _, s, ra in outage) and health == 200,
            )
            time.sleep(2.0)  # a database that stays away for a while
            pg.start()
            t_back = time.perf_counter()
            first = client.get("/v1/catalogues")
            n_tries = 1
            while first.status_code != 200 and time.perf_counter() - t_back < 60:
                time.sleep(0.1)
                first = client.get("/v1/catalogues")
                n_tries += 1
            counts = _counts(pg.url)
            record(
                name,
                f"back after {time.perf_counter() - t_crash:.1f} s: first call {first.status_code} "
                f"(after {n_tries} tr{'y' if n_tries == 1 else 'ies'}, no service restart); "
                f"stored: {counts['catalogues']} catalogues, {counts['sources']} sources",
                first.status_code == 200 and counts["catalogues"] == counts["sources"] == 0,
            )
            t0 = time.perf_counter()
            again = upload(client, auth, "photometric", content, "big.csv")
            counts = _counts(pg.url)
            record(
                name,
                f"same file again: {again.status_code}, {again.json().get('n_rows'):,} rows in "
                f"{time.perf_counter() - t0:.1f} s; stored {counts['sources']:,} sources",
                again.status_code == 201 and counts["sources"] == len(mock),
            )


# ----------------------------------------------------------------------------- 2
def kill_mid_training(mock, tmp: Path) -> None:
    import httpx
    from sqlalchemy import func, select

    from app.core import migrate
    from app.core.db import make_engine, make_session_factory
    from app.models import Assignment, Cell, Map

    name = "2. server SIGKILLed mid-training"
    url = f"sqlite:///{tmp / 'kill.db'}"
    migrate.upgrade(url)
    auth = {"X-API-Key": create_key(url)}
    # A killed server's job is failed once its heartbeat is overdue (short here).
    beats = {"SOMCAL_JOB_HEARTBEAT_SECONDS": "1", "SOMCAL_JOB_HEARTBEAT_TIMEOUT_SECONDS": "4"}
    env = {"SOMCAL_DATABASE_URL": url, "SOMCAL_UPLOAD_TMP_DIR": str(tmp), **beats}
    server = ServerProcess(env, tmp / "kill.log")
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=600) as client:
            cat = upload(client, auth, "photometric", mock.iloc[:20000], "train.csv").json()
            accepted = start_training(client, auth, cat["id"], n_rows=40, n_cols=40, n_epochs=300)
            job_id, map_id = accepted["job"]["id"], accepted["map"]["id"]
            job = wait_for_job(
                client, job_id, lambda j: j["status"] == "running" and j["progress"] >= 0.1
            )
        server.kill()
    finally:
        server.stop()
    record(name, f"killed pid {server.pid} at progress {job['progress']:.2f}", True)
    with (
        ServerProcess(env, tmp / "kill2.log") as again,
        httpx.Client(base_url=again.base_url, timeout=60) as client,
    ):
        job = wait_for_job(client, job_id, lambda j: j["status"] != "running")
        m = client.get(f"/v1/maps/{map_id}").json()
        cells = client.get(f"/v1/maps/{map_id}/cells").status_code
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        weights = s.get(Map, map_id).weights
        n_cells = s.scalar(select(func.count()).select_from(Cell).where(Cell.map_id == map_id))
        n_assigned = s.scalar(
            select(func.count()).select_from(Assignment).where(Assignment.map_id == map_id)
        )
    engine.dispose()
    record(
        name,
        f"after restart: job {job['status']} ({job['error']!r}), map {m['status']}, "
        f"GET cells {cells}; stored weights: {weights is not None}, cells {n_cells}, "
        f"assignments {n_assigned}",
        job["status"] == "failed"
        and m["status"] == "failed"
        and cells == 409
        and weights is None
        and n_cells == n_assigned == 0,
    )


# ----------------------------------------------------------------------------- 3 and 4
def concurrent_ingests(mock, tmp: Path) -> None:
    import httpx

    from app.core import migrate

    url = f"sqlite:///{tmp / 'concurrent.db'}"
    migrate.upgrade(url)
    auth = {"X-API-Key": create_key(url)}
    env = {"SOMCAL_DATABASE_URL": url, "SOMCAL_UPLOAD_TMP_DIR": str(tmp)}
    with (
        ServerProcess(env, tmp / "concurrent.log") as server,
        httpx.Client(base_url=server.base_url, timeout=600) as client,
    ):
        base = upload(client, auth, "photometric", mock.iloc[:5000], "base.csv").json()
        train(client, auth, base["id"], n_rows=15, n_cols=15, n_epochs=5)
        a, b = csv_bytes(mock.iloc[5000:25000]), csv_bytes(mock.iloc[25000:40000])
        t0 = time.perf_counter()
        ra, rb = run_together(
            lambda: upload(client, auth, "photometric", a, "a.csv"),
            lambda: upload(client, auth, "photometric", b, "b.csv"),
        )
        wall = time.perf_counter() - t0
        counts = _counts(url)
        record(
            "3. two different catalogues at once",
            f"answers {ra.status_code}/{rb.status_code} in {wall:.1f} s; rows "
            f"{ra.json()['n_rows']:,}+{rb.json()['n_rows']:,}; stored sources "
            f"{counts['sources']:,} (5,000 + 20,000 + 15,000), assignments "
            f"{counts['assignments']:,}",
            (ra.status_code, rb.status_code) == (201, 201)
            and counts["sources"] == counts["assignments"] == 40000,
        )
        same = csv_bytes(mock.iloc[40000:50000])
        r1, r2 = run_together(
            lambda: upload(client, auth, "photometric", same, "same.csv"),
            lambda: upload(client, auth, "photometric", same, "same.csv"),
        )
        after = _counts(url)
        record(
            "4. the same file twice at once",
            f"answers {r1.status_code}/{r2.status_code} (duplicate flags "
            f"{r1.json()['duplicate']}/{r2.json()['duplicate']}), catalogue ids "
            f"{r1.json()['id']}/{r2.json()['id']}; new sources stored "
            f"{after['sources'] - counts['sources']:,}",
            sorted([r1.status_code, r2.status_code]) == [200, 201]
            and r1.json()["id"] == r2.json()["id"]
            and after["sources"] - counts["sources"] == 10000,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="catalogue for the crash")
    args = parser.parse_args()
    from som.mock import make_mock

    print(f"generating a {max(args.rows, 50_000):,}-row mock ...", flush=True)
    mock = make_mock(max(args.rows, 50_000), seed=5)
    with tempfile.TemporaryDirectory(prefix="somcal-faults-") as tmp_name:
        tmp = Path(tmp_name)
        crash_mid_ingest(mock.iloc[: args.rows], tmp)
        kill_mid_training(mock, tmp)
        concurrent_ingests(mock, tmp)
    print("\n| scenario | observed | verdict |\n|---|---|---|")
    for scenario, observation, ok in ROWS:
        print(f"| {scenario} | {observation} | {'ok' if ok else 'FAIL'} |")
    return 0 if all(ok for *_, ok in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
