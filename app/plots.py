"""Figures of the SOM calibration (Masters et al. 2015, arXiv:1509.03318) as matplotlib Figures.

Every function takes plain arrays (or the data frame ``som.calibration`` returns), so the CLI,
the API and a notebook draw the same figure, and returns a ``matplotlib.figure.Figure``;
``figure_to_png`` renders one to PNG bytes with the Agg canvas.

The module never touches pyplot: a ``Figure`` built directly owns all its state, so figures
can be drawn concurrently in server threads (pyplot keeps a global current figure and would
also try to open a GUI backend).

Map geometry follows ``som.grid``: cells are row-major (``cell = row * n_cols + col``), row 0
is drawn at the bottom; hexagonal maps use odd-r offset coordinates (odd rows shifted right
by half a cell, rows ``sqrt(3)/2`` apart) and are drawn as pointy-top hexagons whose
neighbours touch along an edge, exactly the lattice the map was trained on.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Colormap, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator
from matplotlib.transforms import blended_transform_factory, offset_copy

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LATTICES = ("rect", "hex")
MARKED_STYLES = ("outline", "fill")
# Euclid's requirement on the mean redshift of a tomographic bin (Laureijs et al. 2011), as
# used by Masters et al. 2015 and som.calibration.
MEAN_Z_REQUIREMENT = 0.002

_HEX_RADIUS = 1.0 / math.sqrt(3.0)  # circumradius of a hexagon of unit width (flat to flat)
_ROW_SPACING = {"rect": 1.0, "hex": math.sqrt(3.0) / 2.0}
_MASK_FACE = "#f2f2f2"
_MASK_HATCH = "#9a9a9a"
_NAN_FACE = "#c8c8c8"
_MARK_COLOR = "#e3001b"
_REQ_FACE = "#dcefd8"
_REQ_EDGE = "#5a9a4f"
_STRATEGY_COLORS = {"random": "#d95f02", "systematic": "#1b6ca8", "uniform": "#1a9850"}


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


# --------------------------------------------------------------------------- cell maps
def plot_cell_map(
    values: Any,
    n_rows: int,
    n_cols: int,
    lattice: str = "rect",
    *,
    title: str | None = None,
    cbar_label: str | None = None,
    cmap: str | Colormap = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    mask: Any = None,
    mask_label: str = "masked",
    nan_label: str = "no data",
    marked: Any = None,
    marked_label: str = "marked",
    marked_color: str = _MARK_COLOR,
    marked_style: str = "outline",
    log: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """A quantity per cell drawn on the map: squares for ``lattice="rect"``, hexagons for
    ``"hex"``, with a colour bar.

    ``values`` has one float per cell, shape (n_cells,) row-major or (n_rows, n_cols).
    Cells are drawn in three kinds besides their colour, each with a legend entry when
    present:

    - ``mask`` (bool per cell, e.g. empty cells): hatched light grey, ``mask_label``;
    - cells whose value is NaN/inf (or <= 0 with ``log=True``) and not masked: solid grey,
      ``nan_label`` (e.g. occupied cells without a spectroscopic redshift);
    - ``marked`` (bool per cell, e.g. uncovered cells): drawn over the colours in
      ``marked_color``, either as the outline of the region(s) the marked cells form
      (``marked_style="outline"``, see :func:`marked_boundary`; the colours stay visible)
      or by filling the cells (``"fill"``), ``marked_label``.

    ``vmin``/``vmax`` default to the range of the drawn values; values outside a given range
    saturate and the colour bar shows an arrow on that side. ``log=True`` uses a logarithmic
    colour scale. ``ax``: draw into an existing axes (e.g. a panel) instead of a new figure.

    Returns the Figure. Raises ValueError naming the argument for a wrong shape, lattice,
    colormap or style.
    """
    n_rows, n_cols, lattice = _check_grid(n_rows, n_cols, lattice)
    vals = _cell_values(values, n_rows, n_cols, "values")
    n_cells = n_rows * n_cols
    masked = np.zeros(n_cells, bool) if mask is None else _cell_flags(mask, n_rows, n_cols, "mask")
    mark = None if marked is None else _cell_flags(marked, n_rows, n_cols, "marked")
    if marked_style not in MARKED_STYLES:
        raise ValueError(f"marked_style must be one of {MARKED_STYLES}, got {marked_style!r}")
    cm = _cmap(cmap)

    undefined = ~np.isfinite(vals)
    nonpositive = np.zeros(n_cells, bool)
    if log:
        nonpositive = np.isfinite(vals) & (vals <= 0)
        undefined |= nonpositive
    nodata = undefined & ~masked
    good = ~(masked | undefined)
    if mark is not None and marked_style == "fill":
        nodata &= ~mark  # hidden under the fill anyway: no grey layer, no legend entry

    shown = vals[good]
    lo = float(shown.min()) if shown.size else (1.0 if log else 0.0)
    hi = float(shown.max()) if shown.size else (10.0 if log else 1.0)
    lo = lo if vmin is None else float(vmin)
    hi = hi if vmax is None else float(vmax)
    if log and (lo <= 0 or hi <= 0):
        raise ValueError(f"vmin and vmax must be > 0 with log=True, got {lo!r}, {hi!r}")
    if hi < lo:
        raise ValueError(f"vmax ({hi}) must not be below vmin ({lo})")
    norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (bool((shown < lo).any()), bool((shown > hi).any())), "both"
    )

    if ax is None:
        legend_needed = bool(masked.any() or nodata.any() or (mark is not None and mark.any()))
        fig = _new_figure(_auto_figsize(n_rows, n_cols, lattice, legend_needed))
        ax = fig.add_subplot()
    fig = ax.figure

    data = np.ma.masked_array(vals, mask=~good)
    # Undrawn cells stay transparent in the colour layer; the grey layers below show them.
    cm_draw = cm.with_extremes(bad=(0, 0, 0, 0))
    if lattice == "rect":
        xe = np.arange(n_cols + 1) - 0.5
        ye = np.arange(n_rows + 1) - 0.5
        mappable = ax.pcolormesh(
            xe, ye, data.reshape(n_rows, n_cols), cmap=cm_draw, norm=norm, zorder=2
        )
    else:
        # Edges in the face colour hide the hairline seams antialiasing leaves between
        # adjacent hexagons.
        mappable = PolyCollection(
            cell_polygons(n_rows, n_cols, lattice),
            array=data,
            cmap=cm_draw,
            norm=norm,
            edgecolors="face",
            linewidths=0.25,
            zorder=2,
        )
        ax.add_collection(mappable)
    mappable.set_gid("cells")

    handles: list[Any] = []
    if masked.any():
        coll = PolyCollection(
            cell_polygons(n_rows, n_cols, lattice, np.flatnonzero(masked)),
            facecolors=_MASK_FACE,
            edgecolors=_MASK_HATCH,
            linewidths=0.0,
            hatch="////",
            zorder=1,
            gid="masked",
        )
        ax.add_collection(coll)
        handles.append(
            Patch(facecolor=_MASK_FACE, edgecolor=_MASK_HATCH, hatch="////", label=mask_label)
        )
    if nodata.any():
        coll = PolyCollection(
            cell_polygons(n_rows, n_cols, lattice, np.flatnonzero(nodata)),
            facecolors=_NAN_FACE,
            edgecolors=_NAN_FACE,
            linewidths=0.25,
            zorder=1,
            gid="nodata",
        )
        ax.add_collection(coll)
        label = nan_label + (" or ≤ 0" if (nonpositive & nodata).any() else "")
        handles.append(Patch(facecolor=_NAN_FACE, edgecolor="none", label=label))
    if mark is not None and mark.any():
        idx = np.flatnonzero(mark)
        if marked_style == "fill":
            coll = PolyCollection(
                cell_polygons(n_rows, n_cols, lattice, idx),
                facecolors=marked_color,
                edgecolors=marked_color,
                linewidths=0.25,
                zorder=3,
                gid="marked",
            )
            handles.append(Patch(facecolor=marked_color, edgecolor="none", label=marked_label))
        else:
            # About a fifth of a cell wide: visible on a 75x150 map, not swallowing the
            # colours of a small one.
            cell_pt = _cell_size_points(ax, n_rows, n_cols, lattice)
            lw = float(np.clip(0.2 * cell_pt, 0.9, 2.2))
            coll = LineCollection(
                marked_boundary(mark, n_rows, n_cols, lattice),
                colors=marked_color,
                linewidths=lw,
                capstyle="round",
                zorder=3,
                gid="marked",
            )
            handles.append(
                Patch(facecolor="none", edgecolor=marked_color, linewidth=1.5, label=marked_label)
            )
        ax.add_collection(coll)

    _style_map_axes(ax, n_rows, n_cols, lattice)
    if title:
        ax.set_title(title, fontsize=12)
    # The colour bar lives in axes coordinates of the map, so it always matches the map's
    # height whatever the aspect; its width is a fixed fraction of that height.
    x0, x1, y0, y1 = _map_extent(n_rows, n_cols, lattice)
    cax = ax.inset_axes([1.02, 0.0, 0.045 * (y1 - y0) / (x1 - x0), 1.0])
    cbar = fig.colorbar(mappable, cax=cax, extend=extend)
    if cbar_label:
        cbar.set_label(cbar_label, fontsize=10)
    cbar.ax.tick_params(labelsize=9)
    if log:
        # Plain numbers (1, 10, 100) read faster than 10^k for counts; label 2 and 5 too
        # when the range spans less than two decades, or the bar would carry one label.
        subs = (1.0, 2.0, 5.0) if hi / lo < 100 else (1.0,)
        cbar.ax.yaxis.set_major_locator(LogLocator(subs=subs))
        cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if handles:
        # Below the axis label, outside the map, so the key never hides cells.
        anchor = offset_copy(ax.transAxes, fig=fig, x=0.0, y=-30.0, units="points")
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            bbox_transform=anchor,
            ncols=len(handles),
            frameon=False,
            fontsize=9,
            handlelength=1.6,
            columnspacing=1.5,
        )
    return fig


def plot_redshift_map(
    z_median: Any,
    n_rows: int,
    n_cols: int,
    lattice: str = "rect",
    *,
    title: str = "Median redshift per cell",
    cbar_label: str = "median redshift",
    cmap: str | Colormap = "viridis",
    nan_label: str = "no redshift",
    **kwargs: Any,
) -> Figure:
    """The map coloured by the median redshift of each cell (Masters et al. 2015, Fig. 4):
    NaN where a cell has no redshift. Other keywords as :func:`plot_cell_map` (e.g.
    ``mask=counts == 0, mask_label="empty cell"``)."""
    return plot_cell_map(
        z_median,
        n_rows,
        n_cols,
        lattice,
        title=title,
        cbar_label=cbar_label,
        cmap=cmap,
        nan_label=nan_label,
        **kwargs,
    )


def plot_dispersion_map(
    z_dispersion: Any,
    n_rows: int,
    n_cols: int,
    lattice: str = "rect",
    *,
    title: str = "Redshift dispersion per cell",
    cbar_label: str = r"$\sigma_{\rm NMAD}(z)$",
    cmap: str | Colormap = "magma",
    nan_label: str = "no redshift",
    vmax: float | None = None,
    **kwargs: Any,
) -> Figure:
    """The map coloured by the redshift spread within each cell (σ or NMAD; Masters et al.
    2015, Fig. 4). A few cells with catastrophic outliers would otherwise stretch the colour
    scale, so ``vmax`` defaults to the 99th percentile of the values, marked by an arrow on
    the colour bar; pass ``vmax`` to override. Other keywords as :func:`plot_cell_map`."""
    if vmax is None:
        n_rows, n_cols, _ = _check_grid(n_rows, n_cols, lattice)
        vals = _cell_values(z_dispersion, n_rows, n_cols, "z_dispersion")
        finite = vals[np.isfinite(vals)]
        if finite.size:
            vmax = float(np.percentile(finite, 99))
    return plot_cell_map(
        z_dispersion,
        n_rows,
        n_cols,
        lattice,
        title=title,
        cbar_label=cbar_label,
        cmap=cmap,
        nan_label=nan_label,
        vmax=vmax,
        **kwargs,
    )


def plot_occupation_map(
    counts: Any,
    n_rows: int,
    n_cols: int,
    lattice: str = "rect",
    *,
    log: bool = True,
    title: str = "Occupation",
    cbar_label: str = "galaxies per cell",
    cmap: str | Colormap = "cividis",
    mask_label: str = "empty cell",
    **kwargs: Any,
) -> Figure:
    """The map coloured by the number (or weight) of galaxies per cell, on a log scale by
    default because occupation spans decades; empty cells are hatched. Other keywords as
    :func:`plot_cell_map`."""
    n_rows, n_cols, lattice = _check_grid(n_rows, n_cols, lattice)
    vals = _cell_values(counts, n_rows, n_cols, "counts")
    if "mask" not in kwargs:
        kwargs["mask"] = vals == 0
    return plot_cell_map(
        vals,
        n_rows,
        n_cols,
        lattice,
        log=log,
        title=title,
        cbar_label=cbar_label,
        cmap=cmap,
        mask_label=mask_label,
        **kwargs,
    )


def plot_coverage_map(
    n_spec: Any,
    covered: Any,
    occupied: Any,
    n_rows: int,
    n_cols: int,
    lattice: str = "rect",
    *,
    counts: Any = None,
    title: str | None = None,
    cbar_label: str = "secure spectra per cell",
    cmap: str | Colormap | None = None,
    marked_color: str = _MARK_COLOR,
    ax: Axes | None = None,
) -> Figure:
    """Spectroscopic coverage (Masters et al. 2015, Fig. 7): cells coloured by their number
    of secure spectra (log scale), the cells that hold galaxies but too few spectra
    (``occupied & ~covered``, the gaps to fill) filled in ``marked_color``, empty cells
    without spectra hatched.

    ``n_spec`` (counts per cell), ``covered`` and ``occupied`` (bool per cell) are per-cell
    arrays as ``som.calibration.cell_spec_counts`` / ``covered_cells`` give them. The default
    title states the fraction of occupied cells covered and, when ``counts`` (galaxies per
    cell) is given, the fraction of galaxies in covered cells.
    """
    n_rows, n_cols, lattice = _check_grid(n_rows, n_cols, lattice)
    ns = _cell_values(n_spec, n_rows, n_cols, "n_spec")
    if (ns[np.isfinite(ns)] < 0).any():
        raise ValueError("n_spec must be non-negative counts of spectra per cell")
    cov = _cell_flags(covered, n_rows, n_cols, "covered")
    occ = _cell_flags(occupied, n_rows, n_cols, "occupied")
    gap = occ & ~cov
    if title is None:
        n_occ = int(occ.sum())
        n_cov = int((occ & cov).sum())
        frac = n_cov / n_occ if n_occ else float("nan")
        title = f"Spectroscopic coverage: {n_cov}/{n_occ} occupied cells ({frac:.0%})"
        if counts is not None:
            c = _cell_values(counts, n_rows, n_cols, "counts")
            total = np.nansum(c)
            if total > 0:
                title += f", {np.nansum(c[cov]) / total:.0%} of galaxies"
    vals = np.where(ns > 0, ns, np.nan)
    if cmap is None:
        # Blues without its near-white end: a cell with one spectrum must not look empty.
        cmap = ListedColormap(colormaps["Blues"](np.linspace(0.25, 1.0, 256)), name="Blues_cut")
    return plot_cell_map(
        vals,
        n_rows,
        n_cols,
        lattice,
        title=title,
        cbar_label=cbar_label,
        cmap=cmap,
        log=True,
        vmin=1.0,
        mask=~occ & ~(ns > 0),
        mask_label="empty cell",
        nan_label="no spectra",
        marked=gap,
        marked_label="uncovered (galaxies, no secure coverage)",
        marked_color=marked_color,
        marked_style="fill",
        ax=ax,
    )


def plot_umatrix(
    umatrix: Any,
    lattice: str = "rect",
    *,
    title: str = "U-matrix",
    cbar_label: str = "mean distance to neighbours (feature units)",
    cmap: str | Colormap = "bone_r",
    **kwargs: Any,
) -> Figure:
    """The U-matrix, ``umatrix`` of shape (n_rows, n_cols) as ``SOM.distance_map()`` gives
    it: dark ridges separate clusters of similar cells. Other keywords as
    :func:`plot_cell_map`."""
    try:
        arr = np.asarray(umatrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"umatrix must be numeric: {exc}") from None
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(
            f"umatrix must be a 2-D array of shape (n_rows, n_cols), got shape {arr.shape}"
        )
    n_rows, n_cols = arr.shape
    return plot_cell_map(
        arr, n_rows, n_cols, lattice, title=title, cbar_label=cbar_label, cmap=cmap, **kwargs
    )


def plot_overview(
    z_median: Any,
    z_dispersion: Any,
    counts: Any,
    n_spec: Any,
    covered: Any,
    n_rows: int,
    n_cols: int,
    lattice: str = "rect",
    *,
    title: str | None = None,
) -> Figure:
    """The four maps of Masters et al. 2015 in a 2x2 panel: median redshift, redshift
    dispersion, occupation and spectroscopic coverage. Cells with ``counts == 0`` are
    hatched as empty in every panel."""
    n_rows, n_cols, lattice = _check_grid(n_rows, n_cols, lattice)
    cnt = _cell_values(counts, n_rows, n_cols, "counts")
    empty = cnt == 0
    w, h = _auto_figsize(n_rows, n_cols, lattice, legend=True)
    # Panels need no per-panel margin for a figure title: trim what _auto_figsize adds.
    fig = _new_figure((2 * w, 2 * (h - 0.35) + (0.4 if title else 0.0)))
    axes = fig.subplots(2, 2)
    plot_redshift_map(
        z_median, n_rows, n_cols, lattice, mask=empty, mask_label="empty cell", ax=axes[0, 0]
    )
    plot_dispersion_map(
        z_dispersion, n_rows, n_cols, lattice, mask=empty, mask_label="empty cell", ax=axes[0, 1]
    )
    plot_occupation_map(cnt, n_rows, n_cols, lattice, ax=axes[1, 0])
    plot_coverage_map(n_spec, covered, ~empty, n_rows, n_cols, lattice, counts=cnt, ax=axes[1, 1])
    if title:
        fig.suptitle(title, fontsize=14)
    return fig


# --------------------------------------------------------------------------- n(z)
def _curve(values: Any, n: int, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one value per z bin), got {arr.shape}")
    return arr


def _per_bin(seq: Any, n: int, name: str) -> list[Any]:
    if seq is None:
        return [None] * n
    if isinstance(seq, np.ndarray) and seq.ndim == 1 and n == 1 and seq.dtype != object:
        seq = [seq]
    seq = list(seq)
    if len(seq) != n:
        raise ValueError(f"{name} must have one entry per tomographic bin ({n}), got {len(seq)}")
    return seq


def plot_nz(
    bins: Any,
    nz_list: Sequence[Any],
    nz_err_list: Sequence[Any] | None,
    labels: Sequence[str],
    *,
    truth_list: Sequence[Any] | None = None,
    mean_z: Sequence[float | None] | None = None,
    mean_z_err: Sequence[float | None] | None = None,
    title: str | None = "n(z) per tomographic bin",
    xlim: tuple[float, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Redshift distributions of tomographic bins, as ``som.calibration.nz`` returns them.

    ``bins``: the common redshift bin edges, shape (B+1,). ``nz_list``: one density per
    tomographic bin, each shape (B,). ``nz_err_list``: its ±1σ (bootstrap) per bin, drawn as
    a band; None, or None entries, for no band. ``labels``: one per tomographic bin.
    ``truth_list``: true n(z) per bin on the same edges (dashed), entries may be None.
    ``mean_z`` (and ``mean_z_err``): the estimated mean redshift per bin, drawn as a marker
    (with error bar) at the top of the axes. ``xlim`` defaults to the bins' range, cut
    where every curve has fallen below 0.2% of the highest peak.
    """
    try:
        edges = np.asarray(bins, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bins must be numeric bin edges: {exc}") from None
    if (
        edges.ndim != 1
        or edges.size < 2
        or not np.all(np.isfinite(edges))
        or np.any(np.diff(edges) <= 0)
    ):
        raise ValueError(
            f"bins must be at least two finite, strictly increasing bin edges (1-D), got "
            f"shape {edges.shape}"
        )
    n_z = edges.size - 1
    nzs = list(nz_list)
    n_bins = len(nzs)
    if n_bins == 0:
        raise ValueError("nz_list must hold at least one n(z)")
    nzs = [_curve(v, n_z, f"nz_list[{i}]") for i, v in enumerate(nzs)]
    errs = _per_bin(nz_err_list, n_bins, "nz_err_list")
    errs = [None if e is None else _curve(e, n_z, f"nz_err_list[{i}]") for i, e in enumerate(errs)]
    labels = [str(s) for s in _per_bin(labels, n_bins, "labels")]
    truths = _per_bin(truth_list, n_bins, "truth_list")
    truths = [
        None if t is None else _curve(t, n_z, f"truth_list[{i}]") for i, t in enumerate(truths)
    ]
    means = _per_bin(mean_z, n_bins, "mean_z")
    mean_errs = _per_bin(mean_z_err, n_bins, "mean_z_err")

    if ax is None:
        fig = _new_figure((10.0, 4.8))
        ax = fig.add_subplot()
    fig = ax.figure
    palette = colormaps["tab10"].colors
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for i in range(n_bins):
        color = palette[i % len(palette)]
        ax.stairs(nzs[i], edges, color=color, linewidth=1.8, label=labels[i], zorder=3, gid="nz")
        if errs[i] is not None:
            lo = np.append(nzs[i] - errs[i], np.nan)
            hi = np.append(nzs[i] + errs[i], np.nan)
            lo[-1], hi[-1] = lo[-2], hi[-2]
            ax.fill_between(
                edges, lo, hi, step="post", color=color, alpha=0.25, linewidth=0, zorder=2,
                gid="nz_band",
            )  # fmt: skip
        if truths[i] is not None:
            ax.stairs(
                truths[i], edges, color=color, linewidth=1.1, linestyle="--", zorder=4,
                gid="nz_truth",
            )  # fmt: skip
        m = means[i]
        if m is not None and np.isfinite(m):
            e = mean_errs[i]
            ax.errorbar(
                [m], [0.96], xerr=None if e is None or not np.isfinite(e) else [e],
                fmt="v", color=color, markersize=7, capsize=2, transform=top, zorder=5,
                clip_on=False, gid="mean_z",
            )  # fmt: skip

    curves = [v + (0.0 if e is None else np.nan_to_num(e)) for v, e in zip(nzs, errs, strict=True)]
    curves += [t for t in truths if t is not None]
    stacked = np.nan_to_num(np.vstack(curves), nan=0.0)
    ymax = float(stacked.max())
    if xlim is None:
        # Bins often run to z = 3-4 for safety while the bins hold nothing beyond z ~ 2.
        alive = np.flatnonzero((stacked > 2e-3 * ymax).any(axis=0)) if ymax > 0 else []
        hi = edges[min(alive[-1] + 2, n_z)] if len(alive) else edges[-1]
        xlim = (edges[0], hi)
    ax.set_xlim(*xlim)
    ax.set_ylim(0.0, 1.12 * ymax if ymax > 0 else 1.0)  # headroom for the mean-z markers
    ax.set_xlabel("redshift z")
    ax.set_ylabel("n(z) (unit area)")
    if title:
        ax.set_title(title, fontsize=12)

    handles, _ = ax.get_legend_handles_labels()
    style = [Line2D([], [], color="0.3", linewidth=1.8, label="from spectra (SOM)")]
    if any(e is not None for e in errs):
        style.append(Patch(facecolor="0.3", alpha=0.25, label="±1σ (bootstrap)"))
    if any(t is not None for t in truths):
        style.append(Line2D([], [], color="0.3", linewidth=1.1, linestyle="--", label="true n(z)"))
    if any(m is not None and np.isfinite(m) for m in means):
        style.append(Line2D([], [], color="0.3", marker="v", linestyle="none", label="⟨z⟩"))
    # Outside the axes: inside it would hide the tail of the highest-z bin and its marker.
    ax.legend(
        handles=handles + style, fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )  # fmt: skip
    return fig


# --------------------------------------------------------------------------- sampling
_SAMPLING_COLUMNS = ("strategy", "n_spec", "tomo_bin", "bias_mean", "bias_std", "requirement")


def plot_sampling_experiment(
    df: pd.DataFrame,
    *,
    title: str | None = "Bias of the mean redshift against the number of spectra",
    min_pass_fraction: float | None = 0.68,
    max_requirements: float = 8.0,
) -> Figure:
    """The sampling experiment of Masters et al. 2015 (Sec. 6, Fig. 10): the bias of each
    tomographic bin's mean redshift, ⟨z⟩_est − ⟨z⟩_true, against the number of spectra, for
    every strategy (line: mean over realisations, band: ±1σ), with the requirement
    ±0.002(1+⟨z⟩) shaded.

    ``df`` is the table ``som.calibration.sampling_experiment`` returns (columns strategy,
    n_spec, tomo_bin, bias_mean, bias_std, requirement; z_lo/z_hi label the panels when
    present). With ``passes_fraction`` in ``df`` and ``min_pass_fraction`` set, a dotted
    line marks the smallest N from which each strategy meets the requirement in at least
    that share of realisations (``som.calibration.first_passing_n``). The y axis is linear
    and, so that the requirement band stays readable, spans at most ±``max_requirements``
    times the requirement: the large biases of the smallest N run off the panel (their
    values are in ``df``).
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError("df must be the pandas DataFrame returned by sampling_experiment")
    for col in _SAMPLING_COLUMNS:
        if col not in df.columns:
            raise ValueError(
                f"df is missing column {col!r} (see som.calibration.sampling_experiment)"
            )
    if df.empty:
        raise ValueError("df has no rows")
    if (df["n_spec"] <= 0).any():
        raise ValueError("df column 'n_spec' must be positive (it is drawn on a log axis)")

    first = None
    if min_pass_fraction is not None and "passes_fraction" in df.columns:
        from som.calibration import first_passing_n

        first = first_passing_n(df, min_pass_fraction)

    tomo = np.sort(df["tomo_bin"].unique())
    strategies = list(dict.fromkeys(df["strategy"]))
    n_pan = len(tomo)
    ncols = min(3, n_pan)
    nrows = math.ceil(n_pan / ncols)
    fig = _new_figure((4.2 * ncols + 0.4, 3.3 * nrows + 0.9))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    fallback = iter(colormaps["Dark2"].colors[3:])
    colors = {s: _STRATEGY_COLORS.get(s) or next(fallback) for s in strategies}

    for ax, b in zip(axes, tomo, strict=False):
        g = df[df["tomo_bin"] == b]
        req = float(np.nanmedian(g["requirement"]))
        ax.axhspan(-req, req, color=_REQ_FACE, zorder=0, gid="requirement", linewidth=0)
        for y in (-req, req):
            ax.axhline(y, color=_REQ_EDGE, linewidth=0.8, linestyle="--", zorder=1)
        ax.axhline(0.0, color="0.45", linewidth=0.7, zorder=1)
        for s in strategies:
            gs = g[g["strategy"] == s].sort_values("n_spec")
            if gs.empty:
                continue
            n = gs["n_spec"].to_numpy(float)
            m = gs["bias_mean"].to_numpy(float)
            sd = np.nan_to_num(gs["bias_std"].to_numpy(float))
            # Light fill plus edge lines: two overlapping bands stay distinguishable.
            ax.fill_between(n, m - sd, m + sd, color=colors[s], alpha=0.12, linewidth=0, zorder=2)
            for edge in (m - sd, m + sd):
                ax.plot(n, edge, color=colors[s], linewidth=0.7, alpha=0.7, zorder=2)
            ax.plot(n, m, "o-", color=colors[s], markersize=3.5, linewidth=1.5, zorder=3, label=s)
            if first is not None:
                f = first[(first["strategy"] == s) & (first["tomo_bin"] == b)]["first_n"]
                if len(f) and not pd.isna(f.iloc[0]):
                    ax.axvline(
                        float(f.iloc[0]), color=colors[s], linestyle=":", linewidth=1.3, zorder=1
                    )
        ax.set_xscale("log")
        spread = g["bias_std"].fillna(0.0).to_numpy(float)
        reach = np.abs(g["bias_mean"].to_numpy(float)) + spread
        reach = reach[np.isfinite(reach)]
        lim = float(np.clip(reach.max() if reach.size else 0.0, 3 * req, max_requirements * req))
        ax.set_ylim(-1.1 * lim, 1.1 * lim)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+.3f}" if v else "0"))
        if {"z_lo", "z_hi"} <= set(g.columns):
            ax.set_title(
                f"bin {int(b)}: {g['z_lo'].iloc[0]:.2f} ≤ z < {g['z_hi'].iloc[0]:.2f}", fontsize=10
            )
        else:
            ax.set_title(f"tomographic bin {int(b)}", fontsize=10)
        ax.tick_params(labelsize=8)
        ax.grid(True, which="major", axis="x", color="0.9", linewidth=0.6)
    for ax in axes[n_pan:]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols : n_pan]:
        ax.set_xlabel("number of spectra N")
    for ax in axes[:n_pan:ncols]:
        ax.set_ylabel(r"$\langle z\rangle_{\rm est} - \langle z\rangle_{\rm true}$")
    handles = [
        Line2D([], [], color=colors[s], marker="o", markersize=3.5, label=f"{s} (mean ±1σ)")
        for s in strategies
    ]
    handles.append(
        Patch(
            facecolor=_REQ_FACE,
            edgecolor=_REQ_EDGE,
            linestyle="--",
            label="requirement ±0.002(1+⟨z⟩)",
        )
    )
    if first is not None:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                linestyle=":",
                label=f"first N passing (≥{min_pass_fraction:.0%})",
            )
        )
    fig.legend(
        handles=handles, loc="outside lower center", ncols=len(handles), frameon=False, fontsize=9
    )
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


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
