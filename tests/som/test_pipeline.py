"""End to end on a small COSMOS-like mock: mock -> colours -> map -> cells -> coverage ->
gaps -> targets -> n(z) of a tomographic bin (Masters et al. 2015, arXiv:1509.03318).

Each step feeds the next, and the assertions are the science the pipeline is for: the map
orders galaxies in redshift, its cells are narrow in redshift, real spectroscopy leaves gaps
at faint magnitudes and high redshift, targets go to the largest gaps, and n(z) through the
map recovers the truth when spectroscopy is complete but not with the mock's real selection.

One mock and one map are built per module (20,000 galaxies, 15 x 20 cells, 5 epochs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from som import SOM
from som.calibration import (
    MEAN_Z_REQUIREMENT,
    cell_statistics,
    coverage_summary,
    covered_cells,
    gaps,
    nz,
    select_targets,
)
from som.mock import make_mock
from som.photometry import ColourFeatures

BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")
I_MAX = 24.5  # weak-lensing-like depth of the photometric sample
ROWS, COLS = 15, 20
N_CELLS = ROWS * COLS
# A tomographic bin of cells: those whose median reference photo-z lies in [0.6, 0.9).
BIN_LO, BIN_HI = 0.6, 0.9
NZ_BINS = np.round(np.arange(0.0, 4.0 + 1e-9, 0.05), 10)


@dataclass
class Pipeline:
    phot: pd.DataFrame  # the photometric sample (i < I_MAX)
    som: SOM
    cells: np.ndarray  # (n_phot,) cell of every galaxy
    distance: np.ndarray  # (n_phot,) distance to the cell's weight vector
    spec_cells: np.ndarray  # (n_spec,) cell of every spectrum of the mock
    spec_z: np.ndarray  # (n_spec,) its spectroscopic redshift
    covered: np.ndarray  # (N_CELLS,) at least one spectrum
    zphot_stats: pd.DataFrame  # cell_statistics of the reference photo-z
    ztrue_stats: pd.DataFrame  # cell_statistics of the true redshift


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    mock = make_mock(20_000, seed=3)
    phot = mock[mock["mag_i"].to_numpy() < I_MAX].reset_index(drop=True)
    feats = ColourFeatures(bands=BANDS)
    X, _ = feats.fit_transform(phot)
    som = SOM(ROWS, COLS, n_epochs=5, random_state=0).fit(X)
    a = som.assign(X, allow_empty=True)
    cells = a.cell.astype(np.int64)

    # The spectra are placed on the map by their own colours, as a survey's would be.
    spec = mock[np.isfinite(mock["z_spec"].to_numpy())].reset_index(drop=True)
    Xs, _ = feats.transform(spec)
    spec_cells = som.assign(Xs, allow_empty=True).cell.astype(np.int64)
    return Pipeline(
        phot=phot,
        som=som,
        cells=cells,
        distance=a.distance,
        spec_cells=spec_cells,
        spec_z=spec["z_spec"].to_numpy(),
        covered=covered_cells(spec_cells, N_CELLS),
        zphot_stats=cell_statistics(cells, phot["z_phot"].to_numpy(), N_CELLS),
        ztrue_stats=cell_statistics(cells, phot["z_true"].to_numpy(), N_CELLS),
    )


def test_every_galaxy_lands_in_a_cell_and_most_cells_are_used(pipe):
    # u is missing for ~2% of the sample; the masked distance still places those galaxies.
    assert np.isnan(pipe.phot["mag_u"]).any()
    assert (pipe.cells >= 0).all()
    assert (pipe.zphot_stats["count"] > 0).mean() > 0.95


def test_neighbouring_cells_have_similar_redshifts(pipe):
    """A colour map is a redshift map: each cell's median photo-z follows its neighbours'."""
    med = pipe.zphot_stats["z_median"].to_numpy()
    i, j = pipe.som.grid.neighbour_pairs(1.0)
    ok = np.isfinite(med[i]) & np.isfinite(med[j])
    n_nb = np.bincount(i[ok], minlength=N_CELLS)
    nb_mean = np.bincount(i[ok], weights=med[j[ok]], minlength=N_CELLS) / np.maximum(n_nb, 1)
    use = np.isfinite(med) & (n_nb > 0)
    rho = spearmanr(med[use], nb_mean[use]).statistic
    assert rho > 0.8, f"Spearman(cell median z, neighbours' mean median z) = {rho:.3f}"


def test_cells_are_narrow_in_redshift(pipe):
    """A galaxy's cell pins its redshift far better than the sample's n(z) does."""
    st = pipe.ztrue_stats
    occ = st["count"].to_numpy()
    used = occ > 0
    sigma_cell = np.average(st["z_std"].to_numpy()[used], weights=occ[used])
    sigma_all = pipe.phot["z_true"].std(ddof=0)
    assert sigma_cell < 0.3 * sigma_all, (sigma_cell, sigma_all)
    assert np.nanmedian(st["z_nmad"]) < 0.15 * sigma_all


def test_real_spectroscopy_leaves_gaps_at_faint_magnitudes_and_high_redshift(pipe):
    phot, cells, covered = pipe.phot, pipe.cells, pipe.covered
    summary = coverage_summary(
        cells,
        covered,
        mags=phot["mag_i"].to_numpy(),
        mag_bins=[17.0, 22.5, 23.5, I_MAX],
        z=phot["z_true"].to_numpy(),
        z_bins=[0.0, 1.0, 4.0],
    )
    assert 0.2 < summary.fraction_galaxies_covered < 0.85
    assert summary.fraction_cells_covered < 0.85

    in_cov = covered[cells]
    z = phot["z_true"].to_numpy()
    i_mag = phot["mag_i"].to_numpy()
    assert z[~in_cov].mean() > z[in_cov].mean() + 0.2
    assert i_mag[~in_cov].mean() > i_mag[in_cov].mean() + 0.5
    by_mag = summary.by_magnitude["fraction_covered"].to_numpy()
    assert np.all(np.diff(by_mag) < 0), by_mag  # coverage falls with every magnitude bin
    by_z = summary.by_redshift["fraction_covered"].to_numpy()
    assert by_z[0] > by_z[1] + 0.2, by_z

    g = gaps(cells, covered, N_CELLS, cell_stats=pipe.ztrue_stats)
    assert (~covered[g["cell"]]).all() and (g["n_galaxies"] > 0).all()
    assert (np.diff(g["n_galaxies"]) <= 0).all()
    # the gaps hold exactly the part of the sample coverage misses
    assert g["cumulative_fraction"].iloc[-1] == pytest.approx(
        1 - summary.fraction_galaxies_covered, abs=1e-12
    )
    # the largest gaps sit at higher redshift than the typical covered galaxy
    top = g.head(20)
    assert np.average(top["z_median"], weights=top["n_galaxies"]) > np.median(z[in_cov])


def test_targets_fill_the_largest_gaps_one_per_cell(pipe):
    phot = pipe.phot
    sources = phot.assign(cell=pipe.cells, distance=pipe.distance)
    mag_limit = 24.0
    t = select_targets(
        sources, pipe.covered, pipe.ztrue_stats, budget_targets=30, mag_limit=mag_limit
    )
    assert len(t) == 30
    assert (~pipe.covered[t["cell"]]).all()
    assert t["cell"].is_unique
    assert (t["mag_i"] <= mag_limit).all()
    assert (np.diff(t["cell_n_galaxies"]) <= 0).all()
    # The cells are the gaps in their order, skipping gaps with no galaxy bright enough.
    eligible = set(pipe.cells[phot["mag_i"].to_numpy() <= mag_limit])
    g = gaps(pipe.cells, pipe.covered, N_CELLS)
    expected = [c for c in g["cell"] if c in eligible][:30]
    assert t["cell"].tolist() == expected
    # Within its cell each target is the eligible galaxy closest to the weight vector.
    ok = sources[sources["mag_i"] <= mag_limit]
    closest = ok.groupby("cell")["distance"].min()
    np.testing.assert_allclose(t["distance"], closest.loc[t["cell"]].to_numpy())
    # and the targets point where spectroscopy is missing: beyond the covered redshifts
    z_cov = phot["z_true"].to_numpy()[pipe.covered[pipe.cells]]
    assert t["z_expected"].median() > np.median(z_cov)


def _bin_members(pipe) -> np.ndarray:
    """Galaxies of the bin of cells whose median reference photo-z is in [BIN_LO, BIN_HI)."""
    med = pipe.zphot_stats["z_median"].to_numpy()[pipe.cells]
    members = (med >= BIN_LO) & (med < BIN_HI)
    assert members.sum() > 1000
    return members


def test_nz_recovers_the_truth_with_complete_spectroscopy(pipe):
    members = _bin_members(pipe)
    z_true = pipe.phot["z_true"].to_numpy()
    # every galaxy of the photometric sample has its true redshift as a "spectrum"
    r = nz(
        pipe.cells[members],
        N_CELLS,
        pipe.cells,
        z_true,
        NZ_BINS,
        n_boot=50,
        random_state=0,
        truth_z=z_true[members],
    )
    assert np.sum(r.nz * np.diff(r.bins)) == pytest.approx(1.0, abs=1e-12)
    assert r.uncovered_fraction == 0.0
    assert abs(r.delta_mean_z) <= MEAN_Z_REQUIREMENT * (1 + r.truth_mean_z)
    assert r.passes
    # the bin is a union of cells, so the map's n(z) is the bin's own histogram
    truth_hist, _ = np.histogram(z_true[members], bins=NZ_BINS, density=True)
    np.testing.assert_allclose(r.nz, truth_hist, atol=1e-9)
    assert np.isfinite(r.mean_z_err) and r.mean_z_err > 0


def test_nz_weights_cells_by_the_sample_not_by_the_spectra(pipe):
    """Bins cut on each galaxy's own photo-z split cells: the estimate is then
    sum_c n_bc <z>_c / n_b over the cells' spectra, which is not the bin's true mean."""
    z_true = pipe.phot["z_true"].to_numpy()
    z_phot = pipe.phot["z_phot"].to_numpy()
    members = (z_phot >= BIN_LO) & (z_phot < BIN_HI)
    r = nz(pipe.cells[members], N_CELLS, pipe.cells, z_true, NZ_BINS, n_boot=0)
    frame = pd.DataFrame({"cell": pipe.cells, "z": z_true})
    cell_mean = frame.groupby("cell")["z"].mean()
    n_bc = pd.Series(pipe.cells[members]).value_counts()
    expected = float((n_bc * cell_mean.loc[n_bc.index]).sum() / n_bc.sum())
    assert r.mean_z == pytest.approx(expected, abs=1e-12)
    floor = expected - z_true[members].mean()
    print(f"\nbias floor of a z_phot-cut bin with complete spectroscopy: {floor:+.4f}")


def test_nz_with_the_mocks_real_spectroscopic_selection(pipe):
    members = _bin_members(pipe)
    z_true = pipe.phot["z_true"].to_numpy()
    common = dict(
        sample_cells=pipe.cells[members],
        n_cells=N_CELLS,
        spec_cells=pipe.spec_cells,
        spec_z=pipe.spec_z,
        bins=NZ_BINS,
        n_boot=50,
        random_state=0,
        truth_z=z_true[members],
    )
    full = nz(
        pipe.cells[members],
        N_CELLS,
        pipe.cells,
        z_true,
        NZ_BINS,
        n_boot=0,
        truth_z=z_true[members],
    )
    real = nz(**common)
    gold = nz(**common, gold=True)

    assert np.sum(real.nz * np.diff(real.bins)) == pytest.approx(1.0, abs=1e-12)
    for v in (real.mean_z, real.mean_z_err, real.delta_mean_z, gold.delta_mean_z):
        assert np.isfinite(v)
    assert 0 < real.uncovered_fraction < 1
    assert abs(real.delta_mean_z) > abs(full.delta_mean_z)
    # gold keeps exactly the members in covered cells
    in_cov = pipe.covered[pipe.cells[members]]
    assert gold.n_sample == int(in_cov.sum())
    assert gold.truth_mean_z == pytest.approx(z_true[members][in_cov].mean(), abs=1e-12)
    print(
        f"\nbin {BIN_LO}-{BIN_HI}: real selection dz = {real.delta_mean_z:+.4f} "
        f"+- {real.mean_z_err:.4f} (req {real.requirement:.4f}, uncovered "
        f"{real.uncovered_fraction:.2f}); gold dz = {gold.delta_mean_z:+.4f} "
        f"(kept {gold.n_sample}/{real.n_sample}); complete spectroscopy dz = "
        f"{full.delta_mean_z:+.1e}"
    )
