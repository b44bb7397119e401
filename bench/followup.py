"""Issue 14: five simulated follow-up campaigns on the mock for each planning strategy, and
the coverage each gains per telescope hour.

The mock (``make_mock``) is mapped by a SOM trained with the library's defaults at the
size given; its own spectroscopy (zCOSMOS-like bright sample plus the sparse deep one) is
the coverage before the first campaign. Every campaign has the same budget of hours under
the default exposure model (1 h at i = 22.5, ×10^0.8 per magnitude; per target, as if
observed one at a time) and a magnitude limit; its targets succeed with the mock's
own faint-target success curve (``som.mock.deep_success_rate``: 0.9 at i <= 22.5 falling
0.3 per magnitude), which no strategy is told. Strategies (``som.vocabulary.PlanStrategy``):

- ``c3r2``: most populated uncovered cells first, the galaxy closest to the cell's weight
  vector, cut at the first target beyond the budget (C3R2's rule, success assumed);
- ``expected_gain``: expected coverage gained per hour under the success model fitted to
  the outcomes of the campaigns before (none for the first: every target assumed to
  succeed), the cheapest expected secure redshift of each cell;
- ``brightest``: brightest candidates first; ``random``: a random order.

Every strategy skips targets already observed. Prints, per strategy and campaign, targets,
secure redshifts, hours, the fraction of the sample in covered cells, and coverage gained per
hour (percentage points of the sample per hour), with the forecast's expected gain beside
the realised one; then the totals, and with ``--plot`` a figure of coverage against hours.

    python bench/followup.py [--quick] [--n 100000] [--shape 40 40] [--budget 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import format_table, pin_threads

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2x10^4 galaxies, a 20x20 map")
    ap.add_argument("--n", type=int, default=100_000, help="mock galaxies")
    ap.add_argument("--shape", type=int, nargs=2, default=(40, 40), help="map rows, columns")
    ap.add_argument("--budget", type=float, default=60.0, help="hours per campaign")
    ap.add_argument("--mag-limit", type=float, default=24.5, help="faintest i targeted")
    ap.add_argument("--campaigns", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", type=Path, default=None, help="PNG of coverage against hours")
    args = ap.parse_args()
    if args.quick:
        args.n, args.shape = 20_000, (20, 20)
    pin_threads(args.threads)

    import numpy as np
    import pandas as pd

    from som import SOM
    from som.calibration import simulate_campaigns
    from som.mock import deep_success_rate, make_mock
    from som.photometry import ColourFeatures
    from som.vocabulary import PlanStrategy

    t0 = time.perf_counter()
    cat = make_mock(args.n, seed=args.seed)
    som = SOM(*args.shape, features=ColourFeatures(), random_state=args.seed).fit(cat)
    a = som.assign(cat)
    # Galaxies outside what the map was trained on stand for no cell (as in the service).
    cells = np.where(som.outside_training(a), -1, a.cell)
    trained = time.perf_counter() - t0
    spec = cat["z_spec"].notna().to_numpy() & (cells >= 0)
    mags = cat["mag_i"].to_numpy()
    n_cells = som.n_cells
    print(
        f"mock: {args.n:,} galaxies, {int(spec.sum()):,} with spectra; map "
        f"{args.shape[0]}x{args.shape[1]} ({trained:.0f} s to make and map); "
        f"{args.campaigns} campaigns of {args.budget:g} h, i <= {args.mag_limit:g}"
    )

    runs = []
    for strategy in PlanStrategy:
        runs.append(
            simulate_campaigns(
                strategy,
                cells,
                np.where(np.isfinite(mags), mags, np.nan),
                a.distance,
                n_cells,
                cells[spec],
                deep_success_rate,
                budget_hours=args.budget,
                n_campaigns=args.campaigns,
                mag_limit=args.mag_limit,
                random_state=args.seed,
            )
        )
    frame = pd.concat(runs, ignore_index=True)
    start = float(frame["fraction_covered"].iloc[0] - frame["gained"].iloc[0])
    print(f"before the first campaign: {100 * start:.2f}% of the sample in covered cells\n")
    rows = [
        (
            r.strategy,
            r.campaign,
            r.n_targets,
            r.n_secure,
            f"{r.hours:.1f}",
            f"{100 * r.fraction_covered:.2f}",
            f"{100 * r.forecast_gain:.3f}",
            f"{100 * r.gained:.3f}",
            f"{100 * r.gained_per_hour:.4f}",
        )
        for r in frame.itertuples()
    ]
    print(
        format_table(
            [
                "strategy",
                "campaign",
                "targets",
                "secure",
                "hours",
                "covered %",
                "forecast gain pp",
                "gained pp",
                "pp per hour",
            ],
            rows,
        )
    )
    totals = frame.groupby("strategy", sort=False).agg(
        targets=("n_targets", "sum"),
        secure=("n_secure", "sum"),
        hours=("hours", "sum"),
        gained=("gained", "sum"),
        covered=("fraction_covered", "last"),
    )
    print()
    print(
        format_table(
            ["strategy", "targets", "secure", "hours", "covered % after", "pp per hour"],
            [
                (
                    name,
                    int(t.targets),
                    int(t.secure),
                    f"{t.hours:.1f}",
                    f"{100 * t.covered:.2f}",
                    f"{100 * t.gained / t.hours:.4f}" if t.hours else "0",
                )
                for name, t in totals.iterrows()
            ],
        )
    )
    if args.plot is not None:
        from som.plotting import figure_to_png

        history = []
        for strategy, run in frame.groupby("strategy", sort=False):
            hours = np.r_[0.0, run["hours"].cumsum()]
            covered = np.r_[start, run["fraction_covered"]]
            observed = np.r_[0, run["n_targets"].cumsum()]
            history.append((strategy, hours, covered, observed))
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.5, 4), layout="constrained")
        ax = fig.subplots()
        for strategy, hours, covered, _ in history:
            ax.plot(hours, 100 * covered, "o-", ms=4, label=strategy)
        ax.set_xlabel("telescope hours spent")
        ax.set_ylabel("% of the sample in covered cells")
        ax.set_title(f"{args.campaigns} campaigns of {args.budget:g} h on the mock")
        ax.grid(alpha=0.3, lw=0.5)
        ax.legend(frameon=False)
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        args.plot.write_bytes(figure_to_png(fig))
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
