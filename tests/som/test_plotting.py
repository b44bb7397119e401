"""Figures of som.plotting: geometry of the drawn cells, the overlays, n(z), the sampling
experiment, PNG output and argument checking. Small maps only, so the suite stays fast."""

from __future__ import annotations

import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection, QuadMesh
from matplotlib.figure import Figure

from som import calibration
from som import plotting as plots
from som.grid import Grid

REPO = Path(__file__).resolve().parents[2]


def by_gid(ax, gid):
    return [c for c in ax.collections if c.get_gid() == gid]


def one(ax, gid):
    found = by_gid(ax, gid)
    assert len(found) == 1, f"expected one {gid!r} collection, got {len(found)}"
    return found[0]


def map_axes(fig):
    """The map axes of a figure (colour bars are inset axes, children of the map axes)."""
    return [ax for ax in fig.axes if by_gid(ax, "cells")]


def legend_texts(ax):
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


def png_size(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])


def smooth_field(n_rows, n_cols, seed=0):
    rng = np.random.default_rng(seed)
    r, c = np.divmod(np.arange(n_rows * n_cols), n_cols)
    return 0.2 + 2.0 * (r / n_rows) * (c / n_cols) + rng.normal(0, 0.02, r.size)


# ------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("lattice", ["rect", "hex"])
def test_cell_centres_match_the_training_lattice(lattice):
    np.testing.assert_allclose(
        plots.cell_centres(5, 7, lattice), Grid(5, 7, lattice).coordinates(), atol=1e-12
    )


def test_hexagons_share_an_edge_with_each_lattice_neighbour():
    grid = Grid(6, 6, "hex")
    polys = plots.cell_polygons(6, 6, "hex")
    assert polys.shape == (36, 6, 2)
    for cell in (14, 21):  # interior cells on an even and an odd row
        nbrs = grid.neighbours(cell)
        assert len(nbrs) == 6
        for other in range(grid.n_cells):
            shared = sum(
                np.isclose(np.linalg.norm(polys[other] - v, axis=1), 0, atol=1e-9).any()
                for v in polys[cell]
            )
            if other == cell:
                continue
            assert shared == (2 if other in nbrs else 0), (cell, other, shared)


# ------------------------------------------------------------------------- cell maps
def test_rect_map_draws_values_row_major_with_row_zero_at_bottom():
    vals = np.arange(12.0)
    fig = plots.plot_cell_map(vals, 3, 4, "rect", title="t", cbar_label="z")
    assert isinstance(fig, Figure)
    (ax,) = map_axes(fig)
    mesh = one(ax, "cells")
    assert isinstance(mesh, QuadMesh)
    arr = np.ma.getdata(mesh.get_array()).reshape(3, 4)
    coords = mesh.get_coordinates()  # (n_rows+1, n_cols+1, 2) corners
    # cell = row * n_cols + col sits at x = col, y = row
    for cell in (0, 5, 11):
        row, col = divmod(cell, 4)
        assert arr[row, col] == vals[cell]
        np.testing.assert_allclose(coords[row, col], [col - 0.5, row - 0.5])
    assert ax.get_aspect() == 1.0
    assert ax.get_title() == "t"
    assert mesh.colorbar is not None and mesh.colorbar.ax.get_ylabel() == "z"


def test_hex_map_has_one_hexagon_per_cell_at_the_lattice_positions():
    vals = smooth_field(4, 5)
    fig = plots.plot_cell_map(vals, 4, 5, "hex")
    (ax,) = map_axes(fig)
    cells = one(ax, "cells")
    assert isinstance(cells, PolyCollection)
    paths = cells.get_paths()
    assert len(paths) == 20
    centres = np.array([p.vertices[:6].mean(axis=0) for p in paths])
    np.testing.assert_allclose(centres, Grid(4, 5, "hex").coordinates(), atol=1e-9)
    assert all(len(p.vertices) >= 6 for p in paths)
    np.testing.assert_allclose(np.ma.getdata(cells.get_array()), vals)
    assert ax.get_aspect() == 1.0


