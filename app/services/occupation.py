"""Occupation catalogues in the ledger: a survey's per-cell counts on one map, registered
as a catalogue of kind ``occupation`` (no rows), and read back for coverage, gaps,
targets and n(z).

The counts are computed by :func:`som.distributed.occupation_parquet` (a Parquet or HATS
dataset on Dask; ``somcal occupation``) or uploaded as the table
:meth:`som.occupation.Occupation.write_parquet` writes. Registration is one transaction:
the catalogue, its description and every count land together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import Catalogue, Map, OccupationCount
from app.models import Occupation as OccupationRow
from app.services import live, map_store
from app.services.bulk import Col, bulk_insert
from app.services.catalogues import get_catalogue
from app.services.errors import ForbiddenError, InvalidInputError, RowError, ServiceError
from app.services.jobs.kinds import JobKind
from app.services.jobs.kinds import register as register_kind
from som.occupation import Occupation, OccupationError
from som.vocabulary import CatalogueKind, ChangeAction, OccupationAxis

#: ``catalogues.file_format`` of an occupation: where its counts came from
FROM_PARQUET, FROM_HATS, FROM_TABLE = "parquet", "hats", "occupation"


def map_digest(m: Map) -> str:
    """The map's fingerprint (shape, lattice, weights): what an occupation's provenance
    records as ``map_fingerprint``."""
    from som.distributed.occupation import map_fingerprint

    return map_fingerprint(map_store.SOM_CACHE.get(m))


def invalid(exc: OccupationError, file: str | None = None) -> InvalidInputError:
    """An occupation table that cannot be used, as the service's 422 (file, column, row)."""
    name = file or exc.source
    return InvalidInputError(
        f"{name}: {exc.reason}" + (f" (column {exc.column!r}" if exc.column else "")
        + (f", row {exc.row})" if exc.row is not None else (")" if exc.column else "")),
        [RowError(name, exc.column, exc.row, exc.reason)],
    )  # fmt: skip


def check_for_map(occ: Occupation, m: Map, file: str) -> None:
    """The occupation must be of this map: its cell count, and the map's digest when the
    occupation records one (a dataset assigned with another map of the same size)."""
    n_cells = m.n_rows * m.n_cols
    if occ.n_cells != n_cells:
        reason = (
            f"the table is for a map of {occ.n_cells} cells; map {m.id} has {n_cells} "
            f"({m.n_rows}x{m.n_cols})"
        )
        raise InvalidInputError(f"{file}: {reason}", [RowError(file, "cell", None, reason)])
    digest = occ.provenance.get("map_fingerprint")
    if digest and digest != map_digest(m):
        reason = f"computed with another map (fingerprint {str(digest)[:12]}...) than map {m.id}"
        raise InvalidInputError(f"{file}: {reason}", [RowError(file, None, None, reason)])


@dataclass
class Registered:
    catalogue: Catalogue
    duplicate: bool


