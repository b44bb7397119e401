"""Assign every row of a catalogue file to a map: the same file comes back with each row's
cell, how far to trust it and the cell's statistics as new columns beside its own.

The rows are cleaned by the ingest's rules and assigned chunk by chunk through
:func:`app.services.assignment.photometry_rows` and :func:`~app.services.assignment.assign_rows`
(what ``POST /v1/maps/{id}/assign`` answers for one request), so a file of any length gives
row for row what the API gives. ``somcal assign`` calls :func:`assign_file`; a route or a job
can too, passing its own ``progress(fraction, message)`` (the convention of
:mod:`som.distributed` and of :meth:`app.services.jobs.JobContext.progress`).

Columns added, ``<prefix>`` being ``cell`` unless asked otherwise: ``<prefix>`` (-1: no usable
colour, or an invalid row), ``_row``, ``_col``, ``_distance``, the cell's statistics
(:data:`CELL_STATS`) and the row's trust and reason (:data:`ROW_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from app.models import Map
from app.services import assignment, ledger
from app.services.errors import InvalidInputError, NotFoundError, RowError, ServiceError
from app.services.ingest.request import TABLE_KEY_HINT
from som.tables import (
    CHOOSE_TABLE,
    FORMATS,
    CatalogueError,
    detect_format,
    format_from_name,
    read_table,
    write_table,
)

__all__ = [
    "CELL_STATS",
    "DEFAULT_CHUNK_ROWS",
    "ROW_COLUMNS",
    "AssignedFile",
    "AssignmentError",
    "ProgressCallback",
    "added_columns",
    "assign_file",
    "assign_frame",
    "cell_stats_frame",
    "default_output",
    "output_format",
]

ProgressCallback = Callable[[float, str], None]

#: the cell's statistics, as columns ``<prefix>_<name>``
CELL_STATS = ("covered", "n_phot", "n_spec_secure", "zphot_median", "zphot_nmad", "zspec_median")
#: per row, beside the cell's statistics: how far to trust the cell, the borrowed redshift's
#: flag and why a row could not be used (the Dask path writes its own trust columns)
ROW_COLUMNS = ("n_colours", "percentile", "outside_training", "zspec_fallback", "reason")
_TYPES = {"covered": bool, "outside_training": bool, "zspec_fallback": bool, "reason": str}
DEFAULT_CHUNK_ROWS = 200_000


class AssignmentError(ServiceError):
    """Ours, not the caller's: the assignment did not give one answer per row."""

    status_code = 500


@dataclass
class AssignedFile:
    """What :func:`assign_frame` (and :func:`assign_file`) made of a catalogue."""

    frame: pd.DataFrame  # the input's columns, then the added ones
    map_id: int
    prefix: str
    n_invalid: int  # rows refused by the cleaning rules (reason given)
    output: Path | None = None
    #: (row, reason) of rows without a cell when the output format cannot hold text
    #: (whitespace ASCII): the ``<prefix>_reason`` column is then left out of the file
    dropped_reasons: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    @property
    def n_without_cell(self) -> int:
        return int((self.frame[self.prefix] < 0).sum())

    @property
    def n_assigned(self) -> int:
        return self.n_rows - self.n_without_cell

    @property
    def n_covered(self) -> int:
        return int(self.frame[f"{self.prefix}_covered"].sum())

    @property
    def n_outside_training(self) -> int:
        """Rows in a cell, but outside what the map was trained on (never covered)."""
        cell = self.frame[self.prefix].to_numpy()
        return int((self.frame[f"{self.prefix}_outside_training"].to_numpy() & (cell >= 0)).sum())

    @property
    def n_without_colour(self) -> int:
        return self.n_without_cell - self.n_invalid


def added_columns(prefix: str = "cell") -> list[str]:
    """The columns :func:`assign_frame` adds, in order."""
    return [prefix] + [
        f"{prefix}_{s}" for s in ("row", "col", "distance", *CELL_STATS, *ROW_COLUMNS)
    ]


def default_output(path: Path) -> Path:
    """``INPUT_cells.<same ending>`` beside the input (``sample.fits.gz`` ->
    ``sample_cells.fits.gz``); a file whose bytes are another binary format than its name
    says (a SExtractor FITS_LDAC ``field.cat``) gets that format's ending
    (``field_cells.fits``), so the output is written as what was read."""
    name = path.name
    try:
        content = detect_format(path) if path.is_file() else None
    except CatalogueError:
        content = None  # reading it reports the damage
    if content in ("fits", "parquet", "hdf5") and content != format_from_name(name):
        return path.with_name(f"{path.stem}_cells{FORMATS[content][0]}")
    for suffixes in FORMATS.values():
        for suffix in sorted(suffixes, key=len, reverse=True):
            if name.lower().endswith(suffix):
                return path.with_name(name[: -len(suffix)] + "_cells" + name[-len(suffix) :])
    return path.with_name(name + "_cells")


def output_format(path: Path) -> str:
    """The table format an output file's name asks for."""
    fmt = format_from_name(path.name)
    if fmt is None:
        raise InvalidInputError(
            f"{path}: cannot tell the format from the name; use .parquet, .fits, .csv or .ecsv",
            [RowError(str(path), None, None, "unknown file ending")],
        )
    return fmt


def cell_stats_frame(session: Session, m: Map, prefix: str = "cell") -> pd.DataFrame:
    """The cell statistics of a map indexed by cell, named as :func:`assign_frame` names
    them (``<prefix>_covered`` ...): what :func:`som.distributed.assign_parquet` joins on."""
    arrays = ledger.cell_arrays(session, m)
    return pd.DataFrame({f"{prefix}_{name}": np.asarray(arrays[name]) for name in CELL_STATS})


