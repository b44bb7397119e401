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

Modules: :mod:`~som.plotting.maps` (cell maps), :mod:`~som.plotting.nz` (n(z) and the
sampling experiment), :mod:`~som.plotting.sky` (HEALPix sky maps of an occupation),
:mod:`~som.plotting.followup` (coverage against hours spent),
:mod:`~som.plotting.common` (geometry, colour maps, PNG output); every public name is
re-exported here. matplotlib is a dependency of somcal.
"""

from som.plotting.common import (
    LATTICES,
    MAP_COLORMAPS,
    PNG_SIGNATURE,
    cell_centres,
    cell_polygons,
    colormap_stops,
    figure_to_png,
    map_colormap,
    map_colormap_stops,
    marked_boundary,
)
from som.plotting.followup import plot_coverage_history
from som.plotting.maps import (
    MARKED_STYLES,
    plot_cell_map,
    plot_coverage_map,
    plot_dispersion_map,
    plot_occupation_map,
    plot_overview,
    plot_redshift_map,
    plot_umatrix,
)
from som.plotting.nz import plot_nz, plot_sampling_experiment
from som.plotting.sky import plot_uncovered_sky

__all__ = [
    "LATTICES",
    "MAP_COLORMAPS",
    "MARKED_STYLES",
    "PNG_SIGNATURE",
    "cell_centres",
    "cell_polygons",
    "colormap_stops",
    "figure_to_png",
    "map_colormap",
    "map_colormap_stops",
    "marked_boundary",
    "plot_coverage_history",
    "plot_cell_map",
    "plot_coverage_map",
    "plot_dispersion_map",
    "plot_nz",
    "plot_occupation_map",
    "plot_overview",
    "plot_redshift_map",
    "plot_sampling_experiment",
    "plot_umatrix",
    "plot_uncovered_sky",
]
