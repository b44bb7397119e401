"""What every model of the API shares: the base model (NaN written as ``null``), the
choices derived from ``som.vocabulary``, a band name, and the error body."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from som import vocabulary as vocab


def _one_of(enum: type[StrEnum]) -> Any:
    """``Literal`` of a ``som.vocabulary`` enum's values: the choices are declared once, in
    ``som``, and the OpenAPI schema lists them inline where they are used."""
    return Literal[vocab.choices(enum)]


CatalogueKind = _one_of(vocab.CatalogueKind)
IngestKind = _one_of(vocab.IngestKind)
DistanceName = _one_of(vocab.Distance)
JobStatusName = _one_of(vocab.JobStatus)
LatticeName = _one_of(vocab.Lattice)
MapStatusName = _one_of(vocab.MapStatus)
NegativeErrorName = _one_of(vocab.NegativeError)
OnInvalidName = _one_of(vocab.OnInvalid)
PlotKindName = _one_of(vocab.PlotKind)
RedshiftSourceName = _one_of(vocab.RedshiftSource)
TableFormatName = _one_of(vocab.TableFormat)

Band = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.+-]+$")]


class ApiModel(BaseModel):
    """Base of every request and response model: NaN and ±inf are written as JSON ``null``
    (pydantic's JSON serialisation, also for floats inside ``dict[str, Any]`` fields), so a
    service hands NaN for "undefined" and never converts it by hand."""

    model_config = ConfigDict(ser_json_inf_nan="null")


class GapWeightsIn(ApiModel):
    """What a gap is worth when not the ledger's photometric rows (target lists and
    campaigns; the query parameters of ``/targets`` and ``/forecast`` say the same)."""

    occupation_id: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Weight the gaps by this occupation catalogue (a wide survey's counts): "
        "C3R2's split of deep targets and wide weights; candidates stay the ledger's "
        "photometric rows.",
    )
    catalogue_id: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Weight the gaps by this photometric catalogue's rows on the map (a "
        "deep field's own); candidates stay the ledger's photometric rows. At most one of "
        "occupation_id and catalogue_id.",
    )


class ErrorItem(ApiModel):
    file: str | None = Field(None, description="File the problem is in (if any).")
    column: str | None = Field(None, description="Column, or request field, at fault.")
    row: int | None = Field(None, description="0-based data row (header excluded).")
    reason: str


class ErrorResponse(ApiModel):
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
