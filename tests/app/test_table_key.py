"""Choosing the table of a multi-table FITS file: ``table_key`` on the upload route (form
field and JSON body) and ``--hdu`` on ``somcal ingest``/``assign``, on SQLite and PostgreSQL.
Two files: a SExtractor FITS_LDAC (image header, then the objects) and a plain FITS whose
first table is a list of fields and whose second is the photometry."""

from __future__ import annotations

import io
import json

import numpy as np
from astropy.io import fits
from typer.testing import CliRunner

from app.cli import cli
from tests.ldac import ldac_bytes

N = 30


def _mags(seed: int, n_bands: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(19.0, 24.0, (N, n_bands))


def _ldac(seed: int) -> bytes:
    mags = _mags(seed, 3)
    return ldac_bytes(
        [
            fits.Column(name="NUMBER", format="J", array=np.arange(1, N + 1)),
            fits.Column(name="MAG_APER", format="3E", unit="mag", array=mags),
            fits.Column(name="MAGERR_APER", format="3E", unit="mag", array=np.full((N, 3), 0.02)),
        ]
    )


LDAC_MAPPING = {"source_id": "NUMBER"} | {
    f"{kind}_{band}": f"{col}[{i}]"
    for i, band in enumerate("gri")
    for kind, col in (("mag", "MAG_APER"), ("magerr", "MAGERR_APER"))
}


def _two_tables(seed: int) -> bytes:
    """A table of fields first (no photometry), then the catalogue in HDU 2 ``PHOT``."""
    fields = fits.BinTableHDU.from_columns(
        [fits.Column(name="FIELD", format="10A", array=np.array(["COSMOS", "XMM"]))],
        name="FIELDS",
    )
    mags = _mags(seed, 2)
    phot = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="id", format="K", array=np.arange(N)),
            fits.Column(name="mag_g", format="D", array=mags[:, 0]),
            fits.Column(name="magerr_g", format="D", array=np.full(N, 0.05)),
            fits.Column(name="mag_r", format="D", array=mags[:, 1]),
            fits.Column(name="magerr_r", format="D", array=np.full(N, 0.05)),
        ],
        name="PHOT",
    )
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fields, phot]).writeto(buf)
    return buf.getvalue()


def test_ldac_default_and_another_hdu_is_a_conflict(client, auth, upload):
    content = _ldac(1)
    r = upload(client, auth, "photometric", content, "field.cat", mapping=LDAC_MAPPING)
    assert r.status_code == 201, r.text
    assert r.json()["n_rows"] == N and r.json()["bands"] == ["g", "r", "i"]
    assert "table_key" not in r.json()["options"]
    # the same bytes asking for the image header: other data, so 409 naming the option
    r = upload(client, auth, "photometric", content, "field.cat", mapping=LDAC_MAPPING, table_key=1)
    assert r.status_code == 409, r.text
    assert "table_key" in r.text
    # by index, on other bytes: HDU 2 is LDAC_OBJECTS; stored as the index 2
    r = upload(
        client, auth, "photometric", _ldac(2), "field2.cat", mapping=LDAC_MAPPING, table_key="2"
    )
    assert r.status_code == 201, r.text
    assert r.json()["options"]["table_key"] == 2
    # a digit string and the integer are the same option: a duplicate, not a conflict
    again = upload(
        client, auth, "photometric", _ldac(2), "field2.cat", mapping=LDAC_MAPPING, table_key=" 2 "
    )
    assert again.status_code == 200 and again.json()["duplicate"], again.text


def test_plain_fits_with_the_catalogue_in_the_second_table(client, auth, upload):
    # default: the first table (FIELDS) is read; the refusal names the others and the option
    r = upload(client, auth, "photometric", _two_tables(1), "survey.fits")
    assert r.status_code == 422, r.text
    reasons = " ".join(e["reason"] for e in r.json()["errors"])
    assert "HDU 1 'FIELDS'" in reasons and "2 'PHOT'" in reasons, reasons
    assert "table_key" in reasons and "--hdu" in reasons, reasons

    # by name (EXTNAME, case-insensitive as in FITS)
    ok = upload(client, auth, "photometric", _two_tables(1), "survey.fits", table_key="phot")
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["n_rows"] == N and body["bands"] == ["g", "r"]
    assert body["options"]["table_key"] == "phot"
    # the same file with another HDU, or without one: 409, options differ
    for other in ("1", "FIELDS"):
        r = upload(client, auth, "photometric", _two_tables(1), "survey.fits", table_key=other)
        assert r.status_code == 409, r.text
        assert "table_key" in r.json()["detail"], r.text
    r = upload(client, auth, "photometric", _two_tables(1), "survey.fits")
    assert r.status_code == 409, r.text

    # by index
    ok = upload(client, auth, "photometric", _two_tables(2), "survey2.fits", table_key="2")
    assert ok.status_code == 201, ok.text
    assert ok.json()["options"]["table_key"] == 2

    # a name the file does not have: 422 listing its HDUs; an image HDU: not a table
    r = upload(client, auth, "photometric", _two_tables(3), "survey3.fits", table_key="CATALOG")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "'CATALOG'" in detail and "1 FIELDS" in detail and "2 PHOT" in detail, detail
    assert r.json()["errors"][0]["file"] == "survey3.fits"
    r = upload(client, auth, "photometric", _two_tables(3), "survey3.fits", table_key="0")
    assert r.status_code == 422 and "not a table" in r.json()["detail"], r.text
    r = upload(client, auth, "photometric", _two_tables(3), "survey3.fits", table_key="7")
    assert r.status_code == 422 and "2 PHOT" in r.json()["detail"], r.text


