"""Ingest benchmark: peak memory and rate of a large photometric ingest into PostgreSQL.

    .venv/bin/python bench/ingest.py                    # 10^6 and 10^7 rows (~6 min)
    .venv/bin/python bench/ingest.py --rows 1000000     # one size
    .venv/bin/python bench/ingest.py --format csv       # CSV instead of Parquet

Each size is a somcal-mock-shaped catalogue (id, ra, dec, z_phot, 8 bands with errors),
written once to a temporary Parquet (or CSV) file in pieces, then ingested by a fresh child
process through ``app.services.ingest.ingest`` (the path the CLI and the API take, without
maps to assign to) into a throwaway PostgreSQL schema. The child reports its peak resident
memory (``VmHWM``) after importing somcal and after the ingest, so the figure is what the
ingest itself adds. Goal ("anyone's survey" issue): under 1 GB peak for 10^7 rows, at no
less than ~140,000 rows/s into PostgreSQL (the rate of the fixed-column schema before).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _service import drop_pg_schema, pg_base_url, pg_reachable, pg_schema  # noqa: E402

PIECE = 1_000_000

CHILD = r"""
import json, sys, time
from pathlib import Path

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

from app.core import migrate
from app.core.db import make_engine, make_session_factory
from app.services.ingest import IngestRequest, ingest
import app.services.hooks  # everything an ingest imports, before the baseline

url, path = sys.argv[1], Path(sys.argv[2])
migrate.upgrade(url)
engine = make_engine(url)
factory = make_session_factory(engine)
base = hwm()
t0 = time.perf_counter()
result = ingest(
    factory,
    IngestRequest(kind="photometric", path=path, filename=path.name),
    max_rows=10**9,
)
dt = time.perf_counter() - t0
print(json.dumps({"rows": result.catalogue.n_rows, "seconds": dt, "baseline": base,
                  "peak": hwm()}))
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_catalogue(path: Path, n: int, fmt: str) -> None:
    """n mock-shaped rows, written piece by piece so the bench itself stays small."""
    from som.mock import make_mock

    columns = ["id", "ra", "dec", "z_phot"] + [
        f"{p}_{b}" for b in ("u", "g", "r", "i", "z", "Y", "J", "H") for p in ("mag", "magerr")
    ]
    base = make_mock(min(n, PIECE), seed=11, spec=False)[columns]
    writer = None
    done = 0
    rng = np.random.default_rng(12)
    while done < n:
        k = min(PIECE, n - done)
        piece = base.iloc[:k].copy()
        piece["id"] = np.arange(done + 1, done + k + 1)
        # jitter, so pieces are not byte-identical
        piece["ra"] += rng.normal(0, 1e-5, k)
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(piece, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        else:
            piece.to_csv(path, mode="a", header=done == 0, index=False)
        done += k
    if writer is not None:
        writer.close()


def run(url: str, path: Path, code: Path) -> dict:
    """Migrate and ingest in a child process running the somcal in ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=code,
        env={**os.environ, "PYTHONPATH": str(code)},
    )
    if out.returncode != 0:
        raise SystemExit(f"ingest child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also ingest with the somcal of this git revision (a temporary worktree), "
        "side by side, e.g. the commit before bands became data",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    base = pg_base_url()
    reason = pg_reachable(base)
    if reason:
        raise SystemExit(f"PostgreSQL needed: {reason}")

    here = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        codes = [("this", here)]
        if args.compare:
            tree = Path(tmp) / "compare"
            subprocess.run(
                ["git", "-C", str(here), "worktree", "add", "--detach", str(tree), args.compare],
                check=True,
                capture_output=True,
            )
            codes.append((args.compare[:12], tree))
        try:
            for n in args.rows:
                path = Path(tmp) / f"catalogue_{n}.{args.format}"
                log(f"writing {n:,} rows to {path.name}")
                write_catalogue(path, n, args.format)
                for label, code in codes:
                    rows.append(_measure(base, path, n, args.format, label, code))
                path.unlink()
        finally:
            if args.compare:
                subprocess.run(
                    ["git", "-C", str(here), "worktree", "remove", "--force", str(tree)],
                    check=False,
                    capture_output=True,
                )
    _report(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _measure(base: str, path: Path, n: int, fmt: str, label: str, code: Path) -> dict:
    size = path.stat().st_size
    url, schema = pg_schema(base)
    try:
        log(f"{label}: ingesting {n:,} rows ({size / 2**20:,.0f} MiB {fmt})")
        r = run(url, path, code)
    finally:
        drop_pg_schema(base, schema)
    added = r["peak"] - r["baseline"]
    out = {
        "code": label,
        "rows": r["rows"],
        "format": fmt,
        "file_mib": size / 2**20,
        "seconds": r["seconds"],
        "rows_per_s": r["rows"] / r["seconds"],
        "peak_mib": r["peak"] / 2**20,
        "ingest_mib": added / 2**20,
        "bytes_per_row": added / r["rows"],
    }
    log(f"{label}: {out['rows_per_s']:,.0f} rows/s, peak {out['peak_mib']:,.0f} MiB")
    return out


def _report(rows: list[dict]) -> None:
    print()
    print(
        "| somcal | rows | format | file (MiB) | seconds | rows/s | peak RSS (MiB) "
        "| ingest adds (MiB) | bytes/row |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['code']} | {r['rows']:,} | {r['format']} | {r['file_mib']:,.0f} "
            f"| {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['peak_mib']:,.0f} "
            f"| {r['ingest_mib']:,.0f} | {r['bytes_per_row']:.0f} |"
        )
    print("goal: peak < 1024 MiB at 10^7 rows; >= 140,000 rows/s into PostgreSQL")


if __name__ == "__main__":
    main()
