"""n(z) of a sample through a map's secure spectra: of the ledger's photometric rows (a
catalogue's, or all), or of an occupation catalogue's counts (one photo-z bin of it: a
tomographic bin). The numerics are ``som.calibration.nz``'s."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import Map
from app.services import ledger, map_store, phot_store
from app.services import occupation as occupation_service
from app.services.errors import InvalidInputError, RowError
from som import calibration as cal


def nz(
    session: Session,
    m: Map,
    sample_cells: np.ndarray,
    bins: np.ndarray | None,
    k: int | None,
    gold: bool,
    n_boot: int,
    random_state: int | None,
    outside: np.ndarray | None = None,
    include_realisations: bool = False,
    sample_counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """n(z) of a sample (its cells on the map) through the map's secure spectra.

    ``outside`` marks members outside what the map was trained on: their cell says nothing
    about their redshift, so they are left out of the n(z) and counted apart
    (``n_outside_training``). ``include_realisations`` adds the bootstrap n(z)
    (``realisations``, n_boot × n_z; None without bootstrap). ``sample_counts`` (members
    per cell, ``sample_cells`` None) gives the sample as an occupation: a survey's n(z)
    without its rows."""
    n_out = 0
    if outside is not None:
        outside = np.asarray(outside, dtype=bool)
        n_out = int(outside.sum())
        sample_cells = np.asarray(sample_cells)[~outside]
    spec_cells, spec_z, secure = ledger.spec_assigned(session, m.id)
    edges = bins if bins is not None else map_store.z_edges(m)
    try:
        result = cal.nz(
            sample_cells,
            m.n_rows * m.n_cols,
            spec_cells,
            spec_z,
            edges,
            sample_counts=sample_counts,
            spec_secure=secure,
            k=int(k or m.min_secure),
            gold=gold,
            n_boot=n_boot,
            random_state=random_state,
        )
    except ValueError as exc:
        raise InvalidInputError(f"n(z) cannot be computed: {exc}") from exc
    return {
        "map_id": m.id,
        **result.to_dict(include_realisations=include_realisations),
        "n_outside_training": n_out,
    }


def occupation_nz(
    session: Session,
    m: Map,
    catalogue_id: int,
    z_bin: int | None,
    bins: np.ndarray | None,
    k: int | None,
    gold: bool,
    n_boot: int,
    random_state: int | None,
    include_realisations: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """n(z) of an occupation catalogue (or of one photo-z bin of it: a tomographic bin)
    from its counts: the same numbers as from the rows it counts. Returns the n(z), the
    sample's description and the catalogue."""
    cat, occ = occupation_service.load(session, m, catalogue_id)
    sample: dict[str, Any] = {"catalogue_id": cat.id, "n_rows": occ.n_rows}
    if z_bin is not None:
        try:
            occ = occ.z_bin(z_bin)
        except ValueError as exc:
            raise InvalidInputError(
                f"occupation catalogue {cat.id}: {exc}", [RowError(None, "z_bin", None, str(exc))]
            ) from exc
        sample["z_bin"] = z_bin
        sample["n_rows"] = occ.n_rows
    sample["n_assigned"] = occ.n_galaxies
    sample["n_outside_training"] = occ.n_outside_training
    result = nz(
        session, m, None, bins, k, gold, n_boot, random_state,
        include_realisations=include_realisations, sample_counts=occ.counts,
    )  # fmt: skip
    result["n_outside_training"] = occ.n_outside_training
    return result, sample, cat


def sample_assignments(
    session: Session, m: Map, catalogue_id: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells, photometric redshifts and outside_training flags of a photometric catalogue's
    sources on the map (every photometric source assigned to it when ``catalogue_id`` is
    None): the sample of an n(z)."""
    query = (
        "SELECT a.cell, s.z_phot, a.outside FROM assignments a JOIN sources s "
        "ON s.id = a.object_id AND s.catalogue_id = a.catalogue_id WHERE a.map_id = :m"
    )
    params: dict[str, int] = {"m": m.id}
    if catalogue_id is not None:
        from app.services.catalogues import get_catalogue

        cat = get_catalogue(session, catalogue_id)
        if cat.kind != "photometric":
            raise InvalidInputError(
                f"catalogue {cat.id} is {cat.kind}; the n(z) sample must be photometric",
                [RowError(None, "catalogue_id", None, "not a photometric catalogue")],
            )
        query += " AND a.catalogue_id = :c"
        params["c"] = cat.id
    arr = phot_store.float_rows(session.execute(text(query), params).all(), 3)
    return arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2] == 1.0
