"""n(z) of a sample through a map: as JSON, or as a qp, SACC or CosmoSIS/2pt FITS file."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Response

from app.api.deps import IdPath, ReadDep, SessionDep, SettingsDep
from app.api.routes.maps._common import NOT_FOUND, NOT_READY, ready_map
from app.schemas import ErrorResponse, NzIn, NzOut
from app.services import assignment, nz_export
from app.services import nz as nz_service
from app.services.catalogues import get_catalogue
from app.services.errors import InvalidInputError
from app.services.occupation import sample_ref
from som.vocabulary import CatalogueKind

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
    catalogue = None
    if body.catalogue_id is not None:
        catalogue = get_catalogue(session, body.catalogue_id)
    if catalogue is not None and catalogue.kind == CatalogueKind.occupation:
        bins = np.asarray(body.bins, dtype=float) if body.bins is not None else None
        result, sample, _ = nz_service.occupation_nz(
            session, m, catalogue.id, body.z_bin, bins, body.k, body.gold, body.n_boot,
            body.random_state, body.include_realisations or format != "json",
        )  # fmt: skip
    elif body.z_bin is not None:
        raise InvalidInputError("z_bin needs an occupation catalogue split by photo-z")
    else:
        result, sample = _rows_nz(m, body, session, settings, format, catalogue)
    if format == "json":
        ref = sample_ref(catalogue) if catalogue is not None else None
        return NzOut(**result, sample=sample, catalogue=ref)
    return _nz_file(m, body, result, sample, format)


def _rows_nz(m, body: NzIn, session, settings, format: str, cat):
    """The n(z) of an ingested photometric catalogue's rows, or of rows sent with the
    request."""
    if cat is not None:
        cells, _, outside = nz_service.sample_assignments(session, m, cat.id)
        sample = {"catalogue_id": cat.id, "n_rows": cat.n_rows, "n_assigned": len(cells)}
    else:
        frame = pd.DataFrame.from_records(body.rows or [])
        if frame.empty:
            raise InvalidInputError("no rows to assign")
        rows = assignment.photometry_rows(frame, "request")
        out = assignment.assign_rows(session, m, rows, False, settings.max_assign_rows)
        cells = out.frame["cell"].to_numpy(dtype=np.int64)
        # rows without a cell stay in the sample as before (uncovered); flagged ones apart
        outside = out.frame["outside_training"].to_numpy(dtype=bool) & (cells >= 0)
        sample = {"rows": len(cells), "n_assigned": int((cells >= 0).sum())}
    sample["n_outside_training"] = int(outside.sum())
    bins = np.asarray(body.bins, dtype=float) if body.bins is not None else None
    result = nz_service.nz(
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
    return result, sample


def _nz_file(m, body: NzIn, result: dict, sample: dict, format: str) -> Response:
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
