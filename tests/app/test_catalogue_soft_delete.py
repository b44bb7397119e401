"""Deleting a catalogue is reversible until purged, on SQLite and PostgreSQL: after a delete
everything that reads the ledger answers as if the catalogue had never been ingested, after
a restore as before the delete; each change is logged with the key's name and leaves a
coverage snapshot; the command line does the same."""

from __future__ import annotations

import numpy as np

# Fields that say when or how often, not what the ledger holds.
_VOLATILE = {"created_at", "cells_version", "computed_at", "trained_at"}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _ledger(client, map_id) -> dict:
    """What every reader of the ledger answers for the map."""
    m = f"/v1/maps/{map_id}"
    got = {
        "coverage": client.get(f"{m}/coverage").json(),
        "coverage_binned": client.get(
            f"{m}/coverage", params={"mag_band": "i", "mag_bins": "19,21,23,25", "z_bins": "4"}
        ).json(),
        "gaps": client.get(f"{m}/gaps").json(),
        "cells": client.get(f"{m}/cells", params={"limit": 1000}).json(),
        "arrays": client.get(f"{m}/arrays").json(),
        "targets": client.get(f"{m}/targets", params={"budget": 40, "per_cell": 2}).json(),
        "nz": client.post(f"{m}/nz", json={"n_boot": 5, "random_state": 1}).json(),
        "cell": client.get(f"{m}/cells/{_first_covered(client, map_id)}").json(),
    }
    return _strip(got)


def _first_covered(client, map_id) -> int:
    covered = client.get(f"/v1/maps/{map_id}/coverage").json()["cells"]["covered"]
    return int(np.flatnonzero(covered)[0]) if any(covered) else 0


def _spectra(frame):
    spec = frame.copy()
    spec["z_spec"] = spec["z_true"]
    return spec


