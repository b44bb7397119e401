"""Deep/wide calibrations as a service resource (/v1/calibrations), on SQLite and PostgreSQL,
against the library's own ``DeepWideCalibration`` on the same mock."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from som import nz_formats
from som.deepwide import METHODS, DeepWideCalibration
from som.deepwide.pipeline import BINNINGS
from som.mock import make_mock, observe_wide, transfer_catalogue
from som.plotting import PNG_SIGNATURE
from som.vocabulary import EnsembleMethod, TomoBinning, choices

DEEP_BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")
WIDE_BANDS = ("u_lsst", "g_lsst", "r_lsst", "i_lsst", "z_lsst", "y_lsst")
BIN_EDGES = [0.0, 0.5, 0.9, 1.5]
Z_EDGES = [round(0.05 * k, 2) for k in range(61)]  # 0 .. 3
DEEP_SHAPE, WIDE_SHAPE, EPOCHS = (6, 6), (5, 5), 5
N_INJECTIONS = 4


def _phot(frame: pd.DataFrame, bands, prefix: str = "", extra=("ra", "dec")) -> pd.DataFrame:
    cols = {"id": frame["id"]}
    for c in extra:
        if c in frame.columns:
            cols[c] = frame[c]
    for b in bands:
        cols[f"mag_{b}"] = frame[f"{prefix}mag_{b}"]
        cols[f"magerr_{b}"] = frame[f"{prefix}magerr_{b}"]
    return pd.DataFrame(cols)


@pytest.fixture(scope="module")
def mock():
    """A deep field (with spectra), the same galaxies seen by an LSST-like wide survey, and
    a Balrog-like transfer catalogue; the spectra in two halves (the second arrives later)."""
    deep = make_mock(1500, seed=3, truth=True)
    wide = observe_wide(deep, "lsst", seed=4)
    transfer = transfer_catalogue(deep, "lsst", n_injections=N_INJECTIONS, seed=5)
    has_z = np.flatnonzero(np.isfinite(deep["z_spec"].to_numpy()))
    first = np.zeros(len(deep), bool)
    first[has_z[: len(has_z) // 2]] = True
    second = np.zeros(len(deep), bool)
    second[has_z[len(has_z) // 2 :]] = True
    return {"deep": deep, "wide": wide, "transfer": transfer, "first": first, "second": second}


def _spectra(deep: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    rows = deep[mask]
    out = _phot(rows, DEEP_BANDS)
    out.insert(3, "z_spec", rows["z_spec"].to_numpy())
    return out


def _library(mock, spec_mask, **options) -> DeepWideCalibration:
    """The library's end-to-end calibration on the same catalogues and map settings."""
    return DeepWideCalibration(
        DEEP_BANDS,
        WIDE_BANDS,
        deep_shape=DEEP_SHAPE,
        wide_shape=WIDE_SHAPE,
        lattice="hex",
        n_epochs=EPOCHS,
        random_state=0,
        bin_edges=BIN_EDGES,
        z_edges=Z_EDGES,
        **options,
    ).fit(mock["deep"], mock["wide"], mock["transfer"], spec_mask)


@pytest.fixture
def service(mock, ingest, train_map):
    """The mock in the ledger: the deep field, the wide sample, the transfer catalogue's
    wide side (source_id = the deep galaxy injected), the first half of the spectra, and a
    deep and a wide map trained as the library trains them."""
    deep_id = ingest(
        "photometric", _phot(mock["deep"], DEEP_BANDS, extra=("ra", "dec")), "deep.csv"
    )["id"]
    wide_id = ingest("photometric", _phot(mock["wide"], WIDE_BANDS), "wide.csv")["id"]
    transfer_id = ingest(
        "photometric", _phot(mock["transfer"], WIDE_BANDS, "wide_", extra=()), "transfer.csv"
    )["id"]
    spec_id = ingest("spectroscopic", _spectra(mock["deep"], mock["first"]), "spec1.csv")["id"]
    options = {"lattice": "hex", "n_epochs": EPOCHS}
    deep_map = train_map(deep_id, n_rows=6, n_cols=6, random_state=0, **options)
    # the library seeds the wide map with random_state + 1
    wide_map = train_map(wide_id, n_rows=5, n_cols=5, random_state=1, **options)
    return {
        "deep": deep_id,
        "wide": wide_id,
        "transfer": transfer_id,
        "spec": spec_id,
        "deep_map": deep_map,
        "wide_map": wide_map,
    }


