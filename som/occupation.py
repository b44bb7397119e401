"""Occupation of a map by a survey: how many galaxies (and how much weight) sit in each
cell, also split by magnitude bin, by photo-z bin and by HEALPix pixel, without the rows.

A survey of 10^9 galaxies is too large to keep row by row in a ledger, but every coverage
question (which share lives in uncovered cells, in which bins, where on the sky, which
gaps hold most) needs only these histograms. They add up: the occupation of a dataset is
the sum of its partitions' (:meth:`Occupation.combine`), so it is computed partition by
partition on a cluster (``som.distributed.occupation``) with memory bounded by one
partition.

Rows outside what the map was trained on (``outside_training``) and rows without a cell
are counted apart (``n_outside_training``, ``n_unassigned``) and never in a histogram, as
the ledger does with ingested rows. A row with a magnitude (photo-z) outside the edges or
not finite is in the per-cell totals but in no magnitude (photo-z) bin, as in
:func:`som.calibration.coverage_summary`.

The tabular form (:meth:`Occupation.to_frame`) is one long table, ``axis``, ``bin``,
``cell``, ``n``, ``weight``, with only non-empty entries: ``axis`` is ``total`` (bin 0),
``mag``, ``z`` (bin: index in the edges) or ``pixel`` (bin: the HEALPix nested pixel).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from som.calibration._arrays import bin_index
from som.calibration.coverage import CoverageSummary, _coverage_by_bin
from som.vocabulary import OccupationAxis, choices

#: HEALPix orders accepted for the sky split. Order 12 pixels are 0.86 arcmin across; the
#: (pixel, cell) key of the sparse split must fit in int64 for any realistic map.
MAX_HEALPIX_ORDER = 12
#: The sky split's order to choose for a Euclid-wide survey (1.5x10^9 galaxies, 14,500
#: deg^2, a 75x150 map): the split holds up to pixels-in-footprint x occupied-cells entries.
#: At order 4 (13.4 deg^2 pixels, ~1,100 of them in the footprint) that is at most
#: ~1.2x10^7 rows of ``occupation_counts`` (~1 GB in PostgreSQL, ~130 galaxies per entry),
#: fine enough for the depth and extinction patterns that move coverage; order 5 is 4x that
#: (~5x10^7 rows) and order 6 16x, for entries of a few galaxies each. Read it coarser with
#: :meth:`Occupation.at_order`; nothing finer can be recovered after the pass.
DEFAULT_SURVEY_HEALPIX_ORDER = 4
#: Parquet schema metadata key of an occupation table's description (edges, counters).
METADATA_KEY = b"somcal_occupation"
TABLE_COLUMNS = ("axis", "bin", "cell", "n", "weight")


class OccupationError(ValueError):
    """An occupation table that cannot be used: ``column``, ``row`` (0-based row of the
    table, None when the whole table is wrong) and ``reason`` say where and why."""

    def __init__(self, reason: str, column: str | None = None, row: int | None = None,
                 source: str | None = None):  # fmt: skip
        self.reason, self.column, self.row, self.source = reason, column, row, source
        where = ", ".join(
            p
            for p in (
                source,
                f"column {column!r}" if column else None,
                f"row {row}" if row is not None else None,
            )
            if p
        )
        super().__init__(f"{where}: {reason}" if where else reason)


def _empty(shape) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(shape, np.int64), np.zeros(shape, np.float64)


@dataclass
class Occupation:
    """Per-cell counts and weight sums of a survey on a map of ``n_cells`` cells.

    ``counts``/``weights`` ``(n_cells,)``; ``mag_counts``/``mag_weights`` and
    ``z_counts``/``z_weights`` ``(n_bins, n_cells)`` on ``mag_edges`` / ``z_edges`` (None
    when not split); ``pixel_*`` the sparse HEALPix split at ``healpix_order`` (nested
    scheme): entry ``i`` is cell ``pixel_cell[i]`` of pixel ``pixel[i]``, sorted by
    (pixel, cell). ``n_rows`` counts every row seen, including the ``n_unassigned`` rows
    without a cell and the ``n_outside_training`` rows, which are in no histogram.
    """

    n_cells: int
    counts: np.ndarray
    weights: np.ndarray
    n_rows: int = 0
    n_unassigned: int = 0
    n_outside_training: int = 0
    mag_column: str | None = None
    mag_edges: np.ndarray | None = None
    mag_counts: np.ndarray | None = None
    mag_weights: np.ndarray | None = None
    z_column: str | None = None
    z_edges: np.ndarray | None = None
    z_counts: np.ndarray | None = None
    z_weights: np.ndarray | None = None
    healpix_order: int | None = None
    pixel: np.ndarray | None = None
    pixel_cell: np.ndarray | None = None
    pixel_counts: np.ndarray | None = None
    pixel_weights: np.ndarray | None = None
    weight_column: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_rows(
        cls,
        n_cells: int,
        cells: np.ndarray,
        *,
        outside: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        mags: np.ndarray | None = None,
        mag_edges: Any = None,
        z: np.ndarray | None = None,
        z_edges: Any = None,
        pixels: np.ndarray | None = None,
        healpix_order: int | None = None,
        mag_column: str | None = None,
        z_column: str | None = None,
        weight_column: str | None = None,
    ) -> Occupation:
        """The occupation of rows with these cells (-1: none) and flags; ``pixels`` the
        rows' HEALPix nested pixels at ``healpix_order`` (-1: no position)."""
        cells = np.asarray(cells, dtype=np.int64)
        n = len(cells)
        if n and (cells.max() >= n_cells or cells.min() < -1):
            bad = int(np.flatnonzero((cells >= n_cells) | (cells < -1))[0])
            raise ValueError(f"row {bad}: cell {cells[bad]} outside the map's 0..{n_cells - 1}")
        out_flag = np.zeros(n, bool) if outside is None else np.asarray(outside, bool)
        w = np.ones(n) if weights is None else np.asarray(weights, np.float64)
        if weights is not None:
            bad = ~np.isfinite(w) | (w < 0)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"row {row}: weight {w[row]} ({weight_column or 'weights'}); weights must "
                    "be finite and non-negative"
                )
        assigned = cells >= 0
        used = assigned & ~out_flag
        c, wu = cells[used], w[used]
        occ = cls(
            n_cells=int(n_cells),
            counts=np.bincount(c, minlength=n_cells).astype(np.int64),
            weights=np.bincount(c, weights=wu, minlength=n_cells),
            n_rows=n,
            n_unassigned=int((~assigned).sum()),
            n_outside_training=int((assigned & out_flag).sum()),
            weight_column=weight_column,
        )
        if mag_edges is not None:
            occ.mag_column, occ.mag_edges = mag_column, _edges(mag_edges, "mag_edges")
            occ.mag_counts, occ.mag_weights = _binned(
                c, wu, np.asarray(mags, np.float64)[used], occ.mag_edges, n_cells
            )
        if z_edges is not None:
            occ.z_column, occ.z_edges = z_column, _edges(z_edges, "z_edges")
            occ.z_counts, occ.z_weights = _binned(
                c, wu, np.asarray(z, np.float64)[used], occ.z_edges, n_cells
            )
        if healpix_order is not None:
            occ.healpix_order = _order(healpix_order)
            p = np.asarray(pixels, np.int64)[used]
            has = p >= 0
            key = p[has] * n_cells + c[has]
            uniq, inverse = np.unique(key, return_inverse=True)
            occ.pixel, occ.pixel_cell = np.divmod(uniq, n_cells)
            occ.pixel_counts = np.bincount(inverse, minlength=len(uniq)).astype(np.int64)
            occ.pixel_weights = np.bincount(inverse, weights=wu[has], minlength=len(uniq))
        return occ

    def empty_like(self) -> Occupation:
        """No rows, with this occupation's splits (the start of a sum)."""
        return Occupation.from_rows(
            self.n_cells, np.empty(0, np.int64), mags=np.empty(0), mag_edges=self.mag_edges,
            z=np.empty(0), z_edges=self.z_edges, pixels=np.empty(0, np.int64),
            healpix_order=self.healpix_order, mag_column=self.mag_column,
            z_column=self.z_column, weight_column=self.weight_column,
        )  # fmt: skip

    @staticmethod
    def combine(*parts: Occupation) -> Occupation:
        """The sum of occupations of disjoint sets of rows with the same splits. Counts add
        exactly; weights in the order given (a fixed tree gives a reproducible sum)."""
        if not parts:
            raise ValueError("nothing to combine")
        first = parts[0]
        for p in parts[1:]:
            first._check_compatible(p)
        out = Occupation(
            n_cells=first.n_cells,
            counts=np.sum([p.counts for p in parts], axis=0),
            weights=_ordered_sum([p.weights for p in parts]),
            n_rows=sum(p.n_rows for p in parts),
            n_unassigned=sum(p.n_unassigned for p in parts),
            n_outside_training=sum(p.n_outside_training for p in parts),
            mag_column=first.mag_column,
            mag_edges=first.mag_edges,
            z_column=first.z_column,
            z_edges=first.z_edges,
            healpix_order=first.healpix_order,
            weight_column=first.weight_column,
        )
        if first.mag_edges is not None:
            out.mag_counts = np.sum([p.mag_counts for p in parts], axis=0)
            out.mag_weights = _ordered_sum([p.mag_weights for p in parts])
        if first.z_edges is not None:
            out.z_counts = np.sum([p.z_counts for p in parts], axis=0)
            out.z_weights = _ordered_sum([p.z_weights for p in parts])
        if first.healpix_order is not None:
            key = np.concatenate([p.pixel * first.n_cells + p.pixel_cell for p in parts])
            uniq, inverse = np.unique(key, return_inverse=True)
            out.pixel, out.pixel_cell = np.divmod(uniq, first.n_cells)
            n = np.concatenate([p.pixel_counts for p in parts])
            w = np.concatenate([p.pixel_weights for p in parts])
            out.pixel_counts = np.zeros(len(uniq), np.int64)
            np.add.at(out.pixel_counts, inverse, n)
            out.pixel_weights = np.zeros(len(uniq))
            np.add.at(out.pixel_weights, inverse, w)
        return out

    def _check_compatible(self, other: Occupation) -> None:
        if other.n_cells != self.n_cells:
            raise ValueError(f"occupations of {self.n_cells} and {other.n_cells} cells")
        for name in ("mag_edges", "z_edges"):
            a, b = getattr(self, name), getattr(other, name)
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                raise ValueError(f"occupations with different {name}")
        if self.healpix_order != other.healpix_order:
            raise ValueError("occupations with different HEALPix orders")

    # ------------------------------------------------------------------ reading
    @property
    def n_galaxies(self) -> int:
        """Rows in the histograms: assigned and inside what the map was trained on."""
        return int(self.counts.sum())

    def occupied(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cells, counts, weights) of the occupied cells: a weighted sample of cells, the
        form ``som.calibration``'s functions take instead of one entry per galaxy."""
        idx = np.flatnonzero(self.counts > 0)
        return idx, self.counts[idx], self.weights[idx]

    def z_bin(self, b: int) -> Occupation:
        """The occupation of photo-z bin ``b`` alone (a tomographic bin)."""
        if self.z_edges is None:
            raise ValueError("this occupation is not split by photo-z")
        if not 0 <= b < len(self.z_edges) - 1:
            raise ValueError(f"photo-z bin {b} not in 0..{len(self.z_edges) - 2}")
        return Occupation(self.n_cells, self.z_counts[b].copy(), self.z_weights[b].copy(),
                          n_rows=int(self.z_counts[b].sum()))  # fmt: skip

    def coverage_summary(self, covered: Any) -> CoverageSummary:
        """What :func:`som.calibration.coverage_summary` gives for the same galaxies, their
        magnitudes and photo-z binned on this occupation's edges, weighted by count."""
        cov = np.asarray(covered, dtype=bool)
        if len(cov) != self.n_cells:
            raise ValueError(f"covered has {len(cov)} entries; the occupation {self.n_cells}")
        occupied = self.counts > 0
        n_occ, n_occ_cov = int(occupied.sum()), int((occupied & cov).sum())
        total = self.counts.sum()

        def breakdown(counts, edges):
            if counts is None:
                return None
            # one "row" per (bin, cell) with its count as weight gives the per-row sums
            b = np.repeat(np.arange(len(edges) - 1), self.n_cells)
            frame = _coverage_by_bin(
                0.5 * (edges[:-1] + edges[1:])[b], edges, np.tile(cov, len(edges) - 1),
                counts.ravel().astype(np.float64),
            )  # fmt: skip
            n = counts.sum(axis=1)
            frame["n_galaxies"] = n
            frame["n_galaxies_covered"] = counts[:, cov].sum(axis=1)
            return frame

        return CoverageSummary(
            n_cells=self.n_cells,
            n_cells_occupied=n_occ,
            n_cells_covered=int(cov.sum()),
            n_cells_occupied_covered=n_occ_cov,
            fraction_cells_covered=float(cov.sum() / self.n_cells),
            fraction_occupied_cells_covered=float(n_occ_cov / n_occ) if n_occ else float("nan"),
            fraction_galaxies_covered=float(self.counts[cov].sum() / total)
            if total > 0
            else float("nan"),
            n_galaxies=int(total),
            n_unassigned=self.n_unassigned,
            by_magnitude=breakdown(self.mag_counts, self.mag_edges),
            by_redshift=breakdown(self.z_counts, self.z_edges),
        )

    def uncovered_by_pixel(self, covered: Any) -> pd.DataFrame:
        """Per HEALPix pixel: ``n_galaxies``, ``n_uncovered`` (in cells without
        spectroscopy) and ``fraction_uncovered``; the sky map of the coverage."""
        if self.healpix_order is None:
            raise ValueError("this occupation is not split by HEALPix pixel")
        cov = np.asarray(covered, dtype=bool)
        pixels, inverse = np.unique(self.pixel, return_inverse=True)
        n = np.bincount(inverse, weights=self.pixel_counts, minlength=len(pixels))
        unc = ~cov[self.pixel_cell]
        n_unc = np.bincount(inverse[unc], weights=self.pixel_counts[unc], minlength=len(pixels))
        return pd.DataFrame(
            {
                "pixel": pixels,
                "n_galaxies": n.astype(np.int64),
                "n_uncovered": n_unc.astype(np.int64),
                "fraction_uncovered": n_unc / n,
            }
        )

    def at_order(self, order: int) -> Occupation:
        """This occupation with its sky split degraded to the coarser HEALPix ``order``
        (nested parents by ``hats``' pixel maths): every (pixel, cell) entry added into its
        parent pixel's, so per cell and in total the counts are unchanged. The same order
        returns ``self``; a finer one is refused (the pass kept nothing finer)."""
        from hats.pixel_math.healpix_pixel import get_lower_order_pixel

        if self.healpix_order is None:
            raise ValueError("this occupation is not split by HEALPix pixel")
        order = _order(order)
        if order > self.healpix_order:
            raise ValueError(
                f"order {order} is finer than the stored split (order {self.healpix_order}); "
                "only coarser orders can be read"
            )
        if order == self.healpix_order:
            return self
        parent = np.asarray(
            get_lower_order_pixel(self.healpix_order, self.pixel, self.healpix_order - order),
            dtype=np.int64,
        )
        uniq, inverse = np.unique(parent * self.n_cells + self.pixel_cell, return_inverse=True)
        out = dataclasses.replace(self, healpix_order=order)
        out.pixel, out.pixel_cell = np.divmod(uniq, self.n_cells)
        out.pixel_counts = np.zeros(len(uniq), np.int64)
        np.add.at(out.pixel_counts, inverse, self.pixel_counts)  # integers: exact
        out.pixel_weights = np.bincount(inverse, weights=self.pixel_weights, minlength=len(uniq))
        return out

    # ------------------------------------------------------------------ table form
    def description(self) -> dict[str, Any]:
        """Everything but the histograms, JSON-ready: the splits and the counters."""
        return {
            "n_cells": self.n_cells,
            "n_rows": self.n_rows,
            "n_unassigned": self.n_unassigned,
            "n_outside_training": self.n_outside_training,
            "mag_column": self.mag_column,
            "mag_edges": None if self.mag_edges is None else self.mag_edges.tolist(),
            "z_column": self.z_column,
            "z_edges": None if self.z_edges is None else self.z_edges.tolist(),
            "healpix_order": self.healpix_order,
            "weight_column": self.weight_column,
            "provenance": self.provenance,
        }

    def to_frame(self) -> pd.DataFrame:
        """The long table: ``axis``, ``bin``, ``cell``, ``n``, ``weight``, non-empty only."""
        parts = []

        def add(axis: str, bins: np.ndarray, cells: np.ndarray, n: np.ndarray, w: np.ndarray):
            keep = n > 0
            parts.append(
                pd.DataFrame(
                    {
                        "axis": axis,
                        "bin": bins[keep].astype(np.int64),
                        "cell": cells[keep].astype(np.int64),
                        "n": n[keep].astype(np.int64),
                        "weight": w[keep].astype(np.float64),
                    }
                )
            )

        cells = np.arange(self.n_cells)
        add(OccupationAxis.total, np.zeros(self.n_cells), cells, self.counts, self.weights)
        for axis, counts, weights in (
            (OccupationAxis.mag, self.mag_counts, self.mag_weights),
            (OccupationAxis.z, self.z_counts, self.z_weights),
        ):
            if counts is not None:
                b, c = np.divmod(np.arange(counts.size), self.n_cells)
                add(axis, b, c, counts.ravel(), weights.ravel())
        if self.healpix_order is not None:
            add(OccupationAxis.pixel, self.pixel, self.pixel_cell, self.pixel_counts,
                self.pixel_weights)  # fmt: skip
        return pd.concat(parts, ignore_index=True)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, description: dict[str, Any], source: str | None = None
    ) -> Occupation:
        """An occupation from its long table and description, checked: every problem is an
        :class:`OccupationError` naming the column, the row and the reason."""
        d = dict(description)
        try:
            n_cells = int(d["n_cells"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OccupationError("the description has no integer n_cells", source=source) from exc
        for name in TABLE_COLUMNS:
            if name not in frame.columns:
                has = ", ".join(map(repr, frame.columns))
                raise OccupationError(f"column missing; the table has {has}", name, None, source)
        axis = frame["axis"].astype(str).to_numpy()
        allowed = set(choices(OccupationAxis))
        bad = ~np.isin(axis, list(allowed))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            reason = f"axis {axis[row]!r} is not one of {', '.join(sorted(allowed))}"
            raise OccupationError(reason, "axis", row, source)
        ints = {}
        for name in ("bin", "cell", "n"):
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(values) | (values != np.round(values))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                reason = f"{frame[name].iloc[row]!r} is not an integer"
                raise OccupationError(reason, name, row, source)
            ints[name] = values.astype(np.int64)
        weight = pd.to_numeric(frame["weight"], errors="coerce").to_numpy(dtype=np.float64)
        cell, n, b = ints["cell"], ints["n"], ints["bin"]
        checks = (
            ("cell", (cell < 0) | (cell >= n_cells),
             lambda r: f"cell {cell[r]} outside the map's 0..{n_cells - 1} ({n_cells} cells)"),
            ("n", n < 0, lambda r: f"negative count {n[r]}"),
            ("weight", ~np.isfinite(weight) | (weight < 0),
             lambda r: f"weight {weight[r]} is not a finite non-negative number"),
            ("weight", (n == 0) & (weight > 0),
             lambda r: "weight without galaxies (n is 0)"),
        )  # fmt: skip
        for column, bad, why in checks:
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise OccupationError(why(row), column, row, source)
        key = pd.DataFrame({"a": axis, "b": b, "c": cell}).duplicated()
        if key.any():
            row = int(np.flatnonzero(key.to_numpy())[0])
            reason = f"({axis[row]}, bin {b[row]}, cell {cell[row]}) listed twice"
            raise OccupationError(reason, "cell", row, source)

        def rows_of(name: str) -> np.ndarray:
            return np.flatnonzero(axis == name)

        total = rows_of(OccupationAxis.total)
        if (b[total] != 0).any():
            row = int(total[b[total] != 0][0])
            raise OccupationError("bin of a total row must be 0", "bin", row, source)
        counts, weights = _empty(n_cells)
        counts[cell[total]], weights[cell[total]] = n[total], weight[total]
        occ = cls(
            n_cells=n_cells,
            counts=counts,
            weights=weights,
            n_rows=int(d.get("n_rows") or counts.sum()),
            n_unassigned=int(d.get("n_unassigned") or 0),
            n_outside_training=int(d.get("n_outside_training") or 0),
            weight_column=d.get("weight_column"),
            provenance=dict(d.get("provenance") or {}),
        )
        if occ.n_rows < occ.n_galaxies + occ.n_unassigned + occ.n_outside_training:
            raise OccupationError(
                f"n_rows {occ.n_rows} is less than the galaxies counted "
                f"({occ.n_galaxies + occ.n_unassigned + occ.n_outside_training})",
                source=source,
            )
        for axis_name, prefix in ((OccupationAxis.mag, "mag"), (OccupationAxis.z, "z")):
            rows = rows_of(axis_name)
            edges = d.get(f"{prefix}_edges")
            if edges is None:
                if len(rows):
                    reason = f"{axis_name} rows but no {prefix}_edges in the description"
                    raise OccupationError(reason, "axis", int(rows[0]), source)
                continue
            try:
                e = _edges(edges, f"{prefix}_edges")
            except ValueError as exc:
                raise OccupationError(str(exc), source=source) from exc
            n_bins = len(e) - 1
            out = (b[rows] < 0) | (b[rows] >= n_bins)
            if out.any():
                row = int(rows[out][0])
                reason = f"{prefix} bin {b[row]} outside 0..{n_bins - 1}"
                raise OccupationError(reason, "bin", row, source)
            hc, hw = _empty((n_bins, n_cells))
            hc[b[rows], cell[rows]], hw[b[rows], cell[rows]] = n[rows], weight[rows]
            over = hc.sum(axis=0) > counts
            if over.any():
                c = int(np.flatnonzero(over)[0])
                reason = f"cell {c} has more galaxies in its {prefix} bins than in its total"
                raise OccupationError(reason, "n", int(rows[cell[rows] == c][0]), source)
            setattr(occ, f"{prefix}_column", d.get(f"{prefix}_column"))
            setattr(occ, f"{prefix}_edges", e)
            setattr(occ, f"{prefix}_counts", hc)
            setattr(occ, f"{prefix}_weights", hw)
        rows = rows_of(OccupationAxis.pixel)
        order = d.get("healpix_order")
        if order is None:
            if len(rows):
                reason = "pixel rows but no healpix_order in the description"
                raise OccupationError(reason, "axis", int(rows[0]), source)
        else:
            try:
                occ.healpix_order = _order(order)
            except ValueError as exc:
                raise OccupationError(str(exc), source=source) from exc
            n_pix = 12 * 4**occ.healpix_order
            out = (b[rows] < 0) | (b[rows] >= n_pix)
            if out.any():
                row = int(rows[out][0])
                reason = f"pixel {b[row]} outside 0..{n_pix - 1} at order {occ.healpix_order}"
                raise OccupationError(reason, "bin", row, source)
            order_idx = rows[np.lexsort((cell[rows], b[rows]))]
            occ.pixel, occ.pixel_cell = b[order_idx], cell[order_idx]
            occ.pixel_counts, occ.pixel_weights = n[order_idx], weight[order_idx]
            per_cell = np.bincount(occ.pixel_cell, weights=occ.pixel_counts, minlength=n_cells)
            if (per_cell > counts).any():
                c = int(np.flatnonzero(per_cell > counts)[0])
                reason = f"cell {c} has more galaxies in its pixels than in its total"
                raise OccupationError(reason, "n", int(rows[cell[rows] == c][0]), source)
        return occ

    def write_parquet(self, path) -> None:
        """The long table as Parquet, the description in the schema metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.to_frame(), preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(self.description(), default=str).encode()
        pq.write_table(table.replace_schema_metadata(meta), path)

    @classmethod
    def read_parquet(cls, path, source: str | None = None) -> Occupation:
        """An occupation written by :meth:`write_parquet`, checked (:meth:`from_frame`)."""
        import pyarrow.parquet as pq

        source = source or str(path)
        try:
            table = pq.read_table(path)
        except Exception as exc:
            raise OccupationError(f"not a readable Parquet file ({exc})", source=source) from exc
        raw = (table.schema.metadata or {}).get(METADATA_KEY)
        if raw is None:
            raise OccupationError(
                "no somcal_occupation description in the Parquet metadata (write it with "
                "Occupation.write_parquet or `somcal occupation --output`)",
                source=source,
            )
        try:
            description = json.loads(raw)
        except ValueError as exc:
            raise OccupationError(f"unreadable description ({exc})", source=source) from exc
        return cls.from_frame(table.to_pandas(), description, source)


def _edges(values: Any, name: str) -> np.ndarray:
    e = np.asarray(values, dtype=np.float64).ravel()
    if len(e) < 2 or not np.isfinite(e).all() or (np.diff(e) <= 0).any():
        raise ValueError(f"{name} must be at least two finite, increasing values")
    return e


def _order(order: Any) -> int:
    if isinstance(order, bool) or int(order) != order or not 0 <= int(order) <= MAX_HEALPIX_ORDER:
        raise ValueError(f"healpix_order must be an integer in 0..{MAX_HEALPIX_ORDER}")
    return int(order)


def _binned(c, w, values, edges, n_cells) -> tuple[np.ndarray, np.ndarray]:
    b = bin_index(values, edges)
    inside = b >= 0
    n_bins = len(edges) - 1
    key = b[inside] * n_cells + c[inside]
    counts = np.bincount(key, minlength=n_bins * n_cells).reshape(n_bins, n_cells)
    weights = np.bincount(key, weights=w[inside], minlength=n_bins * n_cells)
    return counts.astype(np.int64), weights.reshape(n_bins, n_cells)


def _ordered_sum(arrays: list[np.ndarray]) -> np.ndarray:
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    return total