def test_table_key_in_a_json_body_and_on_a_csv(client, auth, data_dir, upload):
    (data_dir / "survey.fits").write_bytes(_two_tables(4))
    r = client.post(
        "/v1/catalogues/photometric",
        content=json.dumps({"path": "survey.fits", "table_key": 2}),
        headers={**auth, "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["options"]["table_key"] == 2
    csv = b"id,mag_g,magerr_g,mag_r,magerr_r\n1,21,0.1,22,0.1\n2,21.5,0.1,22.5,0.1\n"
    r = upload(client, auth, "photometric", csv, "one.csv", table_key="PHOT")
    assert r.status_code == 400 and "table_key" in r.json()["detail"], r.text


def test_openapi_documents_table_key(client):
    spec = client.get("/openapi.json").json()
    assert "table_key" in spec["components"]["schemas"]["IngestFromPath"]["properties"]
    body = spec["paths"]["/v1/catalogues/{kind}"]["post"]["requestBody"]["content"]
    assert "table_key" in body["multipart/form-data"]["schema"]["properties"]


def test_cli_ingest_hdu_by_name_and_index(settings, tmp_path):
    url = settings.database_url
    plain = tmp_path / "survey.fits"
    plain.write_bytes(_two_tables(5))
    args = ["ingest", "photometric", str(plain), "--database-url", url]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code != 0
    assert "--hdu" in refused.output + (refused.stderr or ""), refused.output
    ok = CliRunner().invoke(cli, [*args, "--hdu", "PHOT"])
    assert ok.exit_code == 0, (ok.output, ok.exception)
    clash = CliRunner().invoke(cli, [*args, "--hdu", "1"])
    assert clash.exit_code != 0 and "table_key" in clash.output + (clash.stderr or "")
    other = tmp_path / "survey2.fits"
    other.write_bytes(_two_tables(6))
    ok = CliRunner().invoke(
        cli, ["ingest", "photometric", str(other), "--database-url", url, "--hdu", "2"]
    )
    assert ok.exit_code == 0, (ok.output, ok.exception)
    third = tmp_path / "survey3.fits"
    third.write_bytes(_two_tables(8))
    bad = CliRunner().invoke(
        cli, ["ingest", "photometric", str(third), "--database-url", url, "--hdu", "NOPE"]
    )
    assert bad.exit_code != 0 and "2 PHOT" in bad.output + (bad.stderr or ""), bad.output


def test_assign_file_reads_the_chosen_hdu(tmp_path):
    """``somcal assign --hdu`` reads through the same reader: the chosen table is read."""
    from som.tables import read_table

    path = tmp_path / "survey.fits"
    path.write_bytes(_two_tables(7))
    frame = read_table(path, key=2)
    assert list(frame.columns)[:2] == ["id", "mag_g"] and len(frame) == N


def _hdf5_two_tables(path) -> None:
    import h5py

    mags = _mags(9, 2)
    phot = np.zeros(
        N,
        dtype=[
            ("id", "i8"),
            ("mag_g", "f8"),
            ("magerr_g", "f8"),
            ("mag_r", "f8"),
            ("magerr_r", "f8"),
        ],
    )
    phot["id"], phot["mag_g"], phot["mag_r"] = np.arange(N), mags[:, 0], mags[:, 1]
    phot["magerr_g"] = phot["magerr_r"] = 0.05
    fields = np.zeros(2, dtype=[("field", "S10")])
    with h5py.File(path, "w") as f:
        f.create_dataset("fields", data=fields)
        f.create_dataset("phot", data=phot)


def test_hdf5_with_two_tables_names_the_option(client, auth, upload, tmp_path):
    path = tmp_path / "survey.h5"
    _hdf5_two_tables(path)
    r = upload(client, auth, "photometric", path.read_bytes(), "survey.h5")
    assert r.status_code == 422, r.text
    assert "several tables" in r.json()["detail"] and "table_key" in r.json()["detail"], r.text
    ok = upload(client, auth, "photometric", path.read_bytes(), "survey.h5", table_key="phot")
    assert ok.status_code == 201, ok.text
    assert ok.json()["n_rows"] == N