def _identity(occ: Occupation, m: Map, file_sha256: str | None) -> str:
    """What makes two occupations the same: the uploaded file's bytes, or the dataset's
    checksum with the map and the splits (one dataset may be counted on several maps)."""
    if file_sha256:  # one file may be uploaded for two maps of the same size
        return hashlib.sha256(f"{file_sha256}:map{m.id}".encode()).hexdigest()
    d = occ.description()
    key = {
        "dataset_sha256": occ.provenance.get("dataset_sha256"),
        "map": m.id,
        **{k: d[k] for k in ("mag_column", "mag_edges", "z_column", "z_edges",
                             "healpix_order", "weight_column")},
    }  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def register(
    session: Session,
    m: Map,
    occ: Occupation,
    *,
    name: str | None = None,
    filename: str,
    file_format: str,
    file_sha256: str | None = None,
    size_bytes: int = 0,
    before_commit: Callable[[Session], None] | None = None,
    key_name: str | None = None,
) -> Registered:
    """Store ``occ`` as an occupation catalogue of map ``m`` in one transaction (committed
    here; ``before_commit(session)`` runs inside it, last: a job's fence). The same
    occupation again (same file, or same dataset, map and splits) returns the catalogue
    already stored (``duplicate``)."""
    map_store.require_ready(m)
    check_for_map(occ, m, filename)
    sha = _identity(occ, m, file_sha256)
    existing = session.scalar(
        select(Catalogue).where(Catalogue.kind == CatalogueKind.occupation, Catalogue.sha256 == sha)
    )
    if existing is not None:
        live.refuse_deleted_twin(existing, filename)
        return Registered(existing, True)
    frame = occ.to_frame()
    description = occ.description()
    prov = dict(occ.provenance)
    try:
        cat = Catalogue(
            kind=CatalogueKind.occupation,
            name=name or Path(filename).name or filename,
            filename=filename,
            file_format=file_format,
            sha256=sha,
            size_bytes=int(size_bytes),
            column_mapping={
                k: v
                for k, v in (
                    ("mag", occ.mag_column),
                    ("z_phot", occ.z_column),
                    ("weight", occ.weight_column),
                )
                if v
            },  # fmt: skip
            bands=[],
            options={k: v for k, v in description.items() if k != "provenance"},
            summary={
                "rows": occ.n_rows,
                "galaxies": occ.n_galaxies,
                "unassigned": occ.n_unassigned,
                "outside_training": occ.n_outside_training,
                "cells_occupied": int((occ.counts > 0).sum()),
                "entries": len(frame),
            },
            n_rows=int(occ.n_rows),
            n_skipped=int(occ.n_unassigned + occ.n_outside_training),
            status="ready",
        )
        session.add(cat)
        session.flush()
        session.add(
            OccupationRow(
                catalogue_id=cat.id,
                map_id=m.id,
                dataset=str(prov.get("dataset") or filename),
                dataset_sha256=str(prov.get("dataset_sha256") or sha),
                n_rows=int(occ.n_rows),
                n_galaxies=occ.n_galaxies,
                n_unassigned=int(occ.n_unassigned),
                n_outside_training=int(occ.n_outside_training),
                mag_band=occ.mag_column,
                mag_edges=description["mag_edges"],
                z_column=occ.z_column,
                z_edges=description["z_edges"],
                healpix_order=occ.healpix_order,
                weight_column=occ.weight_column,
                provenance=json.loads(json.dumps(prov, default=str)),
            )
        )
        session.flush()
        n = len(frame)
        bulk_insert(
            session.connection(),
            "occupation_counts",
            [
                Col("catalogue_id", "int4", np.full(n, cat.id, dtype=np.int32)),
                Col("axis", "text", frame["axis"].to_numpy(dtype=object)),
                Col("bin", "int8", frame["bin"].to_numpy(np.int64)),
                Col("cell", "int4", frame["cell"].to_numpy(np.int32)),
                Col("n", "int8", frame["n"].to_numpy(np.int64)),
                Col("weight", "float8", frame["weight"].to_numpy(np.float64)),
            ],
            references_valid=True,
        )
        # Who registered a survey's counts is audited like an ingest (the change log); the
        # rows' coverage is unchanged, so no map gets a snapshot.
        from app.services.followup import record_ledger_change

        record_ledger_change(
            session, ChangeAction.catalogue_ingested, key_name, [], catalogue_id=cat.id,
            detail={"kind": cat.kind, "name": cat.name, "filename": cat.filename,
                    "sha256": cat.sha256, "n_rows": cat.n_rows, "map_id": m.id},
        )  # fmt: skip
        if before_commit is not None:
            before_commit(session)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return Registered(cat, False)


def register_file(
    session: Session,
    m: Map,
    path: Path,
    filename: str,
    name: str | None = None,
    key_name: str | None = None,
) -> Registered:
    """Register an uploaded occupation table (Parquet from ``Occupation.write_parquet``),
    checked row by row before anything is written."""
    try:
        occ = Occupation.read_parquet(path, source=filename)
    except OccupationError as exc:
        raise invalid(exc, filename) from exc
    data = path.read_bytes()
    return register(
        session, m, occ, name=name, filename=filename, file_format=FROM_TABLE,
        file_sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), key_name=key_name,
    )  # fmt: skip


_CacheKey = tuple[int, str, str, bool]


class _Cache:
    """Occupations read back, by catalogue: a catalogue never changes once stored. The key
    holds its checksum and creation time besides its id, because an id can come back (a
    purged catalogue's, on SQLite) for other counts."""

    def __init__(self, size: int = 8) -> None:
        self._items: LRUCache[_CacheKey, Occupation] = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key: _CacheKey) -> Occupation | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: _CacheKey, value: Occupation) -> None:
        with self._lock:
            self._items[key] = value


_CACHE = _Cache()


