"""Catalogues: `somcal mock`, `ingest`, `bands` and `catalogues`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from app.cli._common import (
    CLI_ACTOR,
    EXIT_INPUT,
    EXIT_NOT_FOUND,
    DatabaseUrl,
    _database,
    _done,
    _err,
    _fail,
    _fmt,
    _out,
    _output_path,
    _parse_mapping,
    _row_error_line,
    _settings,
    _spin,
    _table_format,
    _user_errors,
)
from app.core.config import Settings
from app.services.presets import PRESETS
from som.vocabulary import IngestKind, NirPreset, OnInvalid, WidePreset

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session, sessionmaker


# ----------------------------------------------------------------------------- mock
def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    from som.tables import write_table

    # Written through a temporary name: an interrupted run leaves no half-written catalogue
    # that a later run would take for a finished one.
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    write_table(frame, tmp, format=_table_format(path))
    os.replace(tmp, path)


def _beside(path: Path, what: str) -> Path:
    """``var/mock.parquet`` -> ``var/mock_<what>.parquet`` (same format)."""
    return path.with_name(f"{path.stem}_{what}{path.suffix}")


def _write_mock(
    path: Path,
    n: int,
    seed: int,
    nir: str,
    spec: bool,
    wide: str | None = None,
    transfer: int | None = None,
    wide_path: Path | None = None,
    transfer_path: Path | None = None,
    year: float | None = None,
) -> pd.DataFrame:
    from som.mock import TRUTH_COLUMNS, make_mock, observe_wide, transfer_catalogue

    frame = make_mock(n, seed, nir=nir, spec=spec, truth=wide is not None)
    if wide is not None:
        # the wide side needs the truth; the deep file stays what it is without --wide
        if wide_path is not None:
            observed = observe_wide(frame, wide, seed=seed, year=year)
            # fluxes only (uJy, negatives kept): what a wide map is trained on, and ingest
            # takes one of flux or magnitude per band
            mags = [c for c in observed.columns if c.startswith(("mag_", "magerr_"))]
            _write_atomic(observed.drop(columns=mags), wide_path)
        if transfer is not None and transfer_path is not None:
            observed = transfer_catalogue(frame, wide, transfer, seed=seed, year=year)
            _write_atomic(observed, transfer_path)
        frame = frame.drop(columns=[c for c in TRUTH_COLUMNS if c not in ("id", "z_true")])
    _write_atomic(frame, path)
    return frame


def mock(
    output: Annotated[
        Path, typer.Argument(help="File to write: .parquet, .fits, .csv or .ecsv.")
    ] = Path("var/mock_cosmos.parquet"),
    n_galaxies: Annotated[int, typer.Option("--n-galaxies", "-n", min=1)] = 200_000,
    seed: Annotated[int, typer.Option(min=0, help="One seed drives every random step.")] = 0,
    nir: Annotated[NirPreset, typer.Option(help="Near-infrared bands: UltraVISTA or Euclid.")] = (
        NirPreset.ultravista
    ),
    spec: Annotated[
        bool, typer.Option("--spec/--no-spec", help="Draw the spectroscopic sample.")
    ] = True,
    wide: Annotated[
        WidePreset | None,
        typer.Option(
            help="Also write the same galaxies observed by a wide survey (LSST-like ugrizy or "
            "Euclid-like VIS+YE JE HE) beside OUTPUT, as <stem>_wide_<preset>."
        ),
    ] = None,
    transfer: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --wide: also write a Balrog-like transfer catalogue, every galaxy "
            "injected N times with wide noise, as <stem>_transfer_<preset>.",
        ),
    ] = None,
    year: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=10,
            help="With --wide lsst: depths after this many survey years (default 10; "
            "1.25 log10(year/10) mag shallower, e.g. 1 for a first-year analysis).",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write the COSMOS-like mock catalogue (somcal's embedded default data).

    Bands u*, HSC g r i z, UltraVISTA (or Euclid) Y J H at COSMOS depths, a reference
    photo-z (z_phot) and a zCOSMOS-like + deep spectroscopic sample (z_spec, NaN without).
    With --wide, the wide side of a deep/wide calibration (som.mock.observe_wide,
    som.mock.transfer_catalogue)."""
    if transfer is not None and wide is None:
        raise _fail("--transfer needs --wide lsst|euclid: the survey whose noise is injected")
    if year is not None and wide is not WidePreset.lsst:
        raise _fail("--year needs --wide lsst: survey years set LSST's coadd depths")
    _table_format(output)
    wide_path = transfer_path = None
    if wide is not None:
        wide_path = _output_path(_beside(output, f"wide_{wide.value}"), overwrite)
        if transfer is not None:
            transfer_path = _output_path(_beside(output, f"transfer_{wide.value}"), overwrite)
    _output_path(output, overwrite)
    with _user_errors():
        frame = _spin(
            f"mock: {n_galaxies:,} galaxies",
            lambda: _write_mock(
                output,
                n_galaxies,
                seed,
                nir.value,
                spec,
                None if wide is None else wide.value,
                transfer,
                wide_path,
                transfer_path,
                year,
            ),
        )
    n_spec = int(frame["z_spec"].notna().sum())
    _done(f"wrote {output} ({n_galaxies:,} galaxies, {n_spec:,} with a spectroscopic redshift)")
    if wide_path is not None:
        _done(f"wrote {wide_path} (the same galaxies observed {wide.value}-like)")
    if transfer_path is not None:
        _done(f"wrote {transfer_path} ({n_galaxies * transfer:,} injections, {transfer} each)")
    typer.echo(str(output))
    for extra in (wide_path, transfer_path):
        if extra is not None:
            typer.echo(str(extra))
    _err().print(f"next: somcal ingest photometric {output}", highlight=False)


