"""The success model learns in one magnitude band, whatever band each campaign was planned
in: two campaigns ranked in i and in r (r = i + 1 mag for every galaxy), observed by a
telescope whose success depends on i. Learned in i (the map's band) the curve is the
telescope's; learned in r (``band=r``) it is the same curve moved by the offset; taking
each outcome at its campaign's magnitude would have mixed the two. Outcomes without a
magnitude in the chosen band are counted apart. API and CLI, SQLite and PostgreSQL."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import cli
from app.core.db import make_engine
from som import calibration as cal
from som.calibration.followup import logistic_rate

M50_I, WIDTH, R_MINUS_I = 22.3, 0.45, 1.0


def _m50(model: dict) -> tuple[float, float]:
    """The magnitude of a 50% success rate and its 1σ error (from the covariance)."""
    a, b, pivot = model["intercept"], model["slope"], model["pivot_mag"]
    cov = np.asarray(model["covariance"])
    grad = np.array([-1.0 / b, a / b**2])
    return pivot - a / b, float(np.sqrt(grad @ cov @ grad))


def _observe(client, auth, map_id, campaign, truth_i, rng):
    """Every target observed; secure with the telescope's probability at its i."""
    targets = pd.DataFrame(campaign["targets"])
    mag_i = truth_i.loc[targets["source_id"].astype(int)].to_numpy()
    secure = rng.random(len(targets)) < logistic_rate(mag_i, M50_I, WIDTH)
    rows = [
        {"target_id": t, "outcome": "secure" if ok else "failed"}
        | ({} if ok else {"exposure_hours": 1.0})
        for t, ok in zip(targets["target_id"], secure, strict=True)
    ]
    r = client.post(
        f"/v1/maps/{map_id}/campaigns/{campaign['id']}/outcomes",
        json={"outcomes": rows},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    return targets, secure


def test_the_success_model_learns_in_one_band(client, auth, clean_db, mock_catalogue, trained_map):
    rng = np.random.default_rng(23)
    phot = mock_catalogue(2500, seed=23)
    phot["mag_r"] = phot["mag_i"] + R_MINUS_I + rng.normal(0, 0.01, len(phot))
    map_id, _ = trained_map(phot, "phot.csv", n_rows=8, n_cols=8, n_epochs=3)
    truth_i = phot.set_index("id")["mag_i"]

    def campaign(name, band):
        body = {"name": name, "mag_band": band, "per_cell": 8, "strategy": "c3r2"}
        r = client.post(f"/v1/maps/{map_id}/campaigns", json=body, headers=auth)
        assert r.status_code == 201, r.text
        assert r.json()["mag_band"] == band
        return r.json()

    c_i = campaign("planned in i", "i")
    t_i, ok_i = _observe(client, auth, map_id, c_i, truth_i, rng)
    c_r = campaign("planned in r", "r")
    t_r, ok_r = _observe(client, auth, map_id, c_r, truth_i, rng)
    n = len(t_i) + len(t_r)
    assert len(t_i) > 200 and len(t_r) > 200

    url = f"/v1/maps/{map_id}/success-model"
    in_i = client.get(url, params={"archival": False}).json()
    assert in_i["mag_band"] == "i" and in_i["n_recorded"] == n == in_i["n_outcomes"]
    assert in_i["n_recorded_no_mag"] == 0
    m50, err = _m50(in_i)
    assert abs(m50 - M50_I) < max(3 * err, 0.05) and err < 0.1, (m50, err)

    in_r = client.get(url, params={"archival": False, "band": "r"}).json()
    assert in_r["mag_band"] == "r" and in_r["n_recorded"] == n
    m50_r, err_r = _m50(in_r)
    assert abs(m50_r - (M50_I + R_MINUS_I)) < max(3 * err_r, 0.05), (m50_r, err_r)

    # Without the lists' snapshots of every band, the sources' magnitudes in the ledger.
    engine = make_engine(clean_db)
    with engine.begin() as conn:
        conn.execute(text("UPDATE targets SET extra = NULL"))
    engine.dispose()
    again = client.get(url, params={"archival": False, "band": "r"}).json()
    assert again["n_recorded"] == n and np.isclose(_m50(again)[0], m50_r)

    # What taking each outcome at its campaign's magnitude (i for one, r for the other)
    # would have learned: a curve shifted by a good part of the offset.
    mixed = cal.fit_success_model(
        np.concatenate([t_i["mag_i"], t_r["mag_r"]]),
        np.concatenate([ok_i, ok_r]),
        np.concatenate([t_i["cell"], t_r["cell"]]),
        64,
    )
    mixed_m50, _ = _m50(mixed.to_dict())
    assert mixed_m50 - M50_I > 0.25 and mixed_m50 - M50_I > 5 * err, mixed_m50

    # The CLI learns in the band it is told.
    result = CliRunner().invoke(
        cli,
        [
            "campaign", "model", "--map-id", str(map_id), "--band", "r", "--no-archival",
            "--json", "--database-url", clean_db,
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    cli_r = json.loads(result.stdout)
    assert cli_r["mag_band"] == "r" and np.isclose(_m50(cli_r)[0], m50_r)

    r = client.get(url, params={"band": "nope"})
    assert r.status_code == 422, r.text


def test_outcomes_without_a_magnitude_in_the_band_are_left_out_and_counted(
    client, auth, clean_db, mock_catalogue, trained_map, ingest
):
    rng = np.random.default_rng(29)
    phot = mock_catalogue(1500, seed=29)
    map_id, _ = trained_map(phot, "phot.csv", n_rows=6, n_cols=6, n_epochs=3)
    # A second field on the same map measured in i only: no r for its galaxies.
    field = mock_catalogue(400, seed=30)
    field["id"] += 100_000
    field = field.drop(columns=["mag_r", "magerr_r"])
    ingest("photometric", field, "no_r.csv")
    r = client.post(
        f"/v1/maps/{map_id}/campaigns",
        json={"name": "both fields", "per_cell": 20, "strategy": "c3r2"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    c = r.json()
    truth_i = pd.concat([phot, field]).set_index("id")["mag_i"]
    targets, _ = _observe(client, auth, map_id, c, truth_i, rng)
    no_r = int((targets["source_id"].astype(int) >= 100_000).sum())
    assert no_r > 0

    url = f"/v1/maps/{map_id}/success-model"
    in_i = client.get(url, params={"archival": False}).json()
    assert in_i["n_recorded"] == len(targets) and in_i["n_recorded_no_mag"] == 0
    in_r = client.get(url, params={"archival": False, "band": "r"}).json()
    assert in_r["n_recorded_no_mag"] == no_r
    assert in_r["n_recorded"] == in_r["n_outcomes"] == len(targets) - no_r
    told = CliRunner().invoke(
        cli,
        [
            "campaign", "model", "--map-id", str(map_id), "--band", "r", "--no-archival",
            "--database-url", clean_db,
        ],
    )  # fmt: skip
    assert told.exit_code == 0, told.stdout + told.stderr
    assert f"left out, no magnitude in r: {no_r:,} outcomes" in told.stdout + told.stderr
