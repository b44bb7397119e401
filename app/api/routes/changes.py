"""The ledger's append-only change log: what changed, by which API key (its name), when."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.deps import ReadDep, SessionDep
from app.schemas import ChangeList, ChangeOut
from app.services import followup

router = APIRouter(prefix="/v1/changes", tags=["changes"])


@router.get(
    "",
    response_model=ChangeList,
    summary="Changes to the ledger, oldest first unless asked (append-only; names keys, "
    "never holds one)",
)
def list_changes(
    session: SessionDep,
    _auth: ReadDep,
    map_id: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Changes touching this map.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    order: Annotated[
        Literal["oldest", "newest"], Query(description="Oldest first (default) or newest first.")
    ] = "oldest",
) -> ChangeList:
    items, total = followup.changes(session, map_id, limit, offset, order == "newest")
    return ChangeList(
        items=[ChangeOut.model_validate(c) for c in items], total=total, limit=limit, offset=offset
    )
