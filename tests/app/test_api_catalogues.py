"""Catalogue ingestion through HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.main import create_app
from app.models import Catalogue, Source, Spectrum
from app.services.phot_store import unpack


def _count(url: str, model) -> int:
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        n = s.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return int(n)


def test_photometric_upload_roundtrip_and_duplicate(client, auth, mock_catalogue, settings, upload):
    frame = mock_catalogue(150, seed=1)
    frame.loc[3, "mag_u"] = -99.0  # sentinel -> NULL
    content = frame.to_csv(index=False).encode()
    r = upload(client, auth, "photometric", content, "mock.csv")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["duplicate"] is False
    assert body["n_rows"] == 150 and body["preset"] == "somcal_mock"
    assert body["bands"] == ["u", "g", "r", "i", "z", "Y", "J", "H"]
    assert body["column_mapping"]["mag_Y"] == "mag_Y"
    cat_id = body["id"]

    # The same bytes again: recognised, the existing catalogue comes back, nothing is added.
    r2 = upload(client, auth, "photometric", content, "renamed.csv")
    assert r2.status_code == 200, r2.text
    assert r2.json()["duplicate"] is True and r2.json()["id"] == cat_id
    assert _count(settings.database_url, Catalogue) == 1
    assert _count(settings.database_url, Source) == 150

    # Stored values are the file's values, the sentinel became NULL.
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        rows = s.scalars(select(Source).order_by(Source.row_index)).all()
    engine.dispose()
    assert [r.source_id for r in rows[:3]] == ["1", "2", "3"]
    mags = unpack([r.mags for r in rows], len(body["bands"]))
    bands = body["bands"]
    assert np.isnan(mags[3, bands.index("u")])
    assert mags[3, bands.index("g")] == pytest.approx(frame.loc[3, "mag_g"])
    np.testing.assert_allclose(
        mags[:, bands.index("Y")], frame["mag_Y"].to_numpy(), rtol=0, atol=1e-12
    )
    assert body["summary"]["photometry"]["u"]["missing"] >= 1

    listing = client.get("/v1/catalogues").json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == cat_id
    assert client.get(f"/v1/catalogues/{cat_id}").json()["sha256"] == body["sha256"]
    assert client.get("/v1/catalogues?kind=spectroscopic").json()["total"] == 0

    # The same file as the other kind is a different catalogue.
    r3 = upload(client, auth, "spectroscopic", content, "mock.csv")
    assert r3.status_code == 422  # no z_spec values at all in this file
    assert r3.json()["errors"][0]["column"] == "z_spec"

    d = client.delete(f"/v1/catalogues/{cat_id}", headers=auth)
    assert d.status_code == 200 and d.json()["deleted"] == cat_id
    assert d.json()["restore"] == f"POST /v1/catalogues/{cat_id}/restore"
    gone = client.get(f"/v1/catalogues/{cat_id}")
    assert gone.status_code == 404 and f"/v1/catalogues/{cat_id}/restore" in gone.json()["detail"]
    assert client.delete(f"/v1/catalogues/{cat_id}", headers=auth).status_code == 404
    # Deleted, not gone: the rows stay until purged, and only a deleted catalogue is purged.
    assert _count(settings.database_url, Source) == 150
    assert client.get("/v1/catalogues").json()["total"] == 0
    assert [c["id"] for c in client.get("/v1/catalogues?deleted=true").json()["items"]] == [cat_id]
    # The same file again while its deleted twin exists: a 409 naming it and the restore.
    twin = upload(client, auth, "photometric", content, "again.csv")
    assert twin.status_code == 409, twin.text
    assert twin.json()["catalogue_id"] == cat_id and twin.json()["deleted"] is True
    assert f"POST /v1/catalogues/{cat_id}/restore" in twin.json()["detail"]
    assert client.post(f"/v1/catalogues/{cat_id}/purge").status_code == 401
    p = client.post(f"/v1/catalogues/{cat_id}/purge", headers=auth)
    assert p.status_code == 200 and p.json()["purged"] == cat_id
    assert _count(settings.database_url, Source) == 0
    assert client.get("/v1/catalogues?deleted=true").json()["total"] == 0
    assert client.post(f"/v1/catalogues/{cat_id}/restore", headers=auth).status_code == 404
    # Purged: the file is new again.
    anew = upload(client, auth, "photometric", content, "again.csv")
    assert anew.status_code == 201 and anew.json()["duplicate"] is False
    live_one = client.post(f"/v1/catalogues/{anew.json()['id']}/purge", headers=auth)
    assert live_one.status_code == 409 and "not deleted" in live_one.json()["detail"]


def test_mock_spectroscopic_keeps_only_rows_with_redshift(client, auth, mock_catalogue, upload):
    frame = mock_catalogue(300, seed=2, spec_fraction=0.2)
    r = upload(client, auth, "spectroscopic", frame, "mock_spec.csv")
    assert r.status_code == 201, r.text
    n_spec = int(frame["z_spec"].notna().sum())
    assert r.json()["n_rows"] == n_spec and r.json()["n_skipped"] == 300 - n_spec
    assert r.json()["n_secure"] == n_spec  # no quality column: the catalogue vouches for all


@pytest.mark.parametrize("fmt", ["fits", "parquet", "ecsv"])
def test_binary_and_ecsv_formats(client, auth, mock_catalogue, tmp_path, fmt, upload):
    frame = mock_catalogue(80, seed=3)
    path = tmp_path / f"cat.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path)
    else:
        Table.from_pandas(frame).write(path, format="fits" if fmt == "fits" else "ascii.ecsv")
    # A misleading name does not matter: the content decides the format.
    r = upload(client, auth, "photometric", path.read_bytes(), "upload.bin")
    assert r.status_code == 201, r.text
    assert r.json()["file_format"] == fmt and r.json()["n_rows"] == 80


def test_whitespace_ascii_with_hash_header_keeps_ids_as_written(
    client, auth, mock_catalogue, settings, upload
):
    """LePhare/EAZY-style input: '#' comment lines, the last one naming the columns."""
    frame = mock_catalogue(60, seed=4)
    frame["id"] = [f"{i:06d}" for i in range(60)]
    body = frame.to_csv(sep=" ", header=False, index=False, na_rep="nan", lineterminator="\n")
    content = ("# written for the test\n# " + "  ".join(frame.columns) + "\n" + body).encode()
    r = upload(client, auth, "photometric", content, "mock.in")
    assert r.status_code == 201, r.text
    assert r.json()["file_format"] == "ascii" and r.json()["n_rows"] == 60
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        ids = s.scalars(select(Source.source_id).order_by(Source.row_index)).all()
    engine.dispose()
    assert ids[:3] == ["000000", "000001", "000002"]  # leading zeros kept
    assert client.delete(f"/v1/catalogues/{r.json()['id']}", headers=auth).status_code == 200


def test_json_path_ingest_is_confined_to_data_dirs(
    client, auth, mock_catalogue, data_dir, tmp_path
):
    frame = mock_catalogue(50, seed=4)
    (data_dir / "sub").mkdir()
    frame.to_csv(data_dir / "sub" / "cat.csv", index=False)
    frame.to_csv(tmp_path / "outside.csv", index=False)
    (data_dir / "link.csv").symlink_to(tmp_path / "outside.csv")

    r = client.post("/v1/catalogues/photometric", json={"path": "sub/cat.csv"}, headers=auth)
    assert r.status_code == 201, r.text
    for bad in [
        "../outside.csv",
        str(tmp_path / "outside.csv"),
        "link.csv",
        "sub/../../outside.csv",
    ]:
        r = client.post("/v1/catalogues/photometric", json={"path": bad}, headers=auth)
        assert r.status_code == 403, (bad, r.text)
        assert "outside" in r.json()["detail"]
    r = client.post("/v1/catalogues/photometric", json={"path": "sub/nope.csv"}, headers=auth)
    assert r.status_code == 404
    r = client.post("/v1/catalogues/photometric", json={"path": "x.csv", "bogus": 1}, headers=auth)
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "bogus"


def test_zcosmos_preset_secure_flags_match_the_science_reader(
    db_url, clean_db, zcosmos_path, tmp_path, auth
):
    from som.zcosmos import ZCOSMOS_ALL_BANDS, read_zcosmos

    settings = Settings(
        database_url=clean_db, data_dirs=[zcosmos_path.parent], upload_tmp_dir=tmp_path
    )
    with TestClient(create_app(settings)) as client:
        r = client.post(
            "/v1/catalogues/spectroscopic",
            json={"path": zcosmos_path.name},
            headers=auth,
        )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["preset"] == "zcosmos"  # detected from the columns
    n_stars = int((read_zcosmos(zcosmos_path)["z_spec"] < 0.002).sum())
    assert body["n_rows"] == 17358 and body["n_secure"] < 11934
    assert n_stars > 100 and body["summary"]["spectra"]["below_z_min"] == n_stars
    bands = list(ZCOSMOS_ALL_BANDS)  # the file's own filters: Suprime-Cam, WFCAM, WIRCam
    assert body["bands"] == bands

    ref = read_zcosmos(zcosmos_path)
    engine = make_engine(clean_db)
    with make_session_factory(engine)() as s:
        rows = s.execute(
            select(
                Spectrum.row_index,
                Spectrum.secure,
                Spectrum.z_spec,
                Spectrum.mags,
                Spectrum.quality_raw,
            ).order_by(Spectrum.row_index)
        ).all()
    engine.dispose()
    secure = np.array([r.secure for r in rows])
    # Stars (z = 0 in zCOSMOS) are never secure galaxy redshifts, whatever their class.
    galaxy = ref["z_spec"].to_numpy() >= 0.002
    np.testing.assert_array_equal(secure, ref["secure"].to_numpy() & galaxy)
    assert body["summary"]["spectra"]["below_z_min"] == int((ref["secure"] & ~galaxy).sum()) + int(
        (~ref["secure"] & ~galaxy).sum()
    )
    np.testing.assert_allclose([r.z_spec for r in rows], ref["z_spec"].to_numpy())
    mags = unpack([r.mags for r in rows], len(bands))
    for band in ("u", "i_subaru", "Ks_wircam"):
        ours = mags[:, bands.index(band)]
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref[f"mag_{band}"].to_numpy()))
        np.testing.assert_allclose(ours, ref[f"mag_{band}"].to_numpy(), equal_nan=True)
    assert rows[0].quality_raw == "1.5"


def test_compilation_preset_and_explicit_rule(client, auth, upload):
    frame = pd.DataFrame(
        {
            "Id_specz": [10, 11, 12, 13, 14],
            "ra_corrected": [150.1, 150.2, 150.3, 150.4, 150.5],
            "dec_corrected": [2.1, 2.2, 2.3, 2.4, 2.5],
            "specz": [0.3, 1.2, 0.8, 2.5, 0.01],
            "flag": [4, 3, 9, 13, 2],
            "Confidence_level": [97, 95, 85, 95, 80],
            "survey": [29, 56, 106, 17, 25],
        }
    )
    r = upload(client, auth, "spectroscopic", frame, "specz.csv")
    assert r.status_code == 201, r.text
    assert r.json()["preset"] == "cosmos_specz_compilation" and r.json()["n_secure"] == 3
    # A stricter explicit rule on a modified file (new checksum): only flag 4.
    frame.loc[0, "specz"] = 0.31
    r = upload(
        client,
        auth,
        "spectroscopic",
        frame,
        "specz2.csv",
        secure_rule={"kind": "in", "values": [4, 14]},
    )
    assert r.status_code == 201, r.text
    assert r.json()["n_secure"] == 1


def _bad(upload, client, auth, content, filename="bad.csv", kind="photometric", **fields):
    """Upload ``content`` (bytes, or a frame sent as CSV) that should be refused."""
    return upload(client, auth, kind, content, filename, **fields)


def test_row_level_errors_name_file_column_row_and_reason(
    client, auth, mock_catalogue, settings, upload
):
    frame = mock_catalogue(20, seed=5).astype({"mag_r": object, "magerr_g": float})
    frame.loc[7, "mag_r"] = "abc"
    frame.loc[11, "magerr_g"] = -0.2
    frame.loc[4, "ra"] = np.inf
    frame.loc[2, "dec"] = 95.0
    r = _bad(upload, client, auth, frame, "bad.csv", negative_error="invalid")
    assert r.status_code == 422, r.text
    errors = {(e["column"], e["row"]): e for e in r.json()["errors"]}
    assert errors[("mag_r", 7)]["reason"] == "not a number: 'abc'"
    assert "negative error -0.2" in errors[("magerr_g", 11)]["reason"]
    assert errors[("ra", 4)]["reason"] == "infinite value"
    assert "outside [-90, 90]" in errors[("dec", 2)]["reason"]
    assert all(e["file"] == "bad.csv" for e in r.json()["errors"])
    assert _count(settings.database_url, Catalogue) == 0

    # on_invalid=skip keeps the good rows and lists the bad ones.
    r = _bad(upload, client, auth, frame, "bad.csv", on_invalid="skip", negative_error="invalid")
    assert r.status_code == 201, r.text
    assert r.json()["n_rows"] == 16 and r.json()["n_skipped"] == 4 and r.json()["n_errors"] == 4


def test_bad_files_are_refused_with_a_reason(client, auth, mock_catalogue, upload):
    good = mock_catalogue(10, seed=6).to_csv(index=False).encode()
    truncated = good[: good.rindex(b",")]  # last line cut mid-row
    r = _bad(upload, client, auth, truncated)
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 9, r.text
    assert "fields" in r.json()["detail"]

    latin1 = "id,ra,dec,mag_g,mag_r\n1,150.0,2.0,22.1,21.7\n2,150.1,2.1,22.0,21.é\n".encode(
        "latin-1"
    )
    r = _bad(upload, client, auth, latin1)
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"], r.text

    dup = b"id,mag_g,mag_g,mag_r\n1,22.0,22.0,21.0\n"
    r = _bad(upload, client, auth, dup)
    assert r.status_code == 422 and "duplicate column" in r.json()["detail"]

    fits_bytes = io.BytesIO()
    Table.from_pandas(mock_catalogue(10, seed=7)).write(fits_bytes, format="fits")
    r = _bad(upload, client, auth, fits_bytes.getvalue()[:3000], "cut.fits")
    assert r.status_code == 422 and "FITS" in r.json()["detail"], r.text
    r = _bad(upload, client, auth, b"this is not a fits file at all", "fake.fits")
    assert r.status_code == 422 and "FITS" in r.json()["detail"]

    r = _bad(upload, client, auth, b"id,ra,dec\n1,150,2\n")
    assert r.status_code == 422 and "fewer than two bands" in r.json()["detail"] + str(
        r.json()["errors"]
    )
    r = _bad(upload, client, auth, b"")
    assert r.status_code == 422

    frame = mock_catalogue(5, seed=8)
    r = _bad(upload, client, auth, frame, mapping={"mag_g": "no_such_column"})
    assert r.status_code == 422 and r.json()["errors"][0]["column"] == "no_such_column"
    r = _bad(upload, client, auth, frame, preset="nonexistent")
    assert r.status_code == 400 and "unknown preset" in r.json()["detail"]
    r = _bad(upload, client, auth, frame, mapping="{not json")
    assert r.status_code == 400 and r.json()["errors"][0]["column"] == "mapping"

    spec = pd.DataFrame({"id": [1, 2], "z_spec": [0.5, np.nan], "quality": [3, 4]})
    r = _bad(upload, client, auth, spec, kind="spectroscopic")
    assert r.status_code == 400 and "secure_rule" in r.json()["detail"]
    r = _bad(
        upload, client, auth, spec, kind="spectroscopic", secure_rule={"kind": "min", "value": 3}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0] == {
        "file": "bad.csv",
        "column": "z_spec",
        "row": 1,
        "reason": "missing spectroscopic redshift",
    }


def test_size_and_row_limits(db_url, clean_db, mock_catalogue, tmp_path, auth, upload):
    settings = Settings(
        database_url=clean_db, max_upload_bytes=20_000, max_rows=40, upload_tmp_dir=tmp_path
    )
    with TestClient(create_app(settings)) as client:
        # Over the limit by far: refused from Content-Length before the body is read.
        big = mock_catalogue(2000, seed=9).to_csv(index=False).encode()
        assert len(big) > 20_000 + 64 * 1024
        r = upload(client, auth, "photometric", big, "big.csv")
        assert r.status_code == 413, r.text
        assert "limit" in r.json()["detail"]
        # Just over: passes the request limit (multipart allowance) but not the file limit.
        medium = mock_catalogue(100, seed=9).to_csv(index=False).encode()
        assert 20_000 < len(medium) < 20_000 + 64 * 1024
        r = upload(client, auth, "photometric", medium, "medium.csv")
        assert r.status_code == 413 and "upload larger" in r.json()["detail"], r.text
        r = upload(client, auth, "photometric", mock_catalogue(60, seed=9), "rows.csv")
        assert r.status_code == 413 and "60 rows" in r.json()["detail"]
    assert _count(clean_db, Catalogue) == 0


def test_unsupported_content_type(client, auth):
    r = client.post(
        "/v1/catalogues/photometric",
        content=b"a,b\n1,2\n",
        headers={**auth, "Content-Type": "text/csv"},
    )
    assert r.status_code == 415
    assert client.post("/v1/catalogues/other", json={"path": "x"}, headers=auth).status_code == 422


def test_a_failing_ingest_leaves_nothing_behind(settings, mock_catalogue, tmp_path):
    """Rows are written, then the transaction fails: neither catalogue nor rows remain."""
    from app.services.ingest import IngestRequest, LedgerHook, ingest

    path = tmp_path / "cat.csv"
    mock_catalogue(500, seed=11).to_csv(path, index=False)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)

    class Explode(LedgerHook):
        def rows(self, session, catalogue, rows):
            pass

        def done(self, session, catalogue):
            n = session.scalar(
                select(func.count()).select_from(Source).where(Source.catalogue_id == catalogue.id)
            )
            assert n == 500  # the bulk load did happen inside the transaction
            raise RuntimeError("simulated failure after the bulk load")

    explode = Explode()

    with pytest.raises(RuntimeError, match="simulated"):
        ingest(
            factory,
            IngestRequest(kind="photometric", path=path, filename="cat.csv"),
            max_rows=10_000,
            after_insert=explode,
        )
    engine.dispose()
    assert _count(settings.database_url, Catalogue) == 0
    assert _count(settings.database_url, Source) == 0


COSMOS2020_FILTERS = (
    "CFHT_u",
    "HSC_g",
    "HSC_r",
    "HSC_i",
    "HSC_z",
    "UVISTA_Y",
    "UVISTA_J",
    "UVISTA_H",
)


@pytest.mark.parametrize(
    ("preset", "columns", "mag_i"),
    [
        (
            "cosmos2020_classic",
            ["ID", "ALPHA_J2000", "DELTA_J2000", "lp_zBEST"]
            + [f"{s}_MAG_{k}" for s in COSMOS2020_FILTERS for k in ("APER2", "AUTO")]
            + [f"{s}_MAGERR_APER2" for s in COSMOS2020_FILTERS],
            "HSC_i_MAG_APER2",
        ),
        (
            "cosmos2020_farmer",
            ["ID", "ALPHA_J2000", "DELTA_J2000", "lp_zBEST"]
            + [f"{s}_{k}" for s in COSMOS2020_FILTERS for k in ("MAG", "MAGERR")],
            "HSC_i_MAG",
        ),
        (
            "cosmos2015",
            ["NUMBER", "ALPHA_J2000", "DELTA_J2000", "PHOTOZ"]
            + [
                f"{s}_{k}"
                for s in ("u", "B", "V", "r", "ip", "zpp", "Y", "J", "H", "Ks")
                for k in ("MAG_AUTO", "MAGERR_AUTO", "MAG_APER3", "MAGERR_APER3")
            ],
            "ip_MAG_APER3",
        ),
    ],
)
def test_cosmos_presets_are_recognised_from_fits_columns(
    client, auth, preset, columns, mag_i, upload
):
    rng = np.random.default_rng(1)
    n = 40
    t = Table()
    for name in columns:
        if "MAGERR" in name:
            t[name] = np.full(n, 0.05)
        elif "MAG" in name:
            t[name] = rng.uniform(20, 25, n).astype(">f4")  # FITS is big-endian float32
        elif name in ("ID", "NUMBER"):
            t[name] = np.arange(n, dtype=np.int64) + 100
        elif name in ("lp_zBEST", "PHOTOZ"):
            z = rng.uniform(0, 3, n)
            z[0] = -99.0  # failed fit sentinel
            t[name] = z
        else:
            t[name] = rng.uniform(1.5, 2.5, n) + (148.5 if "ALPHA" in name else 0.0)
    t["FLUX_RADIUS"] = rng.uniform(size=(n, 3))  # a vector column the ingest must not need
    buf = io.BytesIO()
    t.write(buf, format="fits")
    r = upload(client, auth, "photometric", buf.getvalue(), f"{preset}.fits")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["preset"] == preset
    assert body["column_mapping"]["mag_i"] == mag_i
    expected_bands = (
        ["u", "r", "i", "z", "Y", "J", "H"]
        if preset == "cosmos2015"
        else ["u", "g", "r", "i", "z", "Y", "J", "H"]
    )
    assert body["bands"] == expected_bands
    cat = client.get(f"/v1/catalogues/{body['id']}").json()
    assert cat["n_rows"] == n


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_old_catalogs_path_redirects_to_catalogues_keeping_method_and_query(client, auth):
    r = client.get("/v1/catalogs?limit=5", follow_redirects=False)
    assert r.status_code == 308
    assert r.headers["location"].endswith("/v1/catalogues?limit=5")
    assert client.get("/v1/catalogs", follow_redirects=True).status_code == 200
    r = client.post("/v1/catalogs/photometric", headers=auth, follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"].endswith("/v1/catalogues/photometric")
    assert "/v1/catalogs" not in str(client.get("/openapi.json").json()["paths"])
