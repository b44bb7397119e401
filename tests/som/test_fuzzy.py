"""Tests of som.calibration.fuzzy_redshift: the per-galaxy redshift from the labelled cells
around a galaxy's best cell, weighted by fuzzy membership."""

from __future__ import annotations

import numpy as np
import pytest

from som import SOM
from som.calibration import cell_statistics, fuzzy_redshift, map_spacing2


def reference(som, X, cell_z, temperature, radius, scale):
    """Row-by-row loop over every cell of the map (independent of the chunked code)."""
    W = np.asarray(som.weights_, dtype=np.float64)
    all_cells = np.arange(som.n_cells)
    out = np.full(len(X), np.nan)
    for i, x in enumerate(np.asarray(X, dtype=np.float64)):
        p = np.isfinite(x)
        d2 = ((W[:, p] - x[p]) ** 2).sum(axis=1) * len(x) / p.sum()
        best = int(np.argmin(d2))
        near = (som.grid.distance(best, all_cells) <= radius + 1e-9) & np.isfinite(cell_z)
        if not near.any():
            continue
        d = d2[near]
        if temperature == 0:
            w = (d == d.min()).astype(float)
        else:
            w = np.exp(-(d - d.min()) / (2 * temperature * scale))
        out[i] = np.sum(w * cell_z[near]) / np.sum(w)
    return out


def smooth_problem(rng, n):
    X = rng.uniform(0, 1, size=(n, 2))
    z = 0.2 + 0.8 * X[:, 0] + 0.3 * np.sin(3 * X[:, 1])
    return X, z


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(5)
    X, z = smooth_problem(rng, 4000)
    som = SOM(10, 12, lattice="hex", n_epochs=10, random_state=2, dtype=np.float64).fit(X)
    cell_z = cell_statistics(som.predict(X), z, som.n_cells)["z_median"].to_numpy()
    return som, cell_z


@pytest.mark.parametrize("lattice,periodic", [("rect", False), ("hex", False), ("hex", True)])
@pytest.mark.parametrize("temperature,radius", [(0.25, 2.0), (1.0, 1.0), (0.0, 1.5)])
def test_matches_row_by_row_reference(lattice, periodic, temperature, radius):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(600, 3))
    som = SOM(
        6, 8, lattice=lattice, periodic=periodic, n_epochs=4, random_state=1, dtype=np.float64
    ).fit(X)
    cell_z = rng.uniform(0, 2, som.n_cells)
    cell_z[rng.random(som.n_cells) < 0.3] = np.nan  # unlabelled cells are skipped
    Xt = rng.normal(size=(97, 3))
    Xt[rng.random(Xt.shape) < 0.15] = np.nan  # missing features are skipped, as by assign
    Xt[np.isnan(Xt).all(axis=1), 0] = 0.5
    got = fuzzy_redshift(som, Xt, cell_z, temperature=temperature, radius=radius, chunk_size=13)
    want = reference(som, Xt, cell_z, temperature, radius, map_spacing2(som))
    np.testing.assert_allclose(got, want, rtol=1e-10, equal_nan=True)


def test_zero_temperature_is_the_cell_median(trained):
    som, cell_z = trained
    Xt, _ = smooth_problem(np.random.default_rng(6), 2000)
    cells = som.predict(Xt)
    labelled = np.isfinite(cell_z[cells])
    assert labelled.mean() > 0.9
    for T in (0.0, 1e-9):
        got = fuzzy_redshift(som, Xt, cell_z, temperature=T)
        np.testing.assert_array_equal(got[labelled], cell_z[cells][labelled])
    # radius 0: only the best cell, at any temperature
    got = fuzzy_redshift(som, Xt, cell_z, temperature=5.0, radius=0.0)
    np.testing.assert_array_equal(got, cell_z[cells])


def test_recovers_a_smooth_function_better_than_the_cell_median(trained):
    som, cell_z = trained
    Xt, zt = smooth_problem(np.random.default_rng(7), 3000)
    median_err = np.sqrt(np.nanmean((cell_z[som.predict(Xt)] - zt) ** 2))
    fuzzy_err = np.sqrt(np.nanmean((fuzzy_redshift(som, Xt, cell_z) - zt) ** 2))
    # interpolating between neighbouring cells removes most of the step at cell borders
    assert fuzzy_err < 0.75 * median_err, (fuzzy_err, median_err)
    # and far too hot a membership smooths the function away
    hot_err = np.sqrt(np.nanmean((fuzzy_redshift(som, Xt, cell_z, temperature=100.0) - zt) ** 2))
    assert hot_err > fuzzy_err


def test_no_labelled_cell_in_reach_and_empty_rows_give_nan(trained):
    som, cell_z = trained
    only = np.full(som.n_cells, np.nan)
    only[0] = 1.5
    X = np.array([som.weights_[0], som.weights_[-1], [np.nan, np.nan]])
    got = fuzzy_redshift(som, X, only, radius=1.0)
    assert got[0] == 1.5
    assert np.isnan(got[1]) and np.isnan(got[2])


def test_chi2_map_uses_the_errors():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 3))
    E = rng.uniform(0.1, 1.0, size=X.shape)
    som = SOM(5, 5, distance="chi2", n_epochs=3, random_state=0, dtype=np.float64).fit(X, E)
    cell_z = rng.uniform(0, 1, som.n_cells)
    cells = som.predict(X, E)
    np.testing.assert_array_equal(fuzzy_redshift(som, X, cell_z, E, temperature=0), cell_z[cells])
    soft = fuzzy_redshift(som, X, cell_z, E, temperature=1.0)
    assert np.isfinite(soft).all() and not np.array_equal(soft, cell_z[cells])
    with pytest.raises(ValueError, match="errors"):
        fuzzy_redshift(som, X, cell_z)


def test_bad_arguments(trained):
    som, cell_z = trained
    X = som.weights_[:3]
    with pytest.raises(ValueError, match="cell_z"):
        fuzzy_redshift(som, X, cell_z[:-1])
    with pytest.raises(ValueError, match="temperature"):
        fuzzy_redshift(som, X, cell_z, temperature=-1)
    with pytest.raises(ValueError, match="radius"):
        fuzzy_redshift(som, X, cell_z, radius=np.inf)
    with pytest.raises(ValueError, match="scale"):
        fuzzy_redshift(som, X, cell_z, scale=0.0)
