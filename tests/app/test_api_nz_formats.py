"""POST /v1/maps/{id}/nz?format=json|qp|sacc|fits on SQLite and PostgreSQL: the n(z) as the
file a pipeline reads, equal to the JSON answer."""

from __future__ import annotations

import importlib.util

import numpy as np

from som import nz_formats

MEDIA = {"qp": "application/x-hdf5", "sacc": "application/fits", "fits": "application/fits"}
SUFFIX = {"qp": ".hdf5", "sacc": ".sacc.fits", "fits": ".fits"}


def test_each_format_reads_back_as_the_json_answer(
    client, mock_catalogue, trained_map, ingest, tmp_path
):
    frame = mock_catalogue(400, seed=3, spec_fraction=0.4)
    map_id, phot_id = trained_map(frame, n_rows=5, n_cols=5, random_state=1)
    ingest("spectroscopic", frame, "spec.csv")
    body = {"catalogue_id": phot_id, "bins": np.linspace(0, 4, 21).tolist(), "n_boot": 8}
    url = f"/v1/maps/{map_id}/nz"

    # The default JSON answer is as before: no realisations; N_eff is there.
    plain = client.post(url, json=body)
    assert plain.status_code == 200, plain.text
    js = plain.json()
    assert "realisations" not in js
    assert js["n_eff"] == js["n_sample"] > 0
    full = client.post(url, json={**body, "include_realisations": True}).json()
    real = np.array(full["realisations"], dtype=float)
    assert real.shape == (8, 20)
    np.testing.assert_allclose(real @ np.diff(js["bins"]), 1.0)
    np.testing.assert_allclose(real.std(axis=0, ddof=1), np.array(js["nz_err"], dtype=float))
    assert {k: v for k, v in full.items() if k != "realisations"} == js
    assert client.post(url + "?format=json", json=body).json() == js

    for fmt in nz_formats.FORMATS:
        if fmt == "qp" and importlib.util.find_spec("qp") is None:
            continue
        r = client.post(url, params={"format": fmt}, json=body)
        assert r.status_code == 200, (fmt, r.text)
        assert r.headers["content-type"] == MEDIA[fmt]
        assert f'filename="nz_map{map_id}{SUFFIX[fmt]}"' in r.headers["content-disposition"]
        path = tmp_path / f"nz{SUFFIX[fmt]}"
        path.write_bytes(r.content)
        back = nz_formats.read(path, fmt)
        assert back.n_bins == 1 and back.names == ["sample"]
        np.testing.assert_allclose(back.z_edges, js["bins"], rtol=1e-14)
        np.testing.assert_allclose(back.fiducial[0], js["nz"], rtol=1e-12)
        np.testing.assert_allclose(back.realisations[:, 0], real, rtol=1e-12)
        assert back.n_eff[0] == js["n_eff"]
        if fmt != "qp":
            assert back.metadata["map_id"] == map_id and back.metadata["n_boot"] == 8

    # Without bootstrap the files hold the fiducial alone.
    r = client.post(url, params={"format": "fits"}, json={**body, "n_boot": 0})
    path = tmp_path / "fid.fits"
    path.write_bytes(r.content)
    assert nz_formats.read_fits(path).realisations is None


def test_bad_format_is_a_422_and_the_schema_documents_the_files(client):
    r = client.post("/v1/maps/1/nz", params={"format": "hdf5"}, json={"catalogue_id": 1})
    assert r.status_code == 422
    assert any(e["column"] == "format" for e in r.json()["errors"]), r.json()
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/maps/{map_id}/nz"]["post"]
    content = op["responses"]["200"]["content"]
    assert {"application/json", "application/x-hdf5", "application/fits"} <= set(content)
    fmt = next(p for p in op["parameters"] if p["name"] == "format")
    assert fmt["schema"]["enum"] == ["json", "qp", "sacc", "fits"]
    props = spec["components"]["schemas"]["NzOut"]["properties"]
    assert {"n_eff", "realisations"} <= set(props)
