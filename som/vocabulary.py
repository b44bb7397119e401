"""The words somcal accepts, declared once.

Every choice a user can make by name (a lattice, a distance, a plot, a table format …) is
an enum here. The library validates against these; the service's pydantic models, the CLI's
option choices and the database's check constraints are derived from them, so adding a
choice in one place adds it everywhere and a choice cannot be spelled differently in two
layers. They are ``StrEnum`` so that a member *is* its string: ``Lattice.hex == "hex"``, and
plain strings keep working wherever an enum is expected.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CalibrationStatus",
    "CatalogueKind",
    "ChangeAction",
    "CoverageSplit",
    "Distance",
    "EnsembleMethod",
    "IngestKind",
    "Init",
    "JobStatus",
    "Lattice",
    "MapStatus",
    "Method",
    "NegativeError",
    "Neighbourhood",
    "NirPreset",
    "OccupationAxis",
    "OnInvalid",
    "Outcome",
    "PlanStrategy",
    "PlotKind",
    "RedshiftSource",
    "Schedule",
    "TableFormat",
    "TomoBinning",
    "WidePreset",
    "choices",
]


class Lattice(StrEnum):
    """Cell layout: ``hex`` (odd rows shifted by half a cell, six neighbours) or ``rect``."""

    rect = "rect"
    hex = "hex"


class Neighbourhood(StrEnum):
    """Neighbourhood function: ``gaussian`` (truncated at 4 σ) or ``bubble`` (1 within σ)."""

    gaussian = "gaussian"
    bubble = "bubble"


class Init(StrEnum):
    """Initial weights: plane of the two leading principal components, or random rows."""

    pca = "pca"
    random = "random"


class Method(StrEnum):
    """Training algorithm: the Kohonen batch map (no learning rate) or online updates."""

    batch = "batch"
    online = "online"


class Schedule(StrEnum):
    """How σ (and the online learning rate) decay over the epochs."""

    exponential = "exponential"
    linear = "linear"


class Distance(StrEnum):
    """Best-matching-cell metric: plain Euclidean, or χ² weighting each feature by 1/error²."""

    euclidean = "euclidean"
    chi2 = "chi2"


class NegativeError(StrEnum):
    """What a negative photometric error means: an upper limit (CIGALE/LePhare) or a fault."""

    limit = "limit"
    invalid = "invalid"


class MagnitudeScale(StrEnum):
    """How fluxes become magnitudes: Pogson's logarithm (undefined for flux <= 0), or
    Lupton et al. (1999) asinh magnitudes ("luptitudes"), finite for any flux, which DES
    uses for its wide map so that faint and negative measured fluxes keep their place."""

    pogson = "pogson"
    asinh = "asinh"


class OnInvalid(StrEnum):
    """What to do with a row whose photometry cannot be used: refuse the input, or skip it."""

    reject = "reject"
    skip = "skip"


class CatalogueKind(StrEnum):
    """What a catalogue holds: photometric or spectroscopic rows, or a survey's occupation
    of one map (per-cell counts, no rows; see :mod:`som.occupation`)."""

    photometric = "photometric"
    spectroscopic = "spectroscopic"
    occupation = "occupation"


class IngestKind(StrEnum):
    """The catalogue kinds ingested row by row (an occupation is computed or uploaded as
    its table instead)."""

    photometric = "photometric"
    spectroscopic = "spectroscopic"


class OccupationAxis(StrEnum):
    """How an occupation table splits its counts: per cell in ``total``, and per magnitude
    bin, photo-z bin or HEALPix pixel and cell."""

    total = "total"
    mag = "mag"
    z = "z"
    pixel = "pixel"


class RedshiftSource(StrEnum):
    """Which redshifts colour a cell: photometric (the deep catalogue's) or spectroscopic."""

    phot = "phot"
    spec = "spec"


class PlotKind(StrEnum):
    """The figures of a trained map (``overview`` is the four-panel summary)."""

    redshift = "redshift"
    dispersion = "dispersion"
    occupation = "occupation"
    coverage = "coverage"
    umatrix = "umatrix"
    overview = "overview"
    nz = "nz"


class TableFormat(StrEnum):
    """Table formats read and written (see :mod:`som.tables` for endings and detection)."""

    fits = "fits"
    parquet = "parquet"
    csv = "csv"
    ecsv = "ecsv"
    votable = "votable"
    hdf5 = "hdf5"
    ipac = "ipac"
    ascii = "ascii"


class NirPreset(StrEnum):
    """Near-infrared bands of the bundled mock: UltraVISTA (Y J H) or Euclid (YE JE HE)."""

    ultravista = "ultravista"
    euclid = "euclid"


class WidePreset(StrEnum):
    """Wide survey of the mock's wide side: LSST-like u g r i z y, or Euclid-like
    VIS (I_E) + NISP Y_E J_E H_E (see :mod:`som.mock.wide`)."""

    lsst = "lsst"
    euclid = "euclid"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class MapStatus(StrEnum):
    queued = "queued"
    training = "training"
    ready = "ready"
    failed = "failed"


class TomoBinning(StrEnum):
    """How a deep/wide calibration puts wide galaxies in tomographic bins: by the mean or
    the modal redshift their wide cell's deep cells give, or by each galaxy's own photo-z
    (``som.deepwide.pipeline.BINNINGS``)."""

    mean = "mean"
    mode = "mode"
    photoz = "photoz"


class EnsembleMethod(StrEnum):
    """How the realisations of a deep/wide n(z) are drawn (``som.deepwide.METHODS``)."""

    bootstrap_spec = "bootstrap_spec"
    bootstrap_deep = "bootstrap_deep"
    dirichlet = "dirichlet"


class CalibrationStatus(StrEnum):
    """A deep/wide calibration of the service: waiting for (re)computation, being
    computed, computed, or failed (the reason is kept)."""

    queued = "queued"
    computing = "computing"
    ready = "ready"
    failed = "failed"


class Outcome(StrEnum):
    """What became of a campaign's target: a secure redshift, observed without one (the
    exposure spent is kept, so the next campaign knows at what depth it failed), or not
    observed at all (weather, time, a slit that did not fit)."""

    secure = "secure"
    failed = "failed"
    not_observed = "not_observed"


class PlanStrategy(StrEnum):
    """How a campaign orders its targets: ``c3r2`` (most populated uncovered cells first,
    the source closest to the cell's weight vector), ``expected_gain`` (expected coverage
    gained per hour, from the success model), ``brightest`` (cheapest first) or ``random``
    (a baseline for the forecast)."""

    c3r2 = "c3r2"
    expected_gain = "expected_gain"
    brightest = "brightest"
    random = "random"


class CoverageSplit(StrEnum):
    """How the coverage history is split: by magnitude bin or by photometric-redshift bin."""

    mag = "mag"
    z = "z"


class ChangeAction(StrEnum):
    """What one entry of the ledger's append-only change log records."""

    catalogue_ingested = "catalogue_ingested"
    # soft: hidden from the ledger, rows kept until purged
    catalogue_deleted = "catalogue_deleted"
    catalogue_restored = "catalogue_restored"
    catalogue_purged = "catalogue_purged"
    campaign_created = "campaign_created"
    outcomes_recorded = "outcomes_recorded"


def choices(enum: type[StrEnum]) -> tuple[str, ...]:
    """The plain string values of ``enum``, in declaration order (for messages and checks)."""
    return tuple(member.value for member in enum)
