"""Deep/wide SOMPZ calibration on a synthetic case with known truth.

The mock: ``N_DEEP`` deep cells with Gaussian p(z|c) of known means; every galaxy's wide
cell is drawn from a known p(ĉ|c) (mostly the deep cell's "own" wide cell, sometimes a
neighbour), so the transfer function p(c|ĉ) is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from som.deepwide import (
    METHODS,
    assign_bins,
    deep_wide_nz,
    nz_ensemble,
    redshift_in_cells,
    spec_bin_fractions,
    transfer_matrix,
    wide_cell_redshift,
    wide_occupation,
)

N_DEEP, N_WIDE = 24, 8
MU = np.linspace(0.15, 1.6, N_DEEP)
SIGMA = 0.05
Z_EDGES = np.linspace(-0.5, 2.5, 61)
CELL_BINS = np.repeat([0, 1, 2], [3, 3, 2])  # wide cells → 3 tomographic bins


def _p_wide_given_deep() -> np.ndarray:
    """(N_DEEP, N_WIDE): 0.7 on the deep cell's own wide cell, 0.15 on each neighbour."""
    P = np.zeros((N_DEEP, N_WIDE))
    for c in range(N_DEEP):
        own = c * N_WIDE // N_DEEP
        for k, p in ((own - 1, 0.15), (own, 0.7), (own + 1, 0.15)):
            P[c, min(max(k, 0), N_WIDE - 1)] += p
    return P


P_WIDE = _p_wide_given_deep()
P_DEEP = np.full(N_DEEP, 1.0 / N_DEEP)
JOINT = P_DEEP[:, None] * P_WIDE  # p(c, ĉ)
TRUE_TRANSFER = (JOINT / JOINT.sum(axis=0)).T  # p(c|ĉ), (N_WIDE, N_DEEP)


@dataclass
class Galaxies:
    deep: np.ndarray
    wide: np.ndarray
    z: np.ndarray


def draw(rng: np.random.Generator, n: int) -> Galaxies:
    deep = rng.choice(N_DEEP, size=n, p=P_DEEP)
    u = rng.random(n)
    wide = (u[:, None] > np.cumsum(P_WIDE[deep], axis=1)).sum(axis=1)
    return Galaxies(deep, wide, rng.normal(MU[deep], SIGMA))


def spectra_per_cell(rng: np.random.Generator, per_cell: int) -> Galaxies:
    deep = np.repeat(np.arange(N_DEEP), per_cell)
    return Galaxies(deep, np.full(len(deep), -1), rng.normal(MU[deep], SIGMA))