def occupation_row(session: Session, catalogue_id: int) -> tuple[Catalogue, OccupationRow]:
    cat = get_catalogue(session, catalogue_id)
    row = session.get(OccupationRow, cat.id)
    if cat.kind != CatalogueKind.occupation or row is None:
        reason = f"catalogue {cat.id} is {cat.kind}, not an occupation"
        raise InvalidInputError(reason, [RowError(None, "catalogue_id", None, reason)])
    return cat, row


def load(
    session: Session, m: Map, catalogue_id: int, with_pixels: bool = False
) -> tuple[Catalogue, Occupation]:
    """The occupation catalogue ``catalogue_id`` of map ``m``, as a ``som`` Occupation;
    its HEALPix split (up to pixels x cells entries, the largest part) only when asked
    for, as only the sky map reads it."""
    cat, row = occupation_row(session, catalogue_id)
    if row.map_id != m.id:
        reason = f"occupation catalogue {cat.id} is of map {row.map_id}, not of map {m.id}"
        raise InvalidInputError(reason, [RowError(None, "catalogue_id", None, reason)])
    key = (cat.id, str(cat.sha256), str(cat.created_at), with_pixels)
    cached = _CACHE.get(key)
    if cached is not None:
        return cat, cached
    query = select(
        OccupationCount.axis,
        OccupationCount.bin,
        OccupationCount.cell,
        OccupationCount.n,
        OccupationCount.weight,
    ).where(OccupationCount.catalogue_id == cat.id)
    if not with_pixels:
        query = query.where(OccupationCount.axis != OccupationAxis.pixel)
    rows = session.execute(query).all()
    frame = pd.DataFrame.from_records(
        [tuple(r) for r in rows], columns=["axis", "bin", "cell", "n", "weight"]
    )
    description = {
        "n_cells": m.n_rows * m.n_cols,
        "n_rows": row.n_rows,
        "n_unassigned": row.n_unassigned,
        "n_outside_training": row.n_outside_training,
        "mag_column": row.mag_band,
        "mag_edges": row.mag_edges,
        "z_column": row.z_column,
        "z_edges": row.z_edges,
        "healpix_order": row.healpix_order,
        "weight_column": row.weight_column,
        "provenance": row.provenance,
    }
    if not with_pixels:
        description["healpix_order"] = None
    occ = Occupation.from_frame(frame, description, source=f"catalogue {cat.id}")
    _CACHE.put(key, occ)
    return cat, occ


def delete_rows(session: Session, catalogue_id: int) -> None:
    """Remove an occupation's counts and description (set-based, before its catalogue)."""
    session.execute(delete(OccupationCount).where(OccupationCount.catalogue_id == catalogue_id))
    session.execute(delete(OccupationRow).where(OccupationRow.catalogue_id == catalogue_id))


def sample_ref(cat: Catalogue | None) -> dict:
    """Which catalogue an answer used: an occupation catalogue, or (None) every
    photometric row of the ledger."""
    if cat is None:
        return {"catalogue_id": None, "kind": CatalogueKind.photometric, "name": None}
    return {"catalogue_id": cat.id, "kind": cat.kind, "name": cat.name}


def describe(session: Session, cat: Catalogue, duplicate: bool = False) -> dict:
    """An occupation catalogue as the API and CLI show it: the catalogue, the map, the
    dataset and its checksum, the counters and the splits."""
    row = session.get(OccupationRow, cat.id)
    fields = (
        "map_id", "dataset", "dataset_sha256", "n_rows", "n_galaxies", "n_unassigned",
        "n_outside_training", "mag_band", "mag_edges", "z_column", "z_edges", "healpix_order",
        "weight_column", "provenance", "created_at",
    )  # fmt: skip
    return {"catalogue": cat, **{f: getattr(row, f) for f in fields}, "duplicate": duplicate}


def list_for_map(session: Session, m: Map) -> list[Catalogue]:
    return list(
        session.scalars(
            select(Catalogue)
            .join(OccupationRow, OccupationRow.catalogue_id == Catalogue.id)
            .where(OccupationRow.map_id == m.id, live.LIVE)
            .order_by(Catalogue.id)
        )
    )


