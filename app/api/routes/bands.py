"""The band registry: which filters somcal knows, by name (case-sensitive) and wavelength."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ReadDep
from app.schemas import BandOut
from som.bands import REGISTRY

router = APIRouter(prefix="/v1/bands", tags=["catalogues"])


@router.get(
    "",
    response_model=list[BandOut],
    summary="Known photometric bands (name, survey, filter, wavelength in Å)",
)
def list_bands(_auth: ReadDep) -> list[BandOut]:
    return [BandOut(**b.to_dict()) for b in sorted(REGISTRY, key=lambda b: b.wavelength)]
