"""Figures of the follow-up loop: coverage against what was spent, campaign by campaign."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from som.plotting.common import _new_figure

__all__ = ["plot_coverage_history"]


def plot_coverage_history(
    history: pd.DataFrame | list[dict[str, Any]],
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (9.0, 3.8),
) -> Figure:
    """Fraction of the sample in covered cells against hours spent (left) and against
    targets observed (right), one point per ledger change, oldest first.

    ``history``: the snapshots of ``GET .../coverage/history`` (``hours_spent``,
    ``n_observed``, ``fraction_galaxies_covered``, ``action``, ``campaign_id``). Each
    campaign's changes are drawn in a colour of their own and labelled ``campaign N``;
    changes outside any campaign (catalogues ingested or deleted) are grey steps.
    """
    frame = pd.DataFrame(history)
    for col in ("hours_spent", "n_observed", "fraction_galaxies_covered"):
        if col not in frame.columns:
            raise ValueError(f"history is missing column {col!r}")
    if not len(frame):
        raise ValueError("history has no snapshot to draw")
    campaign = (
        frame["campaign_id"] if "campaign_id" in frame.columns else pd.Series([None] * len(frame))
    )
    # A change made between campaigns belongs to the campaign before it (its spectra).
    owner = campaign.astype("Float64").ffill()
    fig = _new_figure(figsize)
    axes = fig.subplots(1, 2, sharey=True)
    y = frame["fraction_galaxies_covered"].to_numpy(dtype=np.float64)
    palette = ["#1b6ca8", "#d95f02", "#1a9850", "#7570b3", "#e7298a", "#66a61e", "#a6761d"]
    for ax, column, label in (
        (axes[0], "hours_spent", "telescope hours spent"),
        (axes[1], "n_observed", "targets observed"),
    ):
        x = frame[column].to_numpy(dtype=np.float64)
        ax.step(x, y, where="post", color="0.6", lw=1.0, zorder=1)
        ids = list(pd.unique(owner.dropna()))
        for k, cid in enumerate(ids):
            mine = (owner == cid).fillna(False).to_numpy()
            ax.plot(
                x[mine],
                y[mine],
                "o",
                color=palette[k % len(palette)],
                ms=5,
                label=f"campaign {int(cid)}",
                zorder=2,
            )
        before = owner.isna().to_numpy()
        if before.any():
            ax.plot(x[before], y[before], "s", color="0.4", ms=4, label="before campaigns")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, lw=0.5)
    axes[0].set_ylabel("fraction of galaxies in covered cells")
    axes[1].legend(loc="lower right", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig
