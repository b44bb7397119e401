"""Figures of redshift distributions: n(z) per tomographic bin, and the bias of the mean
redshift in the Masters et al. (2015) spectroscopic-sampling experiment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import blended_transform_factory

from som.plotting.common import _new_figure

_REQ_FACE = "#dcefd8"
_REQ_EDGE = "#5a9a4f"
_STRATEGY_COLORS = {"random": "#d95f02", "systematic": "#1b6ca8", "uniform": "#1a9850"}


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
    band_label: str = "±1σ (bootstrap)",
) -> Figure:
    """Redshift distributions of tomographic bins, as ``som.calibration.nz`` returns them.

    ``bins``: the common redshift bin edges, shape (B+1,). ``nz_list``: one density per
    tomographic bin, each shape (B,). ``nz_err_list``: its ±1σ (bootstrap) per bin, drawn as
    a band; None, or None entries, for no band. ``labels``: one per tomographic bin.
    ``truth_list``: true n(z) per bin on the same edges (dashed), entries may be None.
    ``mean_z`` (and ``mean_z_err``): the estimated mean redshift per bin, drawn as a marker
    (with error bar) at the top of the axes. ``xlim`` defaults to the bins' range, cut
    where every curve has fallen below 0.2% of the highest peak. ``band_label`` names the
    band in the legend (what drew the errors: a bootstrap, an ensemble's realisations).
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
        style.append(Patch(facecolor="0.3", alpha=0.25, label=band_label))
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
