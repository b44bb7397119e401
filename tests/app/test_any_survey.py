"""Catalogues from other surveys, through the API and the CLI, on SQLite and PostgreSQL.

The shapes a calibration team brings (issue "anyone's survey"): LSST ugrizy magnitudes with a
``y`` band and 99 for undetected; fluxes in mJy, with the unit in the file, UltraVISTA Ks
and CIGALE's negative errors for upper limits; a whitespace ASCII table with a ``#`` header
and zero-padded ids; a Euclid-band mock (VIS-less, NISP YE JE HE). Each is ingested, trained
on and assigned with no hand conversion, and every number is checked against the library.
Then the rules that keep answers honest: one cleaning path (the same raw value means the
same in the library, ingest and assign), stars and unplaceable spectra never calibrate, a
file ingested with other options is a 409, assign answers row by row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.core.db import make_engine, make_session_factory
from app.models import Source
from app.services.phot_store import unpack
from som.mock import make_mock
from som.photometry import ColourFeatures, PhotometryError, flux_to_mag
from som.tables import read_table

LSST = ("u", "g", "r", "i", "z", "y")
SMALL = {"n_rows": 6, "n_cols": 6, "n_epochs": 4}  # maps that train in a second
runner = CliRunner()


# ----------------------------------------------------------------------------- helpers
def _stored_mags(url: str, catalogue_id: int, n_bands: int) -> tuple[list[str], np.ndarray]:
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        rows = s.execute(
            select(Source.source_id, Source.mags)
            .where(Source.catalogue_id == catalogue_id)
            .order_by(Source.row_index)
        ).all()
    engine.dispose()
    return [r[0] for r in rows], unpack([r[1] for r in rows], n_bands)


def _cli(*args, code: int = 0):
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture(scope="module")
def galaxies() -> pd.DataFrame:
    return make_mock(1500, seed=3)


def _lsst(galaxies: pd.DataFrame) -> pd.DataFrame:
    """DC2/RAIL layout: mag_{b}_lsst, mag_err_{b}_lsst, 99 where undetected."""
    rng = np.random.default_rng(0)
    out = pd.DataFrame({"id": galaxies["id"], "redshift": galaxies["z_true"]})
    mags = {b: galaxies[f"mag_{b}"].to_numpy() for b in LSST[:5]}
    mags["y"] = galaxies["mag_z"].to_numpy() - 0.1 + rng.normal(0, 0.05, len(galaxies))
    for b in LSST:
        m = mags[b]
        out[f"mag_{b}_lsst"] = np.where(np.isfinite(m), m, 99.0)
        out[f"mag_err_{b}_lsst"] = np.where(np.isfinite(m), 0.05, 99.0)
    return out


# ----------------------------------------------------------------------------- shapes
def test_lsst_ugrizy_with_a_y_band_ingests_trains_and_assigns(
    client, auth, settings, galaxies, train_map, stored_map, upload
):
    frame = _lsst(galaxies)
    r = upload(client, auth, "photometric", frame.to_csv(index=False).encode(), "dc2.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["bands"] == [f"{b}_lsst" for b in LSST]  # wavelength order, y (not Y) last
    n99 = int((frame["mag_u_lsst"] == 99.0).sum())
    assert n99 > 0 and body["summary"]["photometry"]["u_lsst"]["missing"] == n99

    map_id = train_map(body["id"], **SMALL)
    m = client.get(f"/v1/maps/{map_id}").json()
    assert m["features"]["feature_names"][-1] == "z_lsst-y_lsst"
    som = stored_map(settings.database_url, map_id)

    rows = frame.head(40).drop(columns=["redshift"])
    res = client.post(
        f"/v1/maps/{map_id}/assign",
        json={"rows": json.loads(rows.to_json(orient="records"))},
    ).json()
    X, _ = som.features.transform(rows.replace(99.0, np.nan))
    expected = som.assign(X, skip_empty=True)
    assert [x["cell"] if x["cell"] is not None else -1 for x in res["results"]] == list(
        expected.cell
    )
    assert [x["n_colours"] for x in res["results"]] == expected.n_features.tolist()

    # A band name in the wrong case is refused with the nearest names.
    r = client.post(
        "/v1/maps",
        json={"catalogue_id": body["id"], "bands": ["u_lsst", "g_lsst", "Y_lsst"]},
        headers=auth,
    )
    assert r.status_code == 422 and "did you mean 'y_lsst'" in r.text, r.text

    # Magnitude cuts and breakdowns take the map's own bands (no fixed band list)...
    by_y = client.get(f"/v1/maps/{map_id}/coverage", params={"mag_band": "y_lsst"})
    assert by_y.status_code == 200 and by_y.json()["summary"]["by_magnitude"], by_y.text
    t = client.get(f"/v1/maps/{map_id}/targets", params={"mag_band": "y_lsst", "budget": 3})
    assert t.status_code == 200 and t.json()["params"]["mag_band"] == "y_lsst", t.text
    # ... and a band the map does not have is a 422 that names the map's bands.
    for url in ("coverage", "targets"):
        bad = client.get(f"/v1/maps/{map_id}/{url}", params={"mag_band": "H"})
        assert bad.status_code == 422, bad.text
        assert "u_lsst, g_lsst, r_lsst, i_lsst, z_lsst, y_lsst" in bad.json()["detail"]
        assert bad.json()["errors"][0]["column"] == "mag_band"


FLUX_BANDS = ("u", "g", "r", "i", "z", "Y", "J", "Ks")


def _flux_table(galaxies: pd.DataFrame) -> tuple[Table, dict, dict]:
    """COSMOS2020-like fluxes in mJy (unit in the table), -1 errors for CIGALE limits."""
    rng = np.random.default_rng(1)
    table = Table()
    table["ID"] = galaxies["id"].to_numpy()
    flux, err = {}, {}
    for b in FLUX_BANDS:
        mag = galaxies["mag_H" if b == "Ks" else f"mag_{b}"].to_numpy() - (0.3 if b == "Ks" else 0)
        f = 10 ** (-0.4 * (np.nan_to_num(mag, nan=30.0) - 16.4))  # AB 16.4 is 1 mJy
        e = np.abs(f) * 0.05 + 1e-6
        e[rng.random(len(f)) < 0.05] = -1.0  # CIGALE: a negative error marks an upper limit
        flux[b], err[b] = f, e
        table[f"flux_{b}"] = f
        table[f"flux_{b}"].unit = "mJy"
        table[f"fluxerr_{b}"] = e
        table[f"fluxerr_{b}"].unit = "mJy"
    return table, flux, err


def _lephare_text(frame: pd.DataFrame) -> str:
    """A LePhare-style whitespace table: '#' lines, the last naming the columns, padded ids."""
    lines = ["# LePhare-style input", "# id mag_g magerr_g mag_r magerr_r mag_i magerr_i"]
    for k, row in enumerate(frame.itertuples()):
        vals = [row.mag_g, row.magerr_g, row.mag_r, row.magerr_r, row.mag_i, row.magerr_i]
        lines.append(f"{k:06d} " + " ".join("-99" if np.isnan(v) else f"{v:.5f}" for v in vals))
    return "\n".join(lines) + "\n"


def test_mjy_fluxes_with_ks_and_cigale_upper_limits(
    client, auth, settings, galaxies, tmp_path, train_map, upload
):
    bands = FLUX_BANDS
    table, flux, err = _flux_table(galaxies)
    path = tmp_path / "cosmos2020_like.fits"
    table.write(path)
    content = path.read_bytes()

    r = upload(client, auth, "photometric", content, "c20.fits")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["bands"] == list(bands)
    ks = body["summary"]["photometry"]["Ks"]
    assert ks["kind"] == "flux" and ks["flux_unit"] == "mJy"
    assert ks["undetected"] == int((err["Ks"] < 0).sum())
    ids, mags = _stored_mags(settings.database_url, body["id"], len(bands))
    expected, _ = flux_to_mag(flux["Ks"], flux_unit="mJy")
    expected[err["Ks"] < 0] = np.nan
    np.testing.assert_allclose(mags[:, bands.index("Ks")], expected, rtol=1e-12)
    assert train_map(body["id"], **SMALL) > 0

    # The file says mJy: a different flux_unit is refused, naming both (nothing stored).
    other = tmp_path / "other.fits"
    table[:-1].write(other)
    r = upload(client, auth, "photometric", other.read_bytes(), "o.fits", flux_unit="uJy")
    assert r.status_code == 422 and "the unit 'mJy' but flux_unit is 'uJy'" in r.text, r.text
    # The same values as a CSV have no unit: say which.
    csv = table.to_pandas().to_csv(index=False).encode()
    r = upload(client, auth, "photometric", csv, "c20.csv")
    assert r.status_code == 422 and "has no unit" in r.text, r.text
    # Fluxes mapped as magnitudes are caught, naming the column.
    r = upload(
        client,
        auth,
        "photometric",
        csv,
        "c20.csv",
        flux_unit="mJy",
        mapping={"mag_Ks": "flux_Ks", "flux_Ks": None, "fluxerr_Ks": None},
    )
    assert r.status_code == 422 and "flux_Ks" in r.text and "magnitude" in r.text, r.text
    # ... and a unit off by 1000 (nJy declared as uJy) too.
    nano = table.to_pandas()
    r = upload(
        client,
        auth,
        "photometric",
        nano.to_csv(index=False).encode(),
        "c20n.csv",
        flux_unit="nJy",
    )
    assert r.status_code == 422 and "off by a factor of 1,000" in r.text, r.text


def test_whitespace_ascii_with_a_hash_header_keeps_ids(settings, galaxies, tmp_path):
    frame = galaxies.head(300)
    path = tmp_path / "lephare.in"
    path.write_text(_lephare_text(frame))
    url = settings.database_url
    cat_id = int(_cli("ingest", "photometric", path, "--database-url", url).stdout.strip())
    ids, mags = _stored_mags(url, cat_id, 3)
    assert ids[:3] == ["000000", "000001", "000002"]
    np.testing.assert_allclose(mags[:, 0], frame["mag_g"].round(5), equal_nan=True)
    map_id = int(
        _cli(
            "train", cat_id, "--rows", 5, "--cols", 5, "--epochs", 3, "--database-url", url
        ).stdout.strip()
    )
    assert map_id > 0


def test_euclid_band_mock_and_band_aliases(client, auth, settings, train_map, stored_map, upload):
    euclid = make_mock(1200, seed=5, nir="euclid")
    r = upload(client, auth, "photometric", euclid.to_csv(index=False).encode(), "eu.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["bands"][-3:] == ["YE", "JE", "HE"]
    map_id = train_map(body["id"], **SMALL)
    som = stored_map(settings.database_url, map_id)
    # Q1-style names (Y_E ...) are aliases of the same filters.
    rows = euclid.head(20)[["id"] + [c for c in euclid if c.startswith("mag_")]]
    renamed = rows.rename(columns={"mag_YE": "mag_Y_E", "mag_JE": "mag_J_E", "mag_HE": "mag_H_E"})
    res = client.post(
        f"/v1/maps/{map_id}/assign",
        json={"rows": json.loads(renamed.to_json(orient="records"))},
    ).json()
    X, _ = som.features.transform(rows)
    assert [x["cell"] for x in res["results"]] == list(som.predict(X))


def test_a_magnitude_band_outside_the_colour_bands(
    client, auth, settings, galaxies, train_map, upload
):
    r = upload(client, auth, "photometric", galaxies.to_csv(index=False).encode(), "g.csv")
    assert r.status_code == 201, r.text
    map_id = train_map(r.json()["id"], **SMALL, bands=["u", "g", "r"], magnitude_band="i")
    m = client.get(f"/v1/maps/{map_id}").json()
    assert m["features"]["feature_names"] == ["u-g", "g-r", "i"]
    assert m["quality"]["n_train"] > 1000


@pytest.mark.parametrize("shape", ["lsst.csv", "cosmos2020.fits", "lephare.in", "euclid.parquet"])
def test_each_shape_ingests_trains_and_assigns_through_the_cli(
    settings, galaxies, tmp_path, shape, stored_map
):
    path = tmp_path / shape
    if shape == "lsst.csv":
        _lsst(galaxies).to_csv(path, index=False)
    elif shape == "cosmos2020.fits":
        _flux_table(galaxies)[0].write(path)
    elif shape == "lephare.in":
        path.write_text(_lephare_text(galaxies))
    else:
        make_mock(1500, seed=5, nir="euclid").to_parquet(path)
    url = settings.database_url
    cat_id = int(_cli("ingest", "photometric", path, "--database-url", url).stdout.strip())
    map_id = int(
        _cli(
            "train", cat_id, "--rows", 5, "--cols", 5, "--epochs", 3, "--database-url", url
        ).stdout.strip()
    )
    out = Path(_cli("assign", path, "-m", map_id, "--database-url", url).stdout.strip())
    assigned = read_table(out)
    assert len(assigned) == 1500
    som = stored_map(url, map_id)
    source = read_table(path, text_columns=("id",)) if shape != "lsst.csv" else _lsst(galaxies)
    # the CLI's cells are the library's on the same photometry, cleaned the same way
    X, _ = som.features.transform(_as_feature_table(source, shape))
    np.testing.assert_array_equal(assigned["cell"], som.assign(X, skip_empty=True).cell)


def _as_feature_table(source: pd.DataFrame, shape: str) -> pd.DataFrame:
    if shape != "cosmos2020.fits":
        return source
    out = pd.DataFrame()
    for b in FLUX_BANDS:  # what ingest stores: AB magnitudes, upper limits missing
        mag, _ = flux_to_mag(source[f"flux_{b}"].to_numpy(), flux_unit="mJy")
        out[f"mag_{b}"] = np.where(source[f"fluxerr_{b}"].to_numpy() < 0, np.nan, mag)
    return out


def test_a_colour_list_instead_of_adjacent_bands(
    client, auth, settings, galaxies, train_map, stored_map, upload
):
    r = upload(client, auth, "photometric", galaxies.to_csv(index=False).encode(), "g.csv")
    cat = r.json()["id"]
    map_id = train_map(cat, **SMALL, colours=["u-g", "g-i", "i-H"])
    m = client.get(f"/v1/maps/{map_id}").json()
    assert m["features"]["feature_names"] == ["u-g", "g-i", "i-H"]
    assert m["features"]["bands"] == ["u", "g", "i", "H"]
    assert m["features"]["colours"] == [["u", "g"], ["g", "i"], ["i", "H"]]
    # The definition is stored once (in features), not again with the training settings.
    assert not {"bands", "colours", "magnitude_band"} & set(m["params"]), m["params"]
    som = stored_map(settings.database_url, map_id)
    rows = galaxies.head(30)
    res = client.post(
        f"/v1/maps/{map_id}/assign", json={"rows": json.loads(rows.to_json(orient="records"))}
    ).json()
    X, _ = som.features.transform(rows)
    assert [x["cell"] for x in res["results"]] == list(som.assign(X, skip_empty=True).cell)
    bad = client.post("/v1/maps", json={"catalogue_id": cat, "colours": ["g-q"]}, headers=auth)
    assert bad.status_code == 422 and "g-q" in bad.text


# ----------------------------------------------------------------------------- one cleaning path
# raw text in a magnitude column (error 0.1) -> outcome, the same in library, ingest, assign
RAW_MAGNITUDES = {
    "22.5": "measured",
    " 23.1 ": "measured",
    "2.25e1": "measured",
    "49.9": "measured",
    "0.5": "measured",
    "nan": "missing",
    "NaN": "missing",
    "": "missing",
    "N/A": "missing",
    "null": "missing",
    "--": "missing",
    "inf": "missing",
    "-inf": "missing",
    "99": "missing",
    "-99": "missing",
    "-99.9": "missing",
    "99.99": "missing",
    "-999": "missing",
    "1e30": "missing",
    "abc": "invalid",
    "-3": "invalid",
    "0": "invalid",
    "60": "invalid",
}
# raw text in the error column of a measured 22.5 -> outcome
RAW_ERRORS = {
    "-0.1": "missing",  # an upper limit: a non-detection
    "-1": "missing",
    "99": "missing",  # no usable error: the band is dropped
    "": "missing",
    "x": "invalid",
}


def _cleaning_table() -> pd.DataFrame:
    values = list(RAW_MAGNITUDES) + ["22.5"] * len(RAW_ERRORS)
    errors = ["0.1"] * len(RAW_MAGNITUDES) + list(RAW_ERRORS)
    expected = list(RAW_MAGNITUDES.values()) + list(RAW_ERRORS.values())
    n = len(values)
    return pd.DataFrame(
        {
            "id": [f"r{k}" for k in range(n)],
            "mag_g": values,
            "magerr_g": errors,
            "mag_r": [f"{21.0 + 0.01 * k:.2f}" for k in range(n)],
            "magerr_r": ["0.1"] * n,
            "mag_i": [f"{20.5 + 0.017 * k:.3f}" for k in range(n)],
            "magerr_i": ["0.1"] * n,
            "expected": expected,
        }
    )


def test_one_raw_value_means_the_same_in_library_ingest_and_assign(
    client, auth, settings, tmp_path, train_map, upload
):
    table = _cleaning_table()
    expected = table.pop("expected").tolist()
    assert len(expected) >= 25
    content = table.to_csv(index=False).encode()
    path = tmp_path / "raw.csv"
    path.write_bytes(content)
    parsed = read_table(path, text_columns=("id",))

    # library: one row at a time, as ColourFeatures sees it after the one reader
    lib = []
    clean = pd.DataFrame({f"{p}_{b}": [21.0, 22.0] for b in "gri" for p in ("mag", "magerr")})
    clean[[c for c in clean if c.startswith("magerr")]] = 0.1
    feats = ColourFeatures(bands=("g", "r", "i"), normalise=None).fit(clean)
    for k in range(len(parsed)):
        try:
            X, _ = feats.transform(parsed.iloc[[k]].reset_index(drop=True))
        except PhotometryError:
            lib.append("invalid")
            continue
        lib.append("measured" if np.isfinite(X[0, 0]) else "missing")
    assert lib == expected

    # ingest: bad rows listed, the others stored with g measured or missing
    r = upload(client, auth, "photometric", content, "raw.csv", on_invalid="skip")
    assert r.status_code == 201, r.text
    bad_rows = {e["row"] for e in r.json()["errors"]}
    ids, mags = _stored_mags(settings.database_url, r.json()["id"], 3)
    stored = dict(zip(ids, mags[:, 0], strict=True))
    ingest = [
        "invalid" if k in bad_rows else ("measured" if np.isfinite(stored[f"r{k}"]) else "missing")
        for k in range(len(table))
    ]
    assert ingest == expected

    # assign: every row answered; invalid rows carry the reason, others their colours
    map_id = train_map(r.json()["id"], **{**SMALL, "n_rows": 3, "n_cols": 3})
    res = client.post(
        f"/v1/maps/{map_id}/assign", content=content, headers={"Content-Type": "text/csv"}
    ).json()["results"]

    def outcome(x):
        reason = x["reason"] or ""
        if "mag_g" in reason or "magerr_g" in reason:
            return "invalid"
        return "measured" if x["n_colours"] == 2 else "missing"

    assigned = [outcome(x) for x in res]
    assert assigned == expected


def test_assign_answers_row_by_row_the_same_for_one_row_or_many(
    client, auth, galaxies, train_map, upload
):
    r = upload(client, auth, "photometric", galaxies.to_csv(index=False).encode(), "g.csv")
    map_id = train_map(r.json()["id"], **SMALL)
    good = {"id": "a", "mag_g": 22.0, "mag_r": 21.6, "mag_i": 21.3}
    bad = {"id": "b", "mag_g": -4.0, "mag_r": 21.6, "mag_i": 21.3}
    alone = client.post(f"/v1/maps/{map_id}/assign", json={"rows": [bad]})
    many = client.post(f"/v1/maps/{map_id}/assign", json={"rows": [good, bad] * 50})
    assert alone.status_code == many.status_code == 200
    reason = alone.json()["results"][0]["reason"]
    assert reason and "magnitude -4" in reason and reason == many.json()["results"][1]["reason"]
    assert many.json()["results"][0]["cell"] is not None
    assert many.json()["n_unassigned"] == 50
    strict = client.post(
        f"/v1/maps/{map_id}/assign", json={"rows": [good, bad], "on_invalid": "reject"}
    )
    assert strict.status_code == 422 and strict.json()["errors"][0]["row"] == 1
    # trust: every answer says how far it can be taken
    first = many.json()["results"][0]
    assert {"n_colours", "percentile", "outside_training", "zspec_fallback"} <= set(first)
    # colours no galaxy has: answered with a cell, but flagged and never covered
    far = {"id": "far"} | {f"mag_{b}": 18.0 + 12.0 * (k % 2) for k, b in enumerate("ugrizYJH")}
    flagged = client.post(f"/v1/maps/{map_id}/assign", json={"rows": [far]}).json()["results"]
    assert flagged[0]["cell"] is not None and flagged[0]["reason"] is None
    assert flagged[0]["percentile"] > 99.5 and flagged[0]["n_colours"] == 7
    assert flagged[0]["outside_training"] is True and flagged[0]["covered"] is False


# ----------------------------------------------------------------------------- spectra, duplicates
def test_stars_and_unplaceable_spectra_never_calibrate(client, auth, upload):
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "ra": [150.1, 150.2, np.nan, 150.4, 150.5],
            "dec": [2.1, 2.2, np.nan, 2.4, 2.5],
            "z_spec": [0.5, 0.0, 0.8, 0.001, 1.2],
            "star": [0, 0, 0, 0, 1],
        }
    )
    content = frame.to_csv(index=False).encode()
    r = upload(client, auth, "spectroscopic", content, "s.csv")
    # row 2 has neither photometry nor a position: it could never land in a cell
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 2, r.text
    r = upload(client, auth, "spectroscopic", content, "s.csv", on_invalid="skip")
    assert r.status_code == 201, r.text
    spectra = r.json()["summary"]["spectra"]
    assert r.json()["n_secure"] == spectra["secure"] == 1  # only z = 0.5
    assert spectra["below_z_min"] == 2 and spectra["star"] == 1


def test_the_same_file_with_other_options_is_a_conflict(client, auth, galaxies, upload):
    content = galaxies.head(200).to_csv(index=False).encode()
    first = upload(client, auth, "photometric", content, "a.csv")
    assert first.status_code == 201
    again = upload(client, auth, "photometric", content, "b.csv")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = upload(client, auth, "photometric", content, "a.csv", mapping={"mag_u": None})
    assert other.status_code == 409, other.text
    assert "mapping" in other.json()["detail"] and str(first.json()["id"]) in other.text
