"""n(z) of a sample through a map."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi import APIRouter

from app.api.deps import IdPath, ReadDep, SessionDep, SettingsDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY, ready_map
from app.schemas import ErrorResponse, NzIn, NzOut
from app.services import calibrate
from app.services.catalogues import get_catalogue
from app.services.errors import InvalidInputError

router = APIRouter()


@router.post(
    "/{map_id}/nz",
    response_model=NzOut,
    summary="n(z) of a sample through the map, with bootstrap errors and uncovered fraction",
    responses={**NOT_FOUND, **NOT_READY, 422: {"model": ErrorResponse}},
)
def nz(
    map_id: IdPath, body: NzIn, session: SessionDep, settings: SettingsDep, _auth: ReadDep
) -> NzOut:
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
        session, m, cells, bins, body.k, body.gold, body.n_boot, body.random_state, outside
    )
    return NzOut(**result, sample=sample)
