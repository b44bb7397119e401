"""JSON error responses: ``{"detail": ..., "errors": [{"file","column","row","reason"}]}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.schemas import ErrorResponse
from app.services.errors import ServiceError, unreadable_file
from som.tables import CatalogueError

log = logging.getLogger("somcal.api")

RETRY_AFTER_SECONDS = 5


def error_body(detail: str, errors: list[dict] | None = None, **extra) -> dict:
    """An error answer, through the documented :class:`ErrorResponse` model so that what is
    sent and what the schema promises cannot drift apart."""
    return ErrorResponse(detail=detail, errors=errors or [], **extra).model_dump(mode="json")


async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
    body = error_body(exc.detail, [e.as_dict() for e in exc.errors], **exc.extra)
    return JSONResponse(body, status_code=exc.status_code)


async def _catalogue_error(request: Request, exc: CatalogueError) -> JSONResponse:
    return await _service_error(request, unreadable_file(exc))


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse(
        error_body(detail), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            where = loc[0]
            loc = loc[1:]
        else:
            where = "request"
        field = ".".join(loc) or where
        errors.append({"file": None, "column": field, "row": None, "reason": err.get("msg", "")})
    return JSONResponse(error_body("request validation failed", errors), status_code=422)


def _is_unavailable(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
    if _is_unavailable(exc):
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            type(exc.orig).__name__ if exc.orig else type(exc).__name__,
        )
        return JSONResponse(
            error_body("database unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    log.exception("database error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal server error"), status_code=500)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal server error"), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(CatalogueError, _catalogue_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _db_error)
    app.add_exception_handler(Exception, _unhandled)
