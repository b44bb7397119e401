"""Map lattices: rectangular or hexagonal, planar or toroidal.

Cells are numbered row-major: ``cell = row * n_cols + col``.

Hexagonal maps use "odd-r" offset coordinates: odd rows are shifted right by half a cell
and rows are ``sqrt(3)/2`` apart, so every interior cell has six neighbours at distance 1.
A toroidal hexagonal map needs an even number of rows, otherwise the wrap would join
rows of the same offset and break the lattice.

Grid distances on a torus are minimum-image distances. Because a lattice translation
leaves distances unchanged, every distance the map needs is a function of the offset
(row_j - row_i, col_j - col_i) and, on a hexagonal lattice, of the parity of row_i; the
``offset_distance_table`` holds exactly that, so kernels never build the
n_cells x n_cells matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .vocabulary import Lattice, choices

LATTICES = choices(Lattice)
ROW_SPACING = {"rect": 1.0, "hex": float(np.sqrt(3.0) / 2.0)}


@dataclass(frozen=True)
class Grid:
    """Geometry of a map of ``n_rows`` x ``n_cols`` cells."""

    n_rows: int
    n_cols: int
    lattice: str = "rect"
    periodic: bool = False

    def __post_init__(self) -> None:
        if int(self.n_rows) < 1 or int(self.n_cols) < 1:
            raise ValueError(
                f"a map needs at least one row and column, got {self.n_rows}x{self.n_cols}"
            )
        if self.lattice not in LATTICES:
            raise ValueError(f"lattice must be one of {LATTICES}, got {self.lattice!r}")
        if self.lattice == "hex" and self.periodic and self.n_rows % 2:
            raise ValueError(
                f"a toroidal hexagonal map needs an even number of rows, got {self.n_rows}"
            )
        object.__setattr__(self, "n_rows", int(self.n_rows))
        object.__setattr__(self, "n_cols", int(self.n_cols))
        object.__setattr__(self, "periodic", bool(self.periodic))

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def row_spacing(self) -> float:
        return ROW_SPACING[self.lattice]

    @property
    def width(self) -> float:
        """Period of the torus along x (in cell units)."""
        return float(self.n_cols)

    @property
    def height(self) -> float:
        """Period of the torus along y (in cell units)."""
        return self.n_rows * self.row_spacing

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Grid:
        return cls(int(d["n_rows"]), int(d["n_cols"]), str(d["lattice"]), bool(d["periodic"]))

    def rowcol(self, cell):
        """(row, col) of cell index or array of indices."""
        cell = np.asarray(cell)
        if np.any((cell < 0) | (cell >= self.n_cells)):
            raise IndexError(f"cell index out of range 0..{self.n_cells - 1}")
        return cell // self.n_cols, cell % self.n_cols

    def coordinates(self) -> np.ndarray:
        """Planar (x, y) position of every cell, shape (n_cells, 2), in cell units."""
        rows, cols = np.divmod(np.arange(self.n_cells), self.n_cols)
        x = cols.astype(float)
        if self.lattice == "hex":
            x = x + 0.5 * (rows % 2)
        return np.column_stack([x, rows * self.row_spacing])

    def _displacement(self, row_i, col_i, row_j, col_j):
        """(dx, dy) from cell i to cell j, minimum image on a torus."""
        dx = np.asarray(col_j, float) - np.asarray(col_i, float)
        if self.lattice == "hex":
            dx = dx + 0.5 * ((np.asarray(row_j) % 2) - (np.asarray(row_i) % 2))
        dy = (np.asarray(row_j, float) - np.asarray(row_i, float)) * self.row_spacing
        if self.periodic:
            dx = dx - self.width * np.round(dx / self.width)
            dy = dy - self.height * np.round(dy / self.height)
        return dx, dy

    def distance(self, cell_i, cell_j) -> np.ndarray:
        """Grid distance between cells (broadcasting), honouring the wrap of a torus."""
        ri, ci = self.rowcol(cell_i)
        rj, cj = self.rowcol(cell_j)
        dx, dy = self._displacement(ri, ci, rj, cj)
        return np.hypot(dx, dy)

    def offset_distance_table(self) -> np.ndarray:
        """Distance for every offset, shape (2, 2*n_rows-1, 2*n_cols-1).

        ``table[p, dr + n_rows - 1, dc + n_cols - 1]`` is the grid distance from a cell on a
        row of parity ``p`` to the cell ``dr`` rows and ``dc`` columns away (minimum image
        on a torus). On a rectangular lattice both parities are equal.
        """
        dr = np.arange(-(self.n_rows - 1), self.n_rows)[:, None]
        dc = np.arange(-(self.n_cols - 1), self.n_cols)[None, :]
        table = np.empty((2, dr.size, dc.size))
        for parity in (0, 1):
            dx, dy = self._displacement(parity, 0, parity + dr, dc)
            table[parity] = np.hypot(dx, dy)
        return table

    def neighbours(self, cell: int, radius: float = 1.0 + 1e-9) -> np.ndarray:
        """Cells within ``radius`` (grid units) of ``cell``, excluding itself, sorted."""
        d = self.distance(cell, np.arange(self.n_cells))
        return np.flatnonzero((d <= radius) & (np.arange(self.n_cells) != cell))

    def neighbour_pairs(self, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """All ordered pairs (i, j), i != j, of cells within ``radius`` of each other.

        Built from the offset table, so it costs O(n_cells x offsets), not O(n_cells^2).
        """
        table = self.offset_distance_table()
        rows, cols = np.divmod(np.arange(self.n_cells), self.n_cols)
        src, dst = [], []
        for parity in (0, 1):
            on_parity = np.flatnonzero(rows % 2 == parity)
            if on_parity.size == 0:
                continue
            dr_idx, dc_idx = np.nonzero(table[parity] <= radius + 1e-9)
            for dr, dc in zip(dr_idx - (self.n_rows - 1), dc_idx - (self.n_cols - 1), strict=True):
                r = rows[on_parity] + dr
                c = cols[on_parity] + dc
                if self.periodic:
                    r, c = r % self.n_rows, c % self.n_cols
                    keep = np.ones(r.size, bool)
                else:
                    keep = (r >= 0) & (r < self.n_rows) & (c >= 0) & (c < self.n_cols)
                src.append(on_parity[keep])
                dst.append(r[keep] * self.n_cols + c[keep])
        pairs = np.unique(np.column_stack([np.concatenate(src), np.concatenate(dst)]), axis=0)
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        return pairs[:, 0], pairs[:, 1]
