"""The whole calibration flow through HTTP on SQLite and PostgreSQL.

ingest photometry -> train a 10x12 map -> ingest spectra -> coverage -> gaps -> targets ->
assign -> n(z) -> delete the spectra -> coverage shrinks back. Every answer is checked
against the same computation done independently from the mock and the stored map.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from sqlalchemy import select

from app.core.db import make_engine, make_session_factory
from app.models import Assignment, Cell, Map
from som import SOM
from som.calibration import cell_spec_counts

BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")


@pytest.fixture(scope="module")
def mock() -> pd.DataFrame:
    from som.mock import make_mock

    return make_mock(3000, seed=1)


def _features(som: SOM, frame: pd.DataFrame) -> np.ndarray:
    X, _ = som.features.transform(frame)
    return X


def test_every_answer_of_the_calibration_flow_matches_an_independent_computation(
    client, auth, settings, mock, wait_job, stored_map, ingest
):
    phot = ingest("photometric", mock, "mock_phot.csv")
    assert phot["n_rows"] == 3000 and phot["assigned_maps"] == []

    r = client.post(
        "/v1/maps",
        json={
            "catalogue_id": phot["id"],
            "n_rows": 10,
            "n_cols": 12,
            "n_epochs": 3,
            "random_state": 7,
        },
        headers=auth,
    )
    assert r.status_code == 202, r.text
    map_id, job_id = r.json()["map"]["id"], r.json()["job"]["id"]
    assert r.headers["location"] == f"/v1/jobs/{job_id}"
    job, progress = wait_job(job_id)
    assert job["status"] == "succeeded", job
    assert progress == sorted(progress) and job["progress"] == 1.0
    m = client.get(f"/v1/maps/{map_id}").json()
    assert m["status"] == "ready" and m["features"]["feature_names"][0] == "u-g"
    assert m["quality"]["n_train"] == 3000

    # Every source is in the cell the stored map gives it.
    som = stored_map(settings.database_url, map_id)
    a = som.assign(_features(som, mock), skip_empty=True)
    # Sources outside what the map was trained on are counted apart, in no cell.
    phot_cells = np.where(som.outside_training(a), -1, a.cell)
    cells = client.get(f"/v1/maps/{map_id}/cells?limit=10000").json()
    assert cells["total"] == 120
    n_phot = np.array([c["n_phot"] for c in cells["items"]])
    np.testing.assert_array_equal(n_phot, np.bincount(phot_cells[phot_cells >= 0], minlength=120))
    cov0 = client.get(f"/v1/maps/{map_id}/coverage").json()
    assert cov0["summary"]["n_cells_covered"] == 0
    assert cov0["summary"]["n_galaxies"] + cov0["summary"]["n_outside_training"] == 3000

    # Spectra: the mock's own spectroscopic sample, assigned to the map at once.
    spec = ingest("spectroscopic", mock, "mock_spec.csv")
    has_z = mock["z_spec"].notna().to_numpy()
    assert spec["n_rows"] == has_z.sum() and spec["assigned_maps"] == [map_id]
    placed = spec["summary"]["maps"][str(map_id)]
    assert placed["rows"] == placed["by_photometry"] == has_z.sum()
    assert placed["unassigned"] == 0 and placed["outside_training"] == int(
        (phot_cells[has_z] < 0).sum()
    )
    spec_cells = phot_cells[has_z]
    expected_cov = cell_spec_counts(spec_cells[spec_cells >= 0], 120) >= 1
    cov = client.get(f"/v1/maps/{map_id}/coverage").json()
    np.testing.assert_array_equal(cov["cells"]["covered"], expected_cov)
    assert cov["summary"]["n_cells_covered"] == expected_cov.sum() > 0
    frac = n_phot[expected_cov].sum() / n_phot.sum()
    assert cov["summary"]["fraction_galaxies_covered"] == pytest.approx(frac)
    by = client.get(f"/v1/maps/{map_id}/coverage?mag_band=i&mag_bins=3&z_bins=0,1,2,4").json()
    rows = by["summary"]["by_redshift"]
    assert [r["bin_lo"] for r in rows] == [0, 1, 2]
    # binned or not, the same trusted galaxies; those outside the training set apart
    n_binned = sum(r["n_galaxies"] for r in by["summary"]["by_magnitude"])
    assert n_binned == by["summary"]["n_galaxies"] == cov0["summary"]["n_galaxies"]
    assert n_binned + by["summary"]["n_outside_training"] == 3000

    # Gaps: the uncovered occupied cells, most galaxies first.
    gaps = client.get(f"/v1/maps/{map_id}/gaps?limit=1000").json()
    gap_cells = [g["cell"] for g in gaps["gaps"]]
    assert set(gap_cells) == set(np.flatnonzero((n_phot > 0) & ~expected_cov))
    counts = [g["n_galaxies"] for g in gaps["gaps"]]
    assert counts == sorted(counts, reverse=True)
    assert gaps["n_galaxies_in_gaps"] == n_phot[~expected_cov].sum()

    # Targets: in gaps, the most populated gap first, closest source to the weights first.
    # every candidate in an uncovered cell, and none outside the training set
    every = client.get(f"/v1/maps/{map_id}/targets?budget=100000&per_cell=1000").json()
    flagged = set(mock["id"].astype(str)[som.outside_training(a)])
    assert flagged and every["n_outside_training"] == len(flagged)
    assert not flagged & {x["source_id"] for x in every["targets"]}
    in_gaps = (phot_cells >= 0) & ~expected_cov[np.maximum(phot_cells, 0)]
    assert every["n_targets"] == int(in_gaps.sum())
    t = client.get(f"/v1/maps/{map_id}/targets?budget=8&mag_band=i").json()
    assert t["n_targets"] == 8
    assert [x["cell"] for x in t["targets"]] == gap_cells[:8]
    first = t["targets"][0]
    in_cell = np.flatnonzero(phot_cells == first["cell"])
    dist = som.assign(_features(som, mock.iloc[in_cell]), allow_empty=True).distance
    assert first["source_id"] == str(mock["id"].iloc[in_cell[np.argmin(dist)]])
    csv = client.get(f"/v1/maps/{map_id}/targets?budget=8&format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert len(pd.read_csv(io.StringIO(csv.text))) == 8
    fits = client.get(f"/v1/maps/{map_id}/targets?budget=8&format=fits")
    assert len(Table.read(io.BytesIO(fits.content), format="fits")) == 8
    # Saved as a snapshot: the list a team takes to the telescope.
    saved = client.post(
        f"/v1/maps/{map_id}/target-lists", json={"budget": 8, "name": "run 1"}, headers=auth
    )
    assert saved.status_code == 201, saved.text
    list_id = saved.json()["id"]
    assert [x["source_id"] for x in saved.json()["targets"]] == [
        x["source_id"] for x in t["targets"]
    ]
    assert client.post(f"/v1/maps/{map_id}/target-lists", json={"budget": 8}).status_code == 401
    assert [x["id"] for x in client.get(f"/v1/maps/{map_id}/target-lists").json()] == [list_id]

    # Assign new photometry (JSON rows and a CSV body) and get the cells the map gives.
    sample = mock.iloc[:50]
    rows = [
        {
            "id": int(r["id"]),
            **{f"mag_{b}": (None if np.isnan(r[f"mag_{b}"]) else r[f"mag_{b}"]) for b in BANDS},
        }
        for _, r in sample.iterrows()
    ]
    rows.append({"id": "lonely", "mag_i": 22.0})  # one band: no colour, no cell
    r = client.post(f"/v1/maps/{map_id}/assign", json={"rows": rows, "include_pz": True})
    assert r.status_code == 200, r.text
    res = r.json()
    assert res["n"] == 51 and res["n_unassigned"] == 1
    lonely = res["results"].pop()
    assert lonely["cell"] is None and lonely["id"] == "lonely" and "colour" in lonely["reason"]
    np.testing.assert_array_equal([x["cell"] for x in res["results"]], a.cell[:50])
    assert all(isinstance(x["n_phot"], int) for x in res["results"])
    widths = np.diff(res["z_edges"])
    x0 = res["results"][0]
    assert x0["covered"] == bool(expected_cov[x0["cell"]])
    assert np.sum(np.array(x0["pz_phot"]) * widths) == pytest.approx(1.0)
    r = client.post(
        f"/v1/maps/{map_id}/assign?format=csv",
        content=sample.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    out = pd.read_csv(io.StringIO(r.text))
    np.testing.assert_array_equal(out["cell"], a.cell[:50])

    # One covered cell in detail.
    c = int(np.flatnonzero(expected_cov)[0])
    d = client.get(f"/v1/maps/{map_id}/cells/{c}").json()
    assert d["covered"] and d["n_spec_secure"] == int((spec_cells == c).sum())
    assert len(d["spectra"]) == d["n_spec"]
    np.testing.assert_allclose(
        d["weights"]["values"], som.features.inverse_transform(som.weights_[c])
    )
    assert sorted(n["cell"] for n in d["neighbours"]) == sorted(som.neighbours(c).tolist())
    assert np.sum(np.array(d["pz_spec"]) * np.diff(d["z_edges"])) == pytest.approx(1.0)
    assert client.get(f"/v1/maps/{map_id}/cells/120").status_code == 404
    assert client.get(f"/v1/maps/{map_id + 100}/cells/0").status_code == 404

    # n(z) of the photometric catalogue.
    nz = client.post(
        f"/v1/maps/{map_id}/nz",
        json={"catalogue_id": phot["id"], "bins": np.linspace(0, 4, 41).tolist(), "n_boot": 20},
    ).json()
    assert np.sum(np.array(nz["nz"]) * 0.1) == pytest.approx(1.0)
    # sources outside the training set are left out of the n(z) and counted apart
    assert nz["uncovered_fraction"] == pytest.approx(1 - frac)
    assert nz["n_outside_training"] == nz["sample"]["n_outside_training"] == 3000 - n_phot.sum()
    assert nz["n_sample"] == n_phot.sum()
    assert nz["n_spec_used"] == has_z.sum() and len(nz["nz_err"]) == 40

    # Spectra without photometry (a compilation) are matched on the sky to the sources.
    pick = mock.iloc[np.flatnonzero(~has_z)[:5]]
    comp = pd.DataFrame(
        {
            "Id_specz": np.arange(5),
            "ra_corrected": pick["ra"].to_numpy() + 0.1 / 3600,
            "dec_corrected": pick["dec"].to_numpy(),
            "specz": pick["z_true"].to_numpy(),
            "flag": [4, 4, 3, 9, 2],
            "Confidence_level": [97, 97, 95, 85, 80],
            "survey": [1, 1, 1, 1, 1],
        }
    )
    comp_cat = ingest("spectroscopic", comp, "compilation.csv")
    assert comp_cat["n_secure"] == 3 and comp_cat["assigned_maps"] == [map_id]
    pick_cells = phot_cells[np.flatnonzero(~has_z)[:5]]
    cov2 = client.get(f"/v1/maps/{map_id}/coverage").json()
    expected2 = expected_cov.copy()
    expected2[pick_cells[:3]] = True
    np.testing.assert_array_equal(cov2["cells"]["covered"], expected2)

    # Deleting the spectra shrinks coverage back to nothing.
    for cat in (spec, comp_cat):
        r = client.delete(f"/v1/catalogues/{cat['id']}", headers=auth)
        assert r.status_code == 200 and r.json()["maps_updated"] == [map_id]
    cov3 = client.get(f"/v1/maps/{map_id}/coverage").json()
    assert cov3["summary"]["n_cells_covered"] == 0 and cov3["n_spectra"] == 0
    # The saved list did not move, although the gaps did.
    kept = client.get(f"/v1/maps/{map_id}/target-lists/{list_id}").json()
    assert [x["source_id"] for x in kept["targets"]] == [x["source_id"] for x in t["targets"]]
    np.testing.assert_allclose(
        [x["z_expected"] for x in kept["targets"]], [x["z_expected"] for x in t["targets"]]
    )
    kept_csv = client.get(f"/v1/maps/{map_id}/target-lists/{list_id}?format=csv")
    assert list(pd.read_csv(io.StringIO(kept_csv.text))["priority"]) == list(range(1, 9))
    assert client.get(f"/v1/maps/{map_id}/target-lists/999").status_code == 404
    r = client.post(f"/v1/maps/{map_id}/nz", json={"catalogue_id": phot["id"], "n_boot": 0})
    assert r.status_code == 422 and "covered" in r.json()["detail"]


def test_a_failed_training_leaves_no_partial_map(client, auth, settings, mock, wait_job, ingest):
    flat = mock.copy()
    flat["mag_u"] = flat["mag_g"] + 0.5  # u-g has zero spread: cannot be standardised
    phot = ingest("photometric", flat, "flat.csv")
    r = client.post(
        "/v1/maps",
        json={
            "catalogue_id": phot["id"],
            "n_rows": 4,
            "n_cols": 4,
            "n_epochs": 1,
            "bands": ["u", "g"],
        },
        headers=auth,
    )
    assert r.status_code == 202, r.text
    job, _ = wait_job(r.json()["job"]["id"])
    assert job["status"] == "failed" and "zero spread" in job["error"]
    m = client.get(f"/v1/maps/{r.json()['map']['id']}").json()
    assert m["status"] == "failed" and "zero spread" in m["error"]
    assert client.get(f"/v1/maps/{m['id']}/coverage").status_code == 409
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        assert s.scalars(select(Cell).where(Cell.map_id == m["id"])).first() is None
        assert s.scalars(select(Assignment).where(Assignment.map_id == m["id"])).first() is None
    engine.dispose()


def test_training_requests_are_validated(client, auth, mock, ingest):
    spec = ingest("spectroscopic", mock, "spec_only.csv")
    r = client.post("/v1/maps", json={"catalogue_id": spec["id"]}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "catalogue_id"
    assert client.post("/v1/maps", json={"catalogue_id": 99999}, headers=auth).status_code == 404
    r = client.post("/v1/maps", json={"catalogue_id": 1, "n_rows": 0}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "n_rows"
    assert client.post("/v1/maps", json={"catalogue_id": 1}).status_code == 401
    assert client.get("/v1/maps/424242").status_code == 404


def test_a_job_whose_process_died_is_marked_failed(settings, client):
    """A worker killed mid-training (on any host) leaves a 'running' job whose heartbeat
    stopped; the next start fails it (its one attempt spent) and its map."""
    from datetime import timedelta

    from app.main import create_app
    from app.models import Job, utcnow

    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        job = Job(
            kind="train_map",
            status="running",
            progress=0.4,
            params={"map_id": 0},
            worker="another-host:4242:0badc0de/0",
            started_at=utcnow() - timedelta(minutes=10),
            heartbeat_at=utcnow() - timedelta(minutes=10),
            attempts=1,
            max_attempts=1,
        )
        s.add(job)
        s.flush()
        m = Map(
            name="m",
            status="training",
            n_rows=2,
            n_cols=2,
            lattice="rect",
            periodic=False,
            grid={"z_edges": [0, 1]},
            job_id=job.id,
            min_secure=1,
        )
        s.add(m)
        s.commit()
        job_id, map_id = job.id, m.id
    engine.dispose()
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings)) as c:
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "failed" and "interrupted" in job["error"]
        assert c.get(f"/v1/maps/{map_id}").json()["status"] == "failed"


def test_positional_matches_follow_the_photometry(client, auth, mock, ingest, train_map, upload):
    """Spectra without photometry live in the cell of their sky neighbour: when that
    neighbour's catalogue goes, so does their coverage, and it returns with it."""
    phot_a = ingest("photometric", mock.iloc[:1500], "a.csv")
    phot_b = ingest("photometric", mock.iloc[1500:], "b.csv")
    map_id = train_map(phot_a["id"], n_rows=6, n_cols=6, n_epochs=2)
    pick = mock.iloc[1500:1504]  # sources of catalogue b
    comp = pd.DataFrame(
        {
            "Id_specz": np.arange(4),
            "ra_corrected": pick["ra"].to_numpy(),
            "dec_corrected": pick["dec"].to_numpy() + 0.2 / 3600,
            "specz": pick["z_true"].to_numpy(),
            "flag": [4, 4, 4, 4],
            "Confidence_level": [97] * 4,
            "survey": [1] * 4,
        }
    )
    ingest("spectroscopic", comp, "comp.csv")
    n_covered = client.get(f"/v1/maps/{map_id}/coverage").json()["summary"]["n_cells_covered"]
    assert n_covered >= 1
    assert client.delete(f"/v1/catalogues/{phot_b['id']}", headers=auth).status_code == 200
    cov = client.get(f"/v1/maps/{map_id}/coverage").json()
    assert cov["summary"]["n_cells_covered"] == 0 and cov["n_spectra"] == 0
    # The same file again is its deleted twin (409): restoring it brings the matches back.
    twin = upload(client, auth, "photometric", mock.iloc[1500:], "b_again.csv")
    assert twin.status_code == 409 and twin.json()["catalogue_id"] == phot_b["id"]
    back = client.post(f"/v1/catalogues/{phot_b['id']}/restore", headers=auth).json()
    assert back["maps_updated"] == [map_id]
    cov = client.get(f"/v1/maps/{map_id}/coverage").json()
    assert cov["summary"]["n_cells_covered"] == n_covered and cov["n_spectra"] == 4
    covered_cells = client.get(f"/v1/maps/{map_id}/cells?covered=true").json()
    assert covered_cells["total"] == n_covered
    assert all(c["covered"] and c["n_spec_secure"] >= 1 for c in covered_cells["items"])


def test_a_hexagonal_torus_has_six_neighbours_everywhere_and_needs_an_even_row_count(
    client, auth, mock, ingest, train_map
):
    phot = ingest("photometric", mock.iloc[:800], "hex.csv")
    map_id = train_map(phot["id"], n_rows=4, n_cols=6, lattice="hex", periodic=True, n_epochs=1)
    # A torus has no edges: every cell of a hexagonal one has six neighbours.
    for cell in (0, 5, 18, 23):
        d = client.get(f"/v1/maps/{map_id}/cells/{cell}").json()
        assert len(d["neighbours"]) == 6, (cell, d["neighbours"])
    r = client.post(
        "/v1/maps",
        json={
            "catalogue_id": phot["id"],
            "n_rows": 5,
            "n_cols": 6,
            "lattice": "hex",
            "periodic": True,
        },
        headers=auth,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "n_rows"