def test_nan_and_masked_cells_get_their_own_layers_and_legend_entries():
    vals = smooth_field(4, 6)
    vals[[1, 2, 3]] = np.nan
    mask = np.zeros(24, bool)
    mask[[3, 10]] = True  # cell 3 is NaN and masked: counts as masked
    fig = plots.plot_cell_map(vals, 4, 6, "hex", mask=mask, mask_label="empty cell")
    (ax,) = map_axes(fig)
    assert len(one(ax, "masked").get_paths()) == 2
    assert len(one(ax, "nodata").get_paths()) == 2
    drawn = one(ax, "cells").get_array()
    assert np.ma.getmaskarray(drawn)[[1, 2, 3, 10]].all()
    assert not np.ma.getmaskarray(drawn)[[0, 4, 23]].any()
    assert legend_texts(ax) == ["empty cell", "no data"]


def test_all_nan_map_still_draws():
    fig = plots.plot_cell_map(np.full(6, np.nan), 2, 3, "rect")
    (ax,) = map_axes(fig)
    assert len(one(ax, "nodata").get_paths()) == 6
    assert plots.figure_to_png(fig).startswith(plots.PNG_SIGNATURE)


def test_log_scale_sends_non_positive_values_to_no_data():
    vals = np.array([0.0, 1.0, 10.0, 100.0, -1.0, 5.0])
    fig = plots.plot_cell_map(vals, 2, 3, "rect", log=True)
    (ax,) = map_axes(fig)
    assert len(one(ax, "nodata").get_paths()) == 2
    assert legend_texts(ax) == ["no data or ≤ 0"]
    norm = one(ax, "cells").norm
    assert (norm.vmin, norm.vmax) == (1.0, 100.0)


def test_colour_limits_and_extend_arrows():
    vals = np.linspace(0, 1, 12)
    fig = plots.plot_cell_map(vals, 3, 4, vmin=0.2, vmax=0.8)
    mesh = one(map_axes(fig)[0], "cells")
    assert (mesh.norm.vmin, mesh.norm.vmax) == (0.2, 0.8)
    assert mesh.colorbar.extend == "both"
    fig = plots.plot_cell_map(vals, 3, 4)
    assert one(map_axes(fig)[0], "cells").colorbar.extend == "neither"


def test_marked_outline_traces_region_boundaries():
    # An isolated cell keeps all its edges; a 2x2 block only its perimeter.
    m = np.zeros(30, bool)
    m[7] = True
    assert plots.marked_boundary(m, 5, 6, "rect").shape == (4, 2, 2)
    assert plots.marked_boundary(m, 5, 6, "hex").shape == (6, 2, 2)
    block = np.zeros((5, 6), bool)
    block[1:3, 2:4] = True
    assert len(plots.marked_boundary(block, 5, 6, "rect")) == 8
    assert len(plots.marked_boundary(np.ones(30, bool), 5, 6, "rect")) == 2 * (5 + 6)
    # Two hexagons sharing an edge: 6 + 6 - 2 edges.
    pair = np.zeros(30, bool)
    pair[[7, 8]] = True
    assert len(plots.marked_boundary(pair, 5, 6, "hex")) == 10
    # A cell and its upper-right neighbour on an odd row (odd-r offset: same column + 1).
    diag = np.zeros(30, bool)
    diag[[6 + 2, 12 + 3]] = True
    assert len(plots.marked_boundary(diag, 5, 6, "hex")) == 10


@pytest.mark.parametrize("lattice", ["rect", "hex"])
def test_marked_overlay_in_the_figure(lattice):
    vals = smooth_field(5, 6)
    marked = np.zeros(30, bool)
    marked[[0, 14, 29]] = True  # three isolated cells
    fig = plots.plot_cell_map(vals, 5, 6, lattice, marked=marked, marked_label="uncovered")
    (ax,) = map_axes(fig)
    lines = one(ax, "marked")
    assert isinstance(lines, LineCollection)
    assert len(lines.get_segments()) == 3 * (4 if lattice == "rect" else 6)
    assert legend_texts(ax) == ["uncovered"]
    fig = plots.plot_cell_map(vals, 5, 6, lattice, marked=marked, marked_style="fill")
    assert len(one(map_axes(fig)[0], "marked").get_paths()) == 3


def test_no_legend_without_special_cells():
    fig = plots.plot_cell_map(np.arange(6.0), 2, 3, marked=np.zeros(6, bool))
    (ax,) = map_axes(fig)
    assert ax.get_legend() is None
    assert not by_gid(ax, "marked")


