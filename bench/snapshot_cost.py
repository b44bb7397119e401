"""What a coverage snapshot and the per-cell magnitude split cost on a real ledger.

Times, on the database and ready map given (best of three, nothing written: the session
is rolled back), the photometric cell values of the map computed without the sources'
magnitudes (as before the magnitude split), with them (``ledger.phot_values``: what every
photometric ingest, delete, restore and purge now computes), and one coverage snapshot
(``followup.coverage_now``, from the per-cell counts only)::

    somcal db upgrade --database-url sqlite:///var/bench.db
    somcal mock var/mock.parquet -n 100000 --no-spec
    somcal ingest photometric var/mock.parquet --database-url sqlite:///var/bench.db
    somcal train 1 --rows 30 --cols 30 --epochs 2 --database-url sqlite:///var/bench.db
    python bench/snapshot_cost.py sqlite:///var/bench.db 1
"""

from __future__ import annotations

import argparse
import time

from app.core.db import make_engine, make_session_factory
from app.models import Map
from app.services import followup, ledger


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("map_id", type=int)
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    with make_session_factory(engine)() as s:
        m = s.get(Map, args.map_id)
        n = ledger.count_sources(s)
        shape = (m.n_rows, m.n_cols)
        old = _best(lambda: ledger.phot_cell_values(m, *ledger.phot_assigned(s, m.id)))
        new = _best(lambda: ledger.phot_values(s, m))
        snap = _best(lambda: followup.coverage_now(s, m))
        s.rollback()
    engine.dispose()
    print(
        f"{n} sources, {shape[0]}x{shape[1]} map: phot cell values without magnitudes "
        f"{old:.3f} s, with {new:.3f} s (+{new - old:.3f} s); coverage snapshot {snap:.4f} s"
    )


if __name__ == "__main__":
    main()
