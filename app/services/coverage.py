"""Where a map's spectra cover the colour space: one cell's details, the coverage summary
(binned by magnitude and photo-z or not) and the gaps ranked by the galaxies in them, from
the ledger's photometric rows or from an occupation catalogue's counts. The numerics are
``som.calibration``'s; this module gathers the arrays from the store."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import Catalogue, Map
from app.services import ledger, map_store, phot_store
from app.services import occupation as occupation_service
from app.services.catalogues import get_catalogue
from app.services.errors import InvalidInputError, NotFoundError, RowError
from som import calibration as cal
from som.vocabulary import CatalogueKind


def cell_detail(session: Session, m: Map, cell: int, max_spectra: int = 100) -> dict[str, Any]:
    n_cells = m.n_rows * m.n_cols
    if not 0 <= cell < n_cells:
        raise NotFoundError(f"cell {cell} not in map {m.id} (cells 0..{n_cells - 1})")
    som = map_store.SOM_CACHE.get(m)
    # Scalars of every cell (for the neighbours) but the p(z) of this one only: parsing
    # the histograms of all cells cost two thirds of the request.
    stats = ledger.cells_frame(session, m.id)
    scalar = stats.loc[[cell]].to_dict(orient="records")[0]
    pz_phot, pz_spec = ledger.cell_pz(session, m, np.asarray([cell])).get(cell, (None, None))
    features = som.features
    raw = features.inverse_transform(som.weights_[cell])
    widths = np.diff(map_store.z_edges(m))
    neighbours = [int(c) for c in som.neighbours(cell)]
    spectra = session.execute(
        text(
            "SELECT p.source_id, p.catalogue_id, p.ra, p.dec, p.z_spec, p.quality_raw, p.secure, "
            "p.survey FROM assignments a JOIN spectra p ON p.id = a.object_id "
            "AND p.catalogue_id = a.catalogue_id WHERE a.map_id = :m AND a.cell = :c "
            "ORDER BY p.secure DESC, p.z_spec LIMIT :n"
        ),
        {"m": m.id, "c": cell, "n": max_spectra},
    ).all()
    return {
        "map_id": m.id,
        **scalar,
        "weights": {
            "feature_names": list(features.feature_names_),
            "normalised": [float(v) for v in som.weights_[cell]],
            "values": [float(v) for v in raw],
        },
        "z_edges": m.grid["z_edges"],
        "pz_phot": map_store.pz_density(pz_phot, widths),
        "pz_spec": map_store.pz_density(pz_spec, widths),
        "neighbours": [
            {
                "cell": c,
                "covered": bool(stats.at[c, "covered"]),
                "n_phot": int(stats.at[c, "n_phot"]),
                "n_spec_secure": int(stats.at[c, "n_spec_secure"]),
            }
            for c in neighbours
        ],
        "spectra": [
            {
                "source_id": s[0],
                "catalogue_id": s[1],
                "ra": s[2],
                "dec": s[3],
                "z_spec": s[4],
                "quality": s[5],
                "secure": bool(s[6]),
                "survey": s[7],
            }
            for s in spectra
        ],
    }


def _same_bins(requested: Any, stored: np.ndarray | None, name: str, what: str) -> None:
    """An occupation is binned when it is computed: a request may ask for its bins (by
    count or edges) but not for others."""
    if requested is None:
        return
    if stored is None:
        reason = f"the occupation is not split by {what}"
        raise InvalidInputError(reason, [RowError(None, name, None, reason)])
    if isinstance(requested, (int, np.integer)):
        same = int(requested) == len(stored) - 1
    else:
        edges = np.asarray(requested, dtype=float)
        same = edges.shape == stored.shape and np.allclose(edges, stored, rtol=0, atol=1e-9)
    if not same:
        reason = (
            f"the occupation's {what} bins are fixed when it is computed: edges "
            f"{', '.join(f'{e:g}' for e in stored)}"
        )
        raise InvalidInputError(reason, [RowError(None, name, None, reason)])


def _occupation_coverage(
    session: Session, m: Map, catalogue_id: int, mag_band: str | None, mag_bins: Any, z_bins: Any
) -> dict[str, Any]:
    cat, occ = occupation_service.load(session, m, catalogue_id)
    by_mag = mag_band is not None
    if by_mag:
        if occ.mag_edges is None:
            reason = f"occupation catalogue {cat.id} is not split by magnitude"
            raise InvalidInputError(reason, [RowError(None, "mag_band", None, reason)])
        band = map_store.mag_band(m, mag_band)
        if occ.mag_column not in (band, f"mag_{band}"):
            reason = (
                f"occupation catalogue {cat.id} is split by {occ.mag_column!r}, "
                f"not by band {band!r}"
            )
            raise InvalidInputError(reason, [RowError(None, "mag_band", None, reason)])
    _same_bins(mag_bins if by_mag else None, occ.mag_edges, "mag_bins", "magnitude")
    _same_bins(z_bins, occ.z_edges, "z_bins", "photo-z")
    stats = ledger.cells_frame(session, m.id)
    summary = occ.coverage_summary(stats["covered"].to_numpy())
    if not by_mag:
        summary.by_magnitude = None
    if z_bins is None:
        summary.by_redshift = None
    out = summary.to_dict()
    out["n_outside_training"] = occ.n_outside_training
    return {
        "map_id": m.id,
        "k": m.min_secure,
        "catalogue": occupation_service.sample_ref(cat),
        "summary": out,
        "n_spectra": int(stats["n_spec"].sum()),
        "n_spectra_secure": int(stats["n_spec_secure"].sum()),
        "n_outside_training": occ.n_outside_training,
        "n_spectra_outside_training": ledger.n_outside(session, m.id, "spectroscopic"),
        "cells": {
            "n_cells": occ.n_cells,
            "covered": [bool(c) for c in stats["covered"].to_numpy()],
            "n_phot": occ.counts.tolist(),
            "n_spec_secure": stats["n_spec_secure"].astype(int).tolist(),
        },
    }


def _row_catalogue(session: Session, catalogue_id: int) -> Catalogue | None:
    """The photometric catalogue ``catalogue_id`` whose rows an answer counts, or None
    when it is an occupation catalogue (counted from its stored counts); a spectroscopic
    catalogue is a 422: coverage counts galaxies, spectra are what covers them."""
    cat = get_catalogue(session, catalogue_id)
    if cat.kind == CatalogueKind.occupation:
        return None
    if cat.kind != CatalogueKind.photometric:
        reason = (
            f"catalogue {cat.id} is {cat.kind}: give a photometric or an occupation "
            "catalogue (the spectra are what covers the cells)"
        )
        raise InvalidInputError(reason, [RowError(None, "catalogue_id", None, reason)])
    return cat


def catalogue_cells(session: Session, m: Map, cat: Catalogue) -> tuple[np.ndarray, int]:
    """Per cell, the catalogue's rows on the map that are inside what it was trained on,
    and how many of its rows are outside (counted apart, as in every answer)."""
    rows = session.execute(
        text(
            "SELECT a.cell, a.outside, COUNT(*) FROM assignments a "
            "WHERE a.map_id = :m AND a.catalogue_id = :c GROUP BY a.cell, a.outside"
        ),
        {"m": m.id, "c": cat.id},
    ).all()
    counts = np.zeros(m.n_rows * m.n_cols, dtype=np.int64)
    n_outside = 0
    for cell, outside, n in rows:
        if outside:
            n_outside += int(n)
        else:
            counts[int(cell)] += int(n)
    return counts, n_outside


def coverage(
    session: Session,
    m: Map,
    mag_band: str | None,
    mag_bins: Any,
    z_bins: Any,
    catalogue_id: int | None = None,
) -> dict[str, Any]:
    """Coverage of the ledger's photometric rows (of one photometric catalogue with
    ``catalogue_id``), or of an occupation catalogue: the same summary from its counts,
    its bins the ones it was computed with."""
    only = None
    if catalogue_id is not None:
        only = _row_catalogue(session, catalogue_id)
        if only is None:
            return _occupation_coverage(session, m, catalogue_id, mag_band, mag_bins, z_bins)
    stats = ledger.cells_frame(session, m.id)
    covered = stats["covered"].to_numpy()
    n_cells = len(stats)
    n_phot = stats["n_phot"].to_numpy()
    if only is not None:
        n_phot, n_outside = catalogue_cells(session, m, only)
    if mag_band is None and z_bins is None:
        # From the per-cell counts: the same numbers without reading every source.
        occupied = np.flatnonzero(n_phot > 0)
        summary = cal.coverage_summary(occupied, covered, weights=n_phot[occupied])
        summary.n_galaxies = int(n_phot.sum())
    else:
        band = map_store.mag_band(m, mag_band) if mag_band is not None else None
        # Only trusted rows, as in the per-cell counts of the unbinned summary: a galaxy
        # outside what the map was trained on is counted apart, not in any bin. The
        # photometry is read only when a magnitude is binned.
        rows = session.execute(
            text(
                "SELECT a.cell, s.z_phot, s.catalogue_id"
                + (", s.mags" if band else "")
                + " FROM assignments a JOIN sources s ON s.id = a.object_id "
                "AND s.catalogue_id = a.catalogue_id WHERE a.map_id = :m AND a.outside = :f"
                + (" AND a.catalogue_id = :c" if only is not None else "")
            ),
            {"m": m.id, "f": False, **({"c": only.id} if only is not None else {})},
        ).all()
        arr = phot_store.float_rows([r[:3] for r in rows], 3)
        if band:
            arr[:, 2] = phot_store.mags_by_catalogue(
                session, arr[:, 2], [r[3] for r in rows], [band]
            )[:, 0]
        try:
            summary = cal.coverage_summary(
                arr[:, 0].astype(np.int64),
                covered,
                mags=arr[:, 2] if band else None,
                mag_bins=mag_bins if band else None,
                z=arr[:, 1] if z_bins is not None else None,
                z_bins=z_bins,
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc
    if only is None:
        n_sources = ledger.count_sources(session)
        n_outside = ledger.n_outside(session, m.id, "photometric")
    else:
        n_sources = int(only.n_rows or 0)
    out = summary.to_dict()
    out["n_outside_training"] = n_outside
    out["n_unassigned"] = max(n_sources - out["n_galaxies"] - n_outside, 0)
    return {
        "map_id": m.id,
        "k": m.min_secure,
        "catalogue": occupation_service.sample_ref(only),
        "summary": out,
        "n_spectra": int(stats["n_spec"].sum()),
        "n_spectra_secure": int(stats["n_spec_secure"].sum()),
        # Counted apart: never in a covered cell's numbers, nor in the fractions above.
        "n_outside_training": n_outside,
        "n_spectra_outside_training": ledger.n_outside(session, m.id, "spectroscopic"),
        "cells": {
            "n_cells": n_cells,
            "covered": [bool(c) for c in covered],
            "n_phot": np.asarray(n_phot).astype(int).tolist(),
            "n_spec_secure": stats["n_spec_secure"].astype(int).tolist(),
        },
    }


def gaps(
    session: Session, m: Map, limit: int, offset: int, catalogue_id: int | None = None
) -> dict[str, Any]:
    """Uncovered cells ranked by the ledger's photometric rows in them, or (``catalogue_id``)
    by one photometric catalogue's rows or an occupation catalogue's counts: a survey's
    gaps without its rows."""
    stats = ledger.cells_frame(session, m.id)
    n_phot = stats["n_phot"].to_numpy()
    cat = None
    n_outside = None
    if catalogue_id is not None:
        cat = _row_catalogue(session, catalogue_id)
        if cat is None:
            cat, occ = occupation_service.load(session, m, catalogue_id)
            n_phot, n_outside = occ.counts, occ.n_outside_training
        else:
            n_phot, n_outside = catalogue_cells(session, m, cat)
    occupied = np.flatnonzero(n_phot > 0)
    frame = cal.gaps(
        occupied, stats["covered"].to_numpy(), len(stats), weights=n_phot[occupied].astype(float)
    )
    frame["n_galaxies"] = frame["weight"].round().astype(int)
    frame = frame.drop(columns=["weight"])
    for col in ("row", "col", "zphot_median", "zphot_nmad", "n_spec", "n_spec_secure"):
        frame[col] = stats[col].to_numpy()[frame["cell"].to_numpy()]
    page = frame.iloc[offset : offset + limit]
    if n_outside is None:
        n_outside = ledger.n_outside(session, m.id, "photometric")
    return {
        "map_id": m.id,
        "k": m.min_secure,
        "catalogue": occupation_service.sample_ref(cat),
        "n_gaps": len(frame),
        "n_outside_training": n_outside,
        "n_galaxies_in_gaps": int(frame["n_galaxies"].sum()),
        "fraction_in_gaps": float(frame["fraction"].sum()) if len(frame) else 0.0,
        "limit": limit,
        "offset": offset,
        "gaps": page.to_dict(orient="records"),
    }
