"""Occupation catalogues: a survey's per-cell counts on one map (``som.occupation``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from app.schemas.base import ApiModel
from app.schemas.catalogues import CatalogueOut


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
