"""What every figure shares: argument checks, the geometry of the drawn cells, the colour
maps of the map figures, and rendering a Figure to PNG."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, ListedColormap, to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator

from som.grid import LATTICES
from som.vocabulary import PlotKind

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: The colour map of each map figure: (matplotlib name, first and last fraction of it used).
#: The PNG figures draw with these and the dashboard draws with the same stops, fetched from
#: the API (:func:`map_colormap_stops`), so the two show the same colours.
MAP_COLORMAPS: dict[PlotKind, tuple[str, float, float]] = {
    PlotKind.redshift: ("viridis", 0.0, 1.0),
    PlotKind.dispersion: ("magma", 0.0, 1.0),
    PlotKind.occupation: ("cividis", 0.0, 1.0),
    # Blues without its near-white end: a cell with one spectrum must not look empty.
    PlotKind.coverage: ("Blues", 0.25, 1.0),
    PlotKind.umatrix: ("bone_r", 0.0, 1.0),
}

_HEX_RADIUS = 1.0 / math.sqrt(3.0)  # circumradius of a hexagon of unit width (flat to flat)
_ROW_SPACING = {"rect": 1.0, "hex": math.sqrt(3.0) / 2.0}


# --------------------------------------------------------------------------- validation
def _check_grid(n_rows: Any, n_cols: Any, lattice: Any) -> tuple[int, int, str]:
    for name, v in (("n_rows", n_rows), ("n_cols", n_cols)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if lattice not in LATTICES:
        raise ValueError(f"lattice must be one of {LATTICES}, got {lattice!r}")
    return int(n_rows), int(n_cols), str(lattice)


def _cell_values(values: Any, n_rows: int, n_cols: int, name: str) -> np.ndarray:
    """Per-cell floats, shape (n_cells,), from (n_cells,) or (n_rows, n_cols) input."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.shape not in ((n_rows * n_cols,), (n_rows, n_cols)):
        raise ValueError(
            f"{name} must have shape ({n_rows * n_cols},) (one value per cell, row-major) or "
            f"({n_rows}, {n_cols}) for a {n_rows}x{n_cols} map, got shape {arr.shape}"
        )
    return arr.reshape(-1)


def _cell_flags(flags: Any, n_rows: int, n_cols: int, name: str) -> np.ndarray:
    """Per-cell booleans, shape (n_cells,); integer 0/1 input is accepted, anything else not."""
    arr = np.asarray(flags)
    if arr.shape not in ((n_rows * n_cols,), (n_rows, n_cols)):
        raise ValueError(
            f"{name} must have shape ({n_rows * n_cols},) or ({n_rows}, {n_cols}) for a "
            f"{n_rows}x{n_cols} map, got shape {arr.shape}"
        )
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (one flag per cell), got dtype {arr.dtype}")
        arr = arr.astype(bool)
    return arr.reshape(-1)


def _cmap(cmap: str | Colormap) -> Colormap:
    if isinstance(cmap, Colormap):
        return cmap
    try:
        return colormaps[cmap]  # a copy: safe to modify per figure
    except KeyError:
        raise ValueError(f"cmap {cmap!r} is not a known matplotlib colormap") from None


# --------------------------------------------------------------------------- geometry
def cell_centres(n_rows: int, n_cols: int, lattice: str = "rect") -> np.ndarray:
    """Drawing position (x, y) of every cell, shape (n_cells, 2), in cell widths.

    The same planar coordinates as ``som.grid.Grid.coordinates``: rect ``(col, row)``; hex
    ``(col + 0.5 * (row % 2), row * sqrt(3)/2)``.
    """
    n_rows, n_cols, lattice = _check_grid(n_rows, n_cols, lattice)
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    x = cols.astype(np.float64)
    if lattice == "hex":
        x += 0.5 * (rows % 2)
    return np.column_stack([x, rows * _ROW_SPACING[lattice]])


def cell_polygons(
    n_rows: int, n_cols: int, lattice: str = "rect", cells: Any = None, scale: float = 1.0
) -> np.ndarray:
    """Vertices of the cells' shapes, shape (k, 4 or 6, 2): unit squares or pointy-top
    hexagons of unit width, so that neighbouring cells share an edge. ``cells`` selects
    cells (default all); ``scale`` shrinks the shapes about their centres."""
    centres = cell_centres(n_rows, n_cols, lattice)
    if cells is not None:
        centres = centres[np.asarray(cells, dtype=np.intp)]
    if lattice == "hex":
        ang = np.deg2rad(30.0 + 60.0 * np.arange(6))
        shape = _HEX_RADIUS * np.column_stack([np.cos(ang), np.sin(ang)])
    else:
        shape = 0.5 * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    return centres[:, None, :] + scale * shape[None, :, :]


