"""Training a map as a background job, and keeping every map's ledger current.

``create_training`` validates the request and records a queued map and its job;
``run_training`` (the ``train_map`` job kind, run by whichever worker claims the job) fits
the SOM on the catalogue's photometry, then in one ledger transaction stores the map,
assigns every ingested source and spectrum to it and writes its per-cell statistics and
coverage. If anything fails the map is marked failed with the reason and no assignment or
cell row of it exists.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.models import Catalogue, Map, utcnow
from app.schemas import TrainMapIn
from app.services import ledger, live, map_store, phot_store
from app.services.catalogues import get_catalogue
from app.services.errors import InvalidInputError, RowError
from app.services.jobs import JobContext, JobKind, JobRunner, register
from app.services.ledger import ledger_transaction
from som import SOM, SOMError
from som.bands import REGISTRY, BandError
from som.photometry import ColourFeatures, PhotometryError, parse_colour
from som.vocabulary import Distance, IngestKind, Lattice, MapStatus, choices

log = logging.getLogger("somcal.training")


def train_request(**fields: Any) -> TrainMapIn:
    """The service's training request (``TrainMapIn``, what ``POST /v1/maps`` reads) from
    keyword fields, for callers that are not the API (the CLI): an invalid field is an
    ``InvalidInputError`` naming it, as the API's 422 does."""
    try:
        return TrainMapIn(**fields)
    except ValidationError as exc:
        raise InvalidInputError(
            "cannot train this map",
            [
                RowError(None, ".".join(str(p) for p in e["loc"]) or None, None, e["msg"])
                for e in exc.errors()
            ],
        ) from exc


def _z_edges(z_max: float, width: float) -> list[float]:
    n = int(round(z_max / width))
    return [round(i * width, 10) for i in range(n + 1)]


def measured_bands(cat: Catalogue) -> list[str]:
    """The catalogue's bands with at least one measurement (all of them for catalogues
    ingested before per-band counts were kept)."""
    phot = (cat.summary or {}).get("photometry")
    if not phot:
        return list(cat.bands)
    return [b for b in cat.bands if phot.get(b, {}).get("measured", 1) > 0]


