"""Occupation catalogues: a survey's per-cell counts on one map (``som.occupation``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from app.schemas.base import ApiModel
from app.schemas.catalogues import CatalogueOut
from app.schemas.service import JobOut
from som.occupation import MAX_HEALPIX_ORDER

#: what ``dask`` may name: a LocalCluster here, or a scheduler by its address
DASK_ADDRESS = r"^(local|(tcp|tls|ucx|ws|wss)://[^\s/]+)$"


class OccupationOut(ApiModel):
    catalogue: CatalogueOut
    map_id: int
    dataset: str = Field(description="Where the counts came from: a dataset or an uploaded file.")
    dataset_sha256: str = Field(description="Checksum of the dataset (file paths, sizes, footers).")
    n_rows: int = Field(description="Rows of the dataset, counted or not.")
    n_galaxies: int = Field(description="Rows in the histograms: assigned, inside the training.")
    n_unassigned: int = Field(description="Rows without a usable feature: in no cell.")
    n_outside_training: int = Field(description="Rows outside what the map was trained on.")
    mag_band: str | None = Field(None, description="Column of the magnitude split.")
    mag_edges: list[float] | None = None
    z_column: str | None = Field(None, description="Column of the photo-z split.")
    z_edges: list[float] | None = None
    healpix_order: int | None = Field(None, description="HEALPix order of the sky split.")
    weight_column: str | None = None
    provenance: dict[str, Any]
    created_at: datetime
    duplicate: bool = Field(False, description="True when this occupation was already stored.")


class OccupationSkyOut(ApiModel):
    """Per HEALPix pixel (nested) the galaxies and the share of them in uncovered cells."""

    map_id: int
    catalogue_id: int
    healpix_order: int
    k: int
    pixel: list[int]
    n_galaxies: list[int]
    n_uncovered: list[int]
    fraction_uncovered: list[float]


class OccupationComputeIn(ApiModel):
    """Count a survey on the map from a dataset on the server (``somcal occupation``'s
    options), as a queued job."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "path": "euclid_wide/hats",
                    "mag_column": "mag_i",
                    "mag_edges": [18, 21, 22, 23, 24, 25, 27],
                    "z_column": "z_phot",
                    "z_edges": [0, 0.5, 1, 1.5, 4],
                    "healpix_order": 4,
                    "dask": "tcp://scheduler:8786",
                }
            ]
        },
    )

    path: str = Field(
        ..., min_length=1, max_length=4096,
        description="Parquet file or directory, HATS catalogue, or `somcal assign --dask` "
        "output of this map, inside the server's data directories (SOMCAL_DATA_DIRS); "
        "relative paths are looked up in each.",
    )  # fmt: skip
    name: str | None = Field(None, max_length=255, description="Catalogue name.")
    mag_column: str | None = Field(None, max_length=255, description="Magnitude split column.")
    mag_edges: list[float] | None = Field(None, min_length=2, description="Magnitude bin edges.")
    z_column: str | None = Field(None, max_length=255, description="Photo-z split column.")
    z_edges: list[float] | None = Field(None, min_length=2, description="Photo-z bin edges.")
    weight_column: str | None = Field(None, max_length=255, description="Galaxy weights.")
    healpix_order: int | None = Field(
        None, ge=0, le=MAX_HEALPIX_ORDER, description="Split by HEALPix pixel at this order."
    )
    ra_column: str | None = Field(None, max_length=255, description="RA column (HATS: its own).")
    dec_column: str | None = Field(None, max_length=255, description="Dec (HATS: its own).")
    rows_per_task: int = Field(1_000_000, ge=1, description="Rows per Dask partition.")
    dask: str | None = Field(
        None, pattern=DASK_ADDRESS, max_length=255,
        description="Dask scheduler address (tcp://host:8786) or 'local'; default: the "
        "worker's own process.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _pairs(self) -> OccupationComputeIn:
        for column, edges in (("mag_column", "mag_edges"), ("z_column", "z_edges")):
            if (getattr(self, column) is None) != (getattr(self, edges) is None):
                raise ValueError(f"{column} and {edges} go together")
            values = getattr(self, edges)
            if values is not None and any(b <= a for a, b in zip(values, values[1:], strict=False)):
                raise ValueError(f"{edges} must increase")
        if self.healpix_order is not None and (self.ra_column is None) != (self.dec_column is None):
            raise ValueError("ra_column and dec_column go together")
        return self


class OccupationJobAccepted(ApiModel):
    """The queued computation: follow ``GET /v1/jobs/{id}``; its result names the catalogue."""

    map_id: int
    dataset: str = Field(description="The dataset as the server resolved it.")
    n_files: int = Field(description="Parquet files the pass will read.")
    job: JobOut
