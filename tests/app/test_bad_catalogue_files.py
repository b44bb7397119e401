"""A corpus of bad catalogue files: each is refused with 4xx and a message naming the problem.

The corpus is generated here (so it cannot drift from the code that makes it): every entry
says what the answer must be: the status, words the JSON ``detail`` must contain, and where
it applies the exact (column, row) an error item must point at. Nothing may be stored.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core.config import Settings
from app.core.db import make_engine, make_session_factory
from app.main import create_app
from app.models import Catalogue, Source, Spectrum
from app.services.phot_store import unpack

MAX_UPLOAD = 60_000
MAX_ROWS = 500


@dataclass
class Bad:
    name: str  # file name sent (its suffix is part of the test)
    content: bytes
    status: int
    words: tuple[str, ...]  # all must appear in detail (case-insensitive)
    where: tuple[str | None, int | None] | None = None  # (column, row) of one error item
    kind: str = "photometric"
    fields: dict[str, str] = field(default_factory=dict)
    names_file: bool = True  # the error items carry the file name


def _frame(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = {
        "id": np.arange(1, n + 1),
        "ra": rng.uniform(149.5, 150.5, n),
        "dec": rng.uniform(1.5, 2.5, n),
        "z_phot": rng.uniform(0.1, 2.0, n),
    }
    for band in ("g", "r", "i"):
        out[f"mag_{band}"] = rng.uniform(20.0, 24.0, n)
        out[f"magerr_{band}"] = np.full(n, 0.05)
    return pd.DataFrame(out)


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _fits(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    Table.from_pandas(frame).write(buf, format="fits")
    return buf.getvalue()


def _parquet(columns: dict) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def _zipped() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


def _with(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    out = frame.astype({column: object})
    out.loc[row, column] = value
    return out


def corpus() -> list[Bad]:
    f = _frame()
    good_fits = _fits(_frame(200))
    n = 6
    pq_base = {
        "id": pa.array(range(n)),
        "mag_g": pa.array(np.full(n, 22.0)),
        "mag_r": pa.array(np.full(n, 21.5)),
    }
    image = io.BytesIO()
    fits.PrimaryHDU(np.zeros((4, 4))).writeto(image)
    dup_fits = io.BytesIO()
    fits.BinTableHDU.from_columns(
        [
            fits.Column(name="mag_g", format="D", array=np.ones(3)),
            fits.Column(name="MAG_G", format="D", array=np.ones(3)),
            fits.Column(name="mag_r", format="D", array=np.ones(3)),
        ]
    ).writeto(dup_fits)
    vector = io.BytesIO()
    Table({"id": np.arange(3), "mag_g": np.ones((3, 2)), "mag_r": np.ones(3)}).write(
        vector, format="fits"
    )
    cube = io.BytesIO()
    Table({"id": np.arange(3), "mag_g": np.ones((3, 2, 2)), "mag_r": np.ones(3)}).write(
        cube, format="fits"
    )
    spec = pd.DataFrame({"id": [1, 2, 3], "z_spec": [0.5, 0.7, np.nan]})
    return [
        # --- damaged containers
        Bad("truncated_header.fits", good_fits[:3000], 422, ("FITS", "truncated")),
        Bad("truncated_data.fits", good_fits[: 5760 + 4000], 422, ("FITS", "truncated")),
        Bad("not_really.fits", b"plain text, no FITS signature", 422, ("not a valid FITS",)),
        Bad("image_only.fits", image.getvalue(), 422, ("no table extension",)),
        # a vector column is read element by element (mag_g[0], mag_g[1]): mapping the whole
        # vector to one band is refused, saying which elements there are
        Bad(
            "vector.fits",
            vector.getvalue(),
            422,
            ("vector of 2 values", "mag_g[0] .. mag_g[1]"),
            ("mag_g", None),
            fields={"mapping": '{"mag_g": "mag_g", "mag_r": "mag_r"}'},
        ),
        Bad(
            "cube.fits",
            cube.getvalue(),
            422,
            ("shape (2, 2)", "only scalar columns and vectors"),
            ("mag_g", None),
            fields={"mapping": '{"mag_g": "mag_g", "mag_r": "mag_r"}'},
        ),
        Bad("truncated.parquet", _parquet(pq_base)[:300], 422, ("PARQUET",)),
        Bad("corrupt.csv.gz", b"\x1f\x8b\x08\x00garbage", 422, ("corrupt gzip",)),
        Bad("cut.csv.gz", gzip.compress(_csv(_frame(300)))[:400], 422, ("cannot read CSV",)),
        Bad("broken.ecsv", b"# %ECSV 1.0\n# ---\n# datatype: [\nid mag_g\n1 2\n", 422, ("ecsv",)),
        Bad("broken.xml", b"<?xml version='1.0'?><VOTABLE><RESOURCE>", 422, ("votable",)),
        Bad("broken.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, 422, ("hdf5",)),
        Bad("workbook.xlsx", _zipped(), 422, ("ZIP archive", "export the sheet as CSV")),
        # --- empty or shapeless
        Bad("empty.csv", b"", 422, ("empty",)),
        Bad("header_only.csv", b"id,mag_g,mag_r\n", 422, ("no data rows",)),
        Bad(
            "ragged.csv",
            b"id,mag_g,mag_r\n1,22,21\n2,22,21,5\n3,22,21\n",
            422,
            ("data row 1 has 4 fields", "header has 3"),
            (None, 1),
        ),
        Bad(
            "cut_mid_row.csv",
            _csv(f)[: _csv(f).rindex(b",")],
            422,
            ("data row 19", "fields"),
            (None, 19),
        ),
        Bad(
            "ragged.dat",
            b"# id mag_g mag_r\n1 22 21\n2 22 21 5\n3 22 21\n",
            422,
            ("data row 1 has 4 fields", "header has 3"),
            (None, 1),
        ),
        Bad(
            # whitespace ASCII (LePhare-style '#' header): a short row after a comment line
            "short_row.in",
            b"# note\n# id mag_g mag_r\n1 22 21\n\n# more notes\n2 22\n3 22 21\n",
            422,
            ("data row 1 has 2 fields", "header has 3"),
            (None, 1),
        ),
        Bad("blank_name.csv", b"id,,mag_r\n1,22,21\n", 422, ("empty column name", "position 1")),
        # --- wrong or duplicate columns
        Bad("no_bands.csv", b"id,ra,dec\n1,150,2\n", 422, ("fewer than two bands",)),
        Bad(
            "unmapped.csv",
            _csv(f),
            422,
            ("mapping", "not in the file"),
            ("flux_g", None),
            fields={"mapping": '{"mag_g": "flux_g"}'},
            names_file=False,
        ),
        Bad(
            "dup.csv",
            b"id,mag_g,mag_g,mag_r\n1,22,22,21\n",
            422,
            ("duplicate column", "mag_g"),
            ("mag_g", None),
        ),
        Bad(
            "dup_case.fits",
            dup_fits.getvalue(),
            422,
            ("duplicate column", "MAG_G"),
            ("MAG_G", None),
        ),
        # --- bad values, each located
        Bad("text.csv", _csv(_with(f, "mag_r", 7, "abc")), 422, ("1 invalid",), ("mag_r", 7)),
        # a European spreadsheet: ";" is read as the delimiter, "21,5" is refused saying why
        Bad(
            "decimal_comma.csv",
            b"id;mag_g;mag_r;dec\n1;21.5;22.0;2.1\n2;21,5;22.0;2.1\n3;21.5;22.0;2,1\n",
            422,
            ("2 invalid", "decimal comma"),
            ("mag_g", 1),
        ),
        # inf in a magnitude is "no value" (one cleaning path: som.photometry.clean_band); in
        # a position or a redshift it is an error.
        Bad("inf.csv", _csv(_with(f, "dec", 3, "inf")), 422, ("invalid",), ("dec", 3)),
        Bad("minus_inf.csv", _csv(_with(f, "ra", 4, "-inf")), 422, ("invalid",), ("ra", 4)),
        Bad(
            "neg_err.csv",
            _csv(_with(f, "magerr_i", 11, -0.2)),
            422,
            ("invalid",),
            ("magerr_i", 11),
            fields={"negative_error": "invalid"},
        ),
        Bad("dec.csv", _csv(_with(f, "dec", 2, 95.0)), 422, ("invalid",), ("dec", 2)),
        Bad("z.csv", _csv(_with(f, "z_phot", 9, 42.0)), 422, ("invalid",), ("z_phot", 9)),
        Bad("long_id.csv", _csv(_with(f, "id", 5, "x" * 80)), 422, ("invalid",), ("id", 5)),
        Bad(
            "nan_z.csv",
            _csv(spec),
            422,
            ("invalid",),
            ("z_spec", 2),
            kind="spectroscopic",
        ),
        Bad(
            "flags_without_rule.csv",
            b"id,z_spec,quality\n1,0.5,3\n",
            400,
            ("secure_rule",),
            ("quality", None),
            kind="spectroscopic",
        ),
        # --- text encodings
        Bad(
            "latin1_id.csv",
            "id,mag_g,mag_r\ngal_a,22.1,21.7\ngal_é,22.0,21.5\n".encode("latin-1"),
            422,
            ("not UTF-8", "byte 0xe9", "data row 1"),
            (None, 1),
        ),
        Bad(
            # In a numeric column too (Arrow reads it as binary instead of failing).
            "latin1_number.csv",
            "id,mag_g,mag_r\n1,22.1,21.7\n2,22.0,21.é\n".encode("latin-1"),
            422,
            ("not UTF-8", "byte 0xe9", "data row 1"),
            (None, 1),
        ),
        Bad("latin1_header.csv", "id,mag_é,mag_r\n1,2,3\n".encode("latin-1"), 422, ("header",)),
        Bad("utf16.csv", _csv(f.head(3)).decode().encode("utf-16"), 422, ("not UTF-8",)),
        # --- Parquet with the wrong types
        Bad(
            "strings.parquet",
            _parquet({**pq_base, "mag_g": pa.array(["22.1", "x", "22", "", None, "21"])}),
            422,
            ("invalid",),
            ("mag_g", 1),
        ),
        Bad(
            "bool.parquet",
            _parquet({**pq_base, "mag_g": pa.array([True, False] * 3)}),
            422,
            ("invalid",),
            ("mag_g", None),
        ),
        Bad(
            "binary.parquet",
            _parquet({**pq_base, "mag_r": pa.array([b"\xff\x00"] * n)}),
            422,
            ("invalid",),
            ("mag_r", 0),
        ),
        Bad(
            "list.parquet",
            _parquet({**pq_base, "mag_g": pa.array([[1.0, 2.0]] * n)}),
            422,
            ("invalid",),
            ("mag_g", 0),
        ),
        Bad(
            "struct_id.parquet",
            _parquet({**pq_base, "id": pa.array([{"a": 1}] * n)}),
            422,
            ("invalid",),
            ("id", 0),
        ),
        Bad(
            "timestamps.parquet",
            _parquet({**pq_base, "mag_r": pa.array(pd.date_range("2020-01-01", periods=n))}),
            422,
            ("invalid",),
            ("mag_r", 0),
        ),
        # --- limits
        Bad("too_big.csv", _csv(_frame(600))[: MAX_UPLOAD + 5000], 413, ("larger than the limit",)),
        Bad(
            "too_many_rows.csv",
            _csv(_frame(MAX_ROWS + 1)[["id", "mag_g", "mag_r"]]),
            413,
            (f"{MAX_ROWS + 1} rows", f"limit is {MAX_ROWS}"),
            names_file=False,
        ),
        Bad(
            "too_many_rows.parquet",
            _parquet(
                {
                    "id": pa.array(range(MAX_ROWS + 1)),
                    "mag_g": pa.array(np.ones(MAX_ROWS + 1)),
                    "mag_r": pa.array(np.ones(MAX_ROWS + 1)),
                }
            ),
            413,
            (f"{MAX_ROWS + 1} rows",),
            names_file=False,
        ),
    ]


CORPUS = corpus()


@pytest.fixture(scope="module")
def bad_client(tmp_path_factory, harness):
    """SQLite service with small limits (the corpus is the same on PostgreSQL: files are
    refused before the database is written)."""
    from app.core import migrate

    tmp = tmp_path_factory.mktemp("bad")
    url = f"sqlite:///{tmp / 'bad.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    settings = Settings(
        database_url=url, max_upload_bytes=MAX_UPLOAD, max_rows=MAX_ROWS, upload_tmp_dir=tmp
    )
    auth = {"X-API-Key": harness.create_key(url, "bad-files")}
    with TestClient(create_app(settings)) as client:
        # A ready map, so that assign bodies get past the map lookup to their validation;
        # its catalogue is removed again so each bad file starts from an empty ledger.
        r = harness.upload(client, auth, "photometric", _frame(120, seed=9), "seed.csv")
        assert r.status_code == 201, r.text
        cat = r.json()
        map_id, _ = harness.train(
            client, auth, cat["id"], timeout=120, n_rows=3, n_cols=3, n_epochs=2
        )
        assert client.get(f"/v1/maps/{map_id}").json()["status"] == "ready"
        # (deleted and purged: a delete alone keeps the rows until purged)
        assert client.delete(f"/v1/catalogues/{cat['id']}", headers=auth).status_code == 200
        assert client.post(f"/v1/catalogues/{cat['id']}/purge", headers=auth).status_code == 200
        yield client, auth, engine, map_id
    engine.dispose()


def test_corpus_is_what_it_claims():
    """Guard the corpus itself: the limit cases really cross the limits."""
    by_name = {b.name: b for b in CORPUS}
    assert len(by_name) == len(CORPUS)
    assert len(by_name["too_big.csv"].content) > MAX_UPLOAD
    assert len(by_name["too_many_rows.csv"].content) < MAX_UPLOAD
    assert len(by_name["truncated_header.fits"].content) % 2880 != 0
    assert len(by_name["too_many_rows.parquet"].content) < MAX_UPLOAD


@pytest.mark.parametrize("bad", CORPUS, ids=[b.name for b in CORPUS])
def test_bad_file_is_refused_naming_the_problem(bad_client, bad: Bad):
    client, auth, engine, _ = bad_client
    r = client.post(
        f"/v1/catalogues/{bad.kind}",
        files={"file": (bad.name, bad.content, "application/octet-stream")},
        data=bad.fields,
        headers=auth,
    )
    assert r.status_code == bad.status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    detail = body["detail"]
    for word in bad.words:
        assert word.lower() in detail.lower() or any(
            word.lower() in (e["reason"] or "").lower() for e in body["errors"]
        ), (word, body)
    if bad.status == 422 and bad.names_file:
        assert bad.name in detail
        assert body["errors"] and all(e["file"] == bad.name for e in body["errors"]), body
    if bad.where is not None:
        assert any((e["column"], e["row"]) == bad.where for e in body["errors"]), body
    with make_session_factory(engine)() as s:
        for model in (Catalogue, Source, Spectrum):
            assert s.scalar(select(func.count()).select_from(model)) == 0


def test_each_value_error_gives_its_reason(bad_client):
    """The located errors say *why*, in words a scientist can act on."""
    client, auth, _, _ = bad_client
    expected = {
        "text.csv": "not a number: 'abc'",
        "decimal_comma.csv": "not a number: '21,5' (a decimal comma?",
        "inf.csv": "infinite value",
        "minus_inf.csv": "infinite value",
        "neg_err.csv": "negative error -0.2 on a measured value",
        "dec.csv": "DEC 95 outside [-90, 90]",
        "z.csv": "z_phot 42 outside [-0.1, 20]",
        "long_id.csv": "text longer than 64 characters",
        "nan_z.csv": "missing spectroscopic redshift",
        "bool.parquet": "boolean column where numbers are expected",
        "struct_id.parquet": "a list or structure where a single value is needed",
        "timestamps.parquet": "not a number: '2020-01-01",
    }
    by_name = {b.name: b for b in CORPUS}
    for name, reason in expected.items():
        bad = by_name[name]
        r = client.post(
            f"/v1/catalogues/{bad.kind}",
            files={"file": (name, bad.content, "application/octet-stream")},
            data=bad.fields,
            headers=auth,
        )
        reasons = [e["reason"] for e in r.json()["errors"] if (e["column"], e["row"]) == bad.where]
        assert any(x.startswith(reason) for x in reasons), (name, r.json())


def test_nan_magnitudes_mean_no_value_not_an_error(bad_client):
    """NaN (and the -99/99 sentinels) are how catalogues say "not measured": stored as NULL."""
    client, auth, engine, _ = bad_client
    frame = _with(_with(_frame(seed=3), "mag_g", 4, "nan"), "mag_r", 6, -99.0)
    r = client.post(
        "/v1/catalogues/photometric",
        files={"file": ("nan_mags.csv", _csv(frame), "text/csv")},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    bands = r.json()["bands"]
    with make_session_factory(engine)() as s:
        rows = s.execute(
            select(Source.row_index, Source.mags).where(
                Source.catalogue_id == r.json()["id"], Source.row_index.in_((4, 6))
            )
        ).all()
    mags = {row: unpack([blob], len(bands))[0] for row, blob in rows}
    g, rr = bands.index("g"), bands.index("r")
    assert {(row, bool(np.isnan(m[g])), bool(np.isnan(m[rr]))) for row, m in mags.items()} == {
        (4, True, False),
        (6, False, True),
    }
    assert client.delete(f"/v1/catalogues/{r.json()['id']}", headers=auth).status_code == 200
    assert client.post(f"/v1/catalogues/{r.json()['id']}/purge", headers=auth).status_code == 200


@pytest.mark.parametrize(
    ("ctype", "content", "words", "where"),
    [
        ("text/csv", _csv(_with(_frame(), "mag_g", 2, "abc")), ("invalid",), ("mag_g", 2)),
        ("text/csv", b"\xff\xfe\x00garbage", ("not UTF-8",), None),
        ("application/fits", _fits(_frame(200))[:3000], ("FITS", "truncated"), None),
        ("application/vnd.apache.parquet", b"PAR1 not really", ("PARQUET",), None),
        (
            "application/json",
            b'{"rows": [{"mag_g": "x", "mag_r": 21}]}',
            ("invalid",),
            ("mag_g", 0),
        ),
        ("application/json", b'{"rows": []}', ("at least 1",), ("rows", None)),
        ("application/json", b"{not json", ("invalid",), None),
        ("text/csv", b"", ("empty",), None),
    ],
    ids=[
        "csv-text",
        "csv-binary",
        "fits-cut",
        "parquet-fake",
        "json-text",
        "json-empty",
        "json-broken",
        "empty",
    ],
)
def test_bad_assign_bodies_are_refused(bad_client, ctype, content, words, where):
    """The same rules hold for photometry sent for assignment (before any map lookup).

    With ``on_invalid=reject`` a bad value refuses the request; by default (``skip``) the
    row is answered with its reason instead (tested in test_api_flow)."""
    client, _, _, map_id = bad_client
    if ctype == "application/json" and content.startswith(b'{"rows": [{'):
        content = content[:-1] + b', "on_invalid": "reject"}'
    r = client.post(
        f"/v1/maps/{map_id}/assign",
        params={"on_invalid": "reject"},
        content=content,
        headers={"Content-Type": ctype},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    text = (body["detail"] + " " + " ".join(e["reason"] for e in body["errors"])).lower()
    for word in words:
        assert word.lower() in text, (word, body)
    if where is not None:
        assert any((e["column"], e["row"]) == where for e in body["errors"]), body