def run(wide: Galaxies, transfer: Galaxies, spec: Galaxies, **kw):
    kw.setdefault("cell_bins", CELL_BINS)
    return deep_wide_nz(
        transfer.deep, transfer.wide, spec.deep, spec.z, wide.wide,
        N_DEEP, N_WIDE, Z_EDGES, **kw,
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------------------


def test_transfer_matrix_rows_sum_to_one_and_recover_the_known_transfer():
    t = draw(np.random.default_rng(1), 200_000)
    T = transfer_matrix(t.deep, t.wide, N_DEEP, N_WIDE)
    assert T.shape == (N_WIDE, N_DEEP)
    np.testing.assert_allclose(T.sum(axis=1), 1.0)
    np.testing.assert_allclose(T, TRUE_TRANSFER, atol=0.01)


def test_transfer_matrix_unreached_wide_cell_is_a_nan_row_and_weights_count():
    T = transfer_matrix([0, 1, 1, -1], [0, 0, 2, 1], 2, 3, weights=[1.0, 3.0, 1.0, 5.0])
    np.testing.assert_allclose(T[0], [0.25, 0.75])
    assert np.isnan(T[1]).all()  # only reached by an unassigned deep cell
    np.testing.assert_allclose(T[2], [0.0, 1.0])


def test_redshift_in_cells_is_unit_area_and_keeps_counts():
    cz = redshift_in_cells([0, 0, 0, 2], [0.1, 0.2, 0.25, 1.0], 3, [0.0, 0.5, 1.0, 1.5])
    widths = np.diff(cz.z_edges)
    np.testing.assert_allclose((cz.pz * widths).sum(axis=1), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(cz.n_spec, [3, 0, 1])
    np.testing.assert_allclose(cz.counts[0], [3, 0, 0])
    np.testing.assert_allclose(cz.mean_z[[0, 2]], [0.55 / 3, 1.0])
    assert np.isnan(cz.mean_z[1])
    np.testing.assert_array_equal(cz.has_spectra, [True, False, True])


def test_wide_occupation_carries_weights():
    np.testing.assert_allclose(wide_occupation([0, 1, 1, -1], 3), [1 / 3, 2 / 3, 0])
    np.testing.assert_allclose(
        wide_occupation([0, 1, 1], 3, weights=[2.0, 1.0, 1.0]), [0.5, 0.5, 0.0]
    )


def test_wide_cell_redshift_mean_and_mode_and_bins():
    cz = redshift_in_cells(np.arange(3), [0.25, 0.65, 1.45], 3, np.linspace(0, 2, 11))
    T = np.array([[1.0, 0.0, 0.0], [0.0, 0.7, 0.3], [np.nan] * 3])
    mean = wide_cell_redshift(T, cz, "mean")
    np.testing.assert_allclose(mean[:2], [0.25, 0.7 * 0.65 + 0.3 * 1.45])
    assert np.isnan(mean[2])
    np.testing.assert_allclose(wide_cell_redshift(T, cz, "mode")[:2], [0.3, 0.7])
    np.testing.assert_array_equal(assign_bins(mean, [0.0, 0.5, 1.0]), [0, 1, -1])
    with pytest.raises(ValueError, match="statistic"):
        wide_cell_redshift(T, cz, "median")


# --------------------------------------------------------------------------------------
# n(z) per bin against truth
# --------------------------------------------------------------------------------------


def _analytic_truth() -> np.ndarray:
    """Mean z per bin of the mock's population: Σ_ĉ∈b p(ĉ) Σ_c p(c|ĉ) μ_c / p(b)."""
    p_wide = JOINT.sum(axis=0)
    out = []
    for b in range(3):
        sel = np.equal(CELL_BINS, b)
        out.append(p_wide[sel] @ TRUE_TRANSFER[sel] @ MU / p_wide[sel].sum())
    return np.array(out)


def test_complete_spectroscopy_and_exact_transfer_recover_truth_within_requirement():
    rng = np.random.default_rng(2)
    wide = draw(rng, 60_000)
    spec = spectra_per_cell(rng, 500)  # complete: every deep cell densely observed
    res = run(wide, wide, spec, truth_z=wide.z)  # the exact transfer: the galaxies' own pairs
    assert res.passes.all(), res.delta_mean_z
    assert np.all(np.abs(res.mean_z - _analytic_truth()) <= 0.002 * (1 + _analytic_truth()))
    np.testing.assert_allclose((res.nz * np.diff(Z_EDGES)).sum(axis=1), 1.0)
    np.testing.assert_allclose(res.no_spec_fraction, 0.0)
    np.testing.assert_array_equal(res.n_galaxies, np.bincount(CELL_BINS[wide.wide]))
    # a histogram of the bin's true redshifts has the same shape
    for b in range(3):
        h, _ = np.histogram(wide.z[CELL_BINS[wide.wide] == b], Z_EDGES, density=True)
        assert np.abs(res.nz[b] - h).sum() * (Z_EDGES[1] - Z_EDGES[0]) < 0.1
    d = res.to_dict()
    assert d["passes"] == [True, True, True] and len(d["nz"]) == 3


def test_independent_transfer_catalogue_recovers_truth():
    rng = np.random.default_rng(3)
    res = run(draw(rng, 40_000), draw(rng, 200_000), spectra_per_cell(rng, 500))
    truth = _analytic_truth()
    assert np.all(np.abs(res.mean_z - truth) <= 0.002 * (1 + truth)), res.mean_z - truth


def test_bin_conditioned_spectra_reproduce_the_sample_exactly_with_weights():
    """Spectra = the wide galaxies themselves, each a member of its own bin: the deep/wide
    algebra must give the bin's weighted mean true redshift to rounding."""
    rng = np.random.default_rng(4)
    wide = draw(rng, 20_000)
    w = rng.uniform(0.2, 2.0, len(wide.z))
    member = np.eye(3)[CELL_BINS[wide.wide]]
    kw = dict(wide_weights=w, transfer_weights=w, spec_weights=w, truth_z=wide.z)
    res = deep_wide_nz(
        wide.deep, wide.wide, wide.deep, wide.z, wide.wide, N_DEEP, N_WIDE, Z_EDGES,
        cell_bins=CELL_BINS, spec_bin_fractions=member, **kw,
    )  # fmt: skip
    np.testing.assert_allclose(res.delta_mean_z, 0.0, atol=1e-12)


def test_per_galaxy_photo_z_bins_condition_the_transfer_on_the_bin():
    """Bins from a per-galaxy photo-z split a wide cell between bins; the transfer objects'
    own bins condition p(c|ĉ,b), and with bin-conditioned spectra the result is exact."""
    rng = np.random.default_rng(5)
    wide = draw(rng, 20_000)
    photo_z = wide.z + rng.normal(0, 0.1, len(wide.z))
    bins = assign_bins(photo_z, [-1.0, 0.6, 1.1, 3.0])
    member = np.eye(3)[bins]
    res = deep_wide_nz(
        wide.deep, wide.wide, wide.deep, wide.z, wide.wide, N_DEEP, N_WIDE, Z_EDGES,
        wide_bins=bins, transfer_bins=bins, n_bins=3, spec_bin_fractions=member,
        truth_z=wide.z,
    )  # fmt: skip
    np.testing.assert_allclose(res.delta_mean_z, 0.0, atol=1e-12)
    # per-galaxy bins equal to the cells' bins give the cell-binned answer
    cb = CELL_BINS[wide.wide]
    a = deep_wide_nz(
        wide.deep, wide.wide, wide.deep, wide.z, wide.wide, N_DEEP, N_WIDE, Z_EDGES,
        wide_bins=cb, transfer_bins=cb, n_bins=3,
    )  # fmt: skip
    b = run(wide, wide, wide)
    np.testing.assert_allclose(a.nz, b.nz)


# --------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------


def _weighted_case(rng):
    wide, transfer = draw(rng, 20_000), draw(rng, 40_000)
    spec = spectra_per_cell(rng, 20)
    return wide, transfer, spec


def test_doubling_every_weight_changes_nothing_but_the_bin_weights():
    rng = np.random.default_rng(6)
    wide, transfer, spec = _weighted_case(rng)
    ww, tw, sw = (rng.uniform(0.5, 1.5, len(g.z)) for g in (wide, transfer, spec))
    a = run(wide, transfer, spec, wide_weights=ww, transfer_weights=tw, spec_weights=sw)
    b = run(wide, transfer, spec, wide_weights=2 * ww, transfer_weights=2 * tw, spec_weights=2 * sw)
    np.testing.assert_allclose(a.nz, b.nz)
    np.testing.assert_allclose(a.mean_z, b.mean_z)
    np.testing.assert_allclose(a.n_eff, b.n_eff)
    np.testing.assert_allclose(b.weight, 2 * a.weight)


def test_weighting_one_bins_galaxies_changes_only_that_bin():
    rng = np.random.default_rng(7)
    wide, transfer, spec = _weighted_case(rng)
    base = run(wide, transfer, spec)
    np.testing.assert_allclose(base.n_eff, base.n_galaxies)  # unit weights: N_eff = N
    # up-weight the high-redshift deep cells among bin 1's galaxies
    w = np.ones(len(wide.z))
    in_bin1 = CELL_BINS[wide.wide] == 1
    w[in_bin1 & (wide.deep >= N_DEEP // 2)] = 4.0
    res = run(wide, transfer, spec, wide_weights=w)
    np.testing.assert_allclose(res.nz[[0, 2]], base.nz[[0, 2]])
    assert res.mean_z[1] > base.mean_z[1] + 0.01
    sw, sw2 = w[in_bin1].sum(), (w[in_bin1] ** 2).sum()
    np.testing.assert_allclose(res.n_eff[1], sw**2 / sw2)
    assert res.n_eff[1] < res.n_galaxies[1]


def test_cell_histograms_are_normalised_before_weighting():
    """Repeating one cell's spectra ten times must not change the n(z)."""
    rng = np.random.default_rng(8)
    wide, transfer, spec = _weighted_case(rng)
    heavy = spec.deep == 10
    more = Galaxies(
        np.concatenate([spec.deep] + [spec.deep[heavy]] * 9),
        np.concatenate([spec.wide] + [spec.wide[heavy]] * 9),
        np.concatenate([spec.z] + [spec.z[heavy]] * 9),
    )
    np.testing.assert_allclose(run(wide, transfer, more).nz, run(wide, transfer, spec).nz)


def test_cells_without_spectra_are_excluded_and_their_share_reported():
    rng = np.random.default_rng(9)
    wide, transfer, spec = _weighted_case(rng)
    keep = spec.deep != 4
    res = run(wide, transfer, Galaxies(spec.deep[keep], spec.wide[keep], spec.z[keep]))
    full = run(wide, transfer, spec)
    np.testing.assert_allclose(res.no_spec_fraction, full.deep_occupation[:, 4])
    assert res.no_spec_fraction[0] > 0.01
    np.testing.assert_allclose((res.nz * np.diff(Z_EDGES)).sum(axis=1), 1.0)


# --------------------------------------------------------------------------------------
# ensembles
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dirichlet", "bootstrap_spec"])
def test_ensemble_68_percent_interval_covers_the_truth_about_68_percent(method):
    """Over 30 independent small redshift samples (15 spectra per deep cell; wide sample and
    exact transfer large enough to be noise-free), the ensemble's 68% interval of each bin's
    mean redshift contains the truth Σ_c p(c|b) μ_c in a binomially consistent fraction."""
    rng = np.random.default_rng(10)
    hits = trials = 0
    for _ in range(30):
        wide = draw(rng, 30_000)
        spec = spectra_per_cell(rng, 15)
        ens = nz_ensemble(
            wide.deep, wide.wide, spec.deep, spec.z, wide.wide, N_DEEP, N_WIDE, Z_EDGES,
            cell_bins=CELL_BINS, n_realisations=200, method=method, random_state=rng,
        )  # fmt: skip
        truth = ens.fiducial.deep_occupation @ MU
        lo, hi = ens.mean_z_interval(0.68)
        hits += int(((lo <= truth) & (truth <= hi)).sum())
        trials += len(truth)
    lo_ok, hi_ok = stats.binom.ppf([0.0005, 0.9995], trials, 0.68)
    assert lo_ok <= hits <= hi_ok, (hits, trials)


def test_ensemble_summaries_and_reproducibility():
    rng = np.random.default_rng(11)
    wide, transfer, spec = _weighted_case(rng)
    args = (transfer.deep, transfer.wide, spec.deep, spec.z, wide.wide, N_DEEP, N_WIDE, Z_EDGES)
    for method in METHODS:
        a = nz_ensemble(*args, cell_bins=CELL_BINS, n_realisations=20, method=method,
                        random_state=3)  # fmt: skip
        b = nz_ensemble(*args, cell_bins=CELL_BINS, n_realisations=20, method=method,
                        random_state=3)  # fmt: skip
        np.testing.assert_array_equal(a.nz, b.nz)
        assert a.nz.shape == (20, 3, len(Z_EDGES) - 1)
        assert np.all(a.mean_z_std > 0)
        np.testing.assert_allclose(a.shift, a.mean_z - a.fiducial.mean_z)
        np.testing.assert_allclose(a.stretch, a.width / a.fiducial.width)
        np.testing.assert_allclose((a.nz * np.diff(Z_EDGES)).sum(axis=2), 1.0)
        s = a.summary()
        assert s["method"] == method and len(s["mean_z_std"]) == 3
    # bin-conditioned spectra (weighted) go through every method
    frac = rng.random((len(spec.z), 3))
    for method in METHODS:
        e = nz_ensemble(
            *args, cell_bins=CELL_BINS, n_realisations=20, method=method,
            spec_bin_fractions=frac, spec_weights=frac[:, 0], random_state=6,
        )  # fmt: skip
        assert np.all(np.isfinite(e.mean_z)) and np.all(e.mean_z_std > 0)
        np.testing.assert_allclose(e.mean_z.mean(axis=0), e.fiducial.mean_z, atol=0.02)
    # sample-variance inflation widens the Dirichlet spread by about sqrt(λ)
    kw = dict(cell_bins=CELL_BINS, n_realisations=300, method="dirichlet", random_state=4)
    s1 = nz_ensemble(*args, **kw).mean_z_std
    s4 = nz_ensemble(*args, sample_variance=4.0, **kw).mean_z_std
    np.testing.assert_allclose(s4 / s1, 2.0, rtol=0.25)
    # bootstrap over deep galaxies with their injections grouped by galaxy id
    ids = np.arange(len(transfer.z)) // 5
    e = nz_ensemble(*args, cell_bins=CELL_BINS, n_realisations=20, method="bootstrap_deep",
                    transfer_ids=ids, random_state=5)  # fmt: skip
    assert np.all(e.mean_z_std > 0)


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------


def test_bad_input_is_named():
    rng = np.random.default_rng(12)
    wide, transfer, spec = _weighted_case(rng)
    with pytest.raises(ValueError, match="transfer_deep_cells out of range"):
        run(wide, Galaxies(transfer.deep + N_DEEP, transfer.wide, transfer.z), spec)
    with pytest.raises(ValueError, match="wide_cells out of range"):
        transfer_matrix([0], [N_WIDE], N_DEEP, N_WIDE)
    with pytest.raises(ValueError, match="tomographic bin 3 has no wide galaxies"):
        run(wide, transfer, spec, cell_bins=CELL_BINS, n_bins=4)
    with pytest.raises(ValueError, match="wide_weights must be finite and >= 0"):
        run(wide, transfer, spec, wide_weights=-np.ones(len(wide.z)))
    with pytest.raises(ValueError, match="transfer_weights are all zero"):
        run(wide, transfer, spec, transfer_weights=np.zeros(len(transfer.z)))
    with pytest.raises(ValueError, match="spec_weights are all zero"):
        redshift_in_cells(spec.deep, spec.z, N_DEEP, Z_EDGES, weights=np.zeros(len(spec.z)))
    with pytest.raises(ValueError, match="wide_weights are all zero"):
        wide_occupation(wide.wide, N_WIDE, weights=np.zeros(len(wide.z)))
    with pytest.raises(ValueError, match="n_deep must be a positive integer"):
        transfer_matrix([0], [0], 0, N_WIDE)
    with pytest.raises(ValueError, match="give cell_bins, or both"):
        run(wide, transfer, spec, cell_bins=None)
    with pytest.raises(ValueError, match="cell_bins must hold integer cell indices"):
        run(wide, transfer, spec, cell_bins=np.full(N_WIDE, np.nan))
    with pytest.raises(ValueError, match="cell_bins puts no wide cell in any bin"):
        run(wide, transfer, spec, cell_bins=np.full(N_WIDE, -1))
    with pytest.raises(ValueError, match="spec_bin_fractions must have shape"):
        run(wide, transfer, spec, spec_bin_fractions=np.ones((3, 3)))
    with pytest.raises(ValueError, match="method must be one of"):
        nz_ensemble(transfer.deep, transfer.wide, spec.deep, spec.z, wide.wide, N_DEEP,
                    N_WIDE, Z_EDGES, cell_bins=CELL_BINS, method="jackknife")  # fmt: skip
    with pytest.raises(ValueError, match="sample_variance"):
        nz_ensemble(transfer.deep, transfer.wide, spec.deep, spec.z, wide.wide, N_DEEP,
                    N_WIDE, Z_EDGES, cell_bins=CELL_BINS, sample_variance=0.5)  # fmt: skip


def test_wide_weight_without_transfer_is_an_error_or_excluded_and_reported():
    rng = np.random.default_rng(13)
    wide, transfer, spec = _weighted_case(rng)
    keep = transfer.wide != 7
    cut = Galaxies(transfer.deep[keep], transfer.wide[keep], transfer.z[keep])
    with pytest.raises(ValueError, match="no transfer object, e.g. wide cell 7 in bin 2"):
        run(wide, cut, spec)
    res = run(wide, cut, spec, allow_missing_transfer=True)
    share = (wide.wide == 7).sum() / (CELL_BINS[wide.wide] == 2).sum()
    np.testing.assert_allclose(res.no_transfer_fraction, [0.0, 0.0, share])
    np.testing.assert_allclose((res.nz * np.diff(Z_EDGES)).sum(axis=1), 1.0)


def test_spec_bin_fractions_from_injections_condition_p_z_on_the_bin():
    # galaxy 10: 3 injections, 2 in bin 0, 1 undetected; galaxy 11: 2 in bin 1
    f = spec_bin_fractions([11, 10, 10], [10, 10, 10, 11, 11], [0, 0, -1, 1, 1], 2)
    np.testing.assert_allclose(f, [[0, 1], [2 / 3, 0], [2 / 3, 0]])
    with pytest.raises(ValueError, match="spec_ids: 1 spectra have no injection"):
        spec_bin_fractions([10, 12], [10], [0], 2)
    # A mock: each redshift galaxy injected 20 times with its own photo-z noise; with the
    # injections' bins conditioning both p(c|ĉ,b) and p(z|c,b) the truth is recovered.
    rng = np.random.default_rng(14)
    gal = draw(rng, 3_000)
    ids = np.repeat(np.arange(len(gal.z)), 20)
    # each injection's wide cell drawn from its galaxy's deep cell
    u = rng.random(len(ids))
    inj_wide = (u[:, None] > np.cumsum(P_WIDE[gal.deep[ids]], axis=1)).sum(axis=1)
    edges = [-1.0, 0.6, 1.1, 3.0]
    inj_bins = assign_bins(gal.z[ids] + rng.normal(0, 0.1, len(ids)), edges)
    frac = spec_bin_fractions(np.arange(len(gal.z)), ids, inj_bins, 3)
    wide = draw(rng, 40_000)
    wide_bins = assign_bins(wide.z + rng.normal(0, 0.1, len(wide.z)), edges)
    kw = dict(wide_bins=wide_bins, transfer_bins=inj_bins, n_bins=3, truth_z=wide.z)
    args = (gal.deep[ids], inj_wide, gal.deep, gal.z, wide.wide, N_DEEP, N_WIDE, Z_EDGES)
    cond = deep_wide_nz(*args, spec_bin_fractions=frac, **kw)
    plain = deep_wide_nz(*args, **kw)
    assert np.all(np.abs(cond.delta_mean_z) < np.abs(plain.delta_mean_z))
    assert cond.passes.all(), cond.delta_mean_z  # here: |Δ<z>| 0.0013, 0.0025, 0.0032
    assert not plain.passes.all()  # unconditioned p(z|c): 0.0064 and 0.0081 fail


@pytest.mark.parametrize("fmt", ["fits", "sacc"])
def test_a_deep_wide_ensemble_is_written_and_read_back_in_the_pipelines_formats(fmt, tmp_path):
    from som import nz_formats

    rng = np.random.default_rng(12)
    wide = draw(rng, 5_000)
    spec = spectra_per_cell(rng, 10)
    ens = nz_ensemble(
        wide.deep, wide.wide, spec.deep, spec.z, wide.wide, N_DEEP, N_WIDE, Z_EDGES,
        cell_bins=CELL_BINS, n_realisations=5, method="dirichlet", random_state=1,
    )  # fmt: skip
    written = ens.to_nz_ensemble()
    path = nz_formats.write(written, tmp_path / f"nz.{fmt}", fmt)[0]
    back = nz_formats.read(path, fmt)
    np.testing.assert_allclose(back.fiducial, ens.fiducial.nz, rtol=1e-12)
    np.testing.assert_allclose(back.realisations, ens.nz, rtol=1e-12)
    np.testing.assert_allclose(back.z_edges, ens.fiducial.z_edges)
