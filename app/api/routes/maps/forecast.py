"""What the follow-up so far has taught about a map: the success model learned from the
outcomes, and the coverage the next campaign is expected to add under each strategy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import IdPath, ReadDep, SessionDep
from app.api.routes.maps._common import (
    NOT_FOUND,
    NOT_READY,
    CatalogueIdQuery,
    OccupationIdQuery,
    ready_map,
)
from app.schemas import Band, ForecastOut, PlanStrategyName, SuccessModelOut
from app.services import followup, success
from app.services.success import ARCHIVAL_WEIGHT
from som.calibration.followup import ExposureModel
from som.vocabulary import PlanStrategy, choices

router = APIRouter()

RefMag = Annotated[float, Query(ge=10, le=35, description="Exposure model: reference magnitude.")]
RefHours = Annotated[float, Query(gt=0, le=1000, description="Hours at the reference magnitude.")]
Slope = Annotated[float, Query(ge=0, le=2, description="d log10(hours) / d mag.")]
Overhead = Annotated[float, Query(ge=0, le=100, description="Hours per target on top.")]


@router.get(
    "/{map_id}/success-model",
    response_model=SuccessModelOut,
    summary="Success rate against magnitude (and cell) learned from recorded outcomes and "
    "archival spectra",
    description="Logistic in magnitude with its covariance (±1σ band in `curve`), per-cell "
    "offsets shrunk towards zero where a cell has few outcomes, and the expected hours per "
    "secure redshift under the exposure model. A recorded outcome counts 1, an archival "
    "spectrum `archival_weight` (default 0.5: another instrument and depth); only "
    "spectroscopic catalogues that record failures are used, and a spectrum that is also "
    "a recorded outcome counts once. One magnitude band throughout (`band`, by default the "
    "map's): an outcome's magnitude is looked up in it, never taken from a campaign "
    "planned in another band.",
    responses=NOT_FOUND,
)
def success_model(
    map_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    ref_mag: RefMag = 22.5,
    ref_hours: RefHours = 1.0,
    slope: Slope = 0.8,
    overhead_hours: Overhead = 0.0,
    archival: Annotated[
        bool,
        Query(
            description="Learn from the spectra already in the ledger too: a secure one is a "
            "success at its magnitude, one insecure by its quality flag a failure."
        ),
    ] = True,
    archival_weight: Annotated[
        float,
        Query(ge=0, le=1, description="What an archival spectrum counts for (1: an outcome)."),
    ] = ARCHIVAL_WEIGHT,
    band: Annotated[
        Band | None,
        Query(
            description="Learn in this band (one of the map's; default the map's magnitude "
            "band): each outcome's magnitude is its source's in it, whatever band its "
            "campaign was planned in; one without is left out (`n_recorded_no_mag`)."
        ),
    ] = None,
) -> SuccessModelOut:
    m = ready_map(session, map_id)
    exposure = ExposureModel(ref_mag, ref_hours, slope, overhead_hours)
    summary = success.success_summary(
        session, m, exposure, archival=archival, archival_weight=archival_weight, band=band
    )
    return SuccessModelOut(**summary)


@router.get(
    "/{map_id}/forecast",
    response_model=ForecastOut,
    summary="Expected coverage after the next campaign, by strategy",
    description="Plans (without saving) the campaign each strategy would choose for the "
    "budget and gives the expected new coverage under the success model learned so far.",
    responses={**NOT_FOUND, **NOT_READY},
)
def forecast(
    map_id: IdPath,
    session: SessionDep,
    _auth: ReadDep,
    budget_hours: Annotated[float, Query(gt=0, le=1e5)],
    strategy: Annotated[list[PlanStrategyName] | None, Query()] = None,
    mag_band: Annotated[Band | None, Query()] = None,
    mag_limit: Annotated[float | None, Query(ge=-10, le=50)] = None,
    per_cell: Annotated[int, Query(ge=1, le=100)] = 1,
    ref_mag: RefMag = 22.5,
    ref_hours: RefHours = 1.0,
    slope: Slope = 0.8,
    overhead_hours: Overhead = 0.0,
    random_state: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    archival: Annotated[
        bool, Query(description="The success model learns from the archival spectra too.")
    ] = True,
    occupation_id: OccupationIdQuery = None,
    catalogue_id: CatalogueIdQuery = None,
) -> ForecastOut:
    m = ready_map(session, map_id)
    plan = followup.CampaignPlan(
        name="forecast",
        budget_hours=budget_hours,
        mag_band=mag_band,
        mag_limit=mag_limit,
        per_cell=per_cell,
        exposure=ExposureModel(ref_mag, ref_hours, slope, overhead_hours),
        random_state=random_state,
        archival=archival,
        occupation_id=occupation_id,
        catalogue_id=catalogue_id,
    )
    strategies = [PlanStrategy(s) for s in (strategy or choices(PlanStrategy))]
    return ForecastOut(**followup.forecast(session, m, plan, list(dict.fromkeys(strategies))))
