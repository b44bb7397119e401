"""Catalogue files as survey teams hand them over, through the API and the CLI, on SQLite and
PostgreSQL: 64-bit ids beyond 2**53 stored exactly (Parquet with nulls, FITS unsigned and
TNULL), SDSS vector magnitudes mapped element by element, SExtractor FITS_LDAC, a European
semicolon CSV with comment lines. Each file's rows are compared with what was sent.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import cli
from app.core.db import make_engine, make_session_factory
from app.models import Catalogue, Source
from app.services.errors import ConflictError
from app.services.phot_store import unpack
from som.photometry import flux_to_mag
from tests.ldac import ldac_bytes

N = 40
BIG = 2**62 + 12345  # ids from here on are not exact in float64


def _stored(url: str, catalogue_id: int, n_bands: int):
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        rows = s.execute(
            select(Source.row_index, Source.source_id, Source.mags)
            .where(Source.catalogue_id == catalogue_id)
            .order_by(Source.row_index)
        ).all()
    engine.dispose()
    return [r[0] for r in rows], [r[1] for r in rows], unpack([r[2] for r in rows], n_bands)


def _mags(seed: int = 0, n_bands: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(19.0, 24.0, (N, n_bands))


def test_parquet_ids_beyond_2_53_with_a_null_are_stored_exactly(client, auth, upload, settings):
    """A pyarrow-written int64 id column with one null: the null row is refused by name
    (skip), every other id is stored digit for digit (it was rounded through float64)."""
    ids = [BIG + i for i in range(N)]
    ids[7] = None
    mags = _mags()
    buf = io.BytesIO()
    pq.write_table(
        pa.table(
            {
                "objectId": pa.array(ids, pa.int64()),
                "mag_g": mags[:, 1],
                "magerr_g": np.full(N, 0.05),
                "mag_r": mags[:, 2],
                "magerr_r": np.full(N, 0.05),
            }
        ),
        buf,
        compression="zstd",
    )
    r = upload(
        client,
        auth,
        "photometric",
        buf.getvalue(),
        "rubin.parquet",
        mapping={"source_id": "objectId"},
        on_invalid="skip",
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["n_rows"] == N - 1
    assert [(e["column"], e["row"]) for e in body["errors"]] == [("objectId", 7)]
    assert "missing source id" in body["errors"][0]["reason"]
    rows, stored, _ = _stored(settings.database_url, body["id"], 2)
    assert stored == [str(i) for i in ids if i is not None]
    assert rows == [i for i in range(N) if i != 7]


def test_sdss_fits_vector_magnitudes_unsigned_and_tnull_ids(client, auth, upload, settings):
    """SDSS-style MODELMAG (n, 5) mapped per element; Gaia-style unsigned ids via TZERO; a
    TNULL id is a missing id (refused by row), not the stored sentinel."""
    mags = _mags(1)
    objid = np.array([2**63 + 11 + i for i in range(N)], dtype=np.uint64)
    cols = [
        fits.Column(name="objID", format="K", bzero=2**63, array=objid),
        fits.Column(name="specObjID", format="K", null=-1, array=np.r_[BIG, -1, np.arange(N - 2)]),
        fits.Column(name="MODELMAG", format="5E", unit="mag", array=mags.astype(">f4")),
        fits.Column(name="MODELMAGERR", format="5E", array=np.full((N, 5), 0.03, ">f4")),
    ]
    buf = io.BytesIO()
    fits.BinTableHDU.from_columns(cols).writeto(buf)
    mapping = {"source_id": "objID"}
    for i, band in enumerate("ugriz"):
        mapping[f"mag_{band}"] = f"MODELMAG[{i}]"
        mapping[f"magerr_{band}"] = f"MODELMAGERR[{i}]"
    r = upload(client, auth, "photometric", buf.getvalue(), "sdss.fits", mapping=mapping)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["bands"] == list("ugriz") and body["n_rows"] == N
    _, stored, got = _stored(settings.database_url, body["id"], 5)
    assert stored == [str(int(v)) for v in objid]
    np.testing.assert_allclose(got, mags.astype(np.float32), rtol=1e-6)

    # the TNULL id column as source id: row 1 is missing, said so by column and row
    other = io.BytesIO()
    fits.BinTableHDU.from_columns(cols[1:]).writeto(other)
    r = upload(
        client,
        auth,
        "photometric",
        other.getvalue(),
        "sdss_spec.fits",
        mapping={**mapping, "source_id": "specObjID"},
    )
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [(e["file"], e["column"], e["row"]) for e in errors] == [
        ("sdss_spec.fits", "specObjID", 1)
    ]
    assert "missing source id" in errors[0]["reason"]
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:  # nothing half-written
        assert s.scalars(select(Catalogue.filename)).all() == ["sdss.fits"]
        assert s.scalar(select(func.count()).select_from(Source)) == N
    engine.dispose()


def _ldac(mags: np.ndarray) -> bytes:
    return ldac_bytes(
        [
            fits.Column(name="NUMBER", format="J", array=np.arange(1, N + 1)),
            fits.Column(name="ALPHA_J2000", format="D", unit="deg", array=np.full(N, 150.1)),
            fits.Column(name="DELTA_J2000", format="D", unit="deg", array=np.full(N, 2.2)),
            fits.Column(name="MAG_APER", format="3E", unit="mag", array=mags),
            fits.Column(name="MAGERR_APER", format="3E", unit="mag", array=np.full((N, 3), 0.02)),
        ]
    )


def test_sextractor_ldac_through_the_api_and_the_cli(client, auth, upload, settings, tmp_path):
    """A FITS_LDAC ``.cat``: the objects HDU is read (not the image header), and one band per
    SExtractor run is an aperture of MAG_APER."""
    mags = _mags(2, 3)
    content = _ldac(mags)
    mapping = {"source_id": "NUMBER", "ra": "ALPHA_J2000", "dec": "DELTA_J2000"}
    for i, band in enumerate("gri"):
        mapping[f"mag_{band}"] = f"MAG_APER[{i}]"
        mapping[f"magerr_{band}"] = f"MAGERR_APER[{i}]"
    r = upload(client, auth, "photometric", content, "field.cat", mapping=mapping)
    assert r.status_code == 201, r.text
    _, ids, got = _stored(settings.database_url, r.json()["id"], 3)
    assert ids == [str(i) for i in range(1, N + 1)]
    np.testing.assert_allclose(got, mags.astype(np.float32), rtol=1e-6)

    # the CLI: the same mapping by --map; mapping the whole vector says which elements exist
    path = tmp_path / "other_field.cat"
    path.write_bytes(_ldac(_mags(3, 3)))
    url = settings.database_url
    args = ["ingest", "photometric", str(path), "--database-url", url]
    bad = CliRunner().invoke(cli, [*args, "--map", "mag_g=MAG_APER", "--map", "mag_r=NUMBER"])
    assert bad.exit_code != 0
    assert "MAG_APER[0] .. MAG_APER[2]" in bad.output + (bad.stderr or ""), bad.output
    maps = [arg for f, c in mapping.items() for arg in ("--map", f"{f}={c}")]
    ok = CliRunner().invoke(cli, [*args, *maps])
    assert ok.exit_code == 0, (ok.output, ok.exception)


def test_semicolon_csv_with_comment_lines_and_blank_tokens(client, auth, upload, settings):
    """A spreadsheet export: BOM, `#` provenance lines, `;` delimiter, Windows line ends,
    `--`/`null`/empty for missing, -99 sentinels; read as the numbers they are."""
    mags = np.round(_mags(4, 2), 3)
    lines = ["# exported from TOPCAT", "# units: AB mag", "id;name;mag_g;magerr_g;mag_r;magerr_r"]
    for i in range(N):
        g = {3: "--", 4: "null", 5: "", 6: "-99"}.get(i, f"{mags[i, 0]}")
        lines.append(f'{BIG + i};"obj {i}; field A";{g};0.05;{mags[i, 1]};0.05')
    content = b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    r = upload(client, auth, "photometric", content, "export.csv", mapping={"source_id": "id"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["n_rows"] == N and body["summary"]["photometry"]["g"]["missing"] == 4
    _, ids, got = _stored(settings.database_url, body["id"], 2)
    assert ids == [str(BIG + i) for i in range(N)]
    assert np.isnan(got[3:7, 0]).all() and np.allclose(got[7:, 0], mags[7:, 0])


def test_assign_output_of_a_fits_ldac_cat_is_fits(tmp_path):
    """``somcal assign field.cat`` on a FITS_LDAC file writes ``field_cells.fits`` (it wrote a
    whitespace table because of the name); a text ``.cat`` keeps its ending."""
    from app.services.assign_file import default_output

    ldac = tmp_path / "field.cat"
    ldac.write_bytes(_ldac(_mags(5, 3)))
    assert default_output(ldac).name == "field_cells.fits"
    text = tmp_path / "lephare.cat"
    text.write_text("# id mag_g mag_r\n1 21 22\n")
    assert default_output(text).name == "lephare_cells.cat"
    assert default_output(tmp_path / "new.fits.gz").name == "new_cells.fits.gz"


def _two_tables() -> bytes:
    """A FITS file whose first table is not the catalogue (a field list), then the photometry."""
    fields = fits.BinTableHDU.from_columns(
        [fits.Column(name="FIELD", format="10A", array=np.array(["COSMOS", "XMM"]))],
        name="FIELDS",
    )
    mags = _mags(6, 2)
    phot = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="id", format="K", array=np.arange(N) + BIG),
            fits.Column(name="mag_g", format="D", array=mags[:, 0]),
            fits.Column(name="mag_r", format="D", array=mags[:, 1]),
        ],
        name="PHOT",
    )
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fields, phot]).writeto(buf)
    return buf.getvalue()


def test_a_fits_file_with_several_tables(client, auth, upload, settings, tmp_path):
    """The first table HDU is read; when its columns do not fit, the refusal says which HDU
    was read and which other tables the file has. The service takes ``table_key``."""
    from app.services import ingest as ingest_service

    r = upload(client, auth, "photometric", _two_tables(), "survey.fits")
    assert r.status_code == 422, r.text
    reasons = [e["reason"] for e in r.json()["errors"]]
    assert any("HDU 1 'FIELDS'" in x and "2 'PHOT'" in x for x in reasons), reasons
    assert all(e["file"] == "survey.fits" for e in r.json()["errors"])

    path = tmp_path / "survey.fits"
    path.write_bytes(_two_tables())
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with make_session_factory(engine)() as s:  # the refusal stored nothing
        assert s.scalar(select(func.count()).select_from(Catalogue)) == 0
    req = ingest_service.IngestRequest(
        kind="photometric",
        path=path,
        filename=path.name,
        table_key="PHOT",
        mapping={"source_id": "id"},
    )
    result = ingest_service.ingest(factory, req, max_rows=1000)
    assert result.catalogue.n_rows == N and result.catalogue.bands == ["g", "r"]
    _, ids, _ = _stored(settings.database_url, result.catalogue.id, 2)
    assert ids == [str(BIG + i) for i in range(N)]
    # the same bytes with another HDU asked for are other data: a conflict naming it
    for other in (1, None):  # another HDU, or the default one
        req.table_key = other
        with pytest.raises(ConflictError, match="table_key"):
            ingest_service.ingest(factory, req, max_rows=1000)
    engine.dispose()


def test_votable_and_ecsv_fluxes_with_units_and_nulls(client, auth, upload, settings):
    """Fluxes whose unit is in the file (nJy in a VOTable, uJy in ECSV), masked cells, 64-bit
    ids: ingested with no flux_unit given, as the library's AB magnitudes."""
    from astropy.io.votable import from_table, writeto
    from astropy.table import MaskedColumn, Table

    flux = np.random.default_rng(7).uniform(500.0, 5000.0, (N, 2))  # nJy
    mask = np.zeros(N, bool)
    mask[3] = True
    ids = np.arange(N, dtype=np.int64) + BIG
    for name, scale, unit in (("lsst.vot", 1.0, "nJy"), ("hsc.ecsv", 1e-3, "uJy")):
        t = Table({"objectId": ids})
        for j, band in enumerate("gr"):
            t[f"flux_{band}"] = MaskedColumn(flux[:, j] * scale, mask=mask, unit=unit)
            t[f"fluxerr_{band}"] = MaskedColumn(np.full(N, 20.0) * scale, mask=mask, unit=unit)
        if name.endswith(".vot"):
            buf = io.BytesIO()
            vot = from_table(t)
            vot.get_first_table().format = "binary2"
            writeto(vot, buf)
            content = buf.getvalue()
        else:
            text = io.StringIO()
            t.write(text, format="ascii.ecsv")
            content = text.getvalue().encode()
        r = upload(client, auth, "photometric", content, name, mapping={"source_id": "objectId"})
        assert r.status_code == 201, (name, r.text)
        body = r.json()
        assert body["summary"]["photometry"]["g"]["flux_unit"] == unit
        _, stored, got = _stored(settings.database_url, body["id"], 2)
        assert stored == [str(i) for i in ids]
        want, _ = flux_to_mag(flux, flux_unit="nJy")
        assert np.isnan(got[3]).all()
        np.testing.assert_allclose(np.delete(got, 3, 0), np.delete(want, 3, 0), atol=1e-6)