def sky(
    session: Session, m: Map, catalogue_id: int, order: int | None = None
) -> tuple[Occupation, pd.DataFrame]:
    """Per HEALPix pixel the galaxies of an occupation and the share in uncovered cells,
    at the stored order or degraded to the coarser ``order`` (``Occupation.at_order``)."""
    from app.services import ledger

    _, occ = load(session, m, catalogue_id, with_pixels=True)
    if occ.healpix_order is None:
        reason = f"occupation catalogue {catalogue_id} is not split by HEALPix pixel"
        raise InvalidInputError(reason, [RowError(None, "catalogue_id", None, reason)])
    if order is not None:
        try:
            occ = occ.at_order(order)
        except ValueError as exc:
            raise InvalidInputError(
                f"order: {exc}", [RowError(None, "order", None, str(exc))]
            ) from exc
    covered = ledger.cell_arrays(session, m)["covered"]
    return occ, occ.uncovered_by_pixel(covered)


def sky_fits(occ: Occupation, frame: pd.DataFrame, m: Map, catalogue_id: int) -> bytes:
    """The sky map as a FITS HEALPix map (healpy's and astropy-healpix's convention): a
    binary table of every pixel of the sphere in NESTED order, ``FRACTION_UNCOVERED``
    (healpy's UNSEEN where a pixel holds no galaxy), ``N_GALAXIES``, ``N_UNCOVERED``;
    header ``PIXTYPE=HEALPIX``, ``ORDERING=NESTED``, ``NSIDE``, ``ORDER`` (as HATS names
    it), ``INDXSCHM=IMPLICIT``, ``COORDSYS=C``. Pixel counts come from ``hats``."""
    import io

    from astropy.io import fits
    from hats.pixel_math.healpix_shim import order2npix, order2nside

    order = int(occ.healpix_order)
    n_pix = int(order2npix(order))
    pixels = frame["pixel"].to_numpy(np.int64)
    fraction = np.full(n_pix, HEALPIX_UNSEEN, np.float64)
    fraction[pixels] = frame["fraction_uncovered"].to_numpy(np.float64)
    n_gal, n_unc = np.zeros(n_pix, np.int64), np.zeros(n_pix, np.int64)
    n_gal[pixels] = frame["n_galaxies"].to_numpy(np.int64)
    n_unc[pixels] = frame["n_uncovered"].to_numpy(np.int64)
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="FRACTION_UNCOVERED", format="D", array=fraction),
            fits.Column(name="N_GALAXIES", format="K", array=n_gal),
            fits.Column(name="N_UNCOVERED", format="K", array=n_unc),
        ],
        name="SKYMAP",
    )
    header = hdu.header
    for key, value, comment in (
        ("PIXTYPE", "HEALPIX", "HEALPix pixelisation"),
        ("ORDERING", "NESTED", "pixel ordering scheme"),
        ("NSIDE", int(order2nside(order)), "resolution parameter, 2**ORDER"),
        ("ORDER", order, "HEALPix order (HATS' Norder)"),
        ("FIRSTPIX", 0, "first pixel #"),
        ("LASTPIX", n_pix - 1, "last pixel #"),
        ("INDXSCHM", "IMPLICIT", "every pixel, in order"),
        ("OBJECT", "FULLSKY", ""),
        ("COORDSYS", "C", "equatorial (ICRS RA/Dec)"),
        ("BAD_DATA", HEALPIX_UNSEEN, "no galaxies in the pixel"),
        ("SOMCALMP", m.id, "somcal map id"),
        ("SOMCALOC", int(catalogue_id), "somcal occupation catalogue id"),
        ("MINSECUR", int(m.min_secure or 0), "spectra for a cell to count as covered"),
    ):
        header[key] = (value, comment)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()


#: healpy's (and the HEALPix FITS convention's) value of a pixel without data
HEALPIX_UNSEEN = -1.6375e30


# ----------------------------------------------------------------------------- the job
#: job kind: an occupation computed from a dataset on the server
KIND = "compute_occupation"
_JOB_OPTIONS = (
    "mag_column", "mag_edges", "z_column", "z_edges", "weight_column", "healpix_order",
    "ra_column", "dec_column", "rows_per_task",
)  # fmt: skip


