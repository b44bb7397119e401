"""The follow-up loop on the command line: `somcal campaign create|list|export|outcomes|
model|forecast` and `somcal history` (coverage after every change, as a table or a plot).

Changes made here are logged under the name ``cli`` (there is no API key to name)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from app.cli._common import (
    CLI_ACTOR,
    EXIT_NOT_FOUND,
    DatabaseUrl,
    GapCatalogue,
    GapOccupation,
    MapId,
    TargetBudget,
    TargetHours,
    TargetMagBand,
    TargetMagLimit,
    TargetsPerCell,
    _database,
    _done,
    _fail,
    _fmt,
    _out,
    _output_path,
    _pct,
    _ready_map,
    _settings,
    _spin,
    _table_format,
    _user_errors,
    _write_frame,
)
from som.vocabulary import CoverageSplit, PlanStrategy

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.models import Map, TargetList

Archival = Annotated[
    bool,
    typer.Option(
        "--archival/--no-archival",
        help="The success model learns from the spectra already in the ledger too (secure: "
        "a success, insecure by its quality flag: a failure).",
    ),
]


campaign_cli = typer.Typer(
    help="Observing campaigns: plan, export, record outcomes, learn, forecast.",
    no_args_is_help=True,
)

RefMag = Annotated[float, typer.Option(help="Exposure model: reference magnitude.")]
RefHours = Annotated[float, typer.Option(min=0.0, help="Hours at the reference magnitude.")]
Slope = Annotated[float, typer.Option(help="d log10(hours) / d mag (0.8 background-limited).")]
Overhead = Annotated[float, typer.Option(min=0.0, help="Hours per target on top.")]
CampaignId = Annotated[int, typer.Argument(min=1, help="Campaign id (`somcal campaign list`).")]


def _exposure(ref_mag: float, ref_hours: float, slope: float, overhead_hours: float):
    from som.calibration.followup import ExposureModel

    try:
        return ExposureModel(ref_mag, ref_hours, slope, overhead_hours)
    except ValueError as exc:
        raise _fail(str(exc)) from exc


def _campaign(session: Session, campaign_id: int) -> tuple[Map, TargetList]:
    from app.models import TargetList
    from app.services import followup, map_store

    tl = session.get(TargetList, campaign_id)
    if tl is None or tl.name is None:
        raise _fail(
            f"campaign {campaign_id} not found (see `somcal campaign list`)", EXIT_NOT_FOUND
        )
    m = map_store.get_map(session, tl.map_id)
    return m, followup.get_campaign(session, m, campaign_id)


def _write_campaign(frame, params: dict, map_id: int, output: Path, overwrite: bool) -> None:
    from app.services import followup
    from app.services.map_queries import fits_header

    _output_path(output, overwrite)
    if output.suffix.lower() in (".txt", ".radec", ".lst"):
        output.write_text(followup.radec_list(frame))
        return
    _table_format(output)
    header = {k: v for k, v in params.items() if k != "exposure"}
    header.update({f"exp_{k}": v for k, v in params.get("exposure", {}).items()})
    _write_frame(frame, output, overwrite, fits_header(header, map_id))


@campaign_cli.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the campaign is called.")],
    map_id: MapId = None,
    budget: TargetBudget = None,
    budget_hours: TargetHours = None,
    mag_band: TargetMagBand = None,
    mag_limit: TargetMagLimit = None,
    per_cell: TargetsPerCell = 1,
    strategy: Annotated[
        PlanStrategy, typer.Option(help="How targets are ranked.")
    ] = PlanStrategy.expected_gain,
    ref_mag: RefMag = 22.5,
    ref_hours: RefHours = 1.0,
    slope: Slope = 0.8,
    overhead_hours: Overhead = 0.0,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write the targets: .csv, .fits, or .txt (an RA/Dec/priority list).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    archival: Archival = True,
    occupation_id: GapOccupation = None,
    catalogue_id: GapCatalogue = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Plan a campaign for the map's gaps and save it (it never changes afterwards).

    Targets already secured or failed at comparable depth are left out; the default
    strategy ranks by expected coverage gained per hour under the success model learned
    from earlier outcomes. Prints the campaign id."""
    from app.services import followup
    from app.services.ledger import ledger_transaction

    plan = followup.CampaignPlan(
        name=name,
        budget=budget,
        budget_hours=budget_hours,
        mag_band=mag_band,
        mag_limit=mag_limit,
        per_cell=per_cell,
        strategy=strategy,
        exposure=_exposure(ref_mag, ref_hours, slope, overhead_hours),
        archival=archival,
        occupation_id=occupation_id,
        catalogue_id=catalogue_id,
    )
    if output is not None:
        _output_path(output, overwrite)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        with ledger_transaction(session):
            campaign, _ = _spin(
                "campaign", lambda: followup.create_campaign(session, m, plan, CLI_ACTOR)
            )
            session.commit()
        p = campaign.params
        _done(
            f"campaign {campaign.id} {name!r}: {campaign.n_targets:,} targets, "
            f"{p['expected_hours']:.1f} h, expected gain {_pct(p['expected_gain'])} of the sample"
        )
        if output is not None:
            _write_campaign(
                followup.campaign_table(session, m, campaign), p, m.id, output, overwrite
            )
            _done(f"wrote {output}")
    typer.echo(str(campaign.id))


