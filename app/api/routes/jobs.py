from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import IdPath, ReadDep, SessionDep
from app.schemas import ErrorResponse, JobOut
from app.services.jobs import get_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="Status and progress (0-1) of a background job",
    responses={404: {"model": ErrorResponse}},
)
def read_job(job_id: IdPath, session: SessionDep, _auth: ReadDep) -> JobOut:
    return JobOut.model_validate(get_job(session, job_id))
