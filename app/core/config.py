"""Service settings, read from the environment (prefix ``SOMCAL_``) or a ``.env`` file.

``DATABASE_URL`` is also accepted without the prefix because that is the name every
hosting platform and ``docker compose`` file uses.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SQLITE_URL = "sqlite:///./var/somcal.db"


def _split_list(value: object) -> object:
    # Lists arrive from the environment as "a,b,c" (or JSON); both are accepted so
    # operators do not have to quote JSON inside shell variables.
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SOMCAL_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(
        default=DEFAULT_SQLITE_URL,
        validation_alias=AliasChoices("SOMCAL_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="SQLAlchemy URL (SQLite file by default; postgresql+psycopg://...)",
    )
    # Bootstrap keys for deployments that cannot run `somcal apikey create` first (e.g. a
    # compose file). They are hashed at start-up and compared like stored keys.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    read_auth: bool = Field(
        default=False, description="Require an API key for GET requests too (default: open reads)."
    )
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    max_rows: int = Field(default=20_000_000, gt=0, description="Largest catalogue accepted.")
    max_assign_rows: int = Field(default=1_000_000, gt=0)
    data_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories the server may read catalogues from (JSON {path} ingest).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    dask_schedulers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Dask scheduler addresses an API request may send work to (occupations "
        "computed through the API); 'local' (a cluster inside the worker process) is always "
        "allowed. Empty: no remote scheduler, so a key holder cannot point the server at one.",
    )
    coverage_min_secure: int = Field(
        default=1, ge=1, description="A cell is covered with at least this many secure spectra."
    )
    match_radius_arcsec: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Spectra without usable photometry take the cell of the nearest "
        "photometric source within this radius.",
    )
    # Jobs (training) are rows of the ``jobs`` table that any process claims: see
    # app.services.jobs and docs/operations.md ("Workers").
    embedded_workers: int = Field(
        default=1,
        ge=0,
        le=64,
        validation_alias=AliasChoices(
            "SOMCAL_EMBEDDED_WORKERS", "SOMCAL_JOB_WORKERS", "embedded_workers"
        ),
        description="Job threads inside each API process (1 so that the SQLite default runs "
        "everything with one command; 0 where `somcal worker` processes run the jobs).",
    )
    job_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="How often a running job's worker says so."
    )
    job_heartbeat_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="A running job without a heartbeat for this long has lost its worker "
        "(default 4x the heartbeat interval: 60 s).",
    )
    job_max_attempts: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Runs of a job whose worker vanished before it is failed (1: never rerun).",
    )
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="`somcal worker` lowers its CPU priority by this much (nice), so that an API "
        "on the same host answers first; no effect on a host of its own.",
    )
    job_poll_seconds: float = Field(
        default=2.0, gt=0, le=600, description="How often an idle worker looks for queued jobs."
    )
    upload_tmp_dir: Path | None = Field(default=None, description="Where uploads are spooled.")
    # Each API process holds at most db_pool_size + db_max_overflow connections; requests
    # beyond that wait for one on the event loop (app.api.deps.get_db), not in a worker
    # thread, and get a 503 after db_pool_timeout seconds.
    db_pool_size: int = Field(
        default=5, ge=1, le=1000, description="Connections kept open per API process."
    )
    db_max_overflow: int = Field(
        default=10, ge=0, le=1000, description="Extra connections opened under load."
    )
    db_pool_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a request waits for a database connection before a 503.",
    )

    @field_validator("api_keys", "data_dirs", "cors_origins", "dask_schedulers", mode="before")
    @classmethod
    def _lists_from_env(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("data_dirs")
    @classmethod
    def _resolve_dirs(cls, value: list[Path]) -> list[Path]:
        # Resolved once so that containment checks compare canonical paths.
        return [Path(p).expanduser().resolve() for p in value]

    @model_validator(mode="after")
    def _heartbeat_timeout_outlives_beats(self) -> Settings:
        # A timeout within two intervals would fail live jobs whose beat is merely late
        # (a busy database, a long garbage collection).
        if self.heartbeat_timeout < 2 * self.job_heartbeat_seconds:
            raise ValueError(
                f"job_heartbeat_timeout_seconds ({self.heartbeat_timeout:g}) must be at least "
                f"twice job_heartbeat_seconds ({self.job_heartbeat_seconds:g})"
            )
        return self

    @property
    def heartbeat_timeout(self) -> float:
        """Seconds without a heartbeat after which a running job's worker is presumed gone."""
        if self.job_heartbeat_timeout_seconds is not None:
            return self.job_heartbeat_timeout_seconds
        return 4 * self.job_heartbeat_seconds

    @property
    def db_connections(self) -> int:
        """Most connections one API process's pool holds."""
        return self.db_pool_size + self.db_max_overflow

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
