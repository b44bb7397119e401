"""Sky maps of a survey's occupation: the share of galaxies in cells without spectroscopy
per HEALPix pixel (``som.occupation.Occupation.uncovered_by_pixel``).

The pixel of every point of a longitude-latitude raster comes from ``hats``' HEALPix
functions (cdshealpix), so the figure draws the pixels the counts were made in without
any pixel geometry of its own; the raster is drawn on a Mollweide projection with
right ascension increasing to the left, as on the sky.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import Colormap
from matplotlib.figure import Figure


def plot_uncovered_sky(
    pixels: Any,
    fraction: Any,
    order: int,
    *,
    title: str = "Galaxies in uncovered cells",
    cbar_label: str = "fraction in cells without spectroscopy",
    cmap: str | Colormap = "magma_r",
    resolution: int = 720,
    figsize: tuple[float, float] = (9.0, 5.0),
) -> Figure:
    """Mollweide map of ``fraction`` (one value per HEALPix nested ``pixels`` at
    ``order``); pixels without galaxies are left blank. ``resolution`` is the raster's
    number of columns (half as many rows)."""
    from hats.pixel_math.healpix_shim import radec2pix

    pixels = np.asarray(pixels, dtype=np.int64)
    fraction = np.asarray(fraction, dtype=np.float64)
    if pixels.shape != fraction.shape:
        raise ValueError("pixels and fraction must have the same length")
    n_pix = 12 * 4 ** int(order)
    if len(pixels) and (pixels.min() < 0 or pixels.max() >= n_pix):
        raise ValueError(f"pixels must lie in 0..{n_pix - 1} at order {order}")
    full = np.full(n_pix, np.nan)
    full[pixels] = fraction
    n_lon, n_lat = int(resolution), max(int(resolution) // 2, 2)
    lon_edges = np.linspace(-np.pi, np.pi, n_lon + 1)
    lat_edges = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)
    lon_c = 0.5 * (lon_edges[:-1] + lon_edges[1:])
    lat_c = 0.5 * (lat_edges[:-1] + lat_edges[1:])
    lon, lat = np.meshgrid(lon_c, lat_c)
    # RA increases to the left: plot longitude -RA
    ra = np.mod(-np.degrees(lon), 360.0)
    values = full[radec2pix(int(order), ra.ravel(), np.degrees(lat).ravel())].reshape(lon.shape)

    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot(projection="mollweide")
    mesh = ax.pcolormesh(lon_edges, lat_edges, np.ma.masked_invalid(values), cmap=cmap,
                         vmin=0.0, vmax=1.0, shading="flat")  # fmt: skip
    ticks = np.radians(np.arange(-150, 181, 60))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{int(np.mod(-np.degrees(t), 360))}°" for t in ticks])
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    fig.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.6, label=cbar_label)
    return fig
