"""Keep every ready map's ledger current when catalogues arrive or leave (ingested or
restored; deleted or purged).

The hooks run inside the ingest/delete/restore/purge transaction, under the ledger lock,
so the new rows, their assignments and the recomputed cells commit (or roll back)
together. They also queue the recomputation of the deep/wide calibrations the catalogue
concerns (:func:`app.services.deepwide.queue_for_catalogue`): the jobs commit with the rows
they will read, so none is queued for an ingest that rolled back.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.orm import Session

from app.models import Catalogue
from app.services import band_semantics, deepwide, followup, ledger, map_store
from app.services.catalogues import AfterDeleteHook
from app.services.ingest import LedgerHook
from som.vocabulary import CatalogueKind, ChangeAction


class _AssignToReadyMaps(LedgerHook):
    """Assign each written chunk to every ready map; recompute the cells once at the end."""

    def __init__(
        self,
        match_radius_arcsec: float,
        key_name: str | None,
        action: ChangeAction = ChangeAction.catalogue_ingested,
    ) -> None:
        self.radius = match_radius_arcsec
        self.key_name = key_name
        self.action = action
        self._maps: list | None = None
        self._placed: dict[int, dict[str, int]] = {}

    def _ready(self, session: Session):
        if self._maps is None:
            self._maps = map_store.ready_maps(session)
        return self._maps

    def rows(self, session: Session, catalogue: Catalogue, rows: pd.DataFrame) -> None:
        for m in self._ready(session):
            som = map_store.SOM_CACHE.get(m)
            rep = ledger.assign_catalogue(session, m, som, catalogue, rows, self.radius)
            placed = self._placed.setdefault(m.id, dict.fromkeys(rep.counts(), 0))
            for key, value in rep.counts().items():
                placed[key] += value

    def done(self, session: Session, catalogue: Catalogue) -> dict[int, dict[str, int]]:
        if catalogue.kind == CatalogueKind.occupation:
            # counts of one map, no rows in the ledger: logged, no cell changes
            _log_only(session, self.action, self.key_name, catalogue)
            return {}
        maps = self._ready(session)
        by_position: set[int] = set()
        for m in maps:
            if catalogue.kind == "photometric":
                ledger.recompute(session, m, "phot")
                # New sources may be the nearest neighbours of spectra without photometry.
                som = map_store.SOM_CACHE.get(m)
                if ledger.rematch_by_position(session, m, som, self.radius):
                    by_position.add(m.id)
            ledger.recompute(session, m, "spec")
        deepwide.queue_for_catalogue(session, catalogue, by_position)
        followup.record_ledger_change(
            session,
            self.action,
            self.key_name,
            maps,
            catalogue_id=catalogue.id,
            detail=_described(catalogue),
        )
        _warn_of_extinction_mismatch(session, catalogue, maps)
        return {m.id: self._placed.get(m.id, {}) for m in maps}


def _warn_of_extinction_mismatch(session: Session, catalogue: Catalogue, maps) -> None:
    """Say, in the catalogue's summary warnings, which maps were trained on a catalogue
    dereddened differently in the bands they share (``band_semantics.extinction_mismatch``)."""
    summary = catalogue.summary or {}
    found: list[str] = []
    for m in maps:
        if m.training_catalogue_id in (None, catalogue.id):
            continue
        reference = session.get(Catalogue, m.training_catalogue_id)
        if reference is not None:
            found += band_semantics.extinction_mismatch(
                reference.summary,
                summary,
                f"map {m.id} (trained on catalogue {reference.id})",
            )
    if found:
        # the same list object as the ingest's answer's warnings, so both show them
        listed = summary.setdefault("warnings", [])
        listed.extend(found)
        catalogue.summary = {**summary}


def _described(catalogue: Catalogue) -> dict[str, object]:
    return {
        "kind": catalogue.kind,
        "name": catalogue.name,
        "filename": catalogue.filename,
        "sha256": catalogue.sha256,
        "n_rows": catalogue.n_rows,
    }


def _log_only(
    session: Session, action: ChangeAction, key_name: str | None, catalogue: Catalogue
) -> None:
    followup.record_ledger_change(
        session, action, key_name, [], catalogue_id=catalogue.id, detail=_described(catalogue)
    )


def after_catalogue_inserted(match_radius_arcsec: float, key_name: str | None) -> LedgerHook:
    """``key_name``: the name of the API key (or ``cli``) the change log records."""
    return _AssignToReadyMaps(match_radius_arcsec, key_name, ChangeAction.catalogue_ingested)


def after_catalogue_restored(match_radius_arcsec: float, key_name: str | None) -> LedgerHook:
    """A restored catalogue's rows are assigned to every ready map as an ingest's are (maps
    trained while it was deleted included)."""
    return _AssignToReadyMaps(match_radius_arcsec, key_name, ChangeAction.catalogue_restored)


def after_catalogue_deleted(
    match_radius_arcsec: float,
    key_name: str | None,
    action: ChangeAction = ChangeAction.catalogue_deleted,
) -> AfterDeleteHook:
    """After a delete (its assignments gone) or a purge (its rows gone): recompute every
    ready map's cells, rematch spectra on the sky, queue the deep/wide recomputations and
    log ``action`` with a snapshot of every map."""

    def hook(session: Session, catalogue: Catalogue) -> list[int]:
        if catalogue.kind == CatalogueKind.occupation:
            _log_only(session, action, key_name, catalogue)
            return []
        maps = map_store.ready_maps(session)
        by_position: set[int] = set()
        for m in maps:
            if catalogue.kind == "photometric":
                ledger.recompute(session, m, "phot")
                # Spectra matched on the sky to the deleted sources must find new partners.
                som = map_store.SOM_CACHE.get(m)
                if ledger.rematch_by_position(session, m, som, match_radius_arcsec):
                    by_position.add(m.id)
            ledger.recompute(session, m, "spec")
        deepwide.queue_for_catalogue(session, catalogue, by_position)
        followup.record_ledger_change(
            session,
            action,
            key_name,
            maps,
            catalogue_id=catalogue.id,
            detail=_described(catalogue),
        )
        return [m.id for m in maps]

    return hook