# ----------------------------------------------------------------------------- catalogues
def _ingest(
    factory: sessionmaker[Session],
    settings: Settings,
    kind: str,
    path: Path,
    *,
    preset: str | None = None,
    mapping: dict[str, str] | None = None,
    name: str | None = None,
    secure_rule: dict[str, Any] | None = None,
    on_invalid: str = "reject",
    skip_missing_redshift: bool | None = None,
    **options: Any,
):
    from app.services import ingest as ingest_service
    from app.services.hooks import after_catalogue_inserted

    if path.is_dir():
        raise _fail(
            f"{path}: is a directory, not a catalogue file (a partitioned Parquet dataset? "
            "ingest its files one at a time; `somcal occupation` reads whole datasets)",
            EXIT_INPUT,
        )
    if not path.is_file():
        raise _fail(f"{path}: no such file", EXIT_NOT_FOUND)
    req = ingest_service.IngestRequest(
        kind=kind,
        path=path,
        filename=path.name,
        name=name,
        preset=preset,
        mapping=mapping,
        secure_rule=secure_rule,
        on_invalid=on_invalid,
        skip_missing_redshift=skip_missing_redshift,
        **options,
    )
    with _user_errors():
        result = _spin(
            f"ingest {kind}: {path.name}",
            lambda: ingest_service.ingest(
                factory,
                req,
                max_rows=settings.max_rows,
                after_insert=after_catalogue_inserted(settings.match_radius_arcsec, CLI_ACTOR),
            ),
        )
    cat = result.catalogue
    if result.duplicate:
        _done(
            f"{path.name} is already catalogue {cat.id} ({cat.kind}, {cat.n_rows:,} rows): "
            "same content, not ingested again"
        )
    else:
        what = f"{cat.n_rows:,} rows"
        if cat.kind == "spectroscopic":
            what += f", {cat.n_secure:,} secure"
        _done(
            f"catalogue {cat.id} {cat.name!r}: {cat.kind}, {what}, "
            + (f"bands {' '.join(cat.bands)}" if cat.bands else "no photometry (placed on the sky)")
            + f" (preset {cat.preset})"
            + (f"; assigned to map(s) {result.assigned_maps}" if result.assigned_maps else "")
        )
        summary = cat.summary or {}
        for map_id, placed in (summary.get("maps") or {}).items():
            # Say how many rows found a cell, so a catalogue that cannot land is never silent.
            n_cell = placed.get("by_photometry", 0) + placed.get("by_position", 0)
            line = f"  map {map_id}: {n_cell:,} of {placed.get('rows', 0):,} rows in a cell"
            if placed.get("by_position"):
                line += f" ({placed['by_position']:,} matched on the sky)"
            if placed.get("outside_training"):
                line += f", {placed['outside_training']:,} outside the training set"
            colour = "yellow" if n_cell < placed.get("rows", 0) else "green"
            _err().print(f"[{colour}]{line}", highlight=False)
        for warning in summary.get("warnings", []):
            _err().print(f"[yellow]warning: {warning}", highlight=False)
    if result.n_errors:
        _err().print(
            f"[yellow]skipped {cat.n_skipped:,} row(s) with {result.n_errors:,} invalid value(s):",
            highlight=False,
        )
        for e in result.errors[:10]:
            _err().print(f"  {_row_error_line(e)}", highlight=False)
    return result


