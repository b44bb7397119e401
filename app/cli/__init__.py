"""The ``somcal`` command line.

Every command goes through the same services as the REST API (``app.services``): an
ingest, a training, a coverage or a target list made here is the one the API would make.
Progress bars go to stderr, results (tables, JSON, keys) to stdout, so output can be piped.

Exit codes: 0 success; 1 the environment (database unreachable or not migrated, training
failed, unexpected error); 2 bad input a user must fix (command line, file, column, value);
3 something named does not exist (map, catalogue, file); 4 a map is not ready yet (or
another conflict, e.g. purging a catalogue that is not deleted);
130 interrupted.

One module per group of commands, registered here in the order ``somcal --help`` lists
them: ``catalogues`` (mock, ingest, bands, and the ``catalogues`` group: list, delete,
restore, purge), ``maps`` (maps, train), ``assign``,
``occupation``, ``calibrate`` (coverage, gaps, targets, nz), ``calibrations`` (the
``calibration`` group: deep/wide n(z)), ``followup`` (campaign …, history), ``plot``,
``serve`` (serve, worker, quickstart) and ``db`` (db upgrade, apikey create); what they
share (consoles, errors, progress, the database) is in ``_common``.
"""

from __future__ import annotations

import typer

from app.cli import (
    assign,
    calibrate,
    calibrations,
    catalogues,
    db,
    followup,
    maps,
    occupation,
    plot,
    serve,
)
from app.cli._common import EXIT_ENV, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_NOT_READY

__all__ = [
    "EXIT_ENV",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_NOT_READY",
    "cli",
    "main",
]

cli = typer.Typer(
    help="somcal: SOM photometric-redshift calibration (Masters et al. 2015) on the command "
    "line. Start with `somcal quickstart`.",
    epilog="Exit codes: 0 ok, 1 environment (database, training), 2 bad input, 3 not found, "
    "4 map not ready, 130 interrupted. The database is DATABASE_URL (default "
    "sqlite:///./var/somcal.db) unless --database-url is given.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
apikey_cli = typer.Typer(help="API keys for write access.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(apikey_cli, name="apikey")
cli.add_typer(calibrations.calibration_cli, name="calibration")
cli.add_typer(followup.campaign_cli, name="campaign")
cli.add_typer(occupation.occupation_cli, name="occupation")
cli.add_typer(catalogues.catalogues_cli, name="catalogues")
# The group's spelling before catalogue became the one spelling; kept out of --help.
cli.add_typer(catalogues.catalogues_cli, name="catalogs", hidden=True)

for command in (
    catalogues.mock,
    catalogues.ingest,
    catalogues.bands,
    maps.maps,
    maps.train,
    assign.assign,
    calibrate.coverage,
    calibrate.gaps,
    calibrate.targets,
    calibrate.nz,
    followup.history,
    plot.plot,
    serve.serve,
    serve.worker,
    serve.quickstart,
):
    cli.command()(command)
db_cli.command("upgrade")(db.db_upgrade)
apikey_cli.command("create")(db.apikey_create)


def main() -> None:
    cli()
