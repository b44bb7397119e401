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
