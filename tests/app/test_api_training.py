"""A training request is ``TrainMapIn`` wherever it comes from (API or CLI), is checked
against the catalogue it names, and the map's definition is stored once."""

from __future__ import annotations

import pytest

from app.services.errors import InvalidInputError
from app.services.training import train_request


def test_a_request_built_outside_the_api_is_checked_like_the_api_body():
    req = train_request(catalogue_id=3, n_rows=5, n_cols=6, lattice="rect", distance="chi2")
    assert (req.n_rows, req.lattice, req.distance) == (5, "rect", "chi2")
    with pytest.raises(InvalidInputError) as caught:
        train_request(catalogue_id=3, n_rows=600, lattice="square")
    assert {e.column for e in caught.value.errors} == {"n_rows", "lattice"}


def _catalogue(client, auth, mock_catalogue) -> int:
    r = client.post(
        "/v1/catalogues/photometric",
        files={"file": ("p.csv", mock_catalogue(300, seed=5).to_csv(index=False), "text/csv")},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize(
    ("body", "column", "words"),
    [
        ({"bands": ["g", "r", "g"]}, "bands", "duplicates"),
        ({"bands": ["g"]}, "bands", "at least two"),
        ({"bands": ["g", "r", "i"], "colours": ["g-r", "g-r"]}, "colours", "repeat"),
        ({"bands": ["g", "r"], "colours": ["g-i"]}, "colours", "g-i"),
        ({"bands": ["g", "r", "Q9"]}, "bands", "unknown band"),
        ({"magnitude_band": "K"}, "magnitude_band", "not available"),
    ],
)
def test_a_feature_set_that_cannot_be_is_a_422_naming_the_field(
    client, auth, mock_catalogue, body, column, words
):
    cat = _catalogue(client, auth, mock_catalogue)
    r = client.post("/v1/maps", json={"catalogue_id": cat, **body}, headers=auth)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert any(e["column"] == column and words in e["reason"] for e in errors), errors


def test_the_definition_is_stored_once(client, auth, mock_catalogue, train_map):
    cat = _catalogue(client, auth, mock_catalogue)
    r = client.post(
        "/v1/maps",
        json={
            "catalogue_id": cat,
            "n_rows": 4,
            "n_cols": 4,
            "n_epochs": 2,
            "bands": ["i", "g", "r"],
        },
        headers=auth,
    )
    assert r.status_code == 202, r.text
    queued = r.json()["map"]
    # Wavelength order whatever the order asked; the features say what the map reads ...
    assert queued["features"]["bands"] == ["g", "r", "i"]
    # ... and the training settings say how it is trained, nothing twice.
    assert set(queued["params"]) == {"catalogue_id", "n_epochs", "random_state", "distance"}
    map_id = train_map(cat, n_rows=4, n_cols=4, n_epochs=2, bands=["i", "g", "r"])
    ready = client.get(f"/v1/maps/{map_id}").json()
    assert ready["features"]["bands"] == ["g", "r", "i"]
    assert ready["features"]["feature_names"] == ["g-r", "r-i"]
    assert set(ready["params"]) == {"catalogue_id", "n_epochs", "random_state", "distance"}
