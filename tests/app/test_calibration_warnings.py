"""A deep/wide calibration whose tied catalogues were read differently in a band they share
(Galactic extinction corrected in one, magnitudes taken in another system) says so in its
``warnings`` when created, recomputed and shown (API and CLI), on SQLite and PostgreSQL;
it is not refused. Catalogues read alike give no warning."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import cli
from som.mock import make_mock, observe_wide, transfer_catalogue
from tests.app.test_calibrations import _phot

DEEP_BANDS = ("u", "g", "r", "i", "z", "Y", "J", "H")
WIDE_BANDS = ("u_lsst", "g_lsst", "r_lsst", "i_lsst", "z_lsst", "y_lsst")


@pytest.fixture(scope="module")
def mock():
    deep = make_mock(600, seed=11, truth=True)
    return {
        "deep": deep,
        "wide": observe_wide(deep, "lsst", seed=12),
        "transfer": transfer_catalogue(deep, "lsst", n_injections=2, seed=13),
    }


def test_calibration_warns_of_catalogues_read_differently(
    client, auth, ingest, train_map, mock, settings
):
    deep = ingest("photometric", _phot(mock["deep"], DEEP_BANDS), "deep.csv")["id"]
    wide = ingest("photometric", _phot(mock["wide"], WIDE_BANDS), "wide.csv")["id"]
    transfer = _phot(mock["transfer"], WIDE_BANDS, "wide_", extra=())
    alike = ingest("photometric", transfer, "transfer.csv")["id"]
    # the same injections, g dereddened with an A_g column the wide catalogue did not use
    transfer_ext = transfer.assign(A_g=0.05)
    dered = ingest(
        "photometric", transfer_ext, "transfer_ext.csv", mapping={"extinction_g_lsst": "A_g"}
    )["id"]
    # the deep side again, J declared Vega (the deep catalogue took it as AB)
    vega = ingest(
        "photometric",
        _phot(mock["deep"], DEEP_BANDS, extra=()),
        "deep_vega.csv",
        bands=[{"name": "J", "system": "Vega"}],
    )["id"]
    deep_map = train_map(deep, n_rows=5, n_cols=5, random_state=0)
    wide_map = train_map(wide, n_rows=4, n_cols=4, random_state=1)
    body = {
        "deep_map_id": deep_map,
        "wide_map_id": wide_map,
        "deep_catalogue_id": deep,
        "wide_catalogue_id": wide,
        "transfer_catalogue_id": alike,
        "bin_edges": [0.0, 0.7, 1.5],
        "n_realisations": 0,
    }
    r = client.post("/v1/calibrations", json=body, headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["warnings"] == []

    r = client.post(
        "/v1/calibrations",
        json={**body, "transfer_catalogue_id": dered, "transfer_deep_catalogue_id": vega},
        headers=auth,
    )
    assert r.status_code == 202, r.text  # a warning, not a refusal
    cal = r.json()
    text = " | ".join(cal["warnings"])
    assert f"transfer catalogue {dered}" in text and f"wide catalogue {wide}" in text, text
    assert "g_lsst (corrected at ingest in" in text and "extinction" in text, text
    assert f"transfer catalogue's deep side {vega}" in text and f"deep catalogue {deep}" in text
    assert "J: Vega, +0.916 to AB (declared" in text and "magnitudes in different systems" in text
    assert "u_lsst" not in text and "H:" not in text  # only the bands that differ

    shown = client.get(f"/v1/calibrations/{cal['id']}").json()
    assert shown["warnings"] == cal["warnings"]
    again = client.post(f"/v1/calibrations/{cal['id']}/recompute", headers=auth)
    assert again.status_code in (200, 201, 202), again.text
    assert again.json()["warnings"] == cal["warnings"]

    out = CliRunner().invoke(
        cli, ["calibration", "show", str(cal["id"]), "--database-url", settings.database_url]
    )
    assert out.exit_code == 0, (out.output, out.exception)
    assert "warning:" in out.output and "g_lsst" in out.output, out.output
    assert len(cal["warnings"]) >= 2, cal["warnings"]
