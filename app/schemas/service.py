"""The service itself: background jobs, liveness and readiness."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from app.schemas.base import ApiModel, JobStatusName


class JobOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: JobStatusName
    progress: float = Field(..., ge=0, le=1)
    message: str | None
    error: str | None
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class HealthOut(ApiModel):
    status: Literal["ok"]
    version: str


class ReadyOut(ApiModel):
    status: Literal["ready", "not ready"]
    database: str
    revision: list[str]
    head: list[str]
