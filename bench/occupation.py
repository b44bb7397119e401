"""A survey's occupation of a map on a Dask LocalCluster, into PostgreSQL.

    .venv/bin/python bench/occupation.py                          # 10^8 rows (and 10^7)
    .venv/bin/python bench/occupation.py --rows 1e7 --small 1e6   # a quick look
    .venv/bin/python bench/occupation.py --data /big/disk/occ     # keep the dataset

A seeded synthetic survey (8 AB magnitudes u..H as float32, a photo-z, RA/Dec; a colour-
redshift relation like the mock's) is written as a Parquet dataset (files of 2x10^6 rows,
row groups of 2.5x10^5). A 75 x 150 map (Euclid-like; ``--map``) is trained on 50,000 rows
of it and stored, ready, in a fresh PostgreSQL schema with cells covered by a synthetic
spectroscopic sample. Then, for two sizes (``--small`` rows, the first files; ``--rows``,
all of them), a fresh LocalCluster of ``--workers`` single-threaded worker processes
computes the occupation with ``som.distributed.occupation_parquet`` (per cell, by
magnitude and photo-z bin and by HEALPix pixel at order 2) and the large one is
registered as an occupation catalogue and read back by coverage and gaps.

Printed: rows/s (wall and per CPU second of the workers), each worker's peak resident
memory (VmHWM of the worker process) at both sizes, so that memory per worker can be
seen not to grow with the dataset, the time to register the counts in PostgreSQL and to
answer coverage and gaps from them, and a projection for 1.5x10^9 rows on N workers from
the measured per-worker rate. On a shared machine, check the load shown.

Last run (2026-12-03, the shared 2-core machine; README "Survey scale"):

    nice -n 5 .venv/bin/python bench/occupation.py --rows 1e8 --small 1e7 --map 30x40 \
        --data /work/occ-bench/data --json result.json

load 6.45 4.57 2.18 at the start, 8.78 9.44 9.23 at the end (1/5/15 min); dataset 6.8 GiB
written in 346 s; 10^7 rows 160 s (62,455 rows/s, 139,558 rows/CPU-s, worker peaks 748,
751 MiB); 10^8 rows 1,532 s (65,262 rows/s, 160,053 rows/CPU-s, worker peaks 783, 784
MiB; idle 219); 237,632 entries registered in PostgreSQL in 4.2 s; projection for
1.5x10^9 rows: 6.4 h on 2 workers, 48 min on 16, 12 min on 64. That run used the pass
as of main b196d53 (rounds added by Bag.reduction, progress per round); the same tree
with progress per partition (client.map + as_completed), this file's, was timed at
``--rows 1e7 --small 2e6`` (load 7.9-8.1): 10^7 rows in 84.9 s, 117,789 rows/s, 153,118
rows/CPU-s, worker peaks 733, 738 MiB; no slower per CPU-second than the rounds it replaced.
"""

from __future__ import annotations

import os

# before numpy/numba load: one thread per process, so rates are per core
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import _common  # noqa: E402
import _service  # noqa: E402

from som import SOM  # noqa: E402
from som.distributed import occupation_parquet  # noqa: E402
from som.photometry import ColourFeatures  # noqa: E402

BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")
SLOPES = np.array([1.2, 0.9, 0.6, 0.3, 0.0, -0.2, -0.35, -0.5])
FILE_ROWS = 2_000_000
ROW_GROUP = 250_000
MAG_EDGES = np.arange(18.0, 27.01, 0.5)
Z_EDGES = np.arange(0.0, 3.01, 0.25)
ORDER = 2  # 192 pixels: the sky split holds at most 192 x n_cells entries
PROJECTED_ROWS = 1.5e9


def make_rows(rng: np.random.Generator, n: int) -> pa.Table:
    """Galaxies with a colour-redshift relation, a noisy photo-z and positions over a
    Euclid-like wide footprint (|b|-free stripe: Dec -60..+60)."""
    z = rng.uniform(0.05, 2.5, n)
    base = rng.uniform(19.0, 25.5, n)
    cols = {}
    for k, band in enumerate(BANDS):
        mag = base + SLOPES[k] * z + rng.normal(0.0, 0.08, n)
        cols[f"mag_{band}"] = pa.array(mag.astype(np.float32))
    cols["z_phot"] = pa.array(
        np.clip(z + rng.normal(0, 0.05 * (1 + z)), 0, None).astype(np.float32)
    )
    cols["ra"] = pa.array(rng.uniform(0.0, 360.0, n))
    cols["dec"] = pa.array(np.degrees(np.arcsin(rng.uniform(-0.866, 0.866, n))))
    return pa.table(cols)


