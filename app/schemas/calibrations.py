"""Deep/wide calibrations: /v1/calibrations."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from app.schemas.base import ApiModel, _one_of
from som import vocabulary as vocab

TomoBinningName = _one_of(vocab.TomoBinning)
EnsembleMethodName = _one_of(vocab.EnsembleMethod)
CalibrationStatusName = _one_of(vocab.CalibrationStatus)

_ID = {"ge": 1, "le": 2**31 - 1}
#: Realisations at most: each is n_bins × n_z floats stored with the calibration.
MAX_REALISATIONS = 1000


def _edges(values: list[float] | None, name: str) -> list[float] | None:
    if values is None:
        return None
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be at least two finite edges")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing, got {values}")
    return values


class CalibrationIn(ApiModel):
    """A deep/wide (SOMPZ) calibration: what it ties and how it bins and draws realisations."""

    name: str | None = Field(None, max_length=255)
    deep_map_id: int = Field(..., **_ID, description="Map of the deep field's many bands (c).")
    wide_map_id: int = Field(..., **_ID, description="Map of the wide survey's bands (ĉ).")
    deep_catalogue_id: int = Field(
        ...,
        **_ID,
        description="Photometric catalogue of the deep field: where targets are picked, and "
        "the deep side of the transfer catalogue unless transfer_deep_catalogue_id says "
        "otherwise.",
    )
    wide_catalogue_id: int = Field(
        ..., **_ID, description="Photometric wide sample whose occupation p(ĉ) weights n(z)."
    )
    transfer_catalogue_id: int = Field(
        ...,
        **_ID,
        description="Photometric catalogue of the transfer objects' wide-noise photometry "
        "(Balrog-like injections); each row's source_id names the deep galaxy it injects.",
    )
    transfer_deep_catalogue_id: int | None = Field(
        None,
        **_ID,
        description="Photometric catalogue of the transfer objects' deep photometry, matched "
        "by source_id (default: deep_catalogue_id).",
    )
    binning: TomoBinningName = Field(
        "mean",
        description="Wide cells by the mean or modal redshift of their deep cells, or each "
        "galaxy by its own photo-z (z_phot of the wide and transfer catalogues).",
    )
    bin_edges: list[float] = Field(
        [0.0, 0.4, 0.7, 1.0, 1.5], max_length=101, description="Tomographic bin edges."
    )
    z_edges: list[float] | None = Field(
        None, max_length=2001, description="Redshift grid of the n(z) (default: the deep map's)."
    )
    ensemble_method: EnsembleMethodName = "dirichlet"
    n_realisations: int = Field(
        100, ge=0, le=MAX_REALISATIONS, description="Realisations of the n(z); 0 for none."
    )
    sample_variance: float = Field(
        1.0, ge=1.0, le=1e3, description="Dirichlet variance factor λ ≥ 1 (1: shot noise)."
    )
    random_state: int | None = Field(0, ge=0, le=2**32 - 1)
    bin_conditioning: bool = Field(
        True,
        description="Weight each spectrum by its galaxy's bin membership, from its own "
        "injections (spectra are matched to transfer rows by source_id).",
    )
    allow_missing_transfer: bool = Field(
        False,
        description="Exclude (and report) wide weight in wide cells no transfer object "
        "reaches, instead of failing.",
    )

    model_config = ConfigDict(extra="forbid")

    @field_validator("bin_edges")
    @classmethod
    def _bin_edges(cls, v: list[float]) -> list[float]:
        return _edges(v, "bin_edges")  # type: ignore[return-value]

    @field_validator("z_edges")
    @classmethod
    def _z_edges(cls, v: list[float] | None) -> list[float] | None:
        return _edges(v, "z_edges")

    @field_validator("n_realisations")
    @classmethod
    def _n_real(cls, v: int) -> int:
        if v == 1:
            raise ValueError("n_realisations must be 0 (none) or at least 2")
        return v


class CalibrationBin(ApiModel):
    bin: int
    z_lo: float
    z_hi: float
    mean_z: float | None
    mean_z_std: float | None = Field(None, description="Spread of ⟨z⟩ over the ensemble.")
    mean_z_68_low: float | None = None
    mean_z_68_high: float | None = None
    width: float | None
    width_std: float | None = None
    n_galaxies: int
    weight: float
    n_eff: float = Field(..., description="Kish effective number of wide galaxies.")
    no_spec_fraction: float | None = Field(
        None, description="Share of the bin's deep-cell weight in cells without a spectrum."
    )
    no_transfer_fraction: float | None = None


class CalibrationOut(ApiModel):
    id: int
    name: str
    deep_map_id: int | None
    wide_map_id: int | None
    deep_catalogue_id: int | None
    wide_catalogue_id: int | None
    transfer_catalogue_id: int | None
    transfer_deep_catalogue_id: int | None
    binning: TomoBinningName
    ensemble_method: EnsembleMethodName
    params: dict[str, Any]
    status: CalibrationStatusName
    error: str | None
    missing: list[str] = Field(
        default_factory=list, description="Inputs deleted since: the calibration cannot be used."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Tied catalogues read differently in a band they share (Galactic "
        "extinction corrected in one and not the other, or magnitudes taken in different "
        "systems): their colours differ by more than the galaxies. Not a refusal.",
    )
    job_id: int | None
    version: int = Field(..., description="How many times it has been computed.")
    created_at: datetime
    computed_at: datetime | None
    bins: list[CalibrationBin] | None = None
    counts: dict[str, int] | None = None


class CalibrationList(ApiModel):
    items: list[CalibrationOut]


class CalibrationNzOut(ApiModel):
    calibration_id: int
    status: CalibrationStatusName
    version: int
    computed_at: datetime | None
    names: list[str]
    z_edges: list[float]
    bin_edges: list[float]
    nz: list[list[float]] = Field(..., description="Fiducial n(z) per bin (unit area).")
    nz_std: list[list[float]] | None = Field(
        None, description="Spread of the realisations per bin and redshift (None: no ensemble)."
    )
    realisations: list[list[list[float]]] | None = Field(
        None, description="With include_realisations: (n_realisations, n_bins, n_z)."
    )
    mean_z: list[float | None]
    mean_z_std: list[float | None] | None = None
    n_eff: list[float]
    no_spec_fraction: list[float | None]


class CalibrationTargetsOut(ApiModel):
    calibration_id: int
    deep_map_id: int
    n_targets: int
    params: dict[str, Any]
    targets: list[dict[str, Any]] = Field(
        ...,
        description="Ranked targets: priority, source_id, catalogue_id, ra, dec, cell, "
        "cell_row, cell_col, mag_<band>, cell_weight (the cell's w_c in the wide n(z)), "
        "the deep cell's photo-z statistics and the exposure model's hours.",
    )


class CalibrationDeleted(ApiModel):
    deleted: int
