"""The writing half of an ingest: the duplicate check, and the one transaction that reads
the file chunk by chunk, validates each chunk, bulk-writes its rows (COPY on PostgreSQL),
hands them to the ledger hook and stores the catalogue's summary. Any failure rolls the
whole transaction back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.models import Catalogue
from app.services import presets
from app.services.bulk import Col, bulk_insert
from app.services.errors import ConflictError, InvalidInputError, RowError, TooLargeError
from app.services.ingest.mapping import BandColumns
from app.services.ingest.request import IngestRequest, IngestResult, LedgerHook
from app.services.ingest.validation import MAX_LISTED_ERRORS, ErrorLog, Rules, Validated, validate
from app.services.ledger import ledger_transaction
from app.services.live import refuse_deleted_twin
from app.services.phot_store import pack, photometry_frame
from som.photometry import INVALID, STATUS_NAMES
from som.tables import TableReader

#: Rows validated and written per step: bounds memory whatever the file size.
CHUNK_ROWS = 100_000


def find_duplicate(session: Session, kind: str, sha256: str) -> Catalogue | None:
    return session.scalar(
        select(Catalogue).where(Catalogue.kind == kind, Catalogue.sha256 == sha256)
    )


def same_or_conflict(existing: Catalogue, req: IngestRequest) -> IngestResult:
    """The catalogue already made from this file, if it was made with the same options;
    otherwise a 409 that names every option that differs (or the deleted catalogue it is)."""
    refuse_deleted_twin(existing, req.filename)
    stored = existing.options
    wanted = req.options()
    if stored is None:
        # Ingested before options were recorded: only the preset and mapping are known.
        stored = {"preset": wanted["preset"], "mapping": wanted["mapping"]}
        stored = (
            {**wanted, **stored}
            if existing.preset in (None, wanted["preset"])
            else {**wanted, "preset": existing.preset}
        )
    diffs = [
        RowError(
            req.filename,
            None,
            None,
            f"{key}: catalogue {existing.id} was ingested with {stored.get(key)!r}, this "
            f"request asks for {wanted.get(key)!r}",
        )
        # table_key is recorded only when given: compare it whichever side has it
        for key in [*wanted, *(["table_key"] if "table_key" in stored.keys() - wanted else [])]
        if stored.get(key) != wanted.get(key)
    ]
    if diffs:
        raise ConflictError(
            f"{req.filename}: this file is already catalogue {existing.id} ({existing.kind}), "
            f"ingested with other options ({', '.join(d.reason.split(':')[0] for d in diffs)}); "
            f"delete and purge catalogue {existing.id} first to ingest it differently",
            diffs,
            catalogue_id=existing.id,
        )
    return IngestResult(catalogue=existing, duplicate=True)


def _chunks(table: TableReader, columns: list[str], text_cols: tuple[str, ...]):
    """The mapped columns in frames of at most ``CHUNK_ROWS`` rows, in file order."""
    for _offset, frame in table.iter_chunks(columns, text_cols, chunk_rows=CHUNK_ROWS):
        yield frame


def write(
    factory: sessionmaker[Session],
    req: IngestRequest,
    table: TableReader,
    rules: Rules,
    *,
    fmt: str,
    sha: str,
    size: int,
    preset: presets.Preset,
    warnings: list[str],
    max_rows: int,
    after_insert: LedgerHook | None,
    progress: Callable[[int], None] | None,
) -> IngestResult:
    """Store the file as one catalogue in one transaction (``rules`` as checked by
    :func:`app.services.ingest.ingest`)."""
    file, mapping, plan, secure_rule = rules.file, rules.mapping, rules.plan, rules.secure_rule
    skip_missing = rules.skip_missing_redshift
    text_cols = tuple(mapping[f] for f in ("source_id", "survey", "quality") if f in mapping)
    columns = list(dict.fromkeys(mapping.values()))
    log = ErrorLog(file)
    band_counts = {bc.band: dict.fromkeys(STATUS_NAMES[:INVALID], 0) for bc in plan}
    spec_counts: dict[str, int] = {}
    n_read = n_stored = 0

    with factory() as session, ledger_transaction(session):
        try:
            catalogue = Catalogue(
                kind=req.kind,
                name=(req.name or Path(file).stem)[:255],
                filename=file[:512],
                file_format=fmt,
                sha256=sha,
                size_bytes=size,
                preset=preset.name,
                column_mapping=mapping,
                secure_rule=secure_rule,
                bands=[bc.band for bc in plan],
                options=req.options(),
                n_rows=0,
                n_skipped=0,
                n_secure=None,
                status="ready",
            )
            session.add(catalogue)
            try:
                session.flush()
            except IntegrityError:
                # Someone ingested the same file meanwhile; theirs is the catalogue.
                session.rollback()
                existing = find_duplicate(session, req.kind, sha)
                if existing is None:
                    raise
                return same_or_conflict(existing, req)
            pieces = _chunks(table, columns, text_cols)
            for chunk in pieces:
                n_read += len(chunk)
                if n_read > max_rows:
                    total = n_read + sum(len(c) for c in pieces)  # say how many, to help
                    raise TooLargeError(f"{file}: {total} rows; the limit is {max_rows}")
                # The log numbers this chunk's rows from its first row in the file.
                checked = validate(chunk, rules, log)
                del chunk
                if progress is not None:
                    progress(n_read)
                if log.file_level or (log.count and req.on_invalid == "reject"):
                    continue  # keep reading to count (and list) the errors; store nothing
                for band, counts in checked.counts.items():
                    for k, v in counts.items():
                        band_counts[band][k] += v
                for k, v in checked.spectra.items():
                    spec_counts[k] = spec_counts.get(k, 0) + v
                if len(checked.keep) == 0:
                    continue
                _insert_rows(session, catalogue, checked, log.offset)
                n_stored += len(checked.keep)
                if after_insert is not None:
                    after_insert.rows(
                        session,
                        catalogue,
                        _stored_rows(session, catalogue, checked, log.offset, plan),
                    )
            log.finish()
            if n_read == 0:
                raise InvalidInputError(
                    f"{file}: no data rows", [RowError(file, None, None, "no rows")]
                )
            if log.count and (req.on_invalid == "reject" or log.file_level):
                what = (
                    "invalid input, the file cannot be ingested"
                    if log.file_level
                    else (f"{log.count} invalid value(s); nothing was stored")
                )
                raise InvalidInputError(
                    f"{file}: {what} (first {min(log.count, MAX_LISTED_ERRORS)} listed)",
                    log.items,
                    n_errors=log.count,
                )
            if n_stored == 0:
                items = log.items[:MAX_LISTED_ERRORS]
                if spec_counts.get("dropped_no_redshift") or (
                    skip_missing and req.kind == "spectroscopic"
                ):
                    items.append(
                        RowError(
                            file, mapping.get("z_spec"), None, "no row has a spectroscopic redshift"
                        )
                    )
                raise InvalidInputError(f"{file}: no valid rows to ingest", items)
            measured = [b for b, c in band_counts.items() if c["measured"] > 0]
            if req.kind == "photometric" and len(measured) < 2:
                raise InvalidInputError(
                    f"{file}: fewer than two bands have any measurement (a colour needs two); "
                    f"bands with values: {measured or 'none'}",
                    [RowError(file, None, None, "fewer than two measured bands")],
                )
            catalogue.n_rows = n_stored
            catalogue.n_skipped = n_read - n_stored
            catalogue.n_secure = spec_counts.get("secure") if req.kind == "spectroscopic" else None
            catalogue.summary = {
                "rows_read": n_read,
                "rows_stored": n_stored,
                "rows_skipped": n_read - n_stored,
                "rows_with_errors": log.rows_with_errors,
                "photometry": {
                    b.band: {
                        "kind": b.kind,
                        "column": b.value,
                        "error_column": b.error,
                        "error_is_inverse_variance": b.error_is_ivar,
                        "flux_unit": b.flux_unit,
                        # magnitudes' system, as found, and what was done to reach AB
                        "system": b.system,
                        "system_source": b.system_source,
                        "ab_offset": b.ab_offset,
                        "asinh_softening": b.softening,
                        "galactic_extinction": {
                            "dereddened": b.dereddened,
                            "column": b.extinction,
                            "kind": b.extinction_kind,
                        },
                        **band_counts[b.band],
                    }
                    for b in plan
                },
                **({"spectra": spec_counts} if req.kind == "spectroscopic" else {}),
                "warnings": warnings,
            }
            placed: dict[int, dict[str, int]] = {}
            if after_insert is not None:
                placed = after_insert.done(session, catalogue)
                # every ready map, and how many rows landed in a cell there (never silent)
                catalogue.summary = {
                    **catalogue.summary,
                    "maps": {str(k): v for k, v in placed.items()},
                }
            assigned = list(placed)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return IngestResult(
        catalogue=catalogue,
        duplicate=False,
        errors=log.items,
        n_errors=log.count,
        assigned_maps=assigned,
        warnings=warnings,
    )


def _insert_rows(session: Session, catalogue: Catalogue, checked: Validated, offset: int) -> None:
    """Write a chunk's kept rows (``offset``: the chunk's first row in the file)."""
    c = checked.columns
    n = len(checked.keep)
    cols = [
        Col("catalogue_id", "int4", np.full(n, catalogue.id, dtype=np.int32)),
        Col("row_index", "int4", (checked.keep + offset).astype(np.int32)),
        Col("source_id", "text", c["source_id"]),
        Col("ra", "float8", c["ra"]),
        Col("dec", "float8", c["dec"]),
        Col("mags", "bytea", pack(c["mags"])),
        Col("magerrs", "bytea", pack(c["magerrs"])),
    ]
    if catalogue.kind == "photometric":
        cols.append(Col("z_phot", "float8", c["z_phot"]))
    else:
        cols += [
            Col("z_spec", "float8", c["z_spec"]),
            Col("quality_raw", "text", c["quality_raw"]),
            Col("quality", "float8", c["quality"]),
            Col("secure", "bool", c["secure"]),
            Col("survey", "text", c["survey"]),
        ]
    # catalogue_id is the catalogue row flushed in this transaction.
    bulk_insert(session.connection(), _table(catalogue), cols, references_valid=True)


def _table(catalogue: Catalogue) -> str:
    return "sources" if catalogue.kind == "photometric" else "spectra"


def _stored_rows(
    session: Session,
    catalogue: Catalogue,
    checked: Validated,
    offset: int,
    plan: list[BandColumns],
) -> pd.DataFrame:
    """A written chunk as the ledger hook wants it: ``object_id`` (the ids the database
    gave, which COPY does not return), ``row_index``, ``mag_<band>``/``magerr_<band>``,
    ra, dec."""
    c = checked.columns
    row_index = (checked.keep + offset).astype(np.int32)
    ids = session.execute(
        text(
            f"SELECT id FROM {_table(catalogue)} WHERE catalogue_id = :c "
            "AND row_index BETWEEN :lo AND :hi ORDER BY row_index"
        ),
        {"c": catalogue.id, "lo": int(row_index[0]), "hi": int(row_index[-1])},
    ).all()
    rows = photometry_frame([b.band for b in plan], c["mags"], c["magerrs"])
    rows.insert(0, "row_index", row_index)
    rows.insert(0, "object_id", np.fromiter((r[0] for r in ids), np.int64, count=len(ids)))
    rows["ra"] = c["ra"]
    rows["dec"] = c["dec"]
    return rows
