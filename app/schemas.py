"""Pydantic models at the edge of the API (requests and responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CatalogueKind = Literal["photometric", "spectroscopic"]


class ErrorItem(BaseModel):
    file: str | None = Field(None, description="File the problem is in (if any).")
    column: str | None = Field(None, description="Column, or request field, at fault.")
    row: int | None = Field(None, description="0-based data row (header excluded).")
    reason: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "detail": "cat.csv: 1 invalid value(s); nothing was stored",
                    "errors": [
                        {
                            "file": "cat.csv",
                            "column": "mag_r",
                            "row": 41,
                            "reason": "not a number: 'abc'",
                        }
                    ],
                }
            ]
        },
    )


class SecureRule(BaseModel):
    """How a quality flag decides that a redshift is secure.

    * ``all``: every listed redshift is secure; ``column``: a boolean ``secure`` column;
    * ``range``: ``min <= q (% modulo) < max`` (zCOSMOS: min 3, max 5, modulo 10);
    * ``in``: q is one of ``values`` (numbers or strings); ``min``: ``q >= value``.
    """

    kind: Literal["all", "column", "range", "in", "min"]
    min: float | None = None
    max: float | None = None
    modulo: float | None = Field(None, gt=0)
    value: float | None = None
    values: list[float | str] | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"kind": "range", "min": 3, "max": 5, "modulo": 10}]},
    )

    @model_validator(mode="after")
    def _complete(self) -> SecureRule:
        needs = {"range": ("min",), "min": ("value",), "in": ("values",)}.get(self.kind, ())
        for name in needs:
            if getattr(self, name) in (None, []):
                raise ValueError(f"secure_rule of kind {self.kind!r} needs {name!r}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class IngestOptions(BaseModel):
    name: str | None = Field(None, max_length=255)
    preset: str | None = Field(
        None,
        description="somcal, somcal_mock, cosmos2015, cosmos2020_classic, cosmos2020_farmer, "
        "zcosmos, cosmos_specz_compilation; omitted or 'auto' = detect from the columns.",
    )
    mapping: dict[str, str | None] | None = Field(
        None,
        description="somcal field -> file column, overriding the preset (null unmaps). "
        "Fields: source_id, ra, dec, z_phot | z_spec, quality, secure, survey, mag_{b}, "
        "magerr_{b} for b in u g r i z Y J H.",
    )
    secure_rule: SecureRule | None = None
    on_invalid: Literal["reject", "skip"] = "reject"
    skip_missing_redshift: bool | None = None
    format: Literal["fits", "parquet", "csv", "ecsv", "votable", "hdf5"] | None = None

    model_config = ConfigDict(extra="forbid")


class IngestFromPath(IngestOptions):
    path: str = Field(..., min_length=1, max_length=4096)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"path": "zcosmos_bright20k_cosmos_photometry.csv", "preset": "zcosmos"}]
        },
    )


class CatalogueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: CatalogueKind
    name: str
    filename: str
    file_format: str
    sha256: str
    size_bytes: int
    preset: str | None
    column_mapping: dict[str, str]
    secure_rule: dict[str, Any] | None
    bands: list[str]
    n_rows: int
    n_skipped: int
    n_secure: int | None
    status: str
    created_at: datetime


class IngestOut(CatalogueOut):
    duplicate: bool = Field(False, description="True when this file was already ingested.")
    n_errors: int = 0
    errors: list[ErrorItem] = Field(
        default_factory=list, description="Rows left out (on_invalid='skip')."
    )
    assigned_maps: list[int] = Field(default_factory=list)


class CatalogueList(BaseModel):
    items: list[CatalogueOut]
    total: int
    limit: int
    offset: int


class DeleteOut(BaseModel):
    deleted: int
    kind: CatalogueKind
    maps_updated: list[int] = Field(default_factory=list)


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float = Field(..., ge=0, le=1)
    message: str | None
    error: str | None
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PresetOut(BaseModel):
    name: str
    description: str
    columns: dict[str, list[str]]
    secure_rule: dict[str, Any] | None


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str


class ReadyOut(BaseModel):
    status: Literal["ready", "not ready"]
    database: str
    revision: list[str]
    head: list[str]