def queue_compute(
    session: Session,
    runner: Any,
    m: Map,
    req: Any,
    data_dirs: list[Path],
    dask_schedulers: list[str] | None = None,
    key_name: str | None = None,
) -> tuple[Any, Path, int]:
    """Queue the occupation of map ``m`` by the dataset ``req.path`` (an
    ``OccupationComputeIn``): (the job, the resolved dataset, its file count). The path
    and every file under it must be inside ``data_dirs`` (as ingest from a path), and the
    dataset must list Parquet files; the columns are checked by the job, from the footers,
    before any row is read. The caller commits and starts the job."""
    from app.core.paths import require_inside, resolve_data_path
    from som.distributed._parquet import PARQUET_SUFFIXES, list_parquet_files

    map_store.require_ready(m)
    allowed = list(dask_schedulers or [])
    if req.dask not in (None, "local", *allowed):
        # A scheduler runs whatever it is sent: only the operator may name one.
        raise ForbiddenError(
            f"dask scheduler {req.dask!r} is not one this server may use; the operator lists "
            "them in SOMCAL_DASK_SCHEDULERS"
            + (f" (now: {', '.join(allowed)})" if allowed else " (now: none; 'local' works)")
        )
    source = resolve_data_path(req.path, data_dirs, directories=True)
    try:
        _, files = list_parquet_files(source)
    except (FileNotFoundError, ValueError, OSError) as exc:
        reason = str(exc).replace(str(source), req.path)
        raise InvalidInputError(
            f"{req.path}: {reason}", [RowError(req.path, None, None, reason)]
        ) from exc
    require_inside(files, data_dirs, req.path)
    if source.is_file() and not source.name.lower().endswith(PARQUET_SUFFIXES):
        reason = f"not a Parquet file ({', '.join('*' + s for s in PARQUET_SUFFIXES)})"
        raise InvalidInputError(f"{req.path}: {reason}", [RowError(req.path, None, None, reason)])
    params = {
        "map_id": m.id, "path": str(source), "name": req.name, "dask": req.dask,
        "key_name": key_name, **{k: getattr(req, k) for k in _JOB_OPTIONS},
    }  # fmt: skip
    job = runner.create(session, KIND, params)
    return job, source, len(files)


def _partition_error(exc: Exception, path: str) -> InvalidInputError:
    """A failed pass as the job's error: every failed partition by file, row groups and
    reason (the column it lacks, the row it could not use)."""
    from som.distributed import PartitionError

    if isinstance(exc, PartitionError):
        errors = [RowError(f.get("where"), f.get("column"), f.get("row"), str(f.get("reason")))
                  for f in exc.failures]  # fmt: skip
        return InvalidInputError(f"{path}: {exc}", errors)
    return InvalidInputError(f"{path}: {exc}", [RowError(path, None, None, str(exc))])


def _run_job(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The ``compute_occupation`` job: the pass on Dask (progress per partition), then
    the counts registered in one transaction fenced by the job; nothing is stored when
    any partition fails."""
    from som.distributed import PartitionError, occupation_parquet

    path = str(params["path"])
    with ctx.factory() as session:
        m = map_store.get_map(session, int(params["map_id"]))
        map_store.require_ready(m)
        som = map_store.SOM_CACHE.get(m)
    ctx.progress(0.0, f"reading {path}", force=True)
    try:
        occ = occupation_parquet(
            som, path, client=params.get("dask"),
            progress=lambda f, msg: ctx.progress(0.95 * f, msg),
            **{k: params.get(k) for k in _JOB_OPTIONS if k != "rows_per_task"},
            rows_per_task=int(params.get("rows_per_task") or 1_000_000),
        )  # fmt: skip
    except (PartitionError, ValueError, FileNotFoundError) as exc:
        raise _partition_error(exc, path) from exc
    except OSError as exc:  # an unreachable scheduler
        raise ServiceError(f"{path}: {exc}") from exc
    ctx.progress(0.95, f"registering {occ.n_galaxies:,} galaxies' counts", force=True)
    fmt = FROM_HATS if occ.provenance.get("hats") else FROM_PARQUET
    with ctx.factory() as session:
        m = map_store.get_map(session, int(params["map_id"]))
        reg = register(
            session, m, occ, name=params.get("name") or Path(path).name, filename=path,
            file_format=fmt, before_commit=ctx.fence, key_name=params.get("key_name"),
        )  # fmt: skip
        cat_id = reg.catalogue.id
    return {
        "catalogue_id": cat_id,
        "map_id": int(params["map_id"]),
        "duplicate": reg.duplicate,
        "n_rows": int(occ.n_rows),
        "n_galaxies": occ.n_galaxies,
        "n_partitions": occ.provenance.get("n_partitions"),
        "rows_per_second": occ.provenance.get("rows_per_second"),
        "engine": occ.provenance.get("engine"),
    }


register_kind(JobKind(name=KIND, run=_run_job))
