"""Targets for the gaps weighted by one photometric catalogue's rows (``catalogue_id``), as
coverage and gaps count them: a deep field's own gaps. The candidates stay every
photometric row of the ledger; only what a gap is worth changes. At most one of
``occupation_id`` and ``catalogue_id``; a spectroscopic, unknown or deleted catalogue is
refused by name. API and CLI, SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from app.cli import cli


def _cells(body: dict) -> np.ndarray:
    return np.asarray(body["cells"]["n_phot"], dtype=np.int64)


def _two_fields(client, mock_catalogue, ingest, train_map):
    a = ingest("photometric", mock_catalogue(300, seed=1), "field_a.csv")
    b = ingest("photometric", mock_catalogue(200, seed=2), "field_b.csv")
    spec = mock_catalogue(300, seed=1, spec_fraction=0.3)
    spec = spec[spec["z_spec"].notna()]
    map_id = train_map(a["id"], n_rows=6, n_cols=6)
    s = ingest("spectroscopic", spec, "spec.csv")
    return map_id, a, b, s


def test_targets_weighted_by_one_catalogues_rows(
    client, auth, clean_db, tmp_path, mock_catalogue, ingest, train_map
):
    map_id, a, b, _ = _two_fields(client, mock_catalogue, ingest, train_map)
    url = f"/v1/maps/{map_id}/targets"
    cov_b = client.get(f"/v1/maps/{map_id}/coverage", params={"catalogue_id": b["id"]}).json()
    counts_b = _cells(cov_b)
    everything = client.get(f"/v1/maps/{map_id}/coverage").json()
    covered = np.asarray(everything["cells"]["covered"])

    default = client.get(url, params={"per_cell": 50}).json()
    by_b = client.get(url, params={"catalogue_id": b["id"], "per_cell": 50}).json()
    assert by_b["catalogue"] == {"catalogue_id": b["id"], "kind": "photometric", "name": "field_b"}
    assert by_b["params"]["catalogue_id"] == b["id"]
    assert default["catalogue"]["catalogue_id"] is None
    # What each gap is worth is field b's count in it, not the ledger's.
    for t in by_b["targets"]:
        assert t["cell_n_galaxies"] == counts_b[t["cell"]], t
        assert not covered[t["cell"]]
    assert by_b["targets"], "field b has rows in some gap"
    # The gaps come in field b's order: most of its galaxies first.
    first_seen = list(dict.fromkeys(t["cell"] for t in by_b["targets"]))
    assert [counts_b[c] for c in first_seen] == sorted(
        (counts_b[c] for c in first_seen), reverse=True
    )
    # Candidates are still every row of the ledger: field a's too, in field b's gaps.
    assert {t["catalogue_id"] for t in by_b["targets"]} == {a["id"], b["id"]}
    default_ids = {(t["catalogue_id"], t["source_id"]) for t in default["targets"]}
    assert {(t["catalogue_id"], t["source_id"]) for t in by_b["targets"]} <= default_ids

    # A saved list weighted so: its fractions are of field b's galaxies.
    r = client.post(
        f"/v1/maps/{map_id}/target-lists",
        json={"catalogue_id": b["id"], "budget": 10},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    saved = client.get(f"/v1/maps/{map_id}/target-lists/{r.json()['id']}").json()
    assert saved["params"]["catalogue_id"] == b["id"]
    for t in saved["targets"]:
        assert np.isclose(t["sample_fraction"], counts_b[t["cell"]] / counts_b.sum())

    # The CLI: --catalogue-id writes the same list.
    out = tmp_path / "targets_b.csv"
    result = CliRunner().invoke(
        cli,
        [
            "targets", "-o", str(out), "--map-id", str(map_id), "--per-cell", "50",
            "--catalogue-id", str(b["id"]), "--database-url", clean_db,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    written = pd.read_csv(out)
    assert list(written["source_id"].astype(str)) == [str(t["source_id"]) for t in by_b["targets"]]
    assert list(written["cell_n_galaxies"]) == [counts_b[c] for c in written["cell"]]
    both = CliRunner().invoke(
        cli,
        [
            "targets", "-o", str(tmp_path / "both.csv"), "--map-id", str(map_id),
            "--catalogue-id", str(b["id"]), "--occupation-id", "1", "--database-url", clean_db,
        ],
    )  # fmt: skip
    assert both.exit_code != 0
    assert "not both" in both.stdout + both.stderr


def test_targets_refuse_a_catalogue_that_cannot_weight(
    client, auth, mock_catalogue, ingest, train_map
):
    map_id, a, b, s = _two_fields(client, mock_catalogue, ingest, train_map)
    url = f"/v1/maps/{map_id}/targets"

    r = client.get(url, params={"catalogue_id": a["id"], "occupation_id": 1})
    assert r.status_code == 422, r.text
    assert "occupation_id" in r.text and "catalogue_id" in r.text and "not both" in r.text
    r = client.post(
        f"/v1/maps/{map_id}/target-lists",
        json={"catalogue_id": a["id"], "occupation_id": 1},
        headers=auth,
    )
    assert r.status_code == 422, r.text

    r = client.get(url, params={"catalogue_id": s["id"]})
    assert r.status_code == 422, r.text
    assert f"catalogue {s['id']} is spectroscopic" in r.text
    assert "catalogue_id" in r.text

    r = client.get(url, params={"catalogue_id": 999_999})
    assert r.status_code == 404, r.text
    assert "catalogue 999999 not found" in r.text

    client.delete(f"/v1/catalogues/{b['id']}", headers=auth).raise_for_status()
    r = client.get(url, params={"catalogue_id": b["id"]})
    assert r.status_code == 404, r.text
    assert str(b["id"]) in r.text


def test_campaigns_and_forecasts_weight_the_gaps_by_one_catalogue(
    client, auth, clean_db, mock_catalogue, ingest, train_map
):
    """A campaign (and its forecast) can weigh the gaps as a target list does: by one
    photometric catalogue's rows. Its targets carry that catalogue's counts, its sample
    fractions and expected gain are of that catalogue's galaxies, and the forecast's
    coverage now is that catalogue's covered share."""
    map_id, a, b, _ = _two_fields(client, mock_catalogue, ingest, train_map)
    counts_b = _cells(
        client.get(f"/v1/maps/{map_id}/coverage", params={"catalogue_id": b["id"]}).json()
    )
    everything = client.get(f"/v1/maps/{map_id}/coverage").json()
    covered = np.asarray(everything["cells"]["covered"])
    counts_all = _cells(everything)
    assert not np.allclose(counts_b / counts_b.sum(), counts_all / counts_all.sum())

    url = f"/v1/maps/{map_id}/campaigns"
    body = {"name": "field b", "budget": 12, "strategy": "c3r2", "catalogue_id": b["id"]}
    r = client.post(url, json=body, headers=auth)
    assert r.status_code == 201, r.text
    campaign = r.json()
    assert campaign["params"]["catalogue_id"] == b["id"]
    assert campaign["params"]["occupation_id"] is None
    assert campaign["targets"]
    for t in campaign["targets"]:
        assert not covered[t["cell"]]
        assert t["cell_n_galaxies"] == counts_b[t["cell"]], t
        assert np.isclose(t["sample_fraction"], counts_b[t["cell"]] / counts_b.sum())
    # c3r2 ranks the gaps by what they are worth: field b's galaxies, most first
    first_seen = list(dict.fromkeys(t["cell"] for t in campaign["targets"]))
    assert [counts_b[c] for c in first_seen] == sorted(
        (counts_b[c] for c in first_seen), reverse=True
    )
    default = client.post(url, json={**body, "name": "all", "catalogue_id": None}, headers=auth)
    assert default.status_code == 201, default.text
    assert default.json()["params"]["catalogue_id"] is None

    forecast = f"/v1/maps/{map_id}/forecast"
    by_b = client.get(forecast, params={"budget_hours": 5, "catalogue_id": b["id"]}).json()
    plain = client.get(forecast, params={"budget_hours": 5}).json()
    assert np.isclose(by_b["fraction_covered"], counts_b[covered].sum() / counts_b.sum())
    assert np.isclose(plain["fraction_covered"], counts_all[covered].sum() / counts_all.sum())

    r = client.post(url, json={**body, "occupation_id": 1}, headers=auth)
    assert r.status_code == 422, r.text
    assert "not both" in r.text
    r = client.get(forecast, params={"budget_hours": 5, "catalogue_id": 999_999})
    assert r.status_code == 404, r.text

    # The CLI: campaign create --catalogue-id saves the same weighting.
    result = CliRunner().invoke(
        cli,
        [
            "campaign", "create", "cli b", "--map-id", str(map_id), "--budget", "12",
            "--strategy", "c3r2", "--catalogue-id", str(b["id"]), "--database-url", clean_db,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    saved = client.get(url).json()
    cli_campaign = next(c for c in saved if c["name"] == "cli b")
    assert cli_campaign["params"]["catalogue_id"] == b["id"]
    assert cli_campaign["n_targets"] == campaign["n_targets"]
