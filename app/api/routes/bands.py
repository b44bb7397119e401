"""The band registry: which filters somcal knows, by name (case-sensitive) and wavelength."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import ReadDep
from som.bands import REGISTRY

router = APIRouter(prefix="/v1/bands", tags=["catalogues"])


@router.get("", summary="Known photometric bands (name, survey, filter, wavelength in Å)")
def list_bands(_auth: ReadDep) -> list[dict[str, Any]]:
    return [b.to_dict() for b in sorted(REGISTRY, key=lambda b: b.wavelength)]