@campaign_cli.command("list")
def list_(map_id: MapId = None, database_url: DatabaseUrl = None) -> None:
    """The map's campaigns with their outcomes so far."""
    from app.services import followup

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        table = Table(title=f"campaigns of map {m.id}")
        for col in (
            "id",
            "name",
            "created",
            "strategy",
            "targets",
            "secure",
            "failed",
            "not observed",
            "pending",
            "hours spent",
        ):
            table.add_column(col, justify="left" if col in ("name", "strategy") else "right")
        for c in followup.list_campaigns(session, m):
            n = followup.campaign_counts(session, c)
            table.add_row(
                str(c.id),
                c.name or "",
                c.created_at.strftime("%Y-%m-%d %H:%M"),
                c.params.get("strategy", ""),
                _fmt(c.n_targets),
                _fmt(n["n_secure"]),
                _fmt(n["n_failed"]),
                _fmt(n["n_not_observed"]),
                _fmt(n["n_pending"]),
                _fmt(n["hours_spent"], 1),
            )
    _out().print(table)


@campaign_cli.command("export")
def export(
    campaign_id: CampaignId,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help=".csv, .fits (som.tables' formats) or .txt: one "
            "`target_id ra dec priority` line per target, for mask design.",
        ),
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Write a campaign's targets, with their outcomes so far."""
    from app.services import followup

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m, campaign = _campaign(session, campaign_id)
        frame = followup.campaign_table(session, m, campaign)
        _write_campaign(frame, campaign.params, m.id, output, overwrite)
    _done(f"wrote {len(frame):,} targets of campaign {campaign_id} to {output}")
    typer.echo(str(output))


