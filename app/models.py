"""ORM models (SQLAlchemy 2.0, typed).

Row-heavy tables (``sources``, ``spectra``, ``assignments``) are designed for 10^6+ rows:
narrow numeric columns, composite keys instead of surrogate ids where a natural key exists,
and indexes that match the service's access paths (per catalogue, per map and cell).
Photometry is stored per row as packed arrays over the catalogue's own bands
(``catalogues.bands``, any survey's); the catalogue's column names are kept in
``catalogues.column_mapping`` and the options it was ingested with in ``catalogues.options``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from som.vocabulary import (
    CalibrationStatus,
    CatalogueKind,
    ChangeAction,
    EnsembleMethod,
    Lattice,
    MapStatus,
    OccupationAxis,
    Outcome,
    TomoBinning,
    choices,
)

#: dtype of the packed photometry arrays (see ``_Photometry``).
PHOT_DTYPE = "<f8"

CATALOGUE_KINDS = choices(CatalogueKind)
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
MAP_STATUSES = choices(MapStatus)

# Named constraints are required for Alembic batch mode on SQLite (it recreates tables
# and must be able to refer to each constraint by name).
Base.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = Base.metadata

BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite only autoincrements INTEGER
JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on both backends (SQLite returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class _Photometry:
    """AB magnitudes and errors of the catalogue's bands, shared by photometric sources and
    spectra that carry photometry.

    One packed array per row instead of one column per band, so that any survey's bands fit
    (bands are data: ``catalogues.bands`` names them, in this order). ``mags``/``magerrs``
    hold ``len(catalogue.bands)`` little-endian float64 values, NaN where a band is missing
    or undetected (see :func:`som.photometry.clean_band`). Packed bytes rather than
    PostgreSQL ``double precision[]``: the same layout on PostgreSQL and SQLite, read with
    one ``numpy.frombuffer`` and written by binary COPY without per-element framing; no
    query filters on one band in SQL (magnitude cuts run in numpy after the read).
    """

    mags: Mapped[bytes | None] = mapped_column(LargeBinary)
    magerrs: Mapped[bytes | None] = mapped_column(LargeBinary)


class Catalogue(Base):
    __tablename__ = "catalogues"
    __table_args__ = (
        # The same file (by content) is one catalogue per kind: a repeated upload is
        # recognised, and concurrent uploads of one file cannot both land.
        UniqueConstraint("kind", "sha256"),
        CheckConstraint(f"kind IN ({_in(CATALOGUE_KINDS)})", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(512))
    file_format: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    preset: Mapped[str | None] = mapped_column(String(32))
    column_mapping: Mapped[dict[str, Any]] = mapped_column(JsonType)
    secure_rule: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Canonical band names (som.bands), in the order of the packed photometry arrays.
    bands: Mapped[list[str]] = mapped_column(JsonType)
    # What the ingest was asked for (preset, mapping, units, declared bands, rules) and what
    # it found (per-band counts, spectra usable or not): a repeated upload is compared
    # against it, and people read it.
    options: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # 64-bit: an occupation catalogue counts a whole survey's rows (10^9 and more)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    n_secure: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by a delete, cleared by a restore: a deleted catalogue keeps its rows until it is
    # purged but is out of the ledger (see app.services.live, the one place that says so).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Source(_Photometry, Base):
    """One photometric source. ``row_index`` is the 0-based row in the ingested file."""

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("catalogue_id", "row_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id", ondelete="CASCADE"))
    row_index: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str] = mapped_column(String(64))
    ra: Mapped[float | None] = mapped_column(Double)
    dec: Mapped[float | None] = mapped_column(Double)
    z_phot: Mapped[float | None] = mapped_column(Double)


class Spectrum(_Photometry, Base):
    """One spectroscopic redshift with its raw quality flag and the derived ``secure``."""

    __tablename__ = "spectra"
    __table_args__ = (UniqueConstraint("catalogue_id", "row_index"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    catalogue_id: Mapped[int] = mapped_column(ForeignKey("catalogues.id", ondelete="CASCADE"))
    row_index: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str] = mapped_column(String(64))
    ra: Mapped[float | None] = mapped_column(Double)
    dec: Mapped[float | None] = mapped_column(Double)
    z_spec: Mapped[float] = mapped_column(Double)
    quality_raw: Mapped[str | None] = mapped_column(String(32))
    quality: Mapped[float | None] = mapped_column(Double)
    secure: Mapped[bool] = mapped_column(Boolean)
    survey: Mapped[str | None] = mapped_column(String(64))


class Job(Base):
    """A unit of background work and the queue entry that runs it (see app.services.jobs).

    Any process claims a ``queued`` row (``worker``, ``claimed_at``, ``attempts``), keeps
    ``heartbeat_at`` fresh while it runs, and records the outcome; a ``running`` row whose
    heartbeat is too old is requeued (``attempts < max_attempts``) or failed by whoever
    sees it. ``params`` holds everything the job's kind needs to run from the row alone.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(JOB_STATUSES)})", name="status"),
        Index(None, "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class Map(Base):
    """A trained (or training) map. Immutable once ``status == 'ready'``.

    ``weights`` holds the serialised map file (``som.SOM.to_bytes()``): the grid, the
    feature specification and its normalisation travel together with the weights.
    """

    __tablename__ = "maps"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(MAP_STATUSES)})", name="status"),
        CheckConstraint(f"lattice IN ({_in(choices(Lattice))})", name="lattice"),
        CheckConstraint("n_rows > 0 AND n_cols > 0", name="shape"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    n_rows: Mapped[int] = mapped_column(Integer)
    n_cols: Mapped[int] = mapped_column(Integer)
    lattice: Mapped[str] = mapped_column(String(8))
    periodic: Mapped[bool] = mapped_column(Boolean, default=False)
    grid: Mapped[dict[str, Any]] = mapped_column(JsonType)
    features: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    params: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Deferred: the serialised map is loaded only when the map itself is needed (and then
    # cached), not with every row of ``maps``.
    weights: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    quality: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    min_secure: Mapped[int] = mapped_column(Integer, default=1)
    # Bumped whenever the map's cells are rewritten, so caches of them know they are stale.
    cells_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_train: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    training_catalogue_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalogues.id", ondelete="SET NULL")
    )
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    trained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Cell(Base):
    """Per-map, per-cell statistics and coverage; recomputed when spectra come or go."""

    __tablename__ = "cells"
    __table_args__ = (Index(None, "map_id", "covered"),)

    map_id: Mapped[int] = mapped_column(ForeignKey("maps.id", ondelete="CASCADE"), primary_key=True)
    cell: Mapped[int] = mapped_column(Integer, primary_key=True)
    row: Mapped[int] = mapped_column(Integer)
    col: Mapped[int] = mapped_column(Integer)
    n_phot: Mapped[int] = mapped_column(Integer, default=0)
    zphot_mean: Mapped[float | None] = mapped_column(Double)
    zphot_median: Mapped[float | None] = mapped_column(Double)
    zphot_std: Mapped[float | None] = mapped_column(Double)
    zphot_nmad: Mapped[float | None] = mapped_column(Double)
    n_spec: Mapped[int] = mapped_column(Integer, default=0)
    n_spec_secure: Mapped[int] = mapped_column(Integer, default=0)
    zspec_mean: Mapped[float | None] = mapped_column(Double)
    zspec_median: Mapped[float | None] = mapped_column(Double)
    zspec_std: Mapped[float | None] = mapped_column(Double)
    covered: Mapped[bool] = mapped_column(Boolean, default=False)
    # Histograms on the map's redshift grid (maps.grid["z_edges"]), as counts.
    pz_phot: Mapped[list[float] | None] = mapped_column(JsonType)
    pz_spec: Mapped[list[float] | None] = mapped_column(JsonType)
    # Galaxies per magnitude bin of the coverage history (som.calibration.HISTORY_MAG_EDGES,
    # in the map's default magnitude band); NULL on maps not recomputed since it was added.
    mag_phot: Mapped[list[int] | None] = mapped_column(JsonType)


class Assignment(Base):
    """Best-matching cell of one ingested row (a source or a spectrum) on one map.

    ``object_id`` is ``sources.id`` or ``spectra.id`` depending on the catalogue's kind.
    """

    __tablename__ = "assignments"
    __table_args__ = (
        Index(None, "map_id", "cell"),
        Index(None, "catalogue_id", "map_id"),
    )

    map_id: Mapped[int] = mapped_column(ForeignKey("maps.id", ondelete="CASCADE"), primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(
        ForeignKey("catalogues.id", ondelete="CASCADE"), primary_key=True
    )
    object_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    cell: Mapped[int] = mapped_column(Integer)
    distance: Mapped[float] = mapped_column(Double)
    # How far to trust the cell: the distance's percentile among the training galaxies' own,
    # and outside_training (beyond the 99.5th percentile or too few colours). Flagged rows
    # never make a cell covered and are counted apart.
    percentile: Mapped[float | None] = mapped_column(Double)
    outside: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TargetList(Base):
    """A saved target list: a snapshot, so later ingests or deletions do not alter it.

    A list with a ``name`` is a campaign (``/v1/maps/{id}/campaigns``): what was planned
    for a night or a semester, whose targets' outcomes are recorded against it. ``params``
    holds the budget, magnitude limit, exposure model and strategy that made it.
    """

    __tablename__ = "target_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    map_id: Mapped[int] = mapped_column(ForeignKey("maps.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    n_targets: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Target(Base):
    """One target of a saved list. ``rank`` is the observing priority (1 first);
    ``priority`` the share of the photometric sample held by the target's cell, i.e. what
    observing it is worth; ``extra`` the remaining columns of the list (all magnitudes,
    expected redshift and spread, distance, exposure time)."""

    __tablename__ = "targets"

    target_list_id: Mapped[int] = mapped_column(
        ForeignKey("target_lists.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    catalogue_id: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str] = mapped_column(String(64))
    ra: Mapped[float | None] = mapped_column(Double)
    dec: Mapped[float | None] = mapped_column(Double)
    mag: Mapped[float | None] = mapped_column(Double)
    cell: Mapped[int] = mapped_column(Integer)
    priority: Mapped[float] = mapped_column(Double)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class ApiKey(Base):
    """An API key, stored as its SHA-256 only; ``prefix`` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Calibration(Base):
    """A deep/wide (SOMPZ) calibration: a deep map, a wide map, a transfer catalogue and
    the spectra, kept current like coverage (recomputed as a ``calibrate_deepwide`` job
    whenever spectra or a tied catalogue arrive or leave).

    The transfer catalogue is a photometric catalogue of wide-noise photometry
    (``transfer_wide_catalogue_id``, assigned to the wide map) whose ``source_id`` names
    the deep galaxy each row injects; the deep side is the photometric catalogue holding
    those galaxies' deep photometry (``transfer_deep_catalogue_id``, assigned to the deep
    map; by default the deep catalogue itself, as Balrog injects the deep field's own
    galaxies). ``params`` holds the binning and ensemble choices and the ids as given, so
    a message can still name a map or catalogue after it was deleted (the foreign keys
    are then NULL). ``result`` is the last computed n(z) and its ensemble (npz bytes),
    ``summary`` its per-bin numbers; both are NULL until computed and after a failure.
    """

    __tablename__ = "calibrations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(choices(CalibrationStatus))})", name="status"),
        CheckConstraint(f"binning IN ({_in(choices(TomoBinning))})", name="binning"),
        CheckConstraint(
            f"ensemble_method IN ({_in(choices(EnsembleMethod))})", name="ensemble_method"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    deep_map_id: Mapped[int | None] = mapped_column(
        ForeignKey("maps.id", ondelete="SET NULL"), index=True
    )
    wide_map_id: Mapped[int | None] = mapped_column(
        ForeignKey("maps.id", ondelete="SET NULL"), index=True
    )
    deep_catalogue_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalogues.id", ondelete="SET NULL")
    )
    wide_catalogue_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalogues.id", ondelete="SET NULL")
    )
    transfer_deep_catalogue_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalogues.id", ondelete="SET NULL")
    )
    transfer_wide_catalogue_id: Mapped[int | None] = mapped_column(
        ForeignKey("catalogues.id", ondelete="SET NULL")
    )
    binning: Mapped[str] = mapped_column(String(16))
    ensemble_method: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # How many times it has been computed: a client sees a recomputation land.
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    summary: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    # Deferred: the arrays are read only for the n(z) itself, its files, plot and targets.
    result: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    computed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Occupation(Base):
    """A survey's occupation of one map (``catalogues.kind == 'occupation'``): what the
    counts in ``occupation_counts`` are of. The survey's rows are never stored: a Parquet or
    HATS dataset of 10^9 rows is reduced to per-cell histograms on a Dask cluster (see
    :mod:`som.occupation`), or a precomputed table is uploaded."""

    __tablename__ = "occupations"

    catalogue_id: Mapped[int] = mapped_column(
        ForeignKey("catalogues.id", ondelete="CASCADE"), primary_key=True
    )
    map_id: Mapped[int] = mapped_column(ForeignKey("maps.id", ondelete="CASCADE"), index=True)
    # provenance: the dataset, its checksum (footers and sizes: see dataset_checksum)
    dataset: Mapped[str] = mapped_column(String(1024))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_galaxies: Mapped[int] = mapped_column(BigInteger)
    n_unassigned: Mapped[int] = mapped_column(BigInteger)
    n_outside_training: Mapped[int] = mapped_column(BigInteger)
    # the splits: the magnitude column and photo-z column with their bin edges, the order
    mag_band: Mapped[str | None] = mapped_column(String(255))
    mag_edges: Mapped[list[float] | None] = mapped_column(JsonType)
    z_column: Mapped[str | None] = mapped_column(String(255))
    z_edges: Mapped[list[float] | None] = mapped_column(JsonType)
    healpix_order: Mapped[int | None] = mapped_column(Integer)
    weight_column: Mapped[str | None] = mapped_column(String(255))
    provenance: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OccupationCount(Base):
    """One non-empty entry of an occupation: galaxies ``n`` and weight sum of ``cell`` in
    ``bin`` of ``axis`` (``total``: bin 0; ``mag``/``z``: bin index; ``pixel``: HEALPix
    nested pixel, 64-bit)."""

    __tablename__ = "occupation_counts"
    __table_args__ = (
        CheckConstraint(f"axis IN ({_in(choices(OccupationAxis))})", name="axis"),
        CheckConstraint("n >= 0", name="n"),
    )

    catalogue_id: Mapped[int] = mapped_column(
        ForeignKey("occupations.catalogue_id", ondelete="CASCADE"), primary_key=True
    )
    axis: Mapped[str] = mapped_column(String(8), primary_key=True)
    bin: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    cell: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)
    weight: Mapped[float] = mapped_column(Double)


class LedgerChange(Base):
    """One change to the ledger, appended and never edited: what happened (``action``), to
    what (map, catalogue, campaign: plain ids, so the entry outlives what it names), by
    which API key (its name; the key itself is never stored) and when."""

    __tablename__ = "ledger_changes"
    __table_args__ = (
        CheckConstraint(f"action IN ({_in(choices(ChangeAction))})", name="action"),
        Index(None, "map_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    key_name: Mapped[str | None] = mapped_column(String(100))
    map_id: Mapped[int | None] = mapped_column(Integer)
    catalogue_id: Mapped[int | None] = mapped_column(Integer)
    target_list_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class CoverageSnapshot(Base):
    """A map's coverage just after one ledger change: cells and galaxies covered, secure
    spectra, the follow-up spent so far (targets observed, hours), and the cells and
    galaxies covered per photometric-redshift bin of the map's grid (``by_z``) and per
    magnitude bin (``by_mag``)."""

    __tablename__ = "coverage_snapshots"
    __table_args__ = (Index(None, "map_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    map_id: Mapped[int] = mapped_column(ForeignKey("maps.id", ondelete="CASCADE"))
    change_id: Mapped[int] = mapped_column(ForeignKey("ledger_changes.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    n_cells: Mapped[int] = mapped_column(Integer)
    n_cells_occupied: Mapped[int] = mapped_column(Integer)
    n_cells_covered: Mapped[int] = mapped_column(Integer)
    n_galaxies: Mapped[int] = mapped_column(Integer)
    n_galaxies_covered: Mapped[int] = mapped_column(Integer)
    n_spectra_secure: Mapped[int] = mapped_column(Integer)
    n_observed: Mapped[int] = mapped_column(Integer)
    n_secure_outcomes: Mapped[int] = mapped_column(Integer)
    hours_spent: Mapped[float] = mapped_column(Double)
    by_z: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType)
    # the same per magnitude bin (som.calibration.HISTORY_MAG_EDGES); NULL before 0011
    by_mag: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonType)


class TargetOutcome(Base):
    """What became of one target of a campaign (``som.vocabulary.Outcome``), with the
    exposure spent on it (a failure's depth decides whether it is worth another attempt)
    and the change that recorded it. One outcome per target: recording a different one
    later is refused, so failures are kept."""

    __tablename__ = "target_outcomes"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_in(choices(Outcome))})", name="outcome"),
        CheckConstraint("exposure_hours IS NULL OR exposure_hours >= 0", name="exposure"),
    )

    target_list_id: Mapped[int] = mapped_column(
        ForeignKey("target_lists.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    exposure_hours: Mapped[float | None] = mapped_column(Double)
    z_spec: Mapped[float | None] = mapped_column(Double)
    change_id: Mapped[int] = mapped_column(ForeignKey("ledger_changes.id"))
