"""The follow-up loop through the API, on SQLite and PostgreSQL: plan a campaign, observe it
against a known magnitude-dependent success rate, record the outcomes, learn the rate, plan
again; the coverage history and the change log along the way; bad outcome input."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from som.calibration import HISTORY_MAG_EDGES
from som.calibration.followup import ExposureModel, logistic_rate

M50, WIDTH = 22.6, 0.45  # the true success curve of the simulated telescope


def _logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


@pytest.fixture
def loop(client, auth, mock_catalogue, trained_map, ingest):
    """A 14×14 map of 2,000 mock galaxies, 60 of them with spectra already."""
    phot = mock_catalogue(2000, seed=11)
    map_id, _ = trained_map(phot, "phot.csv", n_rows=14, n_cols=14, lattice="rect", n_epochs=4)
    first = phot.iloc[:60].copy()
    first["z_spec"] = first["z_true"]
    ingest("spectroscopic", first, "first_spectra.csv")
    return map_id, phot


def _coverage(client, map_id):
    return client.get(f"/v1/maps/{map_id}/coverage").json()


def _campaign(client, auth, map_id, **body):
    r = client.post(f"/v1/maps/{map_id}/campaigns", json=body, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()


def test_the_follow_up_loop(client, auth, api_key, loop, ingest):
    map_id, phot = loop
    coverage_after = [_coverage(client, map_id)]
    rng = np.random.default_rng(5)

    c1 = _campaign(client, auth, map_id, name="night 1", per_cell=3, strategy="c3r2")
    coverage_after.append(_coverage(client, map_id))
    targets = pd.DataFrame(c1["targets"])
    assert c1["n_targets"] == len(targets) > 150 and c1["strategy"] == "c3r2"
    assert c1["n_pending"] == c1["n_targets"] and c1["mag_band"] == "i"
    planned = ExposureModel().hours(targets["mag_i"])
    np.testing.assert_allclose(targets["exposure_hours"], planned)

    # The telescope: a known success curve in i; a tenth of the targets never observed.
    p_true = logistic_rate(targets["mag_i"], M50, WIDTH)
    observed = rng.random(len(targets)) > 0.1
    secure = observed & (rng.random(len(targets)) < p_true)
    failed = observed & ~secure
    assert secure.sum() > 30 and failed.sum() > 30

    # Failures and unobserved targets as a CSV; the secure ones come as the spectroscopic
    # catalogue that carries the campaign's target ids.
    rows = pd.DataFrame(
        {
            "target_id": targets["target_id"],
            "outcome": np.where(failed, "failed", "not_observed"),
            "exposure_hours": np.where(failed, planned, np.nan),
        }
    )[~secure]
    r = client.post(
        f"/v1/maps/{map_id}/campaigns/{c1['id']}/outcomes/file",
        files={"file": ("night1.csv", rows.to_csv(index=False), "text/csv")},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] == {
        "secure": 0,
        "failed": int(failed.sum()),
        "not_observed": int((~observed).sum()),
    }
    coverage_after.append(_coverage(client, map_id))

    ids = targets.loc[secure, "target_id"].astype(int)
    spectra = phot.set_index("id").loc[ids].reset_index()
    spectra["z_spec"] = spectra["z_true"]
    spec = ingest("spectroscopic", spectra, "night1_spectra.csv")
    coverage_after.append(_coverage(client, map_id))
    r = client.post(
        f"/v1/maps/{map_id}/campaigns/{c1['id']}/outcomes/from-catalogue",
        json={"catalogue_id": spec["id"]},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["n_matched"] == secure.sum() and r.json()["recorded"]["secure"] == secure.sum()
    coverage_after.append(_coverage(client, map_id))
    # The same outcomes again change nothing, and leave no change behind.
    again = client.post(
        f"/v1/maps/{map_id}/campaigns/{c1['id']}/outcomes/from-catalogue",
        json={"catalogue_id": spec["id"]},
        headers=auth,
    ).json()
    assert again["n_recorded"] == 0 and again["change_id"] is None

    # The success curve learned matches the telescope's within its errors.
    model = client.get(f"/v1/maps/{map_id}/success-model").json()
    assert model["fitted"] and model["n_outcomes"] == observed.sum()
    curve = pd.DataFrame(model["curve"])
    inside = curve[(curve["mag"] >= 21.0) & (curve["mag"] <= 24.0)]
    sigma = (_logit(inside["rate_high"]) - _logit(inside["rate_low"])) / 2
    pull = (_logit(inside["rate"]) - _logit(logistic_rate(inside["mag"], M50, WIDTH))) / sigma
    assert len(inside) >= 5 and np.all(np.abs(pull) < 3.5), pull
    # The cost of a secure redshift counts the failures it takes.
    np.testing.assert_allclose(
        inside["hours_per_secure"], ExposureModel().hours(inside["mag"]) / inside["rate"]
    )

    # Plan again: nothing that failed at this depth nor anything secured comes back.
    c2 = _campaign(client, auth, map_id, name="night 2", per_cell=6, budget_hours=400)
    coverage_after.append(_coverage(client, map_id))
    again_ids = {t["target_id"] for t in c2["targets"]}
    assert c2["strategy"] == "expected_gain" and c2["n_targets"] > 0
    assert not again_ids & set(targets.loc[failed | secure, "target_id"])
    assert c2["params"]["n_excluded_failed"] > 0
    assert c2["targets"][-1]["cumulative_hours"] <= 400
    assert all(0 < t["p_success"] < 1 for t in c2["targets"])
    # The forecast compares strategies under the success model learned so far.
    deeper = client.get(
        f"/v1/maps/{map_id}/forecast",
        params={"budget_hours": 400, "strategy": ["expected_gain", "random"]},
    )
    assert deeper.status_code == 200, deeper.text
    forecast = deeper.json()
    assert [s["strategy"] for s in forecast["strategies"]] == ["expected_gain", "random"]
    best, rand = forecast["strategies"]
    assert best["expected_gain"] >= rand["expected_gain"] > 0
    assert forecast["fraction_covered"] == pytest.approx(
        coverage_after[-1]["summary"]["fraction_galaxies_covered"]
    )

    # Deleting the night's spectra is a change too.
    assert client.delete(f"/v1/catalogues/{spec['id']}", headers=auth).status_code == 200
    coverage_after.append(_coverage(client, map_id))

    history = client.get(f"/v1/maps/{map_id}/coverage/history").json()["snapshots"]
    assert [s["action"] for s in history] == [
        "catalogue_ingested",
        "campaign_created",
        "outcomes_recorded",
        "catalogue_ingested",
        "outcomes_recorded",
        "campaign_created",
        "catalogue_deleted",
    ]
    for snap, cov in zip(history, coverage_after, strict=True):
        s = cov["summary"]
        assert snap["n_cells_covered"] == s["n_cells_covered"]
        assert snap["n_galaxies"] == s["n_galaxies"]
        assert snap["fraction_galaxies_covered"] == pytest.approx(s["fraction_galaxies_covered"])
        assert snap["fraction_cells_covered"] == pytest.approx(s["fraction_cells_covered"])
        assert snap["n_spectra_secure"] == cov["n_spectra_secure"]
        assert sum(b["n_galaxies_covered"] for b in snap["by_z"]) == snap["n_galaxies_covered"]
        # By magnitude too: every galaxy in one bin (or the no-magnitude slot), the same
        # fixed bins in every snapshot; a covered cell of a bin is an occupied one.
        assert len(snap["by_mag"]) == len(HISTORY_MAG_EDGES) + 2
        assert [b["mag_min"] for b in snap["by_mag"][1:-1]] == list(HISTORY_MAG_EDGES)
        assert {b["band"] for b in snap["by_mag"]} == {"i"}
        assert sum(b["n_galaxies"] for b in snap["by_mag"]) == snap["n_galaxies"]
        assert sum(b["n_galaxies_covered"] for b in snap["by_mag"]) == snap["n_galaxies_covered"]
        for b in snap["by_mag"] + snap["by_z"]:
            assert b["n_cells_covered"] <= min(b["n_cells_occupied"], snap["n_cells_covered"])
    assert history[0]["n_observed"] == 0 and history[-1]["n_observed"] == observed.sum()
    assert history[-1]["hours_spent"] == pytest.approx(
        planned[failed].sum() + planned[secure].sum()
    )
    assert history[3]["n_cells_covered"] > history[0]["n_cells_covered"]
    assert history[-1]["n_cells_covered"] == history[0]["n_cells_covered"]
    # The last snapshot's magnitude split is a recomputation's from every source.
    edges = ",".join(f"{e:g}" for e in HISTORY_MAG_EDGES)
    direct = client.get(
        f"/v1/maps/{map_id}/coverage", params={"mag_band": "i", "mag_bins": edges}
    ).json()["summary"]["by_magnitude"]
    inner = history[-1]["by_mag"][1:-2]  # the closed bins 18.5..25.5
    assert [b["n_galaxies"] for b in inner] == [d["n_galaxies"] for d in direct]
    assert [b["n_galaxies_covered"] for b in inner] == [d["n_galaxies_covered"] for d in direct]

    log = client.get("/v1/changes", params={"map_id": map_id})
    assert log.status_code == 200
    entries = log.json()["items"]
    assert [e["id"] for e in entries] == [s["change_id"] for s in history]
    assert {e["key_name"] for e in entries} == {"tests"}
    assert entries[-1]["detail"]["filename"] == "night1_spectra.csv"
    newest = client.get("/v1/changes", params={"map_id": map_id, "order": "newest", "limit": 2})
    assert [e["id"] for e in newest.json()["items"]] == [e["id"] for e in entries[::-1][:2]]
    everything = (
        client.get("/v1/changes").text + client.get(f"/v1/maps/{map_id}/coverage/history").text
    )
    assert api_key not in everything and api_key[:12] not in everything

    # Exports: CSV, FITS and the plain list mask-design tools read.
    csv = pd.read_csv(
        io.StringIO(client.get(f"/v1/maps/{map_id}/campaigns/{c1['id']}?format=csv").text)
    )
    assert list(csv["priority"]) == list(range(1, c1["n_targets"] + 1))
    assert (csv["outcome"] == "failed").sum() == failed.sum()
    from astropy.table import Table

    fits = client.get(f"/v1/maps/{map_id}/campaigns/{c1['id']}?format=fits")
    table = Table.read(io.BytesIO(fits.content), format="fits")
    assert len(table) == c1["n_targets"] and table.meta["NAME"] == "night 1"
    radec = client.get(f"/v1/maps/{map_id}/campaigns/{c1['id']}?format=radec").text.splitlines()
    assert radec[0].startswith("#") and len(radec) == c1["n_targets"] + 1
    first = radec[1].split()
    assert first[0] == str(targets["target_id"][0]) and int(first[3]) == 1
    assert float(first[1]) == pytest.approx(targets["ra"][0], abs=1e-6)
    listed = client.get(f"/v1/maps/{map_id}/campaigns").json()
    assert [c["name"] for c in listed] == ["night 1", "night 2"]
    assert listed[0]["n_failed"] == failed.sum() and listed[0]["n_secure"] == secure.sum()

    # Three times the depth is not comparable: the failed targets may be tried again.
    deep = _campaign(client, auth, map_id, name="deep", per_cell=6, exposure={"ref_hours": 3})
    assert deep["params"]["n_excluded_failed"] == 0
    assert set(targets.loc[failed, "target_id"]) & {t["target_id"] for t in deep["targets"]}


def test_bad_outcomes_name_the_row_and_store_nothing(client, auth, loop):
    map_id, _ = loop
    c = _campaign(client, auth, map_id, name="night", budget=20, strategy="c3r2")
    ids = [t["target_id"] for t in c["targets"]]
    url = f"/v1/maps/{map_id}/campaigns/{c['id']}/outcomes"

    def post(rows):
        return client.post(url, json={"outcomes": rows}, headers=auth)

    unlearned = client.get(f"/v1/maps/{map_id}/success-model").json()
    assert unlearned["fitted"] is False and unlearned["curve"] == []
    assert unlearned["mag_min"] is None
    n_changes = client.get("/v1/changes").json()["total"]
    r = post(
        [
            {"target_id": ids[0], "outcome": "secure"},
            {"target_id": "no-such-target", "outcome": "failed", "exposure_hours": 1.0},
        ]
    )
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert err["row"] == 1 and err["column"] == "target_id" and "no-such-target" in err["reason"]
    r = post([{"target_id": ids[1], "outcome": "failed"}])
    assert r.status_code == 422 and "exposure" in r.json()["errors"][0]["reason"]
    r = post(
        [
            {"target_id": ids[2], "outcome": "secure"},
            {"target_id": ids[2], "outcome": "failed", "exposure_hours": 2.0},
        ]
    )
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 1
    # Nothing half-written: no outcome and no change from the refused requests.
    assert client.get(f"/v1/maps/{map_id}/campaigns/{c['id']}").json()["n_pending"] == 20
    assert client.get("/v1/changes").json()["total"] == n_changes

    assert post([{"target_id": ids[0], "outcome": "secure"}]).status_code == 200
    r = post(
        [
            {"target_id": ids[3], "outcome": "secure"},
            {"target_id": ids[0], "outcome": "failed", "exposure_hours": 1.0},
        ]
    )
    assert r.status_code == 422
    assert (
        r.json()["errors"][0]["row"] == 1
        and "already recorded as secure" in r.json()["errors"][0]["reason"]
    )
    assert client.get(f"/v1/maps/{map_id}/campaigns/{c['id']}").json()["n_secure"] == 1
    r = client.post(
        f"{url}/file",
        files={"file": ("o.csv", "target_id,outcome\n" + f"{ids[4]},lost\n", "text/csv")},
        headers=auth,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "outcome"
    assert (
        client.post(
            url, json={"outcomes": [{"target_id": ids[5], "outcome": "secure"}]}
        ).status_code
        == 401
    )

    # A campaign on a map that was deleted.
    assert client.delete(f"/v1/maps/{map_id}", headers=auth).status_code in (200, 204)
    r = client.post(f"/v1/maps/{map_id}/campaigns", json={"name": "late"}, headers=auth)
    assert r.status_code == 404 and f"map {map_id}" in r.json()["detail"]
    assert post([{"target_id": ids[5], "outcome": "secure"}]).status_code == 404


def test_the_loop_on_the_command_line(client, auth, loop, clean_db, tmp_path):
    from typer.testing import CliRunner

    from app.cli import cli

    map_id, _ = loop
    runner = CliRunner(env={"COLUMNS": "240"})

    def run(*args, code=0):
        result = runner.invoke(cli, [*map(str, args), "--database-url", clean_db])
        assert result.exit_code == code, result.output
        return result.output

    out = run(
        "campaign",
        "create",
        "cli night",
        "--map-id",
        map_id,
        "--budget",
        12,
        "--strategy",
        "c3r2",
        "-o",
        tmp_path / "night.txt",
    )
    campaign_id = int(out.strip().splitlines()[-1])
    lines = (tmp_path / "night.txt").read_text().splitlines()
    assert lines[0].startswith("#") and len(lines) == 13
    run("campaign", "export", campaign_id, "-o", tmp_path / "night.fits")
    ids = [line.split()[0] for line in lines[1:]]
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text(
        "target_id,outcome,exposure_hours\n" + f"{ids[0]},failed,1.5\n" + f"{ids[1]},secure,\n"
    )
    run("campaign", "outcomes", campaign_id, outcomes)
    outcomes.write_text("target_id,outcome,exposure_hours\n" + f"{ids[0]},secure,\n")
    refused = run("campaign", "outcomes", campaign_id, outcomes, code=2)
    assert "row 0" in refused and "already recorded as failed" in refused
    assert "cli night" in run("campaign", "list", "--map-id", map_id)
    assert "outcomes_recorded" in run("history", "--map-id", map_id, "--plot", tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    by_mag = run("history", "--map-id", map_id, "--by", "mag")
    assert "per magnitude bin" in by_mag and "i 22–22.5" in by_mag
    assert "per photo-z bin" in run("history", "--map-id", map_id, "--by", "z")
    model = run("campaign", "model", "--map-id", map_id, "--no-archival", "--json")
    assert '"n_archival": 0' in model
    assert "brightest" in run("campaign", "forecast", "--budget-hours", 20, "--map-id", map_id)
    # The command line has no key: its changes are logged as "cli".
    names = [e["key_name"] for e in client.get("/v1/changes").json()["items"]]
    assert names[-2:] == ["cli", "cli"] and "tests" in names


def test_the_success_model_learns_from_the_spectra_that_exist(
    client, auth, mock_catalogue, trained_map, ingest
):
    """Spectra with quality flags drawn from a known magnitude-dependent success rate: a
    secure flag is a success at its magnitude, an insecure one a failure; the curve learned
    from them alone matches the true one within its errors. A catalogue of secure redshifts
    only, and objects below z_min, teach nothing; the caller can leave the archive out."""
    phot = mock_catalogue(3000, seed=31)
    map_id, _ = trained_map(phot, "phot.csv", n_rows=10, n_cols=10, lattice="rect", n_epochs=3)
    rng = np.random.default_rng(32)
    spec = phot.iloc[rng.permutation(len(phot))[:1800]].copy()
    p_true = logistic_rate(spec["mag_i"], M50, WIDTH)
    secure = rng.random(len(spec)) < p_true
    # zCOSMOS-like flags: 3 and 4 secure; 1, 2 and 9 not.
    spec["quality"] = np.where(
        secure, rng.choice([3, 4], len(spec)), rng.choice([1, 2, 9], len(spec))
    )
    spec["z_spec"] = spec["z_true"]
    spec.iloc[:20, spec.columns.get_loc("z_spec")] = 0.0005  # below z_min: neither
    rule = '{"kind": "in", "values": [3, 4]}'
    flagged = ingest("spectroscopic", spec, "flagged.csv", secure_rule=rule)
    assert flagged["summary"]["spectra"]["not_secure_quality"] == int((~secure[20:]).sum())
    only_secure = phot.iloc[:200].copy()
    only_secure["z_spec"] = only_secure["z_true"]
    ingest("spectroscopic", only_secure, "compilation.csv")

    base = f"/v1/maps/{map_id}/success-model"
    full = client.get(base, params={"archival_weight": 1}).json()
    assert full["fitted"] and full["n_recorded"] == 0
    assert full["archival_catalogues"] == [flagged["id"]]
    # every flagged spectrum the map placed in a trusted cell, less the 20 below z_min
    assert 1500 < full["n_archival"] <= len(spec) - 20
    assert full["n_archival_secure"] / full["n_archival"] == pytest.approx(
        secure[20:].mean(), abs=0.03
    )
    cov = np.array(full["covariance"])
    b_true = -1.0 / WIDTH
    a_true = (M50 - full["pivot_mag"]) / WIDTH
    d = np.array([full["intercept"] - a_true, full["slope"] - b_true])
    assert d @ np.linalg.solve(cov, d) < 13.8, (d, cov)  # 99.9% of chi2 with 2 dof
    curve = pd.DataFrame(full["curve"])
    inside = curve[(curve["mag"] >= 21.0) & (curve["mag"] <= 24.0)]
    sigma = (_logit(inside["rate_high"]) - _logit(inside["rate_low"])) / 2
    pull = (_logit(inside["rate"]) - _logit(logistic_rate(inside["mag"], M50, WIDTH))) / sigma
    assert len(inside) >= 5 and np.all(np.abs(pull) < 3.5), pull

    # The default weight (one half) keeps the curve and claims half the information.
    half = client.get(base).json()
    assert half["archival_weight"] == 0.5 and half["n_archival"] == full["n_archival"]
    assert half["slope"] == pytest.approx(full["slope"], rel=1e-3)
    np.testing.assert_allclose(np.array(half["covariance"]), 2 * cov, rtol=0.05)
    # Left out on request: nothing learned, every target assumed to succeed.
    none = client.get(base, params={"archival": "false"}).json()
    assert not none["fitted"] and none["n_archival"] == 0
    assert client.get(base, params={"archival_weight": 2}).status_code == 422

    # Planning learns from them too, unless told not to (then every target is assumed to
    # succeed, as without any model).
    def plan(**body):
        r = client.post(f"/v1/maps/{map_id}/campaigns", json={"budget": 5, **body}, headers=auth)
        assert r.status_code == 201, r.text
        return r.json()

    learned = plan(name="learned")
    assert learned["params"]["success_model_archival"] == full["n_archival"]
    assert all(0 < t["p_success"] < 1 for t in learned["targets"])
    blind = plan(name="blind", archival=False)
    assert blind["params"]["success_model_archival"] == 0
    assert all(t["p_success"] == 1 for t in blind["targets"])
    fc = client.get(f"/v1/maps/{map_id}/forecast", params={"budget_hours": 5, "archival": False})
    assert fc.status_code == 200 and fc.json()["success_model_archival"] == 0

    # Deleted spectra teach nothing; restored, they teach again.
    client.delete(f"/v1/catalogues/{flagged['id']}", headers=auth).raise_for_status()
    assert not client.get(base).json()["fitted"]
    client.post(f"/v1/catalogues/{flagged['id']}/restore", headers=auth).raise_for_status()
    assert client.get(base).json()["n_archival"] == full["n_archival"]


def test_snapshots_of_maps_from_before_the_magnitude_split_fill_it(client, auth, loop, settings):
    """Cells written before they kept magnitudes (NULL after migration 0011) are filled at
    the next change, whose snapshot has the magnitude split; earlier ones show none."""
    from sqlalchemy import text

    from app.core.db import make_engine

    map_id, _ = loop
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE cells SET mag_phot = NULL"))
        conn.execute(text("UPDATE coverage_snapshots SET by_mag = NULL"))
    engine.dispose()
    _campaign(client, auth, map_id, name="after the upgrade", budget=5)
    history = client.get(f"/v1/maps/{map_id}/coverage/history").json()["snapshots"]
    assert history[0]["by_mag"] == []
    last = history[-1]
    assert sum(b["n_galaxies"] for b in last["by_mag"]) == last["n_galaxies"] > 0
    assert last["by_mag"][-1]["n_galaxies"] == 0  # every mock galaxy has an i magnitude
