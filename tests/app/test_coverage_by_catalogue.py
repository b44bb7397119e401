"""Coverage, gaps and the dashboard's arrays of one photometric catalogue (``catalogue_id``)
instead of every photometric row of the ledger: a deep field's own coverage beside the
survey's. Counts add up across catalogues; a spectroscopic catalogue is refused by name.
SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np


def _cells(body: dict) -> np.ndarray:
    return np.asarray(body["cells"]["n_phot"], dtype=np.int64)


def test_one_catalogues_coverage_and_gaps_add_up_to_the_ledgers(
    client, auth, mock_catalogue, ingest, train_map
):
    a = ingest("photometric", mock_catalogue(300, seed=1), "field_a.csv")
    b = ingest("photometric", mock_catalogue(200, seed=2), "field_b.csv")
    spec = mock_catalogue(300, seed=1, spec_fraction=0.3)
    spec = spec[spec["z_spec"].notna()]
    map_id = train_map(a["id"], n_rows=6, n_cols=6)
    ingest("spectroscopic", spec, "spec.csv")
    url = f"/v1/maps/{map_id}/coverage"

    everything = client.get(url).json()
    by_a = client.get(url, params={"catalogue_id": a["id"]}).json()
    by_b = client.get(url, params={"catalogue_id": b["id"]}).json()
    assert by_a["catalogue"] == {"catalogue_id": a["id"], "kind": "photometric", "name": "field_a"}
    assert everything["catalogue"]["catalogue_id"] is None
    np.testing.assert_array_equal(_cells(by_a) + _cells(by_b), _cells(everything))
    s_all, s_a, s_b = everything["summary"], by_a["summary"], by_b["summary"]
    assert s_a["n_galaxies"] + s_b["n_galaxies"] == s_all["n_galaxies"]
    assert s_a["n_outside_training"] + s_b["n_outside_training"] == s_all["n_outside_training"]
    assert s_a["n_galaxies"] + s_a["n_outside_training"] + s_a["n_unassigned"] == 300
    covered = np.asarray(everything["cells"]["covered"])
    in_covered = _cells(by_a)[covered].sum() / max(_cells(by_a).sum(), 1)
    assert np.isclose(s_a["fraction_galaxies_covered"], in_covered)

    # Binned by photo-z: the catalogue's rows only, the same bins adding up.
    binned = {
        k: client.get(url, params={"z_bins": "0,0.5,1,2", **p}).json()["summary"]["by_redshift"]
        for k, p in (
            ("all", {}),
            ("a", {"catalogue_id": a["id"]}),
            ("b", {"catalogue_id": b["id"]}),
        )
    }
    for key in ("n_galaxies",):
        got = [x[key] + y[key] for x, y in zip(binned["a"], binned["b"], strict=True)]
        assert got == [x[key] for x in binned["all"]]

    # Gaps ranked by this catalogue's rows.
    gaps = client.get(f"/v1/maps/{map_id}/gaps", params={"catalogue_id": a["id"]}).json()
    assert gaps["catalogue"]["catalogue_id"] == a["id"]
    for g in gaps["gaps"]:
        assert g["n_galaxies"] == _cells(by_a)[g["cell"]] and not covered[g["cell"]]
    assert gaps["n_galaxies_in_gaps"] == int(_cells(by_a)[~covered].sum())

    arrays = client.get(f"/v1/maps/{map_id}/arrays", params={"catalogue_id": b["id"]}).json()
    assert arrays["arrays"]["n_phot"] == _cells(by_b).tolist()
    assert arrays["catalogue"]["catalogue_id"] == b["id"]


def test_a_spectroscopic_catalogue_is_not_a_sample_to_count(
    client, auth, mock_catalogue, ingest, train_map
):
    a = ingest("photometric", mock_catalogue(200, seed=3), "field.csv")
    spec = mock_catalogue(200, seed=3, spec_fraction=0.5)
    s = ingest("spectroscopic", spec[spec["z_spec"].notna()], "spec.csv")
    map_id = train_map(a["id"], n_rows=5, n_cols=5)
    for path in ("coverage", "gaps", "arrays"):
        r = client.get(f"/v1/maps/{map_id}/{path}", params={"catalogue_id": s["id"]})
        assert r.status_code == 422, r.text
        assert f"catalogue {s['id']} is spectroscopic" in r.text
    r = client.get(f"/v1/maps/{map_id}/coverage", params={"catalogue_id": 999})
    assert r.status_code == 404, r.text