def ingest(
    kind: Annotated[IngestKind, typer.Argument(help="photometric or spectroscopic.")],
    path: Annotated[Path, typer.Argument(help="FITS, Parquet, CSV, ECSV, VOTable or HDF5 file.")],
    preset: Annotated[
        str | None,
        typer.Option(help=f"Column preset: {', '.join(PRESETS)} (default: detected)."),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="FIELD=COLUMN, repeatable: map a file column to a somcal field "
            "(source_id, ra, dec, z_phot, z_spec, quality, secure, survey, star, and "
            "mag_<b>, magerr_<b>, flux_<b>, fluxerr_<b> for any band of `somcal bands` or a "
            "declared one, e.g. flux_Ks=KS_FLUX; extinction_<b> (A_b, mag) or mwtrans_<b> "
            "(transmission) to deredden a band, e.g. extinction_g=A_G); overrides the preset; "
            "FIELD= with no column unmaps (extinction_g_sdss= : no dereddening).",
        ),
    ] = None,
    flux_unit: Annotated[
        str | None,
        typer.Option(
            help="Unit of flux columns (nJy, uJy, mJy, Jy, nanomaggy) if the file does not say."
        ),
    ] = None,
    declare_band: Annotated[
        list[str] | None,
        typer.Option(
            "--declare-band",
            help="NAME=WAVELENGTH_ANGSTROM (or NAME=FILTER_CURVE_FILE), repeatable: a band the "
            "registry does not know.",
        ),
    ] = None,
    mag_system: Annotated[
        list[str] | None,
        typer.Option(
            "--mag-system",
            help="BAND=SYSTEM or BAND=SYSTEM:OFFSET, repeatable: this file's magnitudes in "
            "BAND are AB, Vega or SDSS (e.g. J=Vega for a VHS table; W1=AB for WISE "
            "magnitudes made from Legacy Surveys fluxes); OFFSET is m_AB - m_SYSTEM when "
            "somcal does not know it. Default: the preset's, else the band's survey's.",
        ),
    ] = None,
    negative_error: Annotated[
        str, typer.Option(help="limit: a negative error is an upper limit; invalid: an error.")
    ] = "limit",
    z_min: Annotated[
        float, typer.Option(help="Spectra below this redshift (stars) are never secure.")
    ] = 0.002,
    check: Annotated[
        bool,
        typer.Option(help="Refuse columns that do not look like what they are declared as."),
    ] = True,
    hdu: Annotated[
        str | None,
        typer.Option(
            "--hdu",
            help="Which table of a multi-table file: FITS HDU name (EXTNAME) or 0-based "
            "index, HDF5 dataset/group/key (default: the first table HDU, LDAC_OBJECTS for "
            "SExtractor FITS_LDAC).",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Catalogue name (default: file stem).")] = None,
    secure_rule: Annotated[
        str | None,
        typer.Option(
            help='Which quality flags are secure, as JSON, e.g. \'{"kind": "range", "min": 3, '
            '"max": 5, "modulo": 10}\' (zCOSMOS 3.x, 4.x).'
        ),
    ] = None,
    on_invalid: Annotated[
        OnInvalid, typer.Option(help="reject: refuse the file on any bad value; skip: drop rows.")
    ] = OnInvalid.reject,
    database_url: DatabaseUrl = None,
) -> None:
    """Ingest a photometric or spectroscopic catalogue file.

    One transaction: a failure stores nothing, and a file already ingested is recognised.
    New sources and spectra are assigned to every ready map and coverage is updated. Prints
    the catalogue id on stdout."""
    from app.services.ingest.request import parse_table_key

    rule = None
    if secure_rule:
        try:
            rule = json.loads(secure_rule)
        except json.JSONDecodeError as exc:
            raise _fail(f"--secure-rule is not valid JSON: {exc}") from exc
    settings = _settings(database_url)
    with _database(settings) as factory:
        result = _ingest(
            factory,
            settings,
            kind.value,
            path,
            preset=preset,
            mapping=_parse_mapping(map_),
            name=name,
            secure_rule=rule,
            on_invalid=on_invalid.value,
            flux_unit=flux_unit,
            bands=_parse_declared(declare_band, mag_system),
            negative_error=negative_error,
            z_min=z_min,
            check=check,
            table_key=parse_table_key(hdu),
        )
    typer.echo(result.catalogue.id)


def _parse_declared(
    items: list[str] | None, systems: list[str] | None = None
) -> list[dict[str, Any]] | None:
    """Declared bands from ``--declare-band NAME=WAVELENGTH|FILE`` and their magnitude
    systems from ``--mag-system BAND=SYSTEM[:OFFSET]`` (for a declared or a known band)."""
    out: list[dict[str, Any]] = []
    for item in items or []:
        band, sep, value = item.partition("=")
        if not sep or not band.strip() or not value.strip():
            raise _fail(f"--declare-band {item!r}: expected NAME=WAVELENGTH or NAME=FILE")
        try:
            out.append({"name": band.strip(), "wavelength": float(value)})
        except ValueError:
            out.append({"name": band.strip(), "filter_curve": value.strip()})
    for item in systems or []:
        band, sep, value = item.partition("=")
        system, _, offset = value.partition(":")
        if not sep or not band.strip() or not system.strip():
            raise _fail(f"--mag-system {item!r}: expected BAND=SYSTEM or BAND=SYSTEM:OFFSET")
        entry = next((d for d in out if d["name"] == band.strip()), None)
        if entry is None:
            entry = {"name": band.strip()}
            out.append(entry)
        entry["system"] = system.strip()
        if offset.strip():
            try:
                entry["ab_offset"] = float(offset)
            except ValueError as exc:
                raise _fail(f"--mag-system {item!r}: OFFSET {offset!r} is not a number") from exc
    return out or None


def bands() -> None:
    """List the photometric bands somcal knows (names are case-sensitive: y is not Y)."""
    from som.bands import REGISTRY

    for b in sorted(REGISTRY, key=lambda b: b.wavelength):
        aliases = f"  (also {', '.join(b.aliases)})" if b.aliases else ""
        system = "" if b.system == "AB" else f"  [{b.system} magnitudes unless declared]"
        typer.echo(f"{b.name:<12} {b.wavelength:>8.0f} Å  {b.filter or b.survey}{aliases}{system}")


catalogues_cli = typer.Typer(
    help="List the ingested catalogues; delete, restore or purge one.",
    invoke_without_command=True,
)


@catalogues_cli.callback()
def catalogues(
    ctx: typer.Context,
    database_url: DatabaseUrl = None,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="List the deleted ones (restorable until purged).")
    ] = False,
) -> None:
    """List the ingested catalogues (`somcal catalogues delete|restore|purge ID` to change
    one)."""
    if ctx.invoked_subcommand is not None:
        return
    from app.services import catalogues as catalogue_service

    with _database(_settings(database_url)) as factory, factory() as session, _user_errors():
        items, total = catalogue_service.list_catalogues(session, None, 10_000, 0, deleted)
        what = "deleted catalogue(s)" if deleted else "catalogue(s)"
        table = Table(title=f"{total} {what}")
        cols = ["id", "kind", "name", "rows", "secure", "bands", "preset", "file"]
        if deleted:
            cols.append("deleted at")
        for col in cols:
            table.add_column(
                col,
                justify="right" if col in ("id", "rows", "secure") else "left",
                no_wrap=col in ("id", "kind", "rows", "secure"),
                overflow="fold",
            )
        for c in items:
            row = [
                str(c.id),
                c.kind,
                c.name,
                _fmt(c.n_rows),
                _fmt(c.n_secure),
                " ".join(c.bands),
                c.preset or "",
                c.filename,
            ]
            if deleted:
                row.append(f"{c.deleted_at:%Y-%m-%d %H:%M:%S}" if c.deleted_at else "")
            table.add_row(*row)
        _out().print(table)


