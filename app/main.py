"""The FastAPI application. Serve with: uvicorn app.main:create_app --factory"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from app.api import errors
from app.api.limits import BodySizeLimitMiddleware
from app.api.openapi import add_body_schemas
from app.api.routes import (
    bands,
    calibrations,
    catalogues,
    changes,
    dashboard,
    health,
    jobs,
    maps,
)
from app.core.config import Settings, get_settings
from app.core.db import make_engine, make_session_factory
from app.core.security import hash_key
from app.schemas import AssignIn, IngestFromPath
from app.services.jobs import JobRunner, fail_orphaned_jobs

log = logging.getLogger("somcal")

# Multipart framing and the small option fields ride on top of the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


def _version() -> str:
    try:
        return version("somcal")
    except PackageNotFoundError:
        return "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )
    factory = make_session_factory(engine)
    runner = JobRunner(factory, workers=settings.embedded_workers, settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Jobs whose worker vanished (this server killed mid-training, a worker host gone)
        # are requeued or failed now and then by the reaper thread every heartbeat; the
        # embedded workers (SOMCAL_EMBEDDED_WORKERS, 0 where `somcal worker` runs jobs)
        # claim queued jobs from the database like any worker process.
        try:
            n = fail_orphaned_jobs(factory, settings.heartbeat_timeout)
            if n:
                log.warning("requeued or failed %d interrupted job(s)", n)
        except Exception as exc:  # noqa: BLE001 - e.g. schema not migrated yet; /ready says so
            log.warning("could not check for interrupted jobs: %s", type(exc).__name__)
        runner.serve()
        yield
        # Running jobs are released (queued again) at their next progress report.
        runner.shutdown(wait=False)
        engine.dispose()

    # /docs (Swagger UI) loads its scripts and styles from the fastapi-offline package, not
    # a CDN: the docs work on a network with no outside access. No ReDoc: once it renders,
    # it loads its logo from Redocly's CDN.
    app = FastAPIOffline(
        title="somcal",
        version=_version(),
        summary="SOM photometric-redshift calibration: coverage ledger, gaps, targets, n(z)",
        lifespan=lifespan,
        redoc_url=None,
        openapi_tags=[
            {"name": "catalogues", "description": "Photometric and spectroscopic catalogues"},
            {"name": "maps", "description": "Trained self-organising maps and their cells"},
            {
                "name": "calibrations",
                "description": "Deep/wide (SOMPZ) n(z): two maps, a transfer catalogue, spectra",
            },
            {"name": "jobs", "description": "Background work (training) and its progress"},
            {"name": "health", "description": "Liveness and readiness"},
        ],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = factory
    # One place per pooled connection for requests (app.api.deps.get_db).
    app.state.db_gate = anyio.CapacityLimiter(settings.db_connections)
    app.state.jobs = runner
    app.state.static_key_hashes = tuple(hash_key(k.get_secret_value()) for k in settings.api_keys)

    errors.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
        )
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes + _MULTIPART_OVERHEAD
    )
    app.include_router(health.router)
    app.include_router(catalogues.router)
    app.include_router(catalogues.moved)
    app.include_router(bands.router)
    app.include_router(maps.router)
    app.include_router(calibrations.router)
    app.include_router(jobs.router)
    app.include_router(changes.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    # Bodies read by hand (JSON or a file) are documented by name in their routes.
    add_body_schemas(app, [AssignIn, IngestFromPath])
    return app
