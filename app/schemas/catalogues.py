"""Catalogues: ingest options, the ingested catalogue, presets and the band registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from app.schemas.base import (
    ApiModel,
    CatalogueKind,
    ErrorItem,
    NegativeErrorName,
    OnInvalidName,
    TableFormatName,
)
from app.services.ingest.request import parse_table_key
from app.services.presets import PRESETS
from som import vocabulary as vocab


class SecureRule(ApiModel):
    """How a quality flag decides that a redshift is secure.

    * ``all``: every listed redshift is secure; ``column``: a boolean ``secure`` column;
    * ``range``: ``min <= q (% modulo) < max`` (zCOSMOS: min 3, max 5, modulo 10);
    * ``in``: q is one of ``values`` (numbers or strings); ``min``: ``q >= value``;
    * ``star_values`` (any kind): quality codes that mark a star (DEEP2 ZQUALITY -1).
    """

    kind: Literal["all", "column", "range", "in", "min"]
    min: float | None = None
    max: float | None = None
    modulo: float | None = Field(None, gt=0)
    value: float | None = None
    values: list[float | str] | None = None
    star_values: list[float] | None = None

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


class DeclaredBand(ApiModel):
    """A band somcal's registry does not know: a name and its effective wavelength (Å); or a
    known band with the magnitude system this catalogue's magnitudes in it are in."""

    name: str = Field(..., min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.+-]+$")
    wavelength: float | None = Field(
        None, ge=500, le=1e6, description="Effective wavelength in Å (a new band needs it)."
    )
    survey: str | None = Field(None, max_length=64)
    filter: str | None = Field(None, max_length=64)
    system: Literal["AB", "Vega", "SDSS", "ab", "vega", "sdss"] | None = Field(
        None,
        description="Magnitude system of this catalogue's magnitudes in the band; Vega and "
        "SDSS are converted to AB with the band's published offset (or ab_offset).",
    )
    ab_offset: float | None = Field(
        None, ge=-10, le=10, description="m_AB - m_system, for a band somcal has no offset for."
    )

    model_config = ConfigDict(extra="forbid")


class BandOut(ApiModel):
    """A band of the registry (``GET /v1/bands``)."""

    name: str = Field(..., description="Canonical, case-sensitive name (LSST y is not VISTA Y).")
    wavelength: float = Field(..., description="Effective (pivot) wavelength in Å.")
    survey: str
    filter: str
    aliases: list[str]
    builtin: bool
    system: str = Field("AB", description="Magnitude system assumed unless declared.")
    ab_offsets: dict[str, float] = Field(
        default_factory=dict, description="m_AB - m_system of each known system."
    )