@campaign_cli.command("outcomes")
def outcomes(
    campaign_id: CampaignId,
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Table of target_id, outcome (secure, failed, not_observed), "
            "exposure_hours (for failures), optional z_spec: CSV, FITS, ..."
        ),
    ] = None,
    from_catalogue: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Instead: an ingested spectroscopic catalogue carrying the "
            "target ids (secure → secure, insecure → failed at the planned exposure).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Record what became of a campaign's targets. Every row is checked first; any bad row
    is reported with its number and nothing is stored."""
    from app.services import outcomes
    from app.services.ledger import ledger_transaction
    from som.tables import read_table

    if (path is None) == (from_catalogue is None):
        raise _fail("give either a table of outcomes or --from-catalogue ID")
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m, campaign = _campaign(session, campaign_id)
        with ledger_transaction(session):
            if path is not None:
                if not path.is_file():
                    raise _fail(f"{path}: no such file", EXIT_NOT_FOUND)
                frame = read_table(path, text_columns=["target_id", "outcome"])
                result = outcomes.record_outcomes(
                    session, m, campaign, frame, CLI_ACTOR, file=path.name
                )
            else:
                result = outcomes.outcomes_from_catalogue(
                    session, m, campaign, from_catalogue, CLI_ACTOR
                )
            session.commit()
    counts = ", ".join(f"{v:,} {k}" for k, v in result["recorded"].items())
    _done(
        f"campaign {campaign_id}: recorded {result['n_recorded']:,} ({counts}); "
        f"{result['n_unchanged']:,} already recorded"
    )


@campaign_cli.command("model")
def model(
    map_id: MapId = None,
    ref_mag: RefMag = 22.5,
    ref_hours: RefHours = 1.0,
    slope: Slope = 0.8,
    overhead_hours: Overhead = 0.0,
    archival: Archival = True,
    archival_weight: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="What an archival spectrum counts for (1: an outcome)."
        ),
    ] = 0.5,
    band: Annotated[
        str | None,
        typer.Option(
            help="Learn in this band (one of the map's; default the map's magnitude band): "
            "each outcome's magnitude is its source's in it, whatever band its campaign "
            "was planned in."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The success rate against magnitude learned from the recorded outcomes and the
    archival spectra (±1σ), and the expected hours per secure redshift, in one band."""
    from app.services import success

    exposure = _exposure(ref_mag, ref_hours, slope, overhead_hours)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        summary = success.success_summary(
            session, m, exposure, archival=archival, archival_weight=archival_weight, band=band
        )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=float))
        return
    if not summary["fitted"]:
        _out().print(
            f"no outcomes nor archival attempts with a magnitude in {summary['mag_band']} "
            f"({summary['n_recorded_no_mag']:,} outcomes and {summary['n_archival_no_mag']:,} "
            "archival spectra without one): every target is assumed to succeed"
        )
        return
    table = Table(
        title=f"success rate of map {m.id} in {summary['mag_band']} from "
        f"{summary['n_recorded']:,} outcomes ({summary['n_recorded_secure']:,} secure) and "
        f"{summary['n_archival']:,} archival spectra ({summary['n_archival_secure']:,} secure, "
        f"weight {summary['archival_weight']:g})"
    )
    for col in ("mag", "rate", "−1σ", "+1σ", "hours / secure z"):
        table.add_column(col, justify="right")
    for r in summary["curve"]:
        table.add_row(
            f"{r['mag']:.1f}",
            _pct(r["rate"]),
            _pct(r["rate_low"]),
            _pct(r["rate_high"]),
            _fmt(r["hours_per_secure"], 2),
        )
    _out().print(table)
    left = summary["n_recorded_no_mag"] + summary["n_archival_no_mag"]
    if left:
        _out().print(
            f"left out, no magnitude in {summary['mag_band']}: "
            f"{summary['n_recorded_no_mag']:,} outcomes, "
            f"{summary['n_archival_no_mag']:,} archival spectra"
        )