def test_delete_hides_restore_brings_back(
    client, auth, api_key, mock_catalogue, trained_map, ingest
):
    phot = mock_catalogue(1200, seed=21)
    map_id, phot_id = trained_map(phot, "phot.csv", n_rows=10, n_cols=10, n_epochs=3)
    a = ingest("spectroscopic", _spectra(phot.iloc[:50]), "spec_a.csv")
    without_phot2 = _ledger(client, map_id)
    phot2 = mock_catalogue(300, seed=22)
    phot2["id"] = [f"p2-{i}" for i in range(len(phot2))]
    p2 = ingest("photometric", phot2, "phot2.csv")
    without_spec_b = _ledger(client, map_id)
    b = ingest("spectroscopic", _spectra(phot2.iloc[:40]), "spec_b.csv")
    full = _ledger(client, map_id)
    assert full != without_spec_b  # the spectra do change coverage
    assert full["coverage"]["n_spectra"] == 90

    d = client.delete(f"/v1/catalogues/{b['id']}", headers=auth)
    assert d.status_code == 200 and d.json()["maps_updated"] == [map_id]
    assert _ledger(client, map_id) == without_spec_b
    client.delete(f"/v1/catalogues/{p2['id']}", headers=auth).raise_for_status()
    assert _ledger(client, map_id) == without_phot2
    listed = client.get("/v1/catalogues").json()["items"]
    assert [c["id"] for c in listed] == [phot_id, a["id"]]
    assert {c["id"] for c in client.get("/v1/catalogues?deleted=true").json()["items"]} == {
        p2["id"],
        b["id"],
    }

    # A deleted catalogue cannot be named: outcomes, an n(z) sample, a new map.
    for r in (
        client.post(f"/v1/maps/{map_id}/nz", json={"catalogue_id": p2["id"], "n_boot": 0}),
        client.post(
            "/v1/maps", json={"catalogue_id": p2["id"], "n_rows": 4, "n_cols": 4}, headers=auth
        ),
    ):
        assert r.status_code == 404 and f"/v1/catalogues/{p2['id']}/restore" in r.json()["detail"]

    r = client.post(f"/v1/catalogues/{p2['id']}/restore", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["assigned"][str(map_id)]["by_photometry"] == 300
    assert _ledger(client, map_id) == without_spec_b
    r = client.post(f"/v1/catalogues/{b['id']}/restore", headers=auth)
    assert r.status_code == 200 and r.json()["maps_updated"] == [map_id]
    assert _ledger(client, map_id) == full
    again = client.post(f"/v1/catalogues/{b['id']}/restore", headers=auth)
    assert again.status_code == 409 and "not deleted" in again.json()["detail"]

    # Deleted then purged: gone for good, coverage still as without it.
    client.delete(f"/v1/catalogues/{b['id']}", headers=auth).raise_for_status()
    assert client.post(f"/v1/catalogues/{b['id']}/purge", headers=auth).status_code == 200
    assert _ledger(client, map_id) == without_spec_b
    assert client.get("/v1/catalogues?deleted=true").json()["total"] == 0

    # Every change logged with the key's name, each with one snapshot of the map.
    log = client.get("/v1/changes", params={"map_id": map_id, "limit": 100}).json()["items"]
    assert [(c["action"], c["catalogue_id"]) for c in log][-7:] == [
        ("catalogue_ingested", b["id"]),
        ("catalogue_deleted", b["id"]),
        ("catalogue_deleted", p2["id"]),
        ("catalogue_restored", p2["id"]),
        ("catalogue_restored", b["id"]),
        ("catalogue_deleted", b["id"]),
        ("catalogue_purged", b["id"]),
    ]
    assert {c["key_name"] for c in log} == {"tests"}
    assert api_key not in str(log)
    history = client.get(f"/v1/maps/{map_id}/coverage/history").json()["snapshots"]
    assert len(history) == len(log)
    by_change = {s["change_id"]: s for s in history}
    last = by_change[log[-1]["id"]]
    cov = without_spec_b["coverage"]["summary"]
    assert last["n_cells_covered"] == cov["n_cells_covered"]
    assert last["n_spectra_secure"] == 50


def test_deleted_spectra_give_no_outcomes_and_twins_conflict(
    client, auth, mock_catalogue, trained_map, ingest, upload
):
    phot = mock_catalogue(600, seed=23)
    map_id, _ = trained_map(phot, "phot.csv", n_rows=8, n_cols=8, n_epochs=2)
    c = client.post(
        f"/v1/maps/{map_id}/campaigns", json={"name": "n1", "budget": 10}, headers=auth
    ).json()
    ids = [t["target_id"] for t in c["targets"]]
    spec = _spectra(phot[phot["id"].astype(str).isin(ids)])
    s = ingest("spectroscopic", spec, "night.csv")
    client.delete(f"/v1/catalogues/{s['id']}", headers=auth).raise_for_status()
    r = client.post(
        f"/v1/maps/{map_id}/campaigns/{c['id']}/outcomes/from-catalogue",
        json={"catalogue_id": s["id"]},
        headers=auth,
    )
    assert r.status_code == 404 and "restore" in r.json()["detail"]
    twin = upload(client, auth, "spectroscopic", spec, "night_again.csv")
    assert twin.status_code == 409 and twin.json()["catalogue_id"] == s["id"]


def test_catalogues_delete_restore_purge_on_the_command_line(
    client, auth, mock_catalogue, ingest, clean_db
):
    from typer.testing import CliRunner

    from app.cli import cli

    runner = CliRunner(env={"COLUMNS": "240"})

    def run(*args, code=0):
        result = runner.invoke(cli, [*map(str, args), "--database-url", clean_db])
        assert result.exit_code == code, result.output
        return result.output

    cat = ingest("photometric", mock_catalogue(50, seed=24), "few.csv")
    assert "1 catalogue(s)" in run("catalogues")
    out = run("catalogues", "delete", cat["id"])
    assert f"somcal catalogues restore {cat['id']}" in out
    assert "0 catalogue(s)" in run("catalogues")
    listed = run("catalogues", "--deleted")
    assert "1 deleted catalogue(s)" in listed and "few.csv" in listed
    run("catalogues", "delete", cat["id"], code=3)  # already deleted: not found
    run("catalogues", "restore", cat["id"])
    run("catalogues", "purge", cat["id"], code=4)  # a conflict (409): not deleted
    run("catalogues", "delete", cat["id"])
    assert "purged" in run("catalogues", "purge", cat["id"])
    run("catalogues", "restore", cat["id"], code=3)
    log = client.get("/v1/changes").json()["items"]
    assert [(c["action"], c["key_name"]) for c in log][-4:] == [
        ("catalogue_deleted", "cli"),
        ("catalogue_restored", "cli"),
        ("catalogue_deleted", "cli"),
        ("catalogue_purged", "cli"),
    ]