def create_training(
    session: Session, runner: JobRunner, req: TrainMapIn, default_min_secure: int
) -> tuple[Map, int]:
    """Add the queued map and its job to the session (caller commits, then starts)."""
    cat = get_catalogue(session, req.catalogue_id)  # a deleted one is refused
    if cat.kind != "photometric":
        raise InvalidInputError(
            f"catalogue {cat.id} is {cat.kind}; maps are trained on a photometric catalogue",
            [RowError(None, "catalogue_id", None, "not a photometric catalogue")],
        )
    measured = measured_bands(cat)
    errors: list[RowError] = []
    colours: list[tuple[str, str]] | None = None
    if req.colours:
        colours = []
        for text in req.colours:
            try:
                colours.append(parse_colour(str(text), cat.bands))
            except ValueError as exc:
                errors.append(RowError(None, "colours", None, str(exc)))
    # Which of the catalogue's bands: what the catalogue has is this function's to check;
    # what makes a valid set of features (two bands, no repeats, colours of those bands)
    # is ColourFeatures', checked below by building it.
    bands: list[str] = []
    wanted = req.bands or (
        [b for b in cat.bands if any(b in c for c in colours)] if colours else measured
    )
    for b in wanted:
        try:
            name = REGISTRY.canonical(b) if b not in cat.bands else b
        except BandError as exc:
            errors.append(RowError(None, "bands", None, str(exc)))
            continue
        if name not in cat.bands:
            errors.append(
                RowError(
                    None,
                    "bands",
                    None,
                    f"band {b!r} is not in catalogue {cat.id} (its bands: {', '.join(cat.bands)})",
                )
            )
        elif name not in measured:
            errors.append(
                RowError(
                    None, "bands", None, f"band {b!r} has no measurement in catalogue {cat.id}"
                )
            )
        bands.append(name)
    if req.magnitude_band is not None and req.magnitude_band not in measured:
        errors.append(
            RowError(None, "magnitude_band", None, f"band {req.magnitude_band!r} not available")
        )
    if req.lattice == Lattice.hex and req.periodic and req.n_rows % 2:
        errors.append(
            RowError(None, "n_rows", None, "a toroidal hexagonal map needs an even n_rows")
        )
    # Keep wavelength order whatever order the caller listed the bands in; a band a user
    # declared at ingest is in the catalogue's own order, which is wavelength order too.
    order = {b: k for k, b in enumerate(cat.bands)}
    bands = sorted(bands, key=lambda b: order.get(b, len(order)))
    features = None
    if not any(e.column in ("bands", "colours") for e in errors):
        try:
            features = ColourFeatures(
                bands=bands,
                error_template="magerr_{band}" if req.distance == Distance.chi2 else None,
                magnitude_band=req.magnitude_band,
                colours=req.colours,  # as written: its messages quote them so
                # The rows were checked when they were ingested; a map applied to new rows
                # cleans them on the way in (ingest, assign), not again in training.
                check=False,
            )
        except ValueError as exc:
            field = "colours" if colours and "colour" in str(exc) else "bands"
            errors.append(RowError(None, field, None, str(exc)))
    if errors or features is None:
        raise InvalidInputError("cannot train this map", errors)
    m = Map(
        name=(req.name or f"{cat.name} {req.n_rows}x{req.n_cols}")[:255],
        status=MapStatus.queued.value,
        n_rows=req.n_rows,
        n_cols=req.n_cols,
        lattice=str(req.lattice),
        periodic=req.periodic,
        grid={
            "n_rows": req.n_rows,
            "n_cols": req.n_cols,
            "lattice": str(req.lattice),
            "periodic": req.periodic,
            "n_cells": req.n_rows * req.n_cols,
            "z_edges": _z_edges(req.z_max, req.z_bin_width),
        },
        # The map's definition, stored once: what its features are (the fitted description
        # replaces this at the end of training, with the same keys) ...
        features=features.to_dict(),
        # ... and how it is trained.
        params={
            "catalogue_id": cat.id,
            "n_epochs": req.n_epochs,
            "random_state": req.random_state,
            "distance": str(req.distance),
        },
        min_secure=req.min_secure or default_min_secure,
        training_catalogue_id=cat.id,
    )
    session.add(m)
    session.flush()
    job = runner.create(session, "train_map", {"map_id": m.id, **m.params})
    m.job_id = job.id
    return m, job.id


def run_training(factory: sessionmaker[Session], map_id: int, match_radius_arcsec: float) -> Any:
    """The training of map ``map_id`` as a function of the job's context (what the
    ``train_map`` job kind runs in whichever process claimed the job)."""

    def run(ctx: JobContext) -> dict[str, Any]:
        with factory() as session:
            m = map_store.get_map(session, map_id)
            if m.status not in ("queued", "training"):
                raise InvalidInputError(f"map {map_id} is {m.status}; only a queued map trains")
            m.status = "training"
            m.error = None
            session.commit()
            params = dict(m.params or {})
            features = ColourFeatures.from_dict(m.features or {})
            cat = live.get(session, params["catalogue_id"])
            if cat is None:
                raise InvalidInputError(f"training catalogue {params['catalogue_id']} was deleted")
            ctx.progress(0.01, f"loading {cat.n_rows} sources of catalogue {cat.id}", force=True)
            read = map_store.map_bands(m)
            rows = phot_store.load_rows(session, "photometric", cat.id, read)
        use_errors = params.get("distance") == "chi2"
        frame = ledger.feature_frame(rows, read)
        try:
            features.fit(frame, source=f"catalogue {cat.id}")
            X, E = features.transform(frame, source=f"catalogue {cat.id}")
        except PhotometryError as exc:
            raise InvalidInputError(f"cannot build features: {exc}") from exc
        usable = np.isfinite(X).any(axis=1)
        if usable.sum() < 2:
            raise InvalidInputError(
                f"only {int(usable.sum())} source(s) of catalogue {cat.id} have a usable colour"
            )
        som = SOM(
            m.n_rows,
            m.n_cols,
            lattice=m.lattice,
            periodic=m.periodic,
            n_epochs=int(params["n_epochs"]),
            random_state=params.get("random_state"),
            distance=params.get("distance", "euclidean"),
            features=features,
        )
        ctx.progress(0.05, "training", force=True)
        try:
            som.fit(
                X[usable],
                E[usable] if use_errors and E is not None else None,
                progress=lambda f, msg="": ctx.progress(0.05 + 0.75 * f, msg),
            )
        except SOMError as exc:
            raise InvalidInputError(f"training failed: {exc}") from exc
        ctx.progress(0.8, "assigning catalogues to the map", force=True)
        return _store(
            factory, map_id, som, int(usable.sum()), int((~usable).sum()), match_radius_arcsec, ctx
        )

    return run


