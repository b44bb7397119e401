from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from app.core import migrate
from app.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="The process is up")
def health(request: Request) -> HealthOut:
    return HealthOut(status="ok", version=request.app.version)


@router.get(
    "/ready",
    response_model=ReadyOut,
    summary="The database is reachable and its schema is at the latest migration",
    responses={503: {"model": ReadyOut}},
)
def ready(request: Request, response: Response) -> ReadyOut:
    head = list(migrate.head_revisions())
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current_ok, current, _ = migrate.is_current(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return ReadyOut(
            status="not ready",
            database=f"unreachable: {type(exc).__name__}",
            revision=[],
            head=head,
        )
    if not current_ok:
        response.status_code = 503
        return ReadyOut(
            status="not ready",
            database="schema not current: run `somcal db upgrade`",
            revision=list(current),
            head=head,
        )
    return ReadyOut(status="ready", database="ok", revision=list(current), head=head)
