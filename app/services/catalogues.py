"""Listing, reading and deleting catalogues (ingestion lives in ``ingest``)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.models import Assignment, Catalogue, Source, Spectrum
from app.services.errors import NotFoundError
from app.services.ledger import ledger_transaction
from som.vocabulary import CatalogueKind

# Runs in the deleting transaction after the rows are gone (e.g. recompute coverage);
# returns ids of the maps it updated.
AfterDeleteHook = Callable[[Session, Catalogue], list[int]]


def list_catalogues(
    session: Session, kind: str | None, limit: int, offset: int
) -> tuple[list[Catalogue], int]:
    query = select(Catalogue)
    count = select(func.count()).select_from(Catalogue)
    if kind:
        query = query.where(Catalogue.kind == kind)
        count = count.where(Catalogue.kind == kind)
    items = session.scalars(query.order_by(Catalogue.id).limit(limit).offset(offset)).all()
    return list(items), int(session.scalar(count) or 0)


def get_catalogue(session: Session, catalogue_id: int) -> Catalogue:
    cat = session.get(Catalogue, catalogue_id)
    if cat is None:
        raise NotFoundError(f"catalogue {catalogue_id} not found")
    return cat


def delete_catalogue(
    session: Session, catalogue_id: int, after_delete: AfterDeleteHook | None = None
) -> tuple[Catalogue, list[int]]:
    """Delete a catalogue with its rows and assignments in one transaction."""
    with ledger_transaction(session):
        return _delete(session, catalogue_id, after_delete)


def _delete(
    session: Session, catalogue_id: int, after_delete: AfterDeleteHook | None
) -> tuple[Catalogue, list[int]]:
    cat = get_catalogue(session, catalogue_id)
    if cat.kind == CatalogueKind.occupation:
        # no rows, no assignments: the counts go, and no map's cells change
        from app.services.occupation import delete_rows

        delete_rows(session, cat.id)
        session.delete(cat)
        session.commit()
        return cat, []
    # Explicit set-based deletes: one indexed statement each instead of a per-row cascade.
    session.execute(delete(Assignment).where(Assignment.catalogue_id == cat.id))
    table = Source if cat.kind == "photometric" else Spectrum
    session.execute(delete(table).where(table.catalogue_id == cat.id))
    session.delete(cat)
    session.flush()
    updated = after_delete(session, cat) if after_delete else []
    session.commit()
    return cat, updated