def test_cli_ingest_of_a_directory_says_what_it_is(settings, tmp_path):
    (tmp_path / "dataset").mkdir()
    result = CliRunner().invoke(
        cli,
        [
            "ingest",
            "photometric",
            str(tmp_path / "dataset"),
            "--database-url",
            settings.database_url,
        ],
    )
    assert result.exit_code == 2
    assert "is a directory, not a catalogue file" in result.output + (result.stderr or "")


def test_a_flux_unit_astropy_does_not_know_is_named_with_the_way_out(client, auth, upload):
    """A TUNIT that is no flux density ('counts': SDSS's own 'nanomaggies' is read, see
    test_units_ingest.py): the refusal names the column and the file's unit and says to
    give flux_unit; with it the file ingests."""
    flux = np.random.default_rng(8).uniform(5.0, 50.0, (N, 2))
    cols = [fits.Column(name="objID", format="K", array=np.arange(N) + BIG)]
    for j, band in enumerate("gr"):
        cols.append(fits.Column(name=f"flux_{band}", format="D", unit="counts", array=flux[:, j]))
        cols.append(
            fits.Column(name=f"fluxerr_{band}", format="D", unit="counts", array=flux[:, j] / 20)
        )
    buf = io.BytesIO()
    fits.BinTableHDU.from_columns(cols).writeto(buf)
    r = upload(client, auth, "photometric", buf.getvalue(), "sdss_flux.fits")
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert {(e["file"], e["column"]) for e in errors} == {
        ("sdss_flux.fits", "flux_g"),
        ("sdss_flux.fits", "flux_r"),
    }
    assert all("'counts'" in e["reason"] and "flux_unit" in e["reason"] for e in errors)
    r = upload(client, auth, "photometric", buf.getvalue(), "sdss_flux.fits", flux_unit="nanomaggy")
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["photometry"]["g"]["flux_unit"] == "nanomaggy"