def test_values_may_be_given_as_a_2d_map():
    vals = smooth_field(3, 4).reshape(3, 4)
    fig = plots.plot_cell_map(vals, 3, 4, mask=vals > 10, marked=np.zeros((3, 4), int))
    arr = np.ma.getdata(one(map_axes(fig)[0], "cells").get_array()).reshape(3, 4)
    np.testing.assert_allclose(arr, vals)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"values": np.zeros(11)}, "values"),
        ({"values": np.zeros((4, 3))}, "values"),
        ({"values": ["a"] * 12}, "values"),
        ({"mask": np.zeros(5, bool)}, "mask"),
        ({"mask": np.full(12, 0.5)}, "mask"),
        ({"marked": np.zeros((2, 6), bool)}, "marked"),
        ({"n_rows": 0}, "n_rows"),
        ({"n_cols": 2.5}, "n_cols"),
        ({"lattice": "square"}, "lattice"),
        ({"cmap": "no-such-map"}, "cmap"),
        ({"marked_style": "glow"}, "marked_style"),
        ({"vmin": 2.0, "vmax": 1.0}, "vmax"),
        ({"log": True, "vmin": -1.0}, "vmin"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, name):
    args = {"values": np.arange(12.0), "n_rows": 3, "n_cols": 4, "lattice": "rect"}
    args.update(kwargs)
    values, n_rows, n_cols = args.pop("values"), args.pop("n_rows"), args.pop("n_cols")
    with pytest.raises(ValueError, match=name):
        plots.plot_cell_map(values, n_rows, n_cols, **args)


# ------------------------------------------------------------------------- Masters maps
def test_coverage_map_marks_occupied_cells_without_coverage():
    n_spec = np.array([0, 0, 3, 1, 0, 2, 0, 0, 5, 0, 0, 1])
    counts = np.array([4, 0, 9, 2, 7, 3, 0, 1, 8, 6, 0, 0])
    occupied = counts > 0
    covered = n_spec >= 2  # k = 2: cells 3 and 11 hold one spectrum, not enough
    fig = plots.plot_coverage_map(n_spec, covered, occupied, 3, 4, "hex", counts=counts)
    (ax,) = map_axes(fig)
    gaps = occupied & ~covered  # cells 0, 3, 4, 7, 9
    assert len(one(ax, "marked").get_paths()) == gaps.sum() == 5
    # Empty cells without any spectrum are hatched; cell 11 (no galaxies, one spectrum) is
    # coloured, not hatched.
    assert len(one(ax, "masked").get_paths()) == 3
    drawn = one(ax, "cells").get_array()
    assert not np.ma.getmaskarray(drawn)[11]
    assert np.ma.getmaskarray(drawn)[[0, 4]].all()
    # 3 of 8 occupied cells covered; 20 of 40 galaxies in covered cells.
    assert ax.get_title() == "Spectroscopic coverage: 3/8 occupied cells (38%), 50% of galaxies"
    assert "uncovered (galaxies, no secure coverage)" in legend_texts(ax)
    assert "no spectra" not in legend_texts(ax)  # all hidden under the gap fill


def test_coverage_map_rejects_negative_counts():
    with pytest.raises(ValueError, match="n_spec"):
        plots.plot_coverage_map([-1, 0], [False, False], [True, True], 1, 2)
    with pytest.raises(ValueError, match="covered"):
        plots.plot_coverage_map([1, 0], [True], [True, True], 1, 2)


def test_occupation_map_is_log_and_hatches_empty_cells():
    counts = np.array([0, 1, 10, 100, 1000, 0])
    fig = plots.plot_occupation_map(counts, 2, 3, "rect")
    (ax,) = map_axes(fig)
    assert type(one(ax, "cells").norm).__name__ == "LogNorm"
    assert len(one(ax, "masked").get_paths()) == 2
    assert legend_texts(ax) == ["empty cell"]


def test_dispersion_map_caps_colour_scale_at_99th_percentile():
    vals = np.r_[np.linspace(0.01, 0.1, 199), 3.0]  # one catastrophic cell
    fig = plots.plot_dispersion_map(vals, 10, 20)
    mesh = one(map_axes(fig)[0], "cells")
    assert mesh.norm.vmax == pytest.approx(np.percentile(vals, 99))
    assert mesh.colorbar.extend == "max"


def test_redshift_map_and_umatrix():
    z = smooth_field(4, 4)
    fig = plots.plot_redshift_map(z, 4, 4, "hex", mask=z > 1.5, mask_label="empty cell")
    assert map_axes(fig)[0].get_title() == "Median redshift per cell"
    fig = plots.plot_umatrix(z.reshape(4, 4), "hex")
    assert len(one(map_axes(fig)[0], "cells").get_paths()) == 16
    with pytest.raises(ValueError, match="umatrix"):
        plots.plot_umatrix(z)