def marked_boundary(marked: Any, n_rows: int, n_cols: int, lattice: str = "rect") -> np.ndarray:
    """Outline of the region(s) formed by the ``marked`` cells: the cell edges that separate
    a marked cell from an unmarked one or from the map's border, shape (k, 2, 2).

    Outlining regions instead of every cell keeps a 75x150 map with thousands of marked
    cells readable; an isolated cell still gets its own 4 (rect) or 6 (hex) edges.
    """
    n_rows, n_cols, lattice = _check_grid(n_rows, n_cols, lattice)
    mark = _cell_flags(marked, n_rows, n_cols, "marked")
    idx = np.flatnonzero(mark)
    start = cell_polygons(n_rows, n_cols, lattice, idx)
    end = np.roll(start, -1, axis=1)
    centres = cell_centres(n_rows, n_cols, lattice)[idx]
    # The neighbour across an edge sits at the centre mirrored through the edge's midpoint
    # (edge midpoints are half a cell width from the centre on both lattices).
    across = (start + end) - centres[:, None, :]
    row = np.rint(across[..., 1] / _ROW_SPACING[lattice]).astype(np.int64)
    x = across[..., 0] - (0.5 * (row % 2) if lattice == "hex" else 0.0)
    col = np.rint(x).astype(np.int64)
    inside = (row >= 0) & (row < n_rows) & (col >= 0) & (col < n_cols)
    neighbour = np.where(inside, row * n_cols + col, 0)
    edge = ~(inside & mark[neighbour])
    return np.stack([start[edge], end[edge]], axis=1)


def _map_extent(n_rows: int, n_cols: int, lattice: str) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of the drawn map in data units."""
    if lattice == "rect":
        return -0.5, n_cols - 0.5, -0.5, n_rows - 0.5
    x1 = n_cols if n_rows > 1 else n_cols - 0.5
    return -0.5, x1, -_HEX_RADIUS, (n_rows - 1) * _ROW_SPACING["hex"] + _HEX_RADIUS


def _auto_figsize(n_rows: int, n_cols: int, lattice: str, legend: bool) -> tuple[float, float]:
    """A figure size that fits the map's aspect, with room for title, colour bar, legend."""
    x0, x1, y0, y1 = _map_extent(n_rows, n_cols, lattice)
    aspect = (y1 - y0) / (x1 - x0)
    map_w = min(8.0, 5.5 / aspect) if aspect > 0 else 8.0
    map_w = max(map_w, 3.0)
    map_h = map_w * aspect
    return map_w + 1.8, map_h + 1.3 + (0.45 if legend else 0.0)


def _cell_size_points(ax: Axes, n_rows: int, n_cols: int, lattice: str) -> float:
    """Approximate width of one cell on the page, in points (for line widths)."""
    x0, x1, y0, y1 = _map_extent(n_rows, n_cols, lattice)
    fig_w, fig_h = ax.figure.get_size_inches()
    pos = ax.get_position()
    w_pt, h_pt = pos.width * fig_w * 72.0, pos.height * fig_h * 72.0
    # Equal aspect: the map fills whichever axes dimension is limiting.
    return min(w_pt / (x1 - x0), h_pt / (y1 - y0))


def _style_map_axes(ax: Axes, n_rows: int, n_cols: int, lattice: str) -> None:
    x0, x1, y0, y1 = _map_extent(n_rows, n_cols, lattice)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
    rows = MaxNLocator(nbins=6, integer=True).tick_values(0, n_rows - 1)
    rows = rows[(rows >= 0) & (rows <= n_rows - 1)]
    # Hex rows are sqrt(3)/2 apart: place ticks at row positions but label them by row.
    ax.yaxis.set_major_locator(FixedLocator(rows * _ROW_SPACING[lattice]))
    ax.set_yticklabels([str(int(r)) for r in rows])
    ax.tick_params(labelsize=9)
    for side in ax.spines.values():
        side.set_linewidth(0.6)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    return Figure(figsize=figsize, layout="constrained")


# --------------------------------------------------------------------------- colour maps
def map_colormap(kind: PlotKind | str) -> Colormap:
    """The colour map a map figure of ``kind`` draws with (see :data:`MAP_COLORMAPS`)."""
    name, start, stop = MAP_COLORMAPS[PlotKind(kind)]
    if (start, stop) == (0.0, 1.0):
        return _cmap(name)
    return ListedColormap(colormaps[name](np.linspace(start, stop, 256)), name=f"{name}_cut")


def colormap_stops(cmap: str | Colormap, n: int = 256) -> list[str]:
    """``n`` colours sampled evenly along ``cmap`` from its first to its last colour, as
    ``#rrggbb`` strings: what a web page needs to draw with matplotlib's colour maps."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    rgba = _cmap(cmap)(np.linspace(0.0, 1.0, int(n)))
    return [to_hex(c, keep_alpha=False) for c in rgba]


def map_colormap_stops(n: int = 256) -> dict[str, list[str]]:
    """:func:`colormap_stops` of every map figure's colour map, keyed by plot kind."""
    return {str(kind): colormap_stops(map_colormap(kind), n) for kind in MAP_COLORMAPS}


# --------------------------------------------------------------------------- output
def figure_to_png(fig: Figure, *, dpi: float | None = None) -> bytes:
    """PNG bytes of ``fig``, rendered with the Agg canvas (no GUI, no pyplot state).

    ``dpi`` defaults to the figure's own (100 unless set)."""
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi if dpi is not None else fig.dpi)
    return buf.getvalue()
