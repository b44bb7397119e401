"""How a map's coverage grew: one snapshot after every change to the ledger."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import IdPath, ReadDep, SessionDep
from app.api.routes.maps._common import NOT_FOUND
from app.schemas import CoverageHistoryOut, CoverageSnapshotOut
from app.services import followup, map_store

router = APIRouter()


@router.get(
    "/{map_id}/coverage/history",
    response_model=CoverageHistoryOut,
    summary="Coverage after every change to the ledger, oldest first",
    description="One snapshot per change (catalogue ingested, deleted, restored or purged, "
    "campaign created, outcomes recorded): cells and galaxies covered, also per "
    "photometric-redshift bin (`by_z`) and per magnitude bin (`by_mag`, fixed 0.5 mag bins "
    "from 18.5 to 25.5 open at both ends, in the map's default magnitude band), secure "
    "spectra, targets observed and hours spent so far, and who made the change.",
    responses=NOT_FOUND,
)
def coverage_history(map_id: IdPath, session: SessionDep, _auth: ReadDep) -> CoverageHistoryOut:
    m = map_store.get_map(session, map_id)
    return CoverageHistoryOut(
        map_id=m.id,
        snapshots=[CoverageSnapshotOut(**s) for s in followup.history(session, m)],
    )
