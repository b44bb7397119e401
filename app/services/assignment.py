"""New photometry onto a ready map: rows a client sends, cleaned by the ingest's rules,
then each row's cell, its trust (distance percentile, outside the training set) and the
cell's statistics and p(z). What ``POST /v1/maps/{id}/assign``, ``somcal assign`` and file
assignment share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from app.models import Map
from app.services import ingest as ingest_service
from app.services import ledger, map_store
from app.services.errors import BadRequestError, InvalidInputError, RowError, TooLargeError
from app.services.phot_store import photometry_frame


@dataclass
class AssignOutput:
    frame: pd.DataFrame
    z_edges: list[float] | None
    n_unassigned: int


def photometry_rows(
    frame: pd.DataFrame,
    file: str,
    preset: str | None = None,
    mapping: dict[str, str | None] | None = None,
    *,
    on_invalid: str = "skip",
    flux_unit: str | None = None,
    negative_error: str = "limit",
    bands: list[dict[str, Any]] | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """Every row a client sends for assignment, cleaned by the ingest's rules.

    Returns ``row_index``, ``source_id``, ``mag_<band>``/``magerr_<band>`` and ``reason``
    (None for a valid row, else why it cannot be used: the same rule for one row as for ten
    thousand). ``on_invalid="reject"`` refuses the whole request (422) at the first invalid
    row instead.
    """
    if on_invalid not in ("skip", "reject"):
        raise BadRequestError(f"on_invalid must be 'skip' or 'reject', got {on_invalid!r}")
    registry = ingest_service.registry_for(bands)
    columns = [str(c) for c in frame.columns]
    used, resolved, _warnings = ingest_service.resolve_mapping(
        "photometric", columns, preset, mapping, registry
    )
    units = dict(frame.attrs.get("units", {}) or {})
    plan = ingest_service.band_columns(
        resolved, registry, flux_unit, units, file, used.options.get("flux_unit"), used
    )
    if not plan:
        raise InvalidInputError(
            f"{file}: no photometry columns recognised; send mag_<band> or flux_<band> "
            "fields (with flux_unit), or a mapping",
            [RowError(file, None, None, "no photometry")],
        )
    rules = ingest_service.Rules(
        kind="photometric",
        mapping=resolved,
        plan=plan,
        file=file,
        secure_rule=None,
        survey_default=None,
        skip_missing_redshift=False,
        negative_error=negative_error,
        # A request's rows are often few or one galaxy repeated: only the per-value rules
        # apply unless the caller asks for the column checks.
        check=check and len(frame) >= 1000,
    )
    log = ingest_service.ErrorLog(file, limit=None)
    frame = frame.reset_index(drop=True)
    checked = ingest_service.validate(frame, rules, log)
    log.finish()
    if log.file_level:
        raise InvalidInputError(
            f"{file}: invalid input, the rows cannot be used", log.items, n_errors=log.count
        )
    if log.count and on_invalid == "reject":
        raise InvalidInputError(
            f"{file}: {log.count} invalid value(s); nothing was assigned "
            f"(first {min(log.count, ingest_service.MAX_LISTED_ERRORS)} listed)",
            log.items[: ingest_service.MAX_LISTED_ERRORS],
            n_errors=log.count,
        )
    n = len(frame)
    B = len(plan)
    mags = np.full((n, B), np.nan)
    errs = np.full((n, B), np.nan)
    mags[checked.keep] = checked.columns["mags"]
    errs[checked.keep] = checked.columns["magerrs"]
    rows = photometry_frame([b.band for b in plan], mags, errs)
    ids = np.full(n, None, dtype=object)
    if "source_id" in resolved:
        ids[checked.keep] = checked.columns["source_id"]
        raw = frame[resolved["source_id"]].to_numpy(dtype=object)
        bad = np.setdiff1d(np.arange(n), checked.keep)
        ids[bad] = [None if pd.isna(v) else str(v) for v in raw[bad]]
    else:
        ids = np.arange(n).astype(str).astype(object)
    reasons = np.full(n, None, dtype=object)
    for e in log.items:
        if e.row is not None and reasons[e.row] is None:
            reasons[e.row] = f"{e.column}: {e.reason}" if e.column else e.reason
    rows.insert(0, "source_id", ids)
    rows.insert(0, "row_index", np.arange(n))
    rows["reason"] = reasons
    return rows


def assign_rows(
    session: Session, m: Map, rows: pd.DataFrame, include_pz: bool, max_rows: int
) -> AssignOutput:
    if len(rows) > max_rows:
        raise TooLargeError(f"{len(rows)} rows to assign; the limit is {max_rows} per request")
    som = map_store.SOM_CACHE.get(m)
    trusted = ledger.assign_trusted(som, rows)
    cells, dist = trusted.cell, trusted.distance
    invalid = rows["reason"].notna().to_numpy() if "reason" in rows else np.zeros(len(rows), bool)
    cells = np.where(invalid, -1, cells)
    ok = cells >= 0
    stats = ledger.cell_arrays(session, m)
    safe = np.where(ok, cells, 0)

    def pick(name: str) -> np.ndarray:
        return np.where(ok, stats[name][safe], np.nan)

    out = pd.DataFrame(
        {
            "row": rows["row_index"].to_numpy(),
            "id": rows["source_id"].to_numpy(),
            "cell": np.where(ok, cells, -1),
            "cell_row": np.where(ok, stats["row"][safe], -1).astype(np.int64),
            "cell_col": np.where(ok, stats["col"][safe], -1).astype(np.int64),
            "distance": np.where(ok, dist, np.nan),
            "n_colours": np.where(invalid, 0, trusted.n_features).astype(np.int64),
            "percentile": np.where(ok, trusted.percentile, np.nan),
            "outside_training": ~ok | trusted.outside,
            # Nothing outside what the map was trained on is called covered.
            "covered": ok & ~trusted.outside & stats["covered"][safe],
            "n_phot": pick("n_phot"),
            "n_spec_secure": pick("n_spec_secure"),
            "zphot_median": pick("zphot_median"),
            "zphot_nmad": pick("zphot_nmad"),
            "zspec_median": pick("zspec_median"),
        }
    )
    # A cell with no secure spectrum takes the nearest labelled cell's redshift, flagged.
    filled = ledger.zspec_fallback(session, m, som)
    out["zspec_median"] = np.where(ok, filled.values[safe], np.nan)
    out["zspec_fallback"] = ok & filled.fallback[safe]
    out["zspec_cell"] = np.where(ok, filled.source[safe], -1).astype(np.int64)
    given = rows["reason"].to_numpy(dtype=object) if "reason" in rows else np.full(len(out), None)
    out["reason"] = np.where(
        ok, None, np.where(pd.isna(given), "no usable colour for this map's bands", given)
    )
    edges = None
    if include_pz:
        widths = np.diff(map_store.z_edges(m))
        stored = ledger.cell_pz(session, m, cells)
        dens = {
            c: (map_store.pz_density(p, widths), map_store.pz_density(s, widths))
            for c, (p, s) in stored.items()
        }
        out["pz_phot"] = [dens[c][0] if c >= 0 else None for c in cells]
        out["pz_spec"] = [dens[c][1] if c >= 0 else None for c in cells]
        edges = m.grid["z_edges"]
    return AssignOutput(out, edges, int((~ok).sum()))


_INT_COLUMNS = ("cell", "cell_row", "cell_col", "n_phot", "n_spec_secure", "zspec_cell")


def assign_results(output: AssignOutput) -> list[dict[str, Any]]:
    """The rows of an assignment as the ``results`` of ``AssignOut``: a row without a cell
    has no cell, position or cell statistics (None), not -1."""
    frame = output.frame
    ok = frame["cell"].to_numpy() >= 0
    columns: dict[str, list[Any]] = {}
    for col in frame.columns:
        values = frame[col].to_numpy()
        if col in _INT_COLUMNS:
            as_int = np.where(ok, np.nan_to_num(values.astype(np.float64), nan=-1), -1)
            columns[col] = [int(v) if keep else None for v, keep in zip(as_int, ok, strict=True)]
        elif values.dtype == object:  # text (id, reason) or p(z) lists; pandas' missing: None
            columns[col] = [None if isinstance(v, float) and v != v else v for v in values]
        else:
            columns[col] = values.tolist()
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]
