"""What the map routes share: the ready-map lookup, error responses, table downloads."""

from __future__ import annotations

import io
from typing import Annotated, Any

import pandas as pd
from fastapi import Query, Response
from sqlalchemy.orm import Session

from app.models import Map
from app.schemas import ErrorResponse
from app.services import map_store
from app.services.map_queries import fits_header

NOT_FOUND = {404: {"model": ErrorResponse, "description": "Unknown map or cell"}}
NOT_READY = {409: {"model": ErrorResponse, "description": "Map not ready"}}
#: The 200 answer of a route that can also send its table as a CSV or FITS download.
TABLE_DOWNLOADS = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/fits": {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "JSON, or the table as CSV or FITS with `format=csv|fits`",
    }
}


# what a gap is worth when not the ledger's photometric rows (/targets, /forecast; the
# request bodies of target lists and campaigns: schemas.GapWeightsIn)
OccupationIdQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**31 - 1,
        description="Weight the gaps by this occupation catalogue (a wide survey's counts); "
        "candidates stay the ledger's photometric rows.",
    ),
]
CatalogueIdQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**31 - 1,
        description="Weight the gaps by this photometric catalogue's rows on the map (a "
        "deep field's own); candidates stay the ledger's photometric rows. At most one of "
        "occupation_id and catalogue_id.",
    ),
]


def ready_map(session: Session, map_id: int) -> Map:
    m = map_store.get_map(session, map_id)
    map_store.require_ready(m)
    return m


def table_response(
    frame: pd.DataFrame, params: dict[str, Any], name: str, format: str, map_id: int
) -> Response:
    """A table as a CSV or FITS download (FITS carries the parameters in its header)."""
    if format == "csv":
        return Response(
            frame.to_csv(index=False),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    from astropy.table import Table

    table = Table.from_pandas(frame)
    table.meta.update(fits_header(params, map_id))
    buf = io.BytesIO()
    table.write(buf, format="fits")
    return Response(
        buf.getvalue(),
        media_type="application/fits",
        headers={"Content-Disposition": f'attachment; filename="{name}.fits"'},
    )