def assign_frame(
    session: Session,
    m: Map,
    frame: pd.DataFrame,
    *,
    file: str,
    prefix: str = "cell",
    preset: str | None = None,
    mapping: dict[str, str | None] | None = None,
    on_invalid: str = "skip",
    flux_unit: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressCallback | None = None,
    bands: list[dict[str, Any]] | None = None,
) -> AssignedFile:
    """Add each row's cell and the cell's statistics to ``frame`` (in place, and returned).

    ``file`` names the input in error messages. Rows are assigned ``chunk_size`` at a time;
    ``progress(fraction, message)`` is called after each chunk. Refuses (422) a frame that
    already has one of the columns to add, and with ``on_invalid="reject"`` a frame with an
    invalid row; otherwise an invalid row gets cell -1 and its ``<prefix>_reason``.
    ``bands``: declared bands and magnitude systems, as for an ingest.
    """
    if chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be at least 1, got {chunk_size}")
    clash = [c for c in added_columns(prefix) if c in frame.columns]
    if clash:
        raise InvalidInputError(
            f"{file} already has column(s) {', '.join(clash)}; choose another prefix for "
            "the added columns"
        )
    rows = assignment.photometry_rows(
        frame, file, preset, mapping, on_invalid=on_invalid, flux_unit=flux_unit, bands=bands
    )
    n = len(rows)
    parts = []
    for start in range(0, n, chunk_size):
        chunk = rows.iloc[start : start + chunk_size]
        parts.append(assignment.assign_rows(session, m, chunk, False, max_rows=chunk_size).frame)
        if progress is not None:
            done = start + len(chunk)
            progress(done / n, f"{done:,} of {n:,} rows")
    res = pd.concat(parts, ignore_index=True) if parts else None
    if res is None or len(res) != len(frame):
        raise AssignmentError(f"{file}: assignment lost rows; nothing written")
    frame[prefix] = res["cell"].to_numpy(dtype=np.int64)
    frame[f"{prefix}_row"] = res["cell_row"].to_numpy(dtype=np.int64)
    frame[f"{prefix}_col"] = res["cell_col"].to_numpy(dtype=np.int64)
    frame[f"{prefix}_distance"] = res["distance"].to_numpy(dtype=np.float64)
    for name in (*CELL_STATS, *ROW_COLUMNS):
        values = res[name]
        kind = _TYPES.get(name, np.float64)
        frame[f"{prefix}_{name}"] = (
            values.fillna("").astype(str) if kind is str else values.to_numpy().astype(kind)
        )
    return AssignedFile(frame, m.id, prefix, n_invalid=int(rows["reason"].notna().sum()))


@contextmanager
def _as_invalid_input(file: str) -> Iterator[None]:
    """A table file that cannot be read or written is the caller's to fix (422)."""
    try:
        yield
    except CatalogueError as exc:
        if exc.reason.endswith(CHOOSE_TABLE):  # the library's key=; here it is --hdu
            reason = exc.reason[: -len(CHOOSE_TABLE)] + f"choose one with {TABLE_KEY_HINT}"
            exc = CatalogueError(reason, column=exc.column, row=exc.row, source=exc.source)
        raise InvalidInputError(
            str(exc), [RowError(file, exc.column, exc.row, exc.reason)]
        ) from exc


def assign_file(
    session: Session,
    m: Map,
    input_path: Path,
    output: Path | None = None,
    *,
    overwrite: bool = False,
    prefix: str = "cell",
    preset: str | None = None,
    mapping: dict[str, str | None] | None = None,
    on_invalid: str = "skip",
    flux_unit: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressCallback | None = None,
    bands: list[dict[str, Any]] | None = None,
    table_key: str | int | None = None,
) -> AssignedFile:
    """Read ``input_path``, assign it (:func:`assign_frame`) and write ``output`` (default
    :func:`default_output`; the format follows the name). Nothing is written unless every
    row was assigned. ``progress(fraction, message)`` hears of the reading, each chunk and
    the writing. ``table_key``: the table of a multi-table file (FITS HDU name or index,
    HDF5 key), as for an ingest; only that table is written out."""
    input_path = Path(input_path)
    output = Path(output) if output is not None else default_output(input_path)
    if output.resolve() == input_path.resolve():
        raise InvalidInputError(f"{output}: the output would replace the input")
    out_format = output_format(output)
    if output.exists() and not overwrite:
        raise InvalidInputError(f"{output} exists; it is replaced only when asked (overwrite)")
    if not input_path.is_file():
        raise NotFoundError(f"{input_path}: no such file")

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    report(0.0, f"read {input_path.name}")
    with _as_invalid_input(input_path.name):
        frame = read_table(input_path, key=table_key)
    result = assign_frame(
        session,
        m,
        frame,
        file=input_path.name,
        prefix=prefix,
        preset=preset,
        mapping=mapping,
        on_invalid=on_invalid,
        flux_unit=flux_unit,
        chunk_size=chunk_size,
        progress=lambda f, msg: report(f, f"assign {msg}"),
        bands=bands,
    )
    if out_format == "ascii":
        # a whitespace table cannot hold free text: the reasons are returned instead
        reasons = frame.pop(f"{prefix}_reason")
        result.dropped_reasons = [
            (int(row), str(reasons.iloc[row])) for row in np.flatnonzero(reasons.to_numpy() != "")
        ]
    report(1.0, f"write {output.name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with _as_invalid_input(output.name):
        write_table(frame, output, format=out_format, overwrite=overwrite)
    result.output = output
    return result