def write_dataset(root: Path, n_rows: int, seed: int) -> list[Path]:
    """The dataset, one seeded file at a time (file k from the generator seeded
    ``[seed, k]``), so that files already written with their full rows are kept and an
    interrupted or larger run resumes."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for k, lo in enumerate(range(0, n_rows, FILE_ROWS)):
        n = min(FILE_ROWS, n_rows - lo)
        path = root / f"part-{k:05d}-s{seed}.parquet"
        files.append(path)
        if path.is_file() and pq.read_metadata(path).num_rows == n:
            continue
        tmp = path.with_name("." + path.name)
        pq.write_table(make_rows(np.random.default_rng([seed, k]), n), tmp,
                       row_group_size=ROW_GROUP)  # fmt: skip
        tmp.rename(path)
        print(f"\r  writing {lo + n:,}/{n_rows:,} rows", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return files


def subset(files: list[Path], n_rows: int, where: Path) -> Path:
    """The first files holding ``n_rows`` rows, as a dataset of symbolic links."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    for f in files[: max(1, n_rows // FILE_ROWS)]:
        (where / f.name).symlink_to(f)
    return where


def train_map(seed: int, shape: tuple[int, int]) -> SOM:
    table = make_rows(np.random.default_rng(seed + 1), 50_000).to_pandas()
    features = ColourFeatures(bands=BANDS, error_template=None, magnitude_band="i")
    return SOM(*shape, random_state=seed, n_epochs=3, features=features).fit(table)


def store_map(url: str, som: SOM, seed: int) -> int:
    """The map, ready, in the ledger at ``url``, its cells covered by a synthetic
    spectroscopic sample of 30,000 galaxies (secure where bright enough)."""
    from app.core.db import make_engine, make_session_factory
    from app.models import Map, utcnow
    from app.services import ledger

    spec = make_rows(np.random.default_rng(seed + 2), 30_000).to_pandas()
    a = som.assign(som.features.transform(spec)[0], allow_empty=True)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            m = Map(
                name="bench occupation", status="ready", n_rows=som.n_rows, n_cols=som.n_cols,
                lattice=som.lattice, periodic=som.periodic,
                grid={"z_edges": np.round(np.arange(0, 3.01, 0.05), 4).tolist()},
                features=som.features.to_dict(), weights=som.to_bytes(), min_secure=1,
                trained_at=utcnow(),
            )  # fmt: skip
            session.add(m)
            session.flush()
            secure = (spec["mag_i"].to_numpy() < 23.0) & (a.cell >= 0)
            empty = np.empty(0, np.int64)
            values = ledger.phot_cell_values(m, empty, np.empty(0))
            values.update(
                ledger.spec_cell_values(m, a.cell, spec["z_phot"].to_numpy(float), secure)
            )
            ledger.write_new_cells(session, m, values)
            session.commit()
            return m.id
    finally:
        engine.dispose()


def worker_peaks(client) -> list[int]:
    return sorted(client.run(_common.max_rss).values())


