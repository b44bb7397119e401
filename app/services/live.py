"""Which catalogues are in the ledger: the one place that says so.

Deleting a catalogue is reversible until it is purged: the catalogue and its rows stay in
the database (``catalogues.deleted_at`` set) but are out of the ledger. Two things keep
them out, both maintained here and nowhere else:

* **Its assignments are removed** when it is deleted and made again (on every ready map,
  as an ingest makes them) when it is restored. Everything that reads the ledger (cells
  and coverage, gaps, targets, n(z), per-cell arrays and detail, deep/wide spectra and
  samples) reads rows *through* ``assignments``, so a deleted catalogue is hidden from all
  of it without a filter of its own; and a map trained while the catalogue was deleted
  gets its assignments on restore like every other ready map.
* **Every lookup of catalogues goes through** :data:`LIVE`, :func:`live_catalogues`,
  :func:`get` or :func:`live_source_count`: listing, the catalogues a new map is assigned,
  spectra rematched on the sky, a catalogue named by id (training, a deep/wide calibration,
  an n(z) sample, an occupation, outcomes from a catalogue).

The assignments invariant is why deletion removes rows instead of filtering them: a filter
on every read of ``assignments`` would have to be repeated in each raw query (and
forgotten in the next), and restore would still need to assign the catalogue to maps
trained in between.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.orm import Session

from app.models import Assignment, Catalogue, Source

#: The condition a catalogue in the ledger meets (not deleted, or restored since).
LIVE: ColumnElement[bool] = Catalogue.deleted_at.is_(None)


def live_catalogues(kinds: Iterable[str] | None = None) -> Select[tuple[Catalogue]]:
    """The catalogues in the ledger (of ``kinds``), in id order."""
    query = select(Catalogue).where(LIVE)
    if kinds is not None:
        query = query.where(Catalogue.kind.in_(list(kinds)))
    return query.order_by(Catalogue.id)


def live_ids() -> Select[tuple[int]]:
    """The ids of the catalogues in the ledger, as a sub-select."""
    return select(Catalogue.id).where(LIVE)


def get(session: Session, catalogue_id: int) -> Catalogue | None:
    """The catalogue if it is in the ledger; None if it does not exist or is deleted."""
    cat = session.get(Catalogue, catalogue_id)
    return cat if cat is not None and cat.deleted_at is None else None


def deleted_among(session: Session, ids: Iterable[int | None]) -> set[int]:
    """Which of ``ids`` name a deleted (not purged) catalogue."""
    wanted = sorted({int(i) for i in ids if i is not None})
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(Catalogue.id).where(Catalogue.id.in_(wanted), Catalogue.deleted_at.is_not(None))
        )
    )


def live_source_count(session: Session) -> int:
    """Photometric sources of the catalogues in the ledger."""
    return int(
        session.scalar(
            select(func.count()).select_from(Source).where(Source.catalogue_id.in_(live_ids()))
        )
        or 0
    )


def take_out_of_ledger(session: Session, catalogue: Catalogue, when) -> None:
    """Mark the catalogue deleted and remove its assignments (in the caller's ledger
    transaction); its rows stay for a restore."""
    session.execute(delete(Assignment).where(Assignment.catalogue_id == catalogue.id))
    catalogue.deleted_at = when
    session.flush()


def how_to_restore(catalogue_id: int) -> str:
    return (
        f"catalogue {catalogue_id} is deleted: POST /v1/catalogues/{catalogue_id}/restore "
        f"(somcal catalogues restore {catalogue_id}) brings it back"
    )


def refuse_deleted_twin(existing: Catalogue, filename: str) -> None:
    """A file already ingested as a catalogue that is now deleted is not ingested again
    (one catalogue per file and kind): the 409 names the deleted catalogue and the calls
    that bring it back or remove it for good, after which the file can be ingested anew."""
    if existing.deleted_at is None:
        return
    from app.services.errors import ConflictError

    raise ConflictError(
        f"{filename}: this file is catalogue {existing.id} ({existing.kind}), deleted at "
        f"{existing.deleted_at:%Y-%m-%d %H:%M:%S} UTC; restore it with POST "
        f"/v1/catalogues/{existing.id}/restore (somcal catalogues restore {existing.id}), or "
        f"purge it (POST /v1/catalogues/{existing.id}/purge) to ingest the file anew",
        catalogue_id=existing.id,
        deleted=True,
    )
