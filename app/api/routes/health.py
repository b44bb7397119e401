from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
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
def ready(request: Request):
    head = list(migrate.head_revisions())
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current_ok, current, _ = migrate.is_current(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        body = ReadyOut(
            status="not ready",
            database=f"unreachable: {type(exc).__name__}",
            revision=[],
            head=head,
        )
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
    if not current_ok:
        body = ReadyOut(
            status="not ready",
            database="schema not current: run `somcal db upgrade`",
            revision=list(current),
            head=head,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return ReadyOut(status="ready", database="ok", revision=list(current), head=head)