def run_size(som: SOM, dataset: Path, workers: int, rows_per_task: int) -> dict:
    """One occupation pass on a fresh LocalCluster: wall and CPU rates, worker peaks."""
    import distributed

    env = {v: "1" for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
        memory_limit=0, env=env,
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        idle = worker_peaks(client)
        cpu0 = sum(client.run(time.process_time).values())
        t0 = time.perf_counter()
        occ = occupation_parquet(
            som, dataset, client=client, mag_column="mag_i", mag_edges=MAG_EDGES,
            z_column="z_phot", z_edges=Z_EDGES, healpix_order=ORDER, ra_column="ra",
            dec_column="dec", rows_per_task=rows_per_task, progress=True,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        cpu = sum(client.run(time.process_time).values()) - cpu0
        peaks = worker_peaks(client)
    # said at once, so that a run stopped before the larger size still leaves this one
    mb = 1024**2
    print(f"done {occ.n_rows:,} rows in {seconds:.1f} s: {occ.n_rows / seconds:,.0f} rows/s, "
          f"{occ.n_rows / cpu if cpu > 0 else float('nan'):,.0f} rows/CPU-s, worker peak "
          f"{', '.join(f'{v / mb:,.0f}' for v in peaks)} MB; load {_common.load_average()}",
          file=sys.stderr, flush=True)  # fmt: skip
    return {
        "rows": occ.n_rows,
        "partitions": occ.provenance["n_partitions"],
        "seconds": seconds,
        "rows_per_second": occ.n_rows / seconds,
        "rows_per_cpu_second": occ.n_rows / cpu if cpu > 0 else float("nan"),
        "worker_peak_rss": peaks,
        "worker_idle_rss": idle,
        "occupation": occ,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=float, default=1e8, help="rows of the large run")
    p.add_argument("--small", type=float, default=1e7, help="rows of the small run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--map", default="75x150", help="map shape ROWSxCOLS (cost ~ its cells)")
    p.add_argument("--rows-per-task", type=int, default=1_000_000)
    p.add_argument("--data", type=Path, default=None, help="dataset directory (kept)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()
    n_large, n_small = int(args.rows), int(args.small)

    scratch = Path(tempfile.mkdtemp(prefix="somcal-occ-bench-"))
    data = args.data or scratch / "survey"
    base = _service.pg_base_url()
    reason = _service.pg_reachable(base)
    if reason:
        sys.exit(f"PostgreSQL not reachable: {reason}")
    url, schema = _service.pg_schema(base, "somcal_bench_occ")
    try:
        print(f"load: {_common.load_average()}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        files = write_dataset(data, n_large, args.seed)
        if args.data is not None:  # a dataset directory may hold more files than this run's
            data = subset(files, n_large, scratch / "large")
        written = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in files)
        som = train_map(args.seed, tuple(int(v) for v in args.map.lower().split("x")))
        from app.core import migrate

        migrate.upgrade(url)
        map_id = store_map(url, som, args.seed)

        small = run_size(som, subset(files, n_small, scratch / "small"), args.workers,
                         args.rows_per_task)  # fmt: skip
        large = run_size(som, data, args.workers, args.rows_per_task)

        from app.core.db import make_engine, make_session_factory
        from app.models import Map
        from app.services import coverage as coverage_service
        from app.services import occupation as occupation_service

        engine = make_engine(url)
        occ = large["occupation"]
        with make_session_factory(engine)() as session:
            m = session.get(Map, map_id)
            t0 = time.perf_counter()
            reg = occupation_service.register(
                session, m, occ, name="bench survey", filename=str(data), file_format="parquet"
            )
            t_register = time.perf_counter() - t0
            occupation_service._CACHE._items.clear()  # time the read from the database
            t0 = time.perf_counter()
            cov = coverage_service.coverage(
                session, m, "i", None, None, catalogue_id=reg.catalogue.id
            )
            t_coverage = time.perf_counter() - t0
            t0 = time.perf_counter()
            gaps = coverage_service.gaps(session, m, 10, 0, catalogue_id=reg.catalogue.id)
            t_gaps = time.perf_counter() - t0
            entries = (reg.catalogue.summary or {}).get("entries")
        engine.dispose()

        per_worker = large["rows_per_second"] / args.workers
        out = {
            "rows": n_large,
            "dataset_bytes": size,
            "files": len(files),
            "write_seconds": written,
            "map": f"{som.n_rows}x{som.n_cols}",
            "workers": args.workers,
            "load": _common.load_average(),
            "runs": [{k: v for k, v in r.items() if k != "occupation"} for r in (small, large)],
            "register_seconds": t_register,
            "stored_entries": entries,
            "coverage_seconds": t_coverage,
            "gaps_seconds": t_gaps,
            "fraction_galaxies_covered": cov["summary"]["fraction_galaxies_covered"],
            "fraction_in_gaps": gaps["fraction_in_gaps"],
            "projection_hours": {
                n: PROJECTED_ROWS / (per_worker * n) / 3600 for n in (2, 16, 64, 256, 1000)
            },
        }
    finally:
        _service.drop_pg_schema(base, schema)
        # the dataset goes with the scratch directory unless --data put it elsewhere
        shutil.rmtree(scratch, ignore_errors=True)

    mb = 1024**2
    print()
    print(f"dataset: {out['rows']:,} rows, {out['files']} files, "
          f"{_common.human_bytes(out['dataset_bytes'])} on disk; map {out['map']}; "
          f"{out['workers']} workers; load {out['load']}")  # fmt: skip
    rows = []
    for r in out["runs"]:
        rows.append([
            f"{r['rows']:,}", r["partitions"], f"{r['seconds']:.1f}",
            f"{r['rows_per_second']:,.0f}", f"{r['rows_per_cpu_second']:,.0f}",
            ", ".join(f"{v / mb:,.0f}" for v in r["worker_peak_rss"]),
            ", ".join(f"{v / mb:,.0f}" for v in r["worker_idle_rss"]),
        ])  # fmt: skip
    print(_common.format_table(
        ["rows", "partitions", "seconds", "rows/s", "rows/CPU-s", "worker peak MB",
         "worker idle MB"], rows))  # fmt: skip
    print(
        f"PostgreSQL: registered {out['stored_entries']:,} count entries in "
        f"{out['register_seconds']:.2f} s; coverage from them in {out['coverage_seconds']:.2f} s, "
        f"gaps in {out['gaps_seconds']:.2f} s (fraction of galaxies covered "
        f"{out['fraction_galaxies_covered']:.3f})"
    )
    hours = ", ".join(f"{n} workers {h:.2f} h" for n, h in out["projection_hours"].items())
    print(f"projection for 1.5e9 rows at the measured per-worker rate: {hours}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