CatalogueId = Annotated[int, typer.Argument(help="The catalogue's id.", min=1)]


@catalogues_cli.command("delete")
def catalogues_delete(catalogue_id: CatalogueId, database_url: DatabaseUrl = None) -> None:
    """Delete a catalogue: out of the ledger (coverage recomputed), rows kept until purged."""
    from app.services import catalogues as catalogue_service
    from app.services.hooks import after_catalogue_deleted

    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        hook = after_catalogue_deleted(settings.match_radius_arcsec, CLI_ACTOR)
        cat, maps = catalogue_service.delete_catalogue(session, catalogue_id, hook)
    _done(
        f"catalogue {cat.id} ({cat.kind}) deleted; {len(maps)} map(s) updated; "
        f"`somcal catalogues restore {cat.id}` brings it back, "
        f"`somcal catalogues purge {cat.id}` removes it for good"
    )


@catalogues_cli.command("restore")
def catalogues_restore(catalogue_id: CatalogueId, database_url: DatabaseUrl = None) -> None:
    """Restore a deleted catalogue: its rows are assigned again to every ready map."""
    from app.services import catalogues as catalogue_service
    from app.services.hooks import after_catalogue_restored

    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        hook = after_catalogue_restored(settings.match_radius_arcsec, CLI_ACTOR)
        cat, placed = catalogue_service.restore_catalogue(session, catalogue_id, hook)
    _done(f"catalogue {cat.id} ({cat.kind}) restored; {len(placed)} map(s) updated")


@catalogues_cli.command("purge")
def catalogues_purge(catalogue_id: CatalogueId, database_url: DatabaseUrl = None) -> None:
    """Purge a deleted catalogue: its rows are removed for good."""
    from app.services import catalogues as catalogue_service
    from app.services.hooks import after_catalogue_deleted
    from som.vocabulary import ChangeAction

    settings = _settings(database_url)
    with _database(settings) as factory, factory() as session, _user_errors():
        hook = after_catalogue_deleted(
            settings.match_radius_arcsec, CLI_ACTOR, ChangeAction.catalogue_purged
        )
        cat, maps = catalogue_service.purge_catalogue(session, catalogue_id, hook)
    _done(f"catalogue {cat.id} ({cat.kind}) purged; {len(maps)} map(s) updated")
