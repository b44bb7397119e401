"""n(z) of a sample through a map: as JSON, or as a qp, SACC or CosmoSIS/2pt FITS file."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Response

from app.api.deps import IdPath, ReadDep, SessionDep, SettingsDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY, ready_map
from app.schemas import ErrorResponse, NzIn, NzOut
from app.services import calibrate, nz_export
from app.services.catalogues import get_catalogue
from app.services.errors import InvalidInputError

router = APIRouter()

_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post(
    "/{map_id}/nz",
    response_model=NzOut,
    # keys of NzOut not asked for (realisations) stay out of the JSON answer
    response_model_exclude_unset=True,
    summary="n(z) of a sample through the map, with bootstrap errors and uncovered fraction",
    responses={
        200: {
            "content": {"application/x-hdf5": _BINARY, "application/fits": _BINARY},
            "description": "JSON, or with `format=` a file: `qp` a qp.hist ensemble (HDF5; "
            "rows: the fiducial then the bootstrap realisations), `sacc` a SACC file (one NZ "
            "tracer, realisations as its extra columns), `fits` a CosmoSIS/2pt NZ_SOURCE "
            "table (realisations in the NZ_SOURCE_REALISATIONS image)",
        },
        **NOT_FOUND,
        **NOT_READY,
        422: {"model": ErrorResponse},
        501: {"model": ErrorResponse, "description": "Format needs a package not installed"},
    },
)
def nz(
    map_id: IdPath,
    body: NzIn,
    session: SessionDep,
    settings: SettingsDep,
    _auth: ReadDep,
    format: Literal["json", "qp", "sacc", "fits"] = Query(
        "json", description="json, or a file: qp, sacc or fits (CosmoSIS/2pt)"
    ),
) -> NzOut | Response:
    m = ready_map(session, map_id)
    if body.catalogue_id is not None:
        cat = get_catalogue(session, body.catalogue_id)
        cells, _, outside = calibrate.sample_assignments(session, m, cat.id)
        sample = {"catalogue_id": cat.id, "n_rows": cat.n_rows, "n_assigned": len(cells)}
    else:
        frame = pd.DataFrame.from_records(body.rows or [])
        if frame.empty:
            raise InvalidInputError("no rows to assign")
        rows = calibrate.photometry_rows(frame, "request")
        out = calibrate.assign_rows(session, m, rows, False, settings.max_assign_rows)
        cells = out.frame["cell"].to_numpy(dtype=np.int64)
        # rows without a cell stay in the sample as before (uncovered); flagged ones apart
        outside = out.frame["outside_training"].to_numpy(dtype=bool) & (cells >= 0)
        sample = {"rows": len(cells), "n_assigned": int((cells >= 0).sum())}
    sample["n_outside_training"] = int(outside.sum())
    bins = np.asarray(body.bins, dtype=float) if body.bins is not None else None
    result = calibrate.nz(
        session,
        m,
        cells,
        bins,
        body.k,
        body.gold,
        body.n_boot,
        body.random_state,
        outside,
        include_realisations=body.include_realisations or format != "json",
    )
    if format == "json":
        return NzOut(**result, sample=sample)
    meta = {
        "map_id": m.id,
        "k": result["k"],
        "gold": result["gold"],
        "n_boot": result["n_boot"],
        "random_state": body.random_state,
        "mean_z": result["mean_z"],
        "uncovered_fraction": result["uncovered_fraction"],
        **{f"sample_{key}": v for key, v in sample.items()},
    }
    ens = nz_export.ensemble([result], ["sample"], meta)
    content, media, suffix = nz_export.to_bytes(ens, format)
    return Response(
        content,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="nz_map{m.id}{suffix}"'},
    )
