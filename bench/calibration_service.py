"""Service benchmark of a deep/wide calibration (/v1/calibrations) on the mock.

    .venv/bin/python bench/calibration_service.py                  # SQLite in a temp dir
    .venv/bin/python bench/calibration_service.py --pg             # PostgreSQL 127.0.0.1:5432/test
    .venv/bin/python bench/calibration_service.py --deep 2000 --wide 10000 --injections 5

In-process (FastAPI TestClient, one embedded worker): ingests a deep field with spectra
(``make_mock(deep, truth=True)``), a wide sample (another mock's galaxies observed by
``observe_wide(..., "lsst")``) and a Balrog-like transfer catalogue of the deep galaxies
(``transfer_catalogue``, its wide side, source_id = the deep galaxy), trains a deep and a
wide map, then reports the time of the calibration job (its own start-to-finish stamps),
of the recomputation after the spectra are deleted and re-ingested, and the end-to-end
latency of the reads (show, n(z) JSON and SACC, PNG, targets). The machine is shared: the
load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _service import (  # noqa: E402
    create_key,
    drop_pg_schema,
    pg_base_url,
    pg_schema,
    train,
    upload,
    wait_for_job,
)

DEEP_BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")
WIDE_BANDS = ("u_lsst", "g_lsst", "r_lsst", "i_lsst", "z_lsst", "y_lsst")


def _phot(frame, bands, prefix=""):
    import pandas as pd

    cols = {"id": frame["id"]}
    for b in bands:
        cols[f"mag_{b}"] = frame[f"{prefix}mag_{b}"]
        cols[f"magerr_{b}"] = frame[f"{prefix}magerr_{b}"]
    return pd.DataFrame(cols)


def _timed(client, url, params=None):
    t0 = time.perf_counter()
    r = client.get(url, params=params)
    dt = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    return dt, r


def _job_seconds(job: dict) -> float:
    from datetime import datetime

    start = datetime.fromisoformat(job["started_at"])
    end = datetime.fromisoformat(job["finished_at"])
    return (end - start).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--deep", type=int, default=10_000, help="deep galaxies")
    ap.add_argument("--wide", type=int, default=50_000, help="wide galaxies")
    ap.add_argument("--injections", type=int, default=10, help="injections per deep galaxy")
    ap.add_argument("--realisations", type=int, default=100)
    ap.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    args = ap.parse_args()

    import numpy as np
    from fastapi.testclient import TestClient

    from app.core import migrate
    from app.core.config import Settings
    from app.main import create_app
    from som.mock import make_mock, observe_wide, transfer_catalogue

    deep = make_mock(args.deep, seed=1, truth=True)
    wide = observe_wide(make_mock(args.wide, seed=2, truth=True), "lsst", seed=3)
    transfer = transfer_catalogue(deep, "lsst", n_injections=args.injections, seed=4)
    spec = deep[np.isfinite(deep["z_spec"].to_numpy())]
    spec_frame = _phot(spec, DEEP_BANDS).assign(z_spec=spec["z_spec"].to_numpy())

    with tempfile.TemporaryDirectory(prefix="somcal-calbench-") as tmp:
        schema = None
        if args.pg:
            url, schema = pg_schema(pg_base_url(), "somcal_calbench")
        else:
            url = f"sqlite:///{tmp}/somcal.db"
        try:
            migrate.upgrade(url)
            key = {"X-API-Key": create_key(url)}
            settings = Settings(
                database_url=url,
                data_dirs=[Path(tmp)],
                max_upload_bytes=2_000_000_000,
                max_rows=10_000_000,
                upload_tmp_dir=Path(tmp),
            )
            with TestClient(create_app(settings)) as client:
                ids = {}
                for name, frame, kind in (
                    ("deep", _phot(deep, DEEP_BANDS), "photometric"),
                    ("wide", _phot(wide, WIDE_BANDS), "photometric"),
                    ("transfer", _phot(transfer, WIDE_BANDS, "wide_"), "photometric"),
                    ("spec", spec_frame, "spectroscopic"),
                ):
                    r = upload(client, key, kind, frame, f"{name}.csv")
                    assert r.status_code == 201, r.text
                    ids[name] = r.json()["id"]
                deep_map, _ = train(client, key, ids["deep"], n_rows=32, n_cols=32, n_epochs=10)
                wide_map, _ = train(client, key, ids["wide"], n_rows=24, n_cols=24, n_epochs=10)
                body = {
                    "deep_map_id": deep_map,
                    "wide_map_id": wide_map,
                    "deep_catalogue_id": ids["deep"],
                    "wide_catalogue_id": ids["wide"],
                    "transfer_catalogue_id": ids["transfer"],
                    "n_realisations": args.realisations,
                    "allow_missing_transfer": True,
                }
                r = client.post("/v1/calibrations", json=body, headers=key)
                assert r.status_code == 202, r.text
                cal = r.json()
                job = wait_for_job(client, cal["job_id"])
                assert job["status"] == "succeeded", job
                base = f"/v1/calibrations/{cal['id']}"
                first = _job_seconds(job)
                # the spectra leave and come back: two recomputations by themselves
                client.delete(f"/v1/catalogues/{ids['spec']}", headers=key)
                job = wait_for_job(client, client.get(base).json()["job_id"])
                r = upload(client, key, "spectroscopic", spec_frame, "spec2.csv")
                job = wait_for_job(client, client.get(base).json()["job_id"])
                assert job["status"] == "succeeded", job
                again = _job_seconds(job)
                reads = {
                    "show": _timed(client, base)[0],
                    "nz json": _timed(client, f"{base}/nz")[0],
                    "nz sacc": _timed(client, f"{base}/nz", {"format": "sacc"})[0],
                    "png": _timed(client, f"{base}/plots/nz.png")[0],
                    "targets (100)": _timed(client, f"{base}/targets", {"budget": 100})[0],
                }
                shown = client.get(base).json()
        finally:
            if schema is not None:
                drop_pg_schema(pg_base_url(), schema)

    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"{backend}; load average {os.getloadavg()[0]:.2f}")
    print(
        f"deep {args.deep:,} galaxies ({len(spec):,} spectra), wide {args.wide:,}, transfer "
        f"{len(transfer):,} rows ({args.injections} injections), maps 32x32 and 24x24, "
        f"{args.realisations} dirichlet realisations"
    )
    print(f"calibration job: {first:.2f} s; recomputed after new spectra: {again:.2f} s")
    for name, dt in reads.items():
        print(f"GET {name}: {1000 * dt:.0f} ms")
    for b in shown["bins"]:
        print(
            f"  bin {b['bin']} {b['z_lo']:g}-{b['z_hi']:g}: <z> {b['mean_z']:.4f} "
            f"± {b['mean_z_std']:.4f}, N_eff {b['n_eff']:.0f}, "
            f"no spectra {100 * b['no_spec_fraction']:.1f}%"
        )


if __name__ == "__main__":
    main()
