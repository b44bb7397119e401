"""Figures of a map as PNG: /v1/maps/{id}/plots/{kind}.png (the same figures as `somcal plot`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import IdPath, ReadDep, SessionDep
from app.schemas import ErrorResponse, PlotKindName, RedshiftSourceName
from app.services import figures, map_store
from som.vocabulary import RedshiftSource

router = APIRouter()


@router.get(
    "/{map_id}/plots/{kind}.png",
    summary="A figure of the map as PNG (Masters et al. 2015 maps, U-matrix, n(z))",
    description=(
        "`redshift`: median redshift per cell; `dispersion`: its spread (NMAD of photo-z, or "
        "the standard deviation of secure spectroscopic redshifts with `z_source=spec`); "
        "`occupation`: galaxies per cell (log scale); `coverage`: secure spectra per cell with "
        "the uncovered occupied cells filled red; `umatrix`: mean feature distance to the "
        "neighbouring cells; `overview`: the four Masters maps in one figure; `nz`: n(z) of "
        "each tomographic bin (photometric sources selected by photo-z between consecutive "
        "`tomo_bins` edges) through the map's secure spectra, with its bootstrap ±1σ band. "
        "Hexagonal maps are drawn as hexagons."
    ),
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The figure",
        },
        404: {"model": ErrorResponse, "description": "Unknown map or catalogue"},
        409: {"model": ErrorResponse, "description": "Map not ready"},
        422: {"model": ErrorResponse, "description": "Unknown kind or bad parameters"},
    },
)
def map_plot(
    map_id: IdPath,
    kind: PlotKindName,
    session: SessionDep,
    _auth: ReadDep,
    z_source: Annotated[
        RedshiftSourceName,
        Query(description="Redshifts colouring the redshift/dispersion maps."),
    ] = RedshiftSource.phot,
    tomo_bins: Annotated[
        str | None,
        Query(
            description="nz only: photo-z edges of the tomographic bins, comma-separated "
            f"(default {','.join(f'{e:g}' for e in figures.DEFAULT_TOMO_EDGES)}).",
            examples=["0.2,0.5,0.8,1.2,2.0"],
        ),
    ] = None,
    catalogue_id: Annotated[
        int | None,
        Query(ge=1, le=2**31 - 1, description="nz only: the photometric sample (default: all)."),
    ] = None,
    n_boot: Annotated[int, Query(ge=0, le=1000, description="nz only: bootstrap draws.")] = 100,
    seed: Annotated[int, Query(ge=0, le=2**31 - 1, description="nz only: bootstrap seed.")] = 0,
    dpi: Annotated[int, Query(ge=50, le=300)] = 100,
) -> Response:
    m = map_store.get_map(session, map_id)
    png = figures.map_png(
        session,
        m,
        kind,
        dpi=dpi,
        z_source=z_source,
        tomo_edges=figures.parse_edges(tomo_bins),
        catalogue_id=catalogue_id,
        n_boot=n_boot,
        random_state=seed,
    )
    return Response(
        png,
        media_type="image/png",
        # Cells change when spectra arrive: clients must revalidate, never reuse blindly.
        headers={"Cache-Control": "no-cache"},
    )
