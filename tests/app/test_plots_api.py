"""GET /v1/maps/{id}/plots/{kind}.png on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.image import imread

from app.services.figures import PLOT_KINDS
from som.plotting import PNG_SIGNATURE


def png_shape(content: bytes) -> tuple[int, ...]:
    assert content[:8] == PNG_SIGNATURE
    return imread(io.BytesIO(content), format="png").shape


def test_every_kind_is_a_png_drawn_from_the_current_ledger(
    client, mock_catalogue, trained_map, ingest
):
    frame = mock_catalogue(400, seed=3, spec_fraction=0.3)
    map_id, phot_id = trained_map(frame.assign(z_spec=np.nan), n_rows=6, n_cols=8, random_state=1)
    before = client.get(f"/v1/maps/{map_id}/plots/coverage.png?dpi=60")
    assert before.status_code == 200
    # Without spectra n(z) is undefined, and the answer says why.
    r = client.get(f"/v1/maps/{map_id}/plots/nz.png")
    assert r.status_code == 422 and "no tomographic bin" in r.json()["detail"]

    ingest("spectroscopic", frame, "spec.csv")
    images = {}
    for kind in PLOT_KINDS:
        # Low dpi keeps the test fast; the drawing does not depend on it.
        r = client.get(f"/v1/maps/{map_id}/plots/{kind}.png", params={"n_boot": 5, "dpi": 60})
        assert r.status_code == 200, (kind, r.text)
        assert r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == "no-cache"
        shape = png_shape(r.content)
        assert shape[0] > 150 and shape[1] > 150 and shape[2] in (3, 4)
        images[kind] = r.content
    # Each kind is its own figure, and the coverage map follows the spectra that arrived.
    assert len(set(images.values())) == len(PLOT_KINDS)
    assert images["coverage"] != before.content
    # dpi scales the image.
    big = client.get(f"/v1/maps/{map_id}/plots/redshift.png?dpi=120")
    h60, w60 = png_shape(images["redshift"])[:2]
    h120, w120 = png_shape(big.content)[:2]
    assert abs(2 * h60 - h120) <= 2 and abs(2 * w60 - w120) <= 2
    spec = client.get(f"/v1/maps/{map_id}/plots/redshift.png?z_source=spec&dpi=60")
    assert spec.status_code == 200 and spec.content != images["redshift"]
    nz = client.get(
        f"/v1/maps/{map_id}/plots/nz.png",
        params={"tomo_bins": "0.1,0.8,2", "catalogue_id": phot_id, "n_boot": 5, "dpi": 60},
    )
    assert nz.status_code == 200 and nz.content != images["nz"]


def test_unknown_maps_kinds_and_bad_parameters(client, mock_catalogue, trained_map, ingest):
    frame = mock_catalogue(200, seed=5, spec_fraction=0.4)
    map_id, _ = trained_map(frame, lattice="hex", n_rows=4, n_cols=6, random_state=1)
    assert client.get(f"/v1/maps/{map_id}/plots/umatrix.png").status_code == 200
    r = client.get(f"/v1/maps/{map_id + 1}/plots/redshift.png")
    assert r.status_code == 404 and f"map {map_id + 1} not found" in r.json()["detail"]
    r = client.get(f"/v1/maps/{map_id}/plots/histogram.png")
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "kind"
    r = client.get(f"/v1/maps/{map_id}/plots/nz.png?tomo_bins=0.5,0.2")
    assert r.status_code == 422 and "tomo_bins" in r.json()["detail"]
    r = client.get(f"/v1/maps/{map_id}/plots/redshift.png?z_source=true")
    assert r.status_code == 422
    spec_cat = client.get("/v1/catalogues?kind=spectroscopic").json()["items"]
    assert spec_cat == []
    spec = ingest("spectroscopic", frame, "spec.csv")
    r = client.get(f"/v1/maps/{map_id}/plots/nz.png?catalogue_id={spec['id']}")
    assert r.status_code == 422 and "must be photometric" in r.json()["detail"]
    assert client.get(f"/v1/maps/{map_id}/plots/nz.png?catalogue_id=999").status_code == 404


def test_the_schema_documents_png_and_the_kinds(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/maps/{map_id}/plots/{kind}.png"]["get"]
    assert "image/png" in op["responses"]["200"]["content"]
    kinds = next(p for p in op["parameters"] if p["name"] == "kind")["schema"]["enum"]
    assert sorted(kinds) == sorted(PLOT_KINDS)
