"""Observing campaigns of a map: planned and saved (immutable) target lists with a name,
exported for mask design, and the outcomes of their targets."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from app.api.deps import ApiKeyDep, IdPath, ReadDep, SessionDep
from app.api.routes.maps._common import (
    NOT_FOUND,
    NOT_READY,
    TABLE_DOWNLOADS,
    ready_map,
    table_response,
)
from app.models import Map, TargetList
from app.schemas import (
    CampaignFull,
    CampaignIn,
    CampaignOut,
    ErrorResponse,
    OutcomesFromCatalogue,
    OutcomesIn,
    OutcomesOut,
)
from app.services import followup, map_store, outcomes
from app.services.errors import InvalidInputError, RowError, unreadable_file
from app.services.ledger import ledger_transaction
from som.calibration.followup import ExposureModel
from som.tables import CatalogueError, read_table
from som.vocabulary import PlanStrategy

router = APIRouter()

_WRITE_ERRORS = {
    **NOT_FOUND,
    **NOT_READY,
    401: {"model": ErrorResponse},
    422: {"model": ErrorResponse, "description": "Rows that cannot be recorded, each named"},
}
_DOWNLOADS = {
    200: {
        **TABLE_DOWNLOADS[200],
        "content": {
            **TABLE_DOWNLOADS[200]["content"],
            "text/plain": {"schema": {"type": "string"}},
        },
        "description": "JSON, the targets as CSV or FITS, or `format=radec`: one line per "
        "target, `target_id ra dec priority`, for mask-design tools",
    }
}


def exposure_model(body: CampaignIn) -> ExposureModel:
    return ExposureModel(**body.exposure.model_dump())


def campaign_out(session: Session, campaign: TargetList) -> CampaignOut:
    p = campaign.params
    return CampaignOut(
        id=campaign.id,
        map_id=campaign.map_id,
        name=campaign.name or "",
        created_at=campaign.created_at,
        n_targets=campaign.n_targets,
        strategy=p["strategy"],
        budget=p.get("budget"),
        budget_hours=p.get("budget_hours"),
        mag_band=p["mag_band"],
        mag_limit=p.get("mag_limit"),
        per_cell=p["per_cell"],
        exposure=p["exposure"],
        expected_hours=p.get("expected_hours", 0.0),
        expected_gain=p.get("expected_gain"),
        params=p,
        **followup.campaign_counts(session, campaign),
    )


def _campaign(session: Session, map_id: int, campaign_id: int) -> tuple[Map, TargetList]:
    m = map_store.get_map(session, map_id)
    return m, followup.get_campaign(session, m, campaign_id)


@router.post(
    "/{map_id}/campaigns",
    status_code=201,
    response_model=CampaignFull,
    summary="Plan an observing campaign and save it (immutable)",
    description="The targets for the map's gaps, minus those already observed with a secure "
    "redshift or failed at comparable depth, ranked by the strategy (default: expected "
    "coverage gained per hour under the success model learned from earlier outcomes) and cut "
    "at the budget. The campaign is logged with the key's name and a coverage snapshot.",
    responses=_WRITE_ERRORS,
)
def create_campaign(
    map_id: IdPath, body: CampaignIn, session: SessionDep, key_name: ApiKeyDep
) -> CampaignFull:
    m = ready_map(session, map_id)
    plan = followup.CampaignPlan(
        name=body.name,
        budget=body.budget,
        budget_hours=body.budget_hours,
        mag_band=body.mag_band,
        mag_limit=body.mag_limit,
        per_cell=body.per_cell,
        strategy=PlanStrategy(body.strategy),
        exposure=exposure_model(body),
        random_state=body.random_state,
        archival=body.archival,
        occupation_id=body.occupation_id,
        catalogue_id=body.catalogue_id,
    )
    # Under the ledger lock: the plan reads the outcomes and coverage it must not race.
    with ledger_transaction(session):
        campaign, _ = followup.create_campaign(session, m, plan, key_name)
        session.commit()
    table = followup.campaign_table(session, m, campaign)
    return CampaignFull(
        **campaign_out(session, campaign).model_dump(), targets=table.to_dict(orient="records")
    )


@router.get(
    "/{map_id}/campaigns",
    response_model=list[CampaignOut],
    summary="The map's campaigns, with their outcomes so far",
    responses=NOT_FOUND,
)
def list_campaigns(map_id: IdPath, session: SessionDep, _auth: ReadDep) -> list[CampaignOut]:
    m = map_store.get_map(session, map_id)
    return [campaign_out(session, c) for c in followup.list_campaigns(session, m)]


@router.get(
    "/{map_id}/campaigns/{campaign_id}",
    response_model=CampaignFull,
    summary="A campaign's targets with their outcomes (JSON, CSV, FITS or an RA/Dec list)",
    responses={**NOT_FOUND, **_DOWNLOADS},
)
def read_campaign(
    map_id: IdPath,
    campaign_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    format: Literal["json", "csv", "fits", "radec"] = "json",
) -> Any:
    m, campaign = _campaign(session, map_id, campaign_id)
    table = followup.campaign_table(session, m, campaign)
    name = f"somcal_map{m.id}_campaign{campaign.id}"
    if format == "radec":
        return Response(
            followup.radec_list(table),
            media_type="text/plain",
            headers={"Content-Disposition": f'attachment; filename="{name}.txt"'},
        )
    if format != "json":
        header = {k: v for k, v in campaign.params.items() if k != "exposure"}
        header.update({f"exp_{k}": v for k, v in campaign.params["exposure"].items()})
        return table_response(table, header, name, format, m.id)
    return CampaignFull(
        **campaign_out(session, campaign).model_dump(), targets=table.to_dict(orient="records")
    )


@router.post(
    "/{map_id}/campaigns/{campaign_id}/outcomes",
    response_model=OutcomesOut,
    summary="Record outcomes of a campaign's targets (JSON rows)",
    description="Per target: `secure`, `failed` (with the `exposure_hours` spent) or "
    "`not_observed`. All rows are checked first; any unknown target, contradiction with "
    "another row or with an outcome already recorded is a 422 naming the rows, and nothing "
    "is stored.",
    responses=_WRITE_ERRORS,
)
def record_outcomes(
    map_id: IdPath,
    campaign_id: IdPath,
    body: OutcomesIn,
    session: SessionDep,
    key_name: ApiKeyDep,
) -> OutcomesOut:
    import pandas as pd

    m, campaign = _campaign(session, map_id, campaign_id)
    frame = pd.DataFrame([row.model_dump() for row in body.outcomes])
    # Under the ledger lock: two uploads of the same outcomes must not both insert them.
    with ledger_transaction(session):
        result = outcomes.record_outcomes(session, m, campaign, frame, key_name, file="outcomes")
        session.commit()
    return OutcomesOut(**result)


def _read_upload(upload: UploadFile) -> Any:
    name = Path(upload.filename or "outcomes.csv").name or "outcomes.csv"
    suffix = "".join(Path(name).suffixes) or ".csv"
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        while block := upload.file.read(1 << 20):
            tmp.write(block)
        tmp.flush()
        try:
            return name, read_table(tmp.name, text_columns=["target_id", "outcome"])
        except CatalogueError as exc:
            raise unreadable_file(exc, name) from exc


@router.post(
    "/{map_id}/campaigns/{campaign_id}/outcomes/file",
    response_model=OutcomesOut,
    summary="Record outcomes from a CSV or FITS table of target_id, outcome, exposure_hours",
    responses=_WRITE_ERRORS,
)
async def record_outcomes_file(
    map_id: IdPath,
    campaign_id: IdPath,
    file: Annotated[UploadFile, File(description="CSV, FITS, ECSV, Parquet ...")],
    session: SessionDep,
    key_name: ApiKeyDep,
) -> OutcomesOut:
    name, frame = await run_in_threadpool(_read_upload, file)
    if not len(frame):
        raise InvalidInputError(f"{name}: no rows", [RowError(name, None, None, "empty table")])

    def record() -> dict[str, Any]:
        m, campaign = _campaign(session, map_id, campaign_id)
        with ledger_transaction(session):
            result = outcomes.record_outcomes(session, m, campaign, frame, key_name, file=name)
            session.commit()
        return result

    return OutcomesOut(**await run_in_threadpool(record))


@router.post(
    "/{map_id}/campaigns/{campaign_id}/outcomes/from-catalogue",
    response_model=OutcomesOut,
    summary="Record outcomes from an ingested spectroscopic catalogue carrying the target ids",
    description="Every spectrum whose `source_id` is a target of the campaign: secure → "
    "`secure`, not secure → `failed` at the target's planned exposure.",
    responses=_WRITE_ERRORS,
)
def record_outcomes_from_catalogue(
    map_id: IdPath,
    campaign_id: IdPath,
    body: OutcomesFromCatalogue,
    session: SessionDep,
    key_name: ApiKeyDep,
) -> OutcomesOut:
    m, campaign = _campaign(session, map_id, campaign_id)
    with ledger_transaction(session):
        result = outcomes.outcomes_from_catalogue(session, m, campaign, body.catalogue_id, key_name)
        session.commit()
    return OutcomesOut(**result)
