"""How far to trust a cell assignment: the training rows' own distances to their cells.

A map is only a good description of colours like those it was trained on. At the end of
training every training row's distance to its best-matching cell is recorded in a
:class:`DistanceDistribution`, saved with the map. ``SOM.assign`` then places each new
row's distance among those: its ``percentile`` (0-100). A row farther from its cell than
99.5% of the training rows, or measured in too few features, is *outside the training
set* and its cell's redshift should not be trusted blindly (:func:`outside_training`).

The distribution is a histogram on a fixed grid of log-spaced bins (``N_BINS`` bins
between ``LOW`` and ``HIGH`` plus an underflow and an overflow bin), so histograms of
separate chunks, partitions or ``partial_fit`` calls simply add up: chunked and Dask
training record exactly what in-memory training records. With 200 bins per decade a
bin is 1.2% wide in distance; percentiles are interpolated linearly inside a bin, and the
smallest and largest distance seen are kept exactly, so nothing below the first or
beyond the last training distance is interpolated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MAX_PERCENTILE",
    "DistanceDistribution",
    "default_min_features",
    "outside_training",
]

#: the fixed histogram grid: log-spaced bin edges from LOW to HIGH (feature units)
LOW, HIGH, N_BINS = 1e-5, 1e5, 2000
#: default trust threshold: a row farther from its cell than this percentile of the
#: training rows is flagged. 99.5 flags 1 in 200 rows of the training population itself,
#: so a catalogue flagged much more often than that is not like the training set.
DEFAULT_MAX_PERCENTILE = 99.5


def _edges() -> np.ndarray:
    return np.logspace(math.log10(LOW), math.log10(HIGH), N_BINS + 1)


EDGES = _edges()


def default_min_features(n_features: int | None) -> int:
    """Fewest usable features a row needs to be trusted: half the map's, and at least 2.

    A row with fewer features than that pins only a small part of its position in feature
    space: many cells that differ in the missing colours match it equally well, and its
    distance is small *because* so little is compared (distances are rescaled by
    F / n_present, which corrects their scale but not their ambiguity). Half the features
    leaves at most as many coordinates free as constrained; one feature alone never places a
    galaxy in more than one dimension, hence the floor of 2 (capped at the map's own count).
    Without a known feature count (None) the floor, 2, is returned.
    """
    if n_features is None:
        return 2
    F = int(n_features)
    return max(1, min(F, max(2, math.ceil(F / 2))))


@dataclass
class DistanceDistribution:
    """Histogram of best-match distances (and of usable features per row) of a row set.

    Attributes
    ----------
    metric : "euclidean" or "chi2", the map's distance (distances of rows with missing
        features are rescaled by F / n_present, as ``SOM.assign`` reports them).
    counts : (N_BINS + 2,) int64 rows per bin: [0, LOW), the log bins, [HIGH, inf).
    n_features : (F + 1,) int64 rows by number of usable features (0 = skipped, no cell).
    d_min, d_max : smallest and largest distance seen (inf / -inf when empty).
    """

    metric: str
    counts: np.ndarray = field(default_factory=lambda: np.zeros(N_BINS + 2, np.int64))
    n_features: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    d_min: float = math.inf
    d_max: float = -math.inf

    # ---------------------------------------------------------------- building
    @classmethod
    def empty(cls, metric: str, n_features_in: int) -> DistanceDistribution:
        return cls(metric, n_features=np.zeros(int(n_features_in) + 1, np.int64))

    def add(self, distance: np.ndarray, n_features: np.ndarray | None = None) -> None:
        """Count the rows of one chunk (NaN distances: rows without a cell, not counted)."""
        d = np.asarray(distance, dtype=np.float64).ravel()
        ok = np.isfinite(d)
        d = d[ok]
        if d.size:
            idx = np.searchsorted(EDGES, d, side="right")  # 0: below LOW, N_BINS+1: >= HIGH
            self.counts += np.bincount(idx, minlength=N_BINS + 2).astype(np.int64)
            self.d_min = min(self.d_min, float(d.min()))
            self.d_max = max(self.d_max, float(d.max()))
        if n_features is not None:
            nf = np.asarray(n_features, dtype=np.int64).ravel()
            self.n_features += np.bincount(nf, minlength=self.n_features.size)[
                : self.n_features.size
            ]
        self._cache = None

    def merge(self, other: DistanceDistribution) -> DistanceDistribution:
        """The distribution of both row sets (a new object); metrics must agree."""
        if other.metric != self.metric:
            raise ValueError(f"cannot merge {self.metric} and {other.metric} distances")
        if other.n_features.size != self.n_features.size:
            raise ValueError("cannot merge distributions of maps with different feature counts")
        return DistanceDistribution(
            self.metric,
            self.counts + other.counts,
            self.n_features + other.n_features,
            min(self.d_min, other.d_min),
            max(self.d_max, other.d_max),
        )

    __add__ = merge

    # ---------------------------------------------------------------- reading
    @property
    def n(self) -> int:
        """Rows with a distance (rows skipped for lack of any feature are not counted)."""
        return int(self.counts.sum())

    @property
    def n_skipped(self) -> int:
        """Rows counted with zero usable features (skipped: no cell, no distance)."""
        return int(self.n_features[0]) if self.n_features.size else 0

    def _curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(distance, rows below it) knots of the cumulative distribution, for np.interp."""
        cache = getattr(self, "_cache", None)
        if cache is not None:
            return cache
        n = self.n
        if n == 0:
            self._cache = (np.array([0.0, 0.0]), np.array([0.0, 0.0]))
            return self._cache
        full_edges = np.concatenate([[0.0], EDGES, [math.inf]])
        below = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.float64)
        inside = (full_edges > self.d_min) & (full_edges < self.d_max)
        xp = np.concatenate([[self.d_min], full_edges[inside], [self.d_max]])
        fp = np.concatenate([[0.0], below[inside], [float(n)]])
        self._cache = (xp, fp)
        return self._cache

    def percentile(self, distance: np.ndarray) -> np.ndarray:
        """Percentage (0-100, float32) of the recorded rows closer to their cell than each
        ``distance``; NaN for NaN distances or when nothing was recorded."""
        d = np.asarray(distance)
        if self.n == 0:
            return np.full(d.shape, np.nan, np.float32)
        xp, fp = self._curve()
        out = np.interp(d.astype(np.float64, copy=False), xp, fp) * (100.0 / self.n)
        return out.astype(np.float32)

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """Distance below which a fraction ``q`` (0-1) of the recorded rows lie."""
        if self.n == 0:
            return np.full(np.shape(q), np.nan)
        xp, fp = self._curve()
        # the cumulative curve is non-decreasing; drop flat stretches for a proper inverse
        keep = np.concatenate([[True], np.diff(fp) > 0])
        return np.interp(np.asarray(q) * self.n, fp[keep], xp[keep])

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON form: the grid it was built on and the non-empty bins only."""
        nz = np.flatnonzero(self.counts)
        return {
            "metric": self.metric,
            "grid": {"spacing": "log", "low": LOW, "high": HIGH, "n_bins": N_BINS},
            "bins": [int(i) for i in nz],  # 0: [0, low), n_bins + 1: [high, inf)
            "counts": [int(c) for c in self.counts[nz]],
            "n_features": [int(c) for c in self.n_features],
            "d_min": self.d_min if self.n else None,
            "d_max": self.d_max if self.n else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistanceDistribution:
        grid = d["grid"]
        if (grid["spacing"], float(grid["low"]), float(grid["high"]), int(grid["n_bins"])) != (
            "log",
            LOW,
            HIGH,
            N_BINS,
        ):
            raise ValueError(f"unsupported distance histogram grid {grid}")
        counts = np.zeros(N_BINS + 2, np.int64)
        counts[np.asarray(d["bins"], np.int64)] = np.asarray(d["counts"], np.int64)
        empty = d.get("d_min") is None
        return cls(
            str(d["metric"]),
            counts,
            np.asarray(d["n_features"], np.int64),
            math.inf if empty else float(d["d_min"]),
            -math.inf if empty else float(d["d_max"]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DistanceDistribution):
            return NotImplemented
        return (
            self.metric == other.metric
            and np.array_equal(self.counts, other.counts)
            and np.array_equal(self.n_features, other.n_features)
            and self.d_min == other.d_min
            and self.d_max == other.d_max
        )


def outside_training(
    assignment,
    *,
    max_percentile: float | None = DEFAULT_MAX_PERCENTILE,
    min_features: int | None = None,
) -> np.ndarray:
    """Boolean mask of the rows of an ``Assignment`` not to be trusted like the training set.

    A row is flagged when it has no cell (no usable feature), when it was measured in fewer
    than ``min_features`` features, or when its distance lies beyond ``max_percentile`` of
    the training rows' own distances.

    ``max_percentile`` defaults to 99.5: by construction 0.5% of rows drawn like the training
    set are flagged, so the flag rate of a catalogue says how unlike the training set it is.
    ``None`` skips the distance test. Rows whose percentile is unknown (a map saved before
    somcal recorded training distances) pass the distance test; ``SOM.outside_training``
    refuses such a map instead.
    ``min_features`` defaults to :func:`default_min_features` of the map's feature count (half
    the features, at least 2).
    """
    cell = np.asarray(assignment.cell)
    flagged = cell < 0
    if min_features is None:
        min_features = default_min_features(getattr(assignment, "n_features_in", None))
    n_features = getattr(assignment, "n_features", None)
    if n_features is not None and min_features > 0:
        flagged |= np.asarray(n_features) < int(min_features)
    if max_percentile is not None:
        pct = getattr(assignment, "percentile", None)
        if pct is not None:
            with np.errstate(invalid="ignore"):
                flagged |= np.asarray(pct) > float(max_percentile)
    return flagged