@campaign_cli.command("forecast")
def forecast(
    budget_hours: Annotated[float, typer.Option(min=0.0, help="Hours of the next campaign.")],
    map_id: MapId = None,
    mag_band: TargetMagBand = None,
    mag_limit: TargetMagLimit = None,
    per_cell: Annotated[int, typer.Option(min=1, max=100, help="Targets per cell at most.")] = 1,
    ref_mag: RefMag = 22.5,
    ref_hours: RefHours = 1.0,
    slope: Slope = 0.8,
    overhead_hours: Overhead = 0.0,
    archival: Archival = True,
    occupation_id: GapOccupation = None,
    catalogue_id: GapCatalogue = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Expected coverage after a campaign of --budget-hours, for each strategy (of the
    sample --occupation-id or --catalogue-id weights the gaps by, if given)."""
    from app.services import followup

    plan = followup.CampaignPlan(
        name="forecast",
        budget_hours=budget_hours,
        mag_band=mag_band,
        mag_limit=mag_limit,
        per_cell=per_cell,
        exposure=_exposure(ref_mag, ref_hours, slope, overhead_hours),
        random_state=0,
        archival=archival,
        occupation_id=occupation_id,
        catalogue_id=catalogue_id,
    )
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        result = _spin("forecast", lambda: followup.forecast(session, m, plan, list(PlanStrategy)))
    table = Table(
        title=f"map {m.id}: {_pct(result['fraction_covered'])} of the sample covered now; "
        f"{budget_hours:g} h next (learned from {result['success_model_outcomes']:,} outcomes "
        f"and {result['success_model_archival']:,} archival spectra)"
    )
    for col in (
        "strategy",
        "targets",
        "hours",
        "expected secure",
        "expected new cells",
        "expected covered after",
        "gain per hour",
    ):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for r in result["strategies"]:
        table.add_row(
            r["strategy"],
            _fmt(r["n_targets"]),
            _fmt(r["hours"], 1),
            _fmt(r["expected_secure"], 1),
            _fmt(r["expected_new_cells"], 1),
            _pct(r["expected_fraction_covered"]),
            f"{100 * r['gain_per_hour']:.3f}%",
        )
    _out().print(table)


def history(
    map_id: MapId = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw coverage against hours and targets (PNG).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing plot file.")] = False,
    by: Annotated[
        CoverageSplit | None,
        typer.Option(
            help="Also a table of the galaxies covered (and cells covered / occupied) per "
            "magnitude bin or photo-z bin, one row per change."
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Coverage after every change to the ledger (ingests, deletions, restores, purges,
    campaigns, outcomes), with who made it; per magnitude or photo-z bin with --by."""
    from app.services import followup

    if plot is not None:
        _output_path(plot, overwrite)
    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        m = _ready_map(session, map_id)
        snaps = followup.history(session, m)
    table = Table(title=f"coverage history of map {m.id}")
    for col in (
        "change",
        "when (UTC)",
        "action",
        "by",
        "campaign",
        "cells covered",
        "galaxies covered",
        "secure spectra",
        "observed",
        "hours",
    ):
        table.add_column(col, justify="left" if col in ("action", "by") else "right")
    for s in snaps:
        table.add_row(
            str(s["change_id"]),
            s["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
            s["action"],
            s["key_name"] or "",
            "" if s["campaign_id"] is None else str(s["campaign_id"]),
            f"{s['n_cells_covered']:,}",
            _pct(s["fraction_galaxies_covered"]),
            _fmt(s["n_spectra_secure"]),
            _fmt(s["n_observed"]),
            _fmt(s["hours_spent"], 1),
        )
    _out().print(table)
    if by is not None:
        _out().print(_split_table(m.id, snaps, by))
    if plot is not None:
        if not snaps:
            raise _fail(f"map {m.id} has no coverage history yet: nothing to plot")
        from som.plotting import figure_to_png, plot_coverage_history

        fig = plot_coverage_history(snaps, title=f"coverage of map {m.id}")
        plot.write_bytes(figure_to_png(fig))
        _done(f"wrote {plot}")


def _bin_label(b: dict, by: CoverageSplit) -> str:
    if by == CoverageSplit.z:
        return f"z {b['z_min']:g}–{b['z_max']:g}"
    lo, hi = b["mag_min"], b["mag_max"]
    if lo is None and hi is None:
        return f"no {b['band']}"
    if lo is None:
        return f"{b['band']} < {hi:g}"
    return f"{b['band']} ≥ {lo:g}" if hi is None else f"{b['band']} {lo:g}–{hi:g}"


def _split_table(map_id: int, snaps: list[dict], by: CoverageSplit) -> Table:
    """One row per change, one column per bin that ever held a galaxy: the galaxies covered
    and, below, cells covered / cells occupied."""
    key = "by_mag" if by == CoverageSplit.mag else "by_z"
    bins = next((s[key] for s in reversed(snaps) if s[key]), [])
    used = [k for k in range(len(bins)) if any(s[key] and s[key][k]["n_galaxies"] for s in snaps)]
    table = Table(
        title=f"coverage of map {map_id} per {'magnitude' if key == 'by_mag' else 'photo-z'} bin"
    )
    table.add_column("change", justify="right")
    table.add_column("action")
    for k in used:
        table.add_column(_bin_label(bins[k], by), justify="right")
    for s in snaps:
        cells = []
        for k in used:
            if not s[key]:
                cells.append("–")  # taken before this split was recorded
                continue
            b = s[key][k]
            share = b["n_galaxies_covered"] / b["n_galaxies"] if b["n_galaxies"] else None
            occupied = b.get("n_cells_occupied")
            counts = "" if occupied is None else f"\n{b['n_cells_covered']}/{occupied}"
            cells.append(_pct(share) + counts)
        table.add_row(str(s["change_id"]), s["action"], *cells)
    return table