def _store(
    factory: sessionmaker[Session],
    map_id: int,
    som: SOM,
    n_train: int,
    n_no_features: int,
    match_radius_arcsec: float,
    ctx: JobContext,
) -> dict[str, Any]:
    with factory() as session, ledger_transaction(session):
        m = map_store.get_map(session, map_id)
        reports: dict[str, dict[str, int]] = {}
        # rows only: an occupation catalogue has none to assign
        cats = session.scalars(live.live_catalogues(choices(IngestKind))).all()
        bands = map_store.map_bands(m)
        # Photometric catalogues first: spectra without photometry match their positions.
        for cat in sorted(cats, key=lambda c: c.kind != "photometric"):
            rows = phot_store.load_rows(session, cat.kind, cat.id, bands)
            if len(rows) == 0:
                continue
            rep = ledger.assign_catalogue(session, m, som, cat, rows, match_radius_arcsec)
            reports[str(cat.id)] = {
                "n_rows": rep.n_rows,
                "by_photometry": rep.n_by_photometry,
                "by_position": rep.n_by_position,
                "unassigned": rep.n_unassigned,
            }
        # No progress writes from here to the commit: on SQLite this transaction holds the
        # database's write lock, and a progress update from another connection would wait
        # for it.
        values = ledger.phot_values(session, m)
        s_cells, s_z, s_secure = ledger.spec_assigned(session, m.id)
        values.update(ledger.spec_cell_values(m, s_cells, s_z, s_secure))
        ledger.write_new_cells(session, m, values)
        # Last, so the job row is held only for the commit: a worker declared dead while it
        # trained must not store a map its job no longer owns (the map is failed or queued
        # again by then).
        ctx.fence(session)
        quality = {
            **{k: v for k, v in (som.quality_ or {}).items()},
            "n_train": n_train,
            "n_train_without_features": n_no_features,
            "epochs": (getattr(som, "training_", {}) or {}).get("epochs", []),
        }
        m.weights = som.to_bytes()
        m.features = som.features.to_dict()  # the definition, now with its normalisation
        m.quality = quality
        m.n_train = n_train
        m.status = "ready"
        m.trained_at = utcnow()
        session.commit()
        n_covered = int(sum(values["covered"]))
    return {
        "map_id": map_id,
        "n_train": n_train,
        "quantization_error": quality.get("quantization_error"),
        "topographic_error": quality.get("topographic_error"),
        "n_cells_covered": n_covered,
        "assigned": reports,
    }


def fail_maps(session: Session, job_id: int, reason: str) -> None:
    """The maps of training job ``job_id`` failed (in the caller's transaction)."""
    session.execute(
        update(Map)
        .where(Map.job_id == job_id, Map.status.in_(("queued", "training")))
        .values(status="failed", error=reason[:4000], weights=None)
        .execution_options(synchronize_session=False)
    )


def requeue_maps(session: Session, job_id: int, reason: str) -> None:
    """The job goes back to the queue: so does its map (its training starts over)."""
    session.execute(
        update(Map)
        .where(Map.job_id == job_id, Map.status == "training")
        .values(status="queued", weights=None)
        .execution_options(synchronize_session=False)
    )


def mark_failed(factory: sessionmaker[Session]):
    """``on_failure(job_id, reason)``: mark the job's map failed in a transaction of its own."""

    def on_failure(job_id: int, reason: str) -> None:
        with factory() as session:
            fail_maps(session, job_id, reason)
            session.commit()

    return on_failure


def _train_map_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    radius = params.get("match_radius_arcsec")
    if radius is None:  # queued before jobs carried their settings
        radius = ctx.settings.match_radius_arcsec
    return run_training(ctx.factory, int(params["map_id"]), float(radius))(ctx)


register(
    JobKind(
        name="train_map",
        run=_train_map_job,
        on_failure=fail_maps,
        on_requeue=requeue_maps,
        defaults=lambda settings: {"match_radius_arcsec": settings.match_radius_arcsec},
    )
)
