"""The job-kind registry: a kind's name → what runs it and what happens to its own rows
when a job of that kind fails or is queued again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app.core.config import Settings

if TYPE_CHECKING:
    from app.services.jobs.runner import JobContext


@dataclass(frozen=True)
class JobKind:
    """What a job kind runs, and what happens to its own rows when the job ends badly.

    ``run(ctx, params)`` returns the job's result (JSON). ``on_failure(session, job_id,
    reason)`` and ``on_requeue(session, job_id, reason)`` run inside the transaction that
    fails or requeues the job row. ``defaults(settings)`` is merged into ``params`` when
    the job is queued, so whichever worker runs it runs the same job.
    """

    name: str
    run: Callable[[JobContext, dict[str, Any]], dict[str, Any] | None]
    on_failure: Callable[[Session, int, str], None] | None = None
    on_requeue: Callable[[Session, int, str], None] | None = None
    defaults: Callable[[Settings], dict[str, Any]] | None = None


JOB_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    JOB_KINDS[kind.name] = kind
    return kind


def load_job_kinds() -> dict[str, JobKind]:
    """Every kind this installation runs (importing the modules that register them)."""
    import app.services.deepwide  # noqa: F401 - registers "calibrate_deepwide"
    import app.services.occupation  # noqa: F401 - registers "compute_occupation"
    import app.services.training  # noqa: F401 - registers "train_map"

    return JOB_KINDS