@pytest.mark.parametrize("lattice", ["rect", "hex"])
def test_overview_has_the_four_maps(lattice):
    n = 20
    counts = np.arange(n) % 5
    n_spec = (np.arange(n) % 5 == 1).astype(int)  # spectra only in occupied cells
    z = smooth_field(4, 5)
    fig = plots.plot_overview(z, 0.05 * z, counts, n_spec, n_spec > 0, 4, 5, lattice, title="T")
    axes = map_axes(fig)
    assert len(axes) == 4
    assert [a.get_title().split(":")[0] for a in axes] == [
        "Median redshift per cell",
        "Redshift dispersion per cell",
        "Occupation",
        "Spectroscopic coverage",
    ]
    assert fig.get_suptitle() == "T"
    # every panel hatches the 4 empty cells
    assert all(len(one(a, "masked").get_paths()) == 4 for a in axes)


# ------------------------------------------------------------------------- n(z)
def test_nz_draws_estimate_band_truth_and_mean_markers():
    bins = np.linspace(0, 2, 21)
    centres = 0.5 * (bins[1:] + bins[:-1])
    nz1 = np.exp(-0.5 * ((centres - 0.5) / 0.1) ** 2)
    nz2 = np.exp(-0.5 * ((centres - 1.0) / 0.15) ** 2)
    fig = plots.plot_nz(
        bins,
        [nz1, nz2],
        [0.1 * nz1, None],
        ["bin 1", "bin 2"],
        truth_list=[nz1 * 1.05, None],
        mean_z=[0.5, 1.0],
        mean_z_err=[0.01, None],
    )
    (ax,) = fig.axes
    stairs = [p for p in ax.patches if p.get_gid() == "nz"]
    assert len(stairs) == 2
    bands = by_gid(ax, "nz_band")
    assert len(bands) == 1  # the second bin has no uncertainty
    ys = bands[0].get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx((1.1 * nz1).max())
    assert ys.min() == pytest.approx(0.0, abs=1e-12)
    assert len([p for p in ax.patches if p.get_gid() == "nz_truth"]) == 1
    markers = [ln for ln in ax.lines if ln.get_gid() == "mean_z" and ln.get_marker() == "v"]
    assert sorted(line.get_xdata()[0] for line in markers) == [0.5, 1.0]
    texts = legend_texts(ax)
    assert texts[:2] == ["bin 1", "bin 2"]
    assert "±1σ (bootstrap)" in texts and "true n(z)" in texts
    # x range cut where every curve has died out, not at the last bin edge
    assert ax.get_xlim()[1] < 2.0


def test_nz_with_nan_and_no_errors():
    bins = np.linspace(0, 1, 6)
    fig = plots.plot_nz(bins, [np.array([0, 1, np.nan, 1, 0.0])], None, ["only"])
    assert not by_gid(fig.axes[0], "nz_band")
    assert plots.figure_to_png(fig).startswith(plots.PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((np.linspace(0, 1, 6), [np.ones(4)], None, ["a"]), r"nz_list\[0\]"),
        ((np.linspace(0, 1, 6), [np.ones(5)], [np.ones(5), np.ones(5)], ["a"]), "nz_err_list"),
        ((np.linspace(0, 1, 6), [np.ones(5), np.ones(5)], None, ["a"]), "labels"),
        ((np.array([0.0, 1.0, 0.5]), [np.ones(2)], None, ["a"]), "bins"),
        ((np.linspace(0, 1, 6), [], None, []), "nz_list"),
    ],
)
def test_nz_bad_shapes(args, name):
    with pytest.raises(ValueError, match=name):
        plots.plot_nz(*args)


def test_nz_bad_truth_shape():
    with pytest.raises(ValueError, match=r"truth_list\[0\]"):
        plots.plot_nz(np.linspace(0, 1, 6), [np.ones(5)], None, ["a"], truth_list=[np.ones(3)])


# ------------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def sampling_df():
    rng = np.random.default_rng(3)
    n_cells = 40
    cells = rng.integers(0, n_cells, 3000)
    z_true = 0.03 * cells + rng.normal(0, 0.05, cells.size)
    return calibration.sampling_experiment(
        cells,
        z_true,
        n_cells,
        [0.0, 0.4, 0.8, 1.3],
        [10, 40, 200],
        strategy=["random", "systematic"],
        n_realisations=5,
        random_state=1,
    )


