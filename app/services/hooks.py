"""Keep every ready map's ledger current when catalogues arrive or leave.

Both hooks run inside the ingest/delete transaction, under the ledger lock, so the new
rows, their assignments and the recomputed cells commit (or roll back) together.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.orm import Session

from app.models import Catalogue
from app.services import maps as map_service
from app.services.catalogs import AfterDeleteHook
from app.services.ingest import AfterInsertHook


def after_catalogue_inserted(match_radius_arcsec: float) -> AfterInsertHook:
    def hook(session: Session, catalogue: Catalogue, rows: pd.DataFrame) -> list[int]:
        maps = map_service.ready_maps(session)
        if not maps:
            return []
        rows = rows.assign(object_id=map_service.object_ids(session, catalogue.kind, catalogue.id))
        for m in maps:
            som = map_service.SOM_CACHE.get(m)
            map_service.assign_catalogue(session, m, som, catalogue, rows, match_radius_arcsec)
            if catalogue.kind == "photometric":
                map_service.recompute(session, m, "phot")
                # New sources may be the nearest neighbours of spectra without photometry.
                map_service.rematch_by_position(session, m, som, match_radius_arcsec)
            map_service.recompute(session, m, "spec")
        return [m.id for m in maps]

    return hook


def after_catalogue_deleted(match_radius_arcsec: float) -> AfterDeleteHook:
    def hook(session: Session, catalogue: Catalogue) -> list[int]:
        maps = map_service.ready_maps(session)
        for m in maps:
            if catalogue.kind == "photometric":
                map_service.recompute(session, m, "phot")
                # Spectra matched on the sky to the deleted sources must find new partners.
                som = map_service.SOM_CACHE.get(m)
                map_service.rematch_by_position(session, m, som, match_radius_arcsec)
            map_service.recompute(session, m, "spec")
        return [m.id for m in maps]

    return hook