class IngestOptions(ApiModel):
    name: str | None = Field(None, max_length=255)
    preset: str | None = Field(
        None,
        description=", ".join(PRESETS) + "; omitted or 'auto' = detect from the columns.",
    )
    mapping: dict[str, str | None] | None = Field(
        None,
        description="somcal field -> file column, overriding the preset (null unmaps). "
        "Fields: source_id, ra, dec, z_phot | z_spec, quality, secure, survey, star, and "
        "mag_<band>, magerr_<band>, flux_<band>, fluxerr_<band> for any known band (GET "
        "/v1/bands) or a declared one; band names are case-sensitive (LSST y is not VISTA Y).",
    )
    secure_rule: SecureRule | None = None
    on_invalid: OnInvalidName = vocab.OnInvalid.reject
    skip_missing_redshift: bool | None = None
    format: TableFormatName | None = None
    flux_unit: str | None = Field(
        None,
        max_length=32,
        description="Unit of flux_<band> columns (nJy, uJy, mJy, Jy, nanomaggy) when the file's "
        "column metadata does not say.",
    )
    negative_error: NegativeErrorName = Field(
        vocab.NegativeError.limit,
        description="A negative error on a measured value: an upper limit (CIGALE/LePhare), "
        "i.e. a non-detection, or an invalid row.",
    )
    bands: list[DeclaredBand] | None = Field(
        None, max_length=100, description="Bands the registry does not know, declared here."
    )
    z_min: float = Field(
        0.002,
        ge=-0.05,
        le=1.0,
        description="Spectra below this redshift (stars) are never secure galaxy redshifts.",
    )
    check: bool = Field(
        True,
        description="Refuse photometry columns that do not look like what they are declared "
        "as (fluxes as magnitudes, a flux unit off by 1,000); false when you know better.",
    )
    table_key: str | int | None = Field(
        None,
        description="Which table of a multi-table file to read: FITS, the HDU's EXTNAME "
        "(e.g. 'PHOT', 'LDAC_OBJECTS') or 0-based index ('2' is an index); HDF5, the dataset, "
        "group or pandas key. Default: the first table HDU that is not a FITS_LDAC image "
        "header. Part of the options: the same file with another table_key is a 409.",
        examples=["LDAC_OBJECTS", 2],
    )

    model_config = ConfigDict(extra="forbid")

    @field_validator("table_key", mode="before")
    @classmethod
    def _table_key(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("table_key is an HDU name or index, not a boolean")
        if isinstance(value, int) and value < 0:
            raise ValueError("table_key: an HDU index is 0 or more")
        if isinstance(value, str) and len(value) > 255:
            raise ValueError("table_key is at most 255 characters")
        return parse_table_key(value) if isinstance(value, str) else value

    def declared_bands(self) -> list[dict[str, Any]] | None:
        return [b.model_dump(exclude_none=True) for b in self.bands] if self.bands else None


class IngestFromPath(IngestOptions):
    path: str = Field(..., min_length=1, max_length=4096)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"path": "zcosmos_bright20k_cosmos_photometry.csv", "preset": "zcosmos"}]
        },
    )


class CatalogueOut(ApiModel):
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
    options: dict[str, Any] | None = None
    summary: dict[str, Any] | None = Field(
        None,
        description="What the ingest found: rows read/stored/skipped, per band measured/"
        "missing/undetected/no_error, for spectra secure/star/below_z_min/no_photometry.",
    )
    n_rows: int
    n_skipped: int
    n_secure: int | None
    status: str
    created_at: datetime
    deleted_at: datetime | None = Field(
        None,
        description="When it was deleted (listed with ?deleted=true only): out of the ledger, "
        "rows kept until purged.",
    )


class IngestOut(CatalogueOut):
    duplicate: bool = Field(False, description="True when this file was already ingested.")
    n_errors: int = 0
    errors: list[ErrorItem] = Field(
        default_factory=list, description="Rows left out (on_invalid='skip')."
    )
    assigned_maps: list[int] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


class CatalogueList(ApiModel):
    items: list[CatalogueOut]
    total: int
    limit: int
    offset: int


class DeleteOut(ApiModel):
    deleted: int
    kind: CatalogueKind
    maps_updated: list[int] = Field(default_factory=list)
    restore: str = Field(description="The call that brings it back (until it is purged).")


class RestoreOut(ApiModel):
    restored: int
    kind: CatalogueKind
    maps_updated: list[int] = Field(default_factory=list)
    assigned: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Per map id, how its rows landed again: by_photometry, by_position, ...",
    )


class PurgeOut(ApiModel):
    purged: int
    kind: CatalogueKind
    maps_updated: list[int] = Field(default_factory=list)


class PresetOut(ApiModel):
    name: str
    description: str
    columns: dict[str, list[str]]
    secure_rule: dict[str, Any] | None
    mag_systems: dict[str, str] = Field(
        default_factory=dict,
        description="Bands whose magnitudes this survey publishes in a system other than AB "
        "(converted to AB on the way in); every other band of the preset is AB.",
    )
    dereddened: str | None = Field(
        None, description="Pattern of the column names the survey already dereddened."
    )
