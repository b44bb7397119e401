"""The cell maps of Masters et al. (2015): any per-cell quantity drawn on the map's lattice,
and the redshift, dispersion, occupation, coverage and U-matrix maps built on it."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator
from matplotlib.transforms import offset_copy

from som.plotting.common import (
    MAP_COLORMAPS,
    _auto_figsize,
    _cell_flags,
    _cell_size_points,
    _cell_values,
    _check_grid,
    _cmap,
    _map_extent,
    _new_figure,
    _style_map_axes,
    cell_polygons,
    map_colormap,
    marked_boundary,
)
from som.vocabulary import PlotKind

MARKED_STYLES = ("outline", "fill")

_MASK_FACE = "#f2f2f2"
_MASK_HATCH = "#9a9a9a"
_NAN_FACE = "#c8c8c8"
_MARK_COLOR = "#e3001b"


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
    cmap: str | Colormap = MAP_COLORMAPS[PlotKind.redshift][0],
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
    cmap: str | Colormap = MAP_COLORMAPS[PlotKind.dispersion][0],
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
    cmap: str | Colormap = MAP_COLORMAPS[PlotKind.occupation][0],
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
        cmap = map_colormap(PlotKind.coverage)
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
    cmap: str | Colormap = MAP_COLORMAPS[PlotKind.umatrix][0],
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
