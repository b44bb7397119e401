"""The follow-up loop at the edge: campaigns, their outcomes, the success model, forecasts,
coverage history and the change log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from app.schemas.base import ApiModel, Band, GapWeightsIn, _one_of
from som import vocabulary as vocab

OutcomeName = _one_of(vocab.Outcome)
PlanStrategyName = _one_of(vocab.PlanStrategy)
ChangeActionName = _one_of(vocab.ChangeAction)


class ExposureModelIn(ApiModel):
    """Hours on one target: ``ref_hours`` at ``ref_mag`` times 10^(slope·(mag − ref_mag)),
    plus ``overhead_hours`` per target (0.8: background-limited, 0.4: source-limited)."""

    model_config = ConfigDict(extra="forbid")

    ref_mag: float = Field(22.5, ge=10, le=35)
    ref_hours: float = Field(1.0, gt=0, le=1000)
    slope: float = Field(0.8, ge=0, le=2)
    overhead_hours: float = Field(0.0, ge=0, le=100)


class CampaignIn(GapWeightsIn):
    name: str = Field(min_length=1, max_length=255, description="What the campaign is called.")
    budget: int | None = Field(None, ge=0, le=10_000_000, description="Most targets.")
    budget_hours: float | None = Field(None, ge=0, le=1e6, description="Most telescope hours.")
    mag_band: Band | None = None
    mag_limit: float | None = Field(None, ge=-10, le=50)
    per_cell: int = Field(1, ge=1, le=1000)
    strategy: PlanStrategyName = Field(
        "expected_gain",
        description="expected_gain: by expected coverage gained per hour under the success "
        "model learned from earlier outcomes; c3r2: most populated gaps first; brightest; "
        "random.",
    )
    exposure: ExposureModelIn = Field(default_factory=ExposureModelIn)
    random_state: int | None = Field(None, ge=0, le=2**31 - 1)
    archival: bool = Field(
        True,
        description="The success model learns from the spectra already in the ledger too "
        "(false: from the recorded outcomes only).",
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "DEIMOS 2027A", "budget_hours": 40, "mag_limit": 24.5}]
        },
    )


class CampaignOut(ApiModel):
    id: int
    map_id: int
    name: str
    created_at: datetime
    n_targets: int
    strategy: PlanStrategyName
    budget: int | None
    budget_hours: float | None
    mag_band: str
    mag_limit: float | None
    per_cell: int
    exposure: ExposureModelIn
    expected_hours: float
    expected_gain: float | None
    params: dict[str, Any]
    n_secure: int
    n_failed: int
    n_not_observed: int
    n_pending: int
    hours_spent: float


class CampaignFull(CampaignOut):
    targets: list[dict[str, Any]]


class OutcomeRow(ApiModel):
    model_config = ConfigDict(extra="forbid")

    target_id: str = Field(min_length=1, max_length=64, description="The target's source_id.")
    outcome: OutcomeName
    exposure_hours: float | None = Field(
        None, ge=0, le=1e4, description="Exposure spent; required for a failure."
    )
    z_spec: float | None = Field(None, ge=0, le=15)


class OutcomesIn(ApiModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeRow] = Field(min_length=1, max_length=100_000)


class OutcomesFromCatalogue(ApiModel):
    model_config = ConfigDict(extra="forbid")

    catalogue_id: int = Field(ge=1, le=2**31 - 1)


class OutcomesOut(ApiModel):
    campaign_id: int
    change_id: int | None = Field(description="The change that recorded them (None: nothing new).")
    n_rows: int
    n_recorded: int
    n_unchanged: int
    recorded: dict[str, int]
    n_matched: int | None = Field(None, description="Catalogue rows that were targets.")


class CellOffset(ApiModel):
    cell: int
    n_outcomes: int
    offset: float
    offset_error: float


class CurvePoint(ApiModel):
    mag: float
    rate: float
    rate_low: float
    rate_high: float
    hours_per_secure: float | None


class SuccessModelOut(ApiModel):
    map_id: int
    fitted: bool
    pivot_mag: float
    intercept: float
    slope: float
    covariance: list[list[float]]
    n_outcomes: int
    n_secure: int
    mag_min: float | None
    mag_max: float | None
    cell_prior_sigma: float
    cells: list[CellOffset]
    mag_band: str = Field(
        description="The one band the model learned in: every outcome's and archival "
        "spectrum's magnitude is its source's in this band, whatever band a campaign was "
        "planned in (`band`; by default the map's magnitude band)."
    )
    n_recorded: int = Field(description="Recorded outcomes (secure or failed) learned from.")
    n_recorded_no_mag: int = Field(
        0,
        description="Recorded outcomes (secure or failed) left out: no magnitude in "
        "`mag_band` is known for them.",
    )
    n_archival_no_mag: int = Field(
        0, description="Archival attempts left out: no magnitude in `mag_band` is known."
    )
    n_recorded_secure: int
    n_archival: int = Field(description="Archival spectra learned from (secure or failed).")
    n_archival_secure: int
    archival_weight: float = Field(description="What one archival spectrum counted for.")
    archival_catalogues: list[int] = Field(default_factory=list)
    exposure: ExposureModelIn
    curve: list[CurvePoint]


class ForecastRow(ApiModel):
    strategy: PlanStrategyName
    n_targets: int
    hours: float
    expected_secure: float
    expected_new_cells: float
    expected_gain: float
    expected_fraction_covered: float
    gain_per_hour: float


class ForecastOut(ApiModel):
    map_id: int
    budget_hours: float | None
    fraction_covered: float
    success_model_outcomes: int
    success_model_archival: int = Field(0, description="Archival spectra learned from.")
    strategies: list[ForecastRow]


class ZBinCoverage(ApiModel):
    z_min: float
    z_max: float
    n_galaxies: int
    n_galaxies_covered: int
    # None in snapshots taken before cells per bin were recorded (migration 0011)
    n_cells_occupied: int | None = Field(None, description="Cells with galaxies in this bin.")
    n_cells_covered: int | None = Field(None, description="Those of them covered.")


class MagBinCoverage(ApiModel):
    band: str = Field(description="The map's default magnitude band (its i, or its reddest).")
    mag_min: float | None = Field(description="None: open (brighter than the first edge).")
    mag_max: float | None = Field(description="None: open; both None: no magnitude in band.")
    n_galaxies: int
    n_galaxies_covered: int
    n_cells_occupied: int
    n_cells_covered: int


class CoverageSnapshotOut(ApiModel):
    change_id: int
    action: ChangeActionName
    key_name: str | None
    catalogue_id: int | None
    campaign_id: int | None
    created_at: datetime
    n_cells: int
    n_cells_occupied: int
    n_cells_covered: int
    n_galaxies: int
    n_galaxies_covered: int
    fraction_cells_covered: float
    fraction_galaxies_covered: float
    n_spectra_secure: int
    n_observed: int
    n_secure_outcomes: int
    hours_spent: float
    by_z: list[ZBinCoverage]
    by_mag: list[MagBinCoverage] = Field(
        default_factory=list,
        description="Per magnitude bin (fixed edges, som.calibration.HISTORY_MAG_EDGES); "
        "empty for snapshots taken before migration 0011.",
    )


class CoverageHistoryOut(ApiModel):
    map_id: int
    snapshots: list[CoverageSnapshotOut]


class ChangeOut(ApiModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    action: ChangeActionName
    key_name: str | None
    map_id: int | None
    catalogue_id: int | None
    campaign_id: int | None = Field(validation_alias="target_list_id")
    detail: dict[str, Any] | None


class ChangeList(ApiModel):
    items: list[ChangeOut]
    total: int
    limit: int
    offset: int