def _body(service, **overrides):
    body = {
        "deep_map_id": service["deep_map"],
        "wide_map_id": service["wide_map"],
        "deep_catalogue_id": service["deep"],
        "wide_catalogue_id": service["wide"],
        "transfer_catalogue_id": service["transfer"],
        "bin_edges": BIN_EDGES,
        "z_edges": Z_EDGES,
        "n_realisations": 20,
        "ensemble_method": "dirichlet",
    }
    return {**body, **overrides}


def _contract():
    """The strict response check of test_openapi_contract (its fuzzer meets no calibration:
    it seeds one map, and a calibration needs two), applied to real answers here."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("test_openapi_contract.py")
    spec = importlib.util.spec_from_file_location("somcal_contract_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conforms(client, url: str, template: str, params=None) -> dict:
    check = _contract()
    r = client.get(url, params=params)
    assert r.status_code == 200, r.text
    spec = check.strict_schema(client.get("/openapi.json").json())
    why = check.nonconforming(spec, "get", template, 200, r.headers["content-type"], r.content)
    assert why is None, why
    assert "NaN" not in r.text
    return r.json()


def _computed(client, wait_for_job, cal_id: int) -> dict:
    """The calibration once its latest job has ended."""
    job_id = client.get(f"/v1/calibrations/{cal_id}").json()["job_id"]
    job = wait_for_job(client, job_id)
    assert job["kind"] == "calibrate_deepwide"
    return client.get(f"/v1/calibrations/{cal_id}").json()


def test_vocabulary_names_the_library_choices():
    assert choices(TomoBinning) == BINNINGS
    assert choices(EnsembleMethod) == METHODS


def test_calibration_matches_the_library_and_follows_new_spectra(
    client, auth, service, mock, ingest, wait_for_job, tmp_path
):
    r = client.post("/v1/calibrations", json=_body(service), headers=auth)
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["status"] == "queued" and created["job_id"]
    cal = _computed(client, wait_for_job, created["id"])
    assert cal["status"] == "ready", cal
    assert cal["version"] == 1 and cal["missing"] == []

    # the same n(z) as the library's end-to-end calibration on the same inputs
    lib = _library(mock, mock["first"]).nz_
    base = f"/v1/calibrations/{cal['id']}"
    nz = _conforms(client, f"{base}/nz", "/v1/calibrations/{calibration_id}/nz")
    _conforms(
        client,
        f"{base}/nz",
        "/v1/calibrations/{calibration_id}/nz",
        {"include_realisations": True},
    )
    _conforms(client, base, "/v1/calibrations/{calibration_id}")
    _conforms(client, "/v1/calibrations", "/v1/calibrations")
    _conforms(
        client, f"{base}/targets", "/v1/calibrations/{calibration_id}/targets", {"budget": 10}
    )
    np.testing.assert_allclose(np.array(nz["nz"]), lib.nz, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(nz["mean_z"], lib.mean_z, rtol=1e-9)
    np.testing.assert_allclose(nz["n_eff"], lib.n_eff, rtol=1e-9)
    np.testing.assert_allclose(nz["no_spec_fraction"], lib.no_spec_fraction, atol=1e-12)
    # the show: per bin ⟨z⟩, its ensemble spread (the library's realisations with the same
    # seed: with 19 spectra a bin's spread may be exactly zero, when no deep cell holds
    # spectra in two redshift bins, so a bare "> 0" would test the map, not the service),
    # N_eff, weight without spectra
    ens = _library(mock, mock["first"]).nz_ensemble(20, "dirichlet", random_state=0)
    for b, row in enumerate(cal["bins"]):
        assert row["mean_z"] == pytest.approx(lib.mean_z[b], rel=1e-9)
        assert row["mean_z_std"] == pytest.approx(ens.mean_z_std[b], rel=1e-9, abs=1e-12)
        assert row["mean_z_68_low"] <= row["mean_z_68_high"]
        assert row["n_eff"] == pytest.approx(lib.n_eff[b], rel=1e-9)
        assert row["no_spec_fraction"] == pytest.approx(lib.no_spec_fraction[b], abs=1e-12)
    assert cal["counts"]["n_transfer_paired"] == len(mock["transfer"])
    assert cal["counts"]["n_spectra"] == int(mock["first"].sum())

    # the formats read back: the fiducial and the realisations
    want = np.array(nz["nz"])
    for fmt, suffix in (("qp", ".hdf5"), ("sacc", ".sacc.fits"), ("fits", ".fits")):
        r = client.get(f"/v1/calibrations/{cal['id']}/nz", params={"format": fmt})
        assert r.status_code == 200, r.text
        path = tmp_path / f"nz{suffix}"
        path.write_bytes(r.content)
        ens = nz_formats.read(path, fmt)
        if fmt == "qp":  # qp renormalises every row to unit area; ours already are
            np.testing.assert_allclose(ens.fiducial, want, rtol=1e-6, atol=1e-9)
        else:
            np.testing.assert_allclose(ens.fiducial, want, rtol=1e-12)
        assert ens.n_real == 20 and ens.n_bins == len(BIN_EDGES) - 1
        np.testing.assert_allclose(ens.n_eff, nz["n_eff"], rtol=1e-9)
    png = client.get(f"/v1/calibrations/{cal['id']}/plots/nz.png")
    assert png.status_code == 200 and png.content.startswith(PNG_SIGNATURE)

    # targets: deep-catalogue sources in deep cells without spectra, by weight in the wide n(z)
    t1 = client.get(f"/v1/calibrations/{cal['id']}/targets", params={"budget": 10})
    assert t1.status_code == 200, t1.text
    targets1 = t1.json()["targets"]
    assert 0 < len(targets1) <= 10
    assert {t["catalogue_id"] for t in targets1} == {service["deep"]}
    weights = [t["cell_weight"] for t in targets1]
    assert all(w > 0 for w in weights) and weights == sorted(weights, reverse=True)
    assert not set(mock["deep"]["id"][mock["first"]].astype(str)) & {
        t["source_id"] for t in targets1
    }
    csv = client.get(f"/v1/calibrations/{cal['id']}/targets", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.startswith("priority")

    # new spectra arrive: the calibration is recomputed by itself, n(z) and targets change
    spec2 = ingest("spectroscopic", _spectra(mock["deep"], mock["second"]), "spec2.csv")["id"]
    cal2 = _computed(client, wait_for_job, cal["id"])
    assert cal2["status"] == "ready" and cal2["version"] == 2
    assert cal2["counts"]["n_spectra"] == int((mock["first"] | mock["second"]).sum())
    nz2 = client.get(f"/v1/calibrations/{cal['id']}/nz").json()
    lib2 = _library(mock, mock["first"] | mock["second"]).nz_
    np.testing.assert_allclose(np.array(nz2["nz"]), lib2.nz, rtol=1e-9, atol=1e-12)
    assert not np.allclose(np.array(nz2["nz"]), want)
    t2 = client.get(f"/v1/calibrations/{cal['id']}/targets", params={"budget": 10}).json()
    assert [t["source_id"] for t in t2["targets"]] != [t["source_id"] for t in targets1]
    assert t2["params"]["weight_without_spectra"] < t1.json()["params"]["weight_without_spectra"]

    # and leave: deleting them recomputes it back to the first n(z)
    assert client.delete(f"/v1/catalogues/{spec2}", headers=auth).status_code == 200
    cal3 = _computed(client, wait_for_job, cal["id"])
    assert cal3["status"] == "ready" and cal3["version"] == 3
    np.testing.assert_array_equal(client.get(f"{base}/nz").json()["nz"], want)

    # a photometric catalogue it does not tie (and no spectrum placed by position) leaves it
    other = make_mock(60, seed=9)
    ingest("photometric", _phot(other, DEEP_BANDS), "other.csv")
    assert client.get(base).json()["job_id"] == cal3["job_id"]

    listed = client.get("/v1/calibrations").json()["items"]
    assert [c["id"] for c in listed] == [cal["id"]]
    assert client.delete(f"/v1/calibrations/{cal['id']}", headers=auth).status_code == 200
    assert client.get(f"/v1/calibrations/{cal['id']}").status_code == 404


def test_bad_inputs_are_refused_naming_the_problem(
    client, auth, service, mock, ingest, wait_for_job
):
    # a transfer catalogue whose bands are not the wide map's
    r = client.post(
        "/v1/calibrations", json=_body(service, transfer_catalogue_id=service["deep"]), headers=auth
    )
    assert r.status_code == 422, r.text
    assert "transfer catalogue" in r.json()["detail"] and "u_lsst" in r.json()["detail"]
    r = client.post(
        "/v1/calibrations", json=_body(service, wide_map_id=service["deep_map"]), headers=auth
    )
    assert r.status_code == 422
    r = client.post("/v1/calibrations", json=_body(service, binning="median"), headers=auth)
    assert r.status_code == 422
    r = client.post("/v1/calibrations", json=_body(service, bin_edges=[0.5, 0.2]), headers=auth)
    assert r.status_code == 422 and "bin_edges" in r.text
    r = client.post("/v1/calibrations", json=_body(service, deep_map_id=999), headers=auth)
    assert r.status_code == 404 and "deep map 999" in r.json()["detail"]
    # nothing half-written by the refusals
    assert client.get("/v1/calibrations").json()["items"] == []

    # a bin with no galaxies: the computation fails and says which bin; no n(z) is served
    r = client.post(
        "/v1/calibrations", json=_body(service, bin_edges=[0.0, 0.9, 3.5, 3.9]), headers=auth
    )
    assert r.status_code == 202
    cal = _computed(client, wait_for_job, r.json()["id"])
    assert cal["status"] == "failed" and "tomographic bin" in cal["error"], cal
    assert cal["bins"] is None
    nz = client.get(f"/v1/calibrations/{cal['id']}/nz")
    assert nz.status_code == 409 and "tomographic bin" in nz.json()["detail"]

    r = client.post("/v1/calibrations", json=_body(service, n_realisations=0), headers=auth)
    ok = _computed(client, wait_for_job, r.json()["id"])
    assert ok["status"] == "ready"

    # spectra of galaxies that were never injected cannot be bin-conditioned: said, then
    # recovered once they leave
    foreign = _spectra(mock["deep"], mock["second"]).head(5)
    foreign["id"] = [f"foreign-{k}" for k in range(len(foreign))]
    spec = ingest("spectroscopic", foreign, "foreign.csv")["id"]
    failed = _computed(client, wait_for_job, ok["id"])
    assert failed["status"] == "failed" and "bin conditioning" in failed["error"]
    assert "foreign-" in failed["error"]
    nz = client.get(f"/v1/calibrations/{ok['id']}/nz")
    assert nz.status_code == 409 and "bin_conditioning false" in nz.json()["detail"]
    assert client.delete(f"/v1/catalogues/{spec}", headers=auth).status_code == 200
    assert _computed(client, wait_for_job, ok["id"])["status"] == "ready"

    # a tied catalogue deleted (reversibly): out of the calibration too, said with the way
    # back; restored, the calibration is computed again by itself
    wide = service["wide"]
    assert client.delete(f"/v1/catalogues/{wide}", headers=auth).status_code == 200
    gone = _computed(client, wait_for_job, ok["id"])
    assert gone["status"] == "failed"
    assert gone["missing"] == [
        f"wide catalogue {wide} was deleted (POST /v1/catalogues/{wide}/restore)"
    ]
    assert client.post(f"/v1/catalogues/{wide}/restore", headers=auth).status_code == 200
    back = _computed(client, wait_for_job, ok["id"])
    assert back["status"] == "ready" and back["missing"] == []

    # a deleted map: the calibration says so and refuses to serve its n(z)
    assert client.delete(f"/v1/maps/{service['wide_map']}", headers=auth).status_code == 200
    shown = client.get(f"/v1/calibrations/{ok['id']}").json()
    assert shown["missing"] == [f"wide map {service['wide_map']} was deleted"]
    nz = client.get(f"/v1/calibrations/{ok['id']}/nz")
    assert nz.status_code == 409 and f"wide map {service['wide_map']}" in nz.json()["detail"]
    r = client.post("/v1/calibrations", json=_body(service), headers=auth)
    assert r.status_code == 404 and f"wide map {service['wide_map']}" in r.json()["detail"]


def test_transfer_rows_pair_with_their_deep_galaxy():
    from app.services.deepwide import pair_transfer
    from app.services.errors import InvalidInputError

    # Balrog: one deep row per galaxy, many injections; an unknown id stays unpaired
    got = pair_transfer(np.array(["a", "b", "c"]), np.array(["b", "a", "b", "x", "c"]))
    assert got.tolist() == [1, 0, 1, -1, 2]
    # 1:1 pairs that repeat ids pair in row order
    got = pair_transfer(np.array(["a", "b", "a"]), np.array(["a", "a", "b"]))
    assert got.tolist() == [0, 2, 1]
    with pytest.raises(InvalidInputError, match="'a'"):
        pair_transfer(np.array(["a", "a"]), np.array(["a", "a", "a"]))


def test_nz_figure_names_its_band():
    # the PNG route's figure is som.plotting's plot_nz with the ensemble's band label
    from som import plotting

    fig = plotting.plot_nz(
        [0.0, 0.5, 1.0], [[1.0, 1.0]], [[0.1, 0.1]], ["bin 0"], band_label="±1σ (dirichlet)"
    )
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "±1σ (dirichlet)" in texts
    assert io.BytesIO(plotting.figure_to_png(fig)).getvalue().startswith(PNG_SIGNATURE)


def test_cli_mirrors_the_api(client, auth, clean_db, service, tmp_path):
    from typer.testing import CliRunner

    from app.cli import cli

    runner = CliRunner()

    def run(*args, code: int = 0):
        result = runner.invoke(cli, [str(a) for a in args] + ["--database-url", clean_db])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    made = run(
        "calibration", "create", "--deep-map", service["deep_map"], "--wide-map",
        service["wide_map"], "--deep", service["deep"], "--wide", service["wide"],
        "--transfer", service["transfer"], "--bin-edges", ",".join(map(str, BIN_EDGES)),
        "--realisations", 5,
    )  # fmt: skip
    cal_id = int(made.stdout.strip().splitlines()[-1])
    api = client.get(f"/v1/calibrations/{cal_id}").json()
    assert api["status"] == "ready" and api["version"] == 1
    shown = json.loads(run("calibration", "show", cal_id, "--json").stdout)
    assert [b["mean_z"] for b in shown["bins"]] == [b["mean_z"] for b in api["bins"]]
    assert str(cal_id) in run("calibration", "list").stdout
    out = tmp_path / "nz.sacc.fits"
    run("calibration", "nz", cal_id, "--format", "sacc", "-o", out)
    ens = nz_formats.read(out, "sacc")
    np.testing.assert_allclose(
        ens.fiducial, client.get(f"/v1/calibrations/{cal_id}/nz").json()["nz"], rtol=1e-12
    )
    assert ens.n_real == 5
    targets = tmp_path / "t.csv"
    run("calibration", "targets", cal_id, "-o", targets, "--budget", 5)
    api_targets = client.get(f"/v1/calibrations/{cal_id}/targets", params={"budget": 5}).json()
    assert pd.read_csv(targets)["source_id"].astype(str).tolist() == [
        t["source_id"] for t in api_targets["targets"]
    ]
    # a refusal names the problem and exits 2 (bad input), nothing is created
    bad = run(
        "calibration", "create", "--deep-map", service["deep_map"], "--wide-map",
        service["wide_map"], "--deep", service["deep"], "--wide", service["wide"],
        "--transfer", service["deep"], code=2,
    )  # fmt: skip
    assert "does not match wide map" in bad.stderr
    assert len(client.get("/v1/calibrations").json()["items"]) == 1
