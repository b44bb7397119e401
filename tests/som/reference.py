"""Pure-numpy reference implementations of the kernels, for tests.

Deliberately naive (full distance matrices, explicit loops over cells): small inputs only.
"""

from __future__ import annotations

import numpy as np

from som.grid import Grid


def bmu(X: np.ndarray, W: np.ndarray, inv_var: np.ndarray | None = None):
    """Best and second-best cell and squared distance of each row (missing-aware).

    X (n, F) with NaN for missing; W (K, F); inv_var (n, F) or None (Euclidean).
    The distance over present features is scaled by F / n_present.
    """
    X = np.asarray(X, np.float64)
    W = np.asarray(W, np.float64)
    present = np.isfinite(X)
    iv = np.ones_like(X) if inv_var is None else np.asarray(inv_var, np.float64)
    diff = np.where(present[:, None, :], X[:, None, :] - W[None, :, :], 0.0)
    d2 = (iv[:, None, :] * diff**2).sum(-1) * (X.shape[1] / present.sum(1))[:, None]
    order = np.argsort(d2, axis=1, kind="stable")
    best = order[:, 0]
    second = order[:, 1] if W.shape[0] > 1 else np.full(len(X), -1)
    return best, second, d2[np.arange(len(X)), best]


def neighbourhood(grid: Grid, sigma: float, kind: str = "gaussian", truncate: float = 4.0):
    """Full (K, K) neighbourhood matrix h(i, j) from explicit grid distances."""
    cells = np.arange(grid.n_cells)
    d = grid.distance(cells[:, None], cells[None, :])
    if kind == "gaussian":
        h = np.exp(-(d**2) / (2 * sigma**2))
        h[d > truncate * sigma + 1e-9] = 0.0
    else:
        h = (d <= sigma + 1e-9).astype(float)
    return h


def batch_update(
    X, W, grid: Grid, sigma: float, kind: str = "gaussian", sample_weight=None, inv_var=None
):
    """One Kohonen batch epoch: w_j = sum_n h(c_n, j) x_n / sum_n h(c_n, j), per feature."""
    X = np.asarray(X, np.float64)
    best, _, _ = bmu(X, W, inv_var)
    sw = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
    present = np.isfinite(X)
    h = neighbourhood(grid, sigma, kind)  # h[i, j]
    hn = h[best]  # (n, K): pull of row n on cell j
    wx = np.where(present, X, 0.0) * sw[:, None]
    num = hn.T @ wx
    den = hn.T @ (present * sw[:, None])
    return np.where(den > 0, num / np.where(den > 0, den, 1), W)
