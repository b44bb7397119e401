"""Request dependencies: database session, settings, API-key checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, HTTPException, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.apikeys import verify_api_key
from app.services.jobs import JobRunner


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A session for one request, once one of the pool's connections is free.

    The wait happens here, on the event loop. A sync handler's session keeps its connection
    until FastAPI has validated the response, which takes a worker thread again; had the
    request waited for a connection inside a worker thread, a burst of more requests than
    threads would fill every thread with waiters and the holders could never finish (a
    stall until the pool timed out, then 500s; tests/app/test_concurrent_load.py). The gate
    holds as many requests as the pool has connections (SOMCAL_DB_POOL_SIZE +
    SOMCAL_DB_MAX_OVERFLOW); past SOMCAL_DB_POOL_TIMEOUT the answer is a 503 to retry.
    """
    state = request.app.state
    gate: anyio.CapacityLimiter = state.db_gate
    try:
        with anyio.fail_after(state.settings.db_pool_timeout):
            await gate.acquire()
    except TimeoutError:
        raise HTTPException(
            status_code=503,
            detail="the database is busy: every connection is in use; retry shortly",
            headers={"Retry-After": "1"},
        ) from None
    session: Session = state.session_factory()
    try:
        yield session
    finally:
        try:
            # Closing rolls back on the connection: a blocking call, so in a thread, but
            # one outside the shared pool of threads (as FastAPI does for a sync
            # dependency's exit) so that it can never wait behind the requests it gates.
            await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))
        finally:
            gate.release()


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def get_jobs(request: Request) -> JobRunner:
    return request.app.state.jobs


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
FactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
JobsDep = Annotated[JobRunner, Depends(get_jobs)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="somcal API key (`somcal apikey create`)."
)
_bearer = HTTPBearer(auto_error=False, description="The API key as a bearer token.")


def _check_key(request: Request, session: Session, key: str | None) -> str:
    if not key:
        raise HTTPException(
            status_code=401,
            detail="an API key is required: send it in the X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    static = request.app.state.static_key_hashes
    found = verify_api_key(session, key, static)
    if found is None:
        raise HTTPException(status_code=403, detail="API key is not valid or has been revoked")
    return found if isinstance(found, str) else found.name


def require_api_key(
    request: Request,
    session: SessionDep,
    header_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> str:
    """Name of the key that authorised a write; 401 without a key, 403 with a bad one."""
    key = header_key or (bearer.credentials if bearer else None)
    return _check_key(request, session, key)


def read_access(
    request: Request,
    session: SessionDep,
    header_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> str | None:
    """Reads are open unless ``SOMCAL_READ_AUTH`` is set."""
    if not request.app.state.settings.read_auth:
        return None
    key = header_key or (bearer.credentials if bearer else None)
    return _check_key(request, session, key)


ApiKeyDep = Annotated[str, Depends(require_api_key)]
ReadDep = Annotated[str | None, Depends(read_access)]

# Database ids are 32-bit; larger numbers are refused at the edge (422), not by the database.
IdPath = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
