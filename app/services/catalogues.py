"""Listing, reading, deleting, restoring and purging catalogues (ingestion lives in
``ingest``).

Deleting is reversible until purged: a delete takes the catalogue out of the ledger and
keeps its rows (:mod:`app.services.live`), a restore puts it back (its rows assigned again
to every ready map, as an ingest assigns them), a purge removes a deleted catalogue's rows
for good. Each runs under the ledger lock in one transaction with the hook that
recomputes the maps' cells, queues the deep/wide recomputations and logs the change with a
coverage snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import Catalogue, Source, Spectrum, utcnow
from app.services import live
from app.services.errors import ConflictError, NotFoundError
from app.services.ledger import ledger_transaction
from app.services.phot_store import load_rows
from som.vocabulary import CatalogueKind

if TYPE_CHECKING:
    from app.services.ingest import LedgerHook

# Runs in the deleting (or purging) transaction after the rows left the ledger (e.g.
# recompute coverage); returns ids of the maps it updated.
AfterDeleteHook = Callable[[Session, Catalogue], list[int]]


def list_catalogues(
    session: Session, kind: str | None, limit: int, offset: int, deleted: bool = False
) -> tuple[list[Catalogue], int]:
    """The catalogues in the ledger; with ``deleted``, the deleted ones (not purged)
    instead, so that they can be restored or purged."""
    cond = Catalogue.deleted_at.is_not(None) if deleted else live.LIVE
    query = select(Catalogue).where(cond)
    count = select(func.count()).select_from(Catalogue).where(cond)
    if kind:
        query = query.where(Catalogue.kind == kind)
        count = count.where(Catalogue.kind == kind)
    items = session.scalars(query.order_by(Catalogue.id).limit(limit).offset(offset)).all()
    return list(items), int(session.scalar(count) or 0)


def get_catalogue(session: Session, catalogue_id: int, *, deleted_ok: bool = False) -> Catalogue:
    """The catalogue; a deleted one is not found (the message says how to restore it)
    unless ``deleted_ok``."""
    cat = session.get(Catalogue, catalogue_id)
    if cat is None:
        raise NotFoundError(f"catalogue {catalogue_id} not found")
    if cat.deleted_at is not None and not deleted_ok:
        raise NotFoundError(live.how_to_restore(cat.id), catalogue_id=cat.id, deleted=True)
    return cat


def _deleted(session: Session, catalogue_id: int, verb: str) -> Catalogue:
    cat = get_catalogue(session, catalogue_id, deleted_ok=True)
    if cat.deleted_at is None:
        raise ConflictError(
            f"catalogue {cat.id} is not deleted; only a deleted catalogue can be {verb} "
            f"(DELETE /v1/catalogues/{cat.id} first)",
            catalogue_id=cat.id,
        )
    return cat


def delete_catalogue(
    session: Session, catalogue_id: int, after_delete: AfterDeleteHook | None = None
) -> tuple[Catalogue, list[int]]:
    """Take a catalogue out of the ledger (its rows kept until purged) in one
    transaction."""
    with ledger_transaction(session):
        cat = get_catalogue(session, catalogue_id)
        live.take_out_of_ledger(session, cat, utcnow())
        updated = after_delete(session, cat) if after_delete else []
        session.commit()
        return cat, updated


def restore_catalogue(
    session: Session, catalogue_id: int, after_restore: LedgerHook | None = None
) -> tuple[Catalogue, dict[int, dict[str, int]]]:
    """Put a deleted catalogue back in the ledger: its rows are assigned again to every
    ready map (``after_restore``, the ingest's hook), in one transaction."""
    with ledger_transaction(session):
        cat = _deleted(session, catalogue_id, "restored")
        cat.deleted_at = None
        session.flush()
        placed: dict[int, dict[str, int]] = {}
        if after_restore is not None:
            if cat.kind != CatalogueKind.occupation:  # counts only, no rows to assign
                rows = load_rows(session, cat.kind, cat.id, list(cat.bands or []))
                if len(rows):
                    after_restore.rows(session, cat, rows)
            placed = after_restore.done(session, cat)
        session.commit()
        return cat, placed


def purge_catalogue(
    session: Session, catalogue_id: int, after_purge: AfterDeleteHook | None = None
) -> tuple[Catalogue, list[int]]:
    """Remove a deleted catalogue and its rows for good, in one transaction."""
    with ledger_transaction(session):
        cat = _deleted(session, catalogue_id, "purged")
        if cat.kind == CatalogueKind.occupation:
            from app.services.occupation import delete_rows

            delete_rows(session, cat.id)
        else:
            # One set-based statement instead of a per-row cascade (no assignments left:
            # the delete removed them).
            table = Source if cat.kind == CatalogueKind.photometric else Spectrum
            session.execute(delete(table).where(table.catalogue_id == cat.id))
        session.delete(cat)
        session.flush()
        updated = after_purge(session, cat) if after_purge else []
        session.commit()
        return cat, updated