def test_sampling_experiment_panels_per_bin(sampling_df):
    fig = plots.plot_sampling_experiment(sampling_df)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    n_bins = sampling_df["tomo_bin"].nunique()
    assert len(shown) == n_bins == 3
    for ax, (b, g) in zip(shown, sampling_df.groupby("tomo_bin"), strict=True):
        req = [p for p in ax.patches if p.get_gid() == "requirement"]
        assert len(req) == 1
        ys = req[0].get_path().transformed(req[0].get_patch_transform()).vertices[:, 1]
        assert ys.max() == pytest.approx(g["requirement"].iloc[0])
        labelled = {line.get_label() for line in ax.lines}
        assert {"random", "systematic"} <= labelled
        mean_line = next(line for line in ax.lines if line.get_label() == "random")
        gr = g[g["strategy"] == "random"].sort_values("n_spec")
        np.testing.assert_allclose(mean_line.get_ydata(), gr["bias_mean"])
        assert ax.get_xscale() == "log"
        assert f"bin {b}" in ax.get_title()
    assert plots.figure_to_png(fig).startswith(plots.PNG_SIGNATURE)


def test_sampling_experiment_checks_columns(sampling_df):
    with pytest.raises(ValueError, match="bias_std"):
        plots.plot_sampling_experiment(sampling_df.drop(columns="bias_std"))
    with pytest.raises(ValueError, match="df"):
        plots.plot_sampling_experiment(sampling_df.to_dict())
    with pytest.raises(ValueError, match="no rows"):
        plots.plot_sampling_experiment(sampling_df.iloc[:0])


# ------------------------------------------------------------------------- output
def test_png_bytes_and_size():
    fig = plots.plot_cell_map(np.arange(6.0), 2, 3)
    png = plots.figure_to_png(fig, dpi=50)
    assert png[:8] == plots.PNG_SIGNATURE
    w, h = png_size(png)
    fw, fh = fig.get_size_inches()
    assert abs(w - fw * 50) <= 1 and abs(h - fh * 50) <= 1
    with pytest.raises(ValueError, match="fig"):
        plots.figure_to_png(pd.DataFrame())


def test_concurrent_rendering_matches_serial():
    def render(seed):
        vals = smooth_field(6, 6, seed)
        return plots.figure_to_png(plots.plot_cell_map(vals, 6, 6, "hex"), dpi=40)

    serial = [render(s) for s in range(4)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(render, range(4)))
    assert threaded == serial
    assert len(set(serial)) == 4


def test_module_does_not_load_pyplot():
    code = "import sys, som.plotting; sys.exit('matplotlib.pyplot' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_colormap_stops_sample_matplotlib():
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    stops = plots.colormap_stops("viridis", 5)
    assert stops == [to_hex(colormaps["viridis"](t)) for t in np.linspace(0, 1, 5)]
    assert stops[0] == "#440154" and stops[-1] == "#fde725"
    with pytest.raises(ValueError, match="n must be"):
        plots.colormap_stops("viridis", 1)
    with pytest.raises(ValueError, match="not a known matplotlib colormap"):
        plots.colormap_stops("no-such-map")


def test_map_figures_draw_with_the_declared_colour_maps():
    """The dashboard draws with map_colormap_stops(): it must be what the PNGs draw with."""
    every = plots.map_colormap_stops(16)
    assert set(every) == {"redshift", "dispersion", "occupation", "coverage", "umatrix"}
    assert all(len(v) == 16 for v in every.values())
    vals = np.arange(1.0, 13.0)
    for kind, draw in [
        ("redshift", plots.plot_redshift_map),
        ("dispersion", plots.plot_dispersion_map),
        ("occupation", plots.plot_occupation_map),
        ("umatrix", plots.plot_umatrix),
    ]:
        fig = draw(vals.reshape(3, 4)) if kind == "umatrix" else draw(vals, 3, 4)
        cmap = fig.axes[0].collections[0].get_cmap()
        assert plots.colormap_stops(cmap, 16) == every[kind], kind
    fig = plots.plot_coverage_map(vals, vals > 3, np.ones(12, bool), 3, 4)
    assert plots.colormap_stops(fig.axes[0].collections[0].get_cmap(), 16) == every["coverage"]
    # The coverage map leaves out the palest quarter of Blues.
    assert every["coverage"][0] == plots.colormap_stops("Blues", 5)[1]
