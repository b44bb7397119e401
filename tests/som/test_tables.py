"""Tests for som.tables: file formats round trip, errors naming the file, ASCII and chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from som.photometry import ColourFeatures, PhotometryError
from som.tables import CatalogueError, TableReader, detect_format, read_table, write_table
from tests.ldac import ldac_hdus

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
DC2 = DATA / "mocks" / "test_dc2_training_9816.hdf5"


def sample_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 25
    return pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + n, dtype=np.int64),
            "ra": rng.uniform(149.4, 150.8, n),
            "mag_g": np.where(np.arange(n) % 7 == 3, np.nan, rng.normal(23.0, 1.0, n)),
            "flux_i": rng.lognormal(1.0, 1.0, n).astype(np.float32),
            "name": [f"src{i}" for i in range(n)],
        }
    )


@pytest.mark.parametrize(
    "filename",
    [
        "cat.fits",
        "cat.FITS",
        "cat.fits.gz",
        "cat.parquet",
        "cat.csv",
        "cat.ecsv",
        "cat.vot",
        "cat.hdf5",
    ],
)
def test_write_read_round_trip(tmp_path, filename):
    df = sample_frame()
    df.attrs["units"] = {"ra": "deg", "flux_i": "uJy"}
    path = write_table(df, tmp_path / filename)
    back = read_table(path)
    if filename.endswith(".csv"):
        # Text has no float32: the shortest float32 repr comes back as float64 and must
        # round to the same float32.
        assert back["flux_i"].dtype == np.float64
        np.testing.assert_array_equal(back["flux_i"].astype(np.float32), df["flux_i"])
        back["flux_i"] = back["flux_i"].astype(np.float32)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    if not filename.endswith(".csv"):
        assert back.attrs["units"] == {"ra": "deg", "flux_i": "uJy"}
    if filename.endswith(".parquet"):
        # ingest streams Parquet by row groups: the units must be in the schema too
        assert TableReader(path).units() == {"ra": "deg", "flux_i": "uJy"}


def test_explicit_format_and_unknown_suffix(tmp_path):
    df = sample_frame()
    path = write_table(df, tmp_path / "cat.data", format="parquet")
    pd.testing.assert_frame_equal(read_table(path, format="PARQUET"), df)
    with pytest.raises(CatalogueError, match="cannot tell the table format") as info:
        read_table(path)
    assert info.value.source == str(path)
    with pytest.raises(CatalogueError, match="unknown format 'xls'"):
        read_table(path, format="xls")


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.fits"):
        read_table(tmp_path / "nope.fits")
    broken = tmp_path / "broken.fits"
    broken.write_bytes(b"this is not a FITS file at all" * 10)
    with pytest.raises(CatalogueError) as info:
        read_table(broken)
    assert str(info.value).startswith(str(broken) + ": cannot read as fits")
    assert isinstance(info.value, PhotometryError)
    bad_parquet = tmp_path / "x.parquet"
    bad_parquet.write_text("id,mag\n1,2\n")
    with pytest.raises(CatalogueError, match="x.parquet: cannot read as parquet"):
        read_table(bad_parquet)


def test_write_refuses_to_overwrite(tmp_path):
    path = write_table(sample_frame(), tmp_path / "a.parquet")
    with pytest.raises(CatalogueError, match="exists"):
        write_table(sample_frame(), path)
    write_table(sample_frame().iloc[:3], path, overwrite=True)
    assert len(read_table(path)) == 3


def test_fits_byte_strings_become_str_and_deep_arrays_are_refused(tmp_path):
    from astropy.table import Table

    t = Table({"name": np.array([b"a", b"bb"]), "x": [1.0, 2.0]})
    t.write(tmp_path / "s.fits")
    df = read_table(tmp_path / "s.fits")
    assert df["name"].tolist() == ["a", "bb"]
    Table({"v": np.zeros((2, 3, 4)), "x": [1.0, 2.0]}).write(tmp_path / "v.fits")
    with pytest.raises(CatalogueError, match=r"shape \(3, 4\) per row") as info:
        read_table(tmp_path / "v.fits")
    assert info.value.column == "v"
    # ... but the other columns can be read by naming them
    assert read_table(tmp_path / "v.fits", columns=["x"])["x"].tolist() == [1.0, 2.0]
    with pytest.raises(CatalogueError, match="only scalar columns and vectors"):
        TableReader(tmp_path / "v.fits").read(["v"])


def test_hdf5_one_dataset_per_column(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "cols.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("photometry")
        g["id"] = np.arange(4)
        g["mag_u"] = np.array([20.0, 21.0, 99.0, 22.0], dtype=">f4")  # big-endian on disk
    df = read_table(path)
    assert list(df.columns) == ["id", "mag_u"]
    assert df["mag_u"].dtype == np.dtype("float32") and df["mag_u"].dtype.isnative
    np.testing.assert_array_equal(df["mag_u"], [20.0, 21.0, 99.0, 22.0])
    with h5py.File(path, "a") as f:
        f["photometry/short"] = np.arange(3)
    with pytest.raises(CatalogueError, match="different lengths"):
        read_table(path)


def test_dc2_mock_reads_and_featurises():
    if not DC2.exists():
        pytest.skip(f"shared reference data not present at {DC2}")
    df = read_table(DC2)
    assert len(df) == 10225
    bands = ("u", "g", "r", "i", "z", "y")
    cf = ColourFeatures(
        bands=bands, value_template="mag_{band}_lsst", error_template="mag_err_{band}_lsst"
    )
    X, E = cf.fit_transform(df, source=DC2.name)
    assert X.shape == (10225, 5)
    undetected = (df["mag_u_lsst"] == 99) | (df["mag_g_lsst"] == 99)
    np.testing.assert_array_equal(np.isnan(X[:, 0]), undetected)
    assert undetected.sum() > 700
    np.testing.assert_array_equal(np.isnan(X), np.isnan(E))


# ------------------------------------------------------------------ whitespace ASCII, ids, chunks

LEPHARE_IN = """\
# LePhare input catalogue (flux mode), written by hand for this test
# columns: id, then flux and error per band, context, z_spec
# id  f_u  e_u  f_g  e_g  f_r  e_r  context  zspec
000001   1.20e-29  2.0e-31   2.50e-29  1.5e-31   3.10e-29  1.2e-31   7  0.3521
000002  -99.0     -99.0      4.00e-29  2.5e-31   4.40e-29  2.0e-31   6  -99
000010   5.00e-30  1.0e-31   9.90e-30  1.1e-31   1.70e-29  1.3e-31   7  1.2044
"""

EAZY_CAT = """\
#  id        F1       E1       F2       E2     z_spec
\t100   12.5     0.51     13.25    0.60     0.512

  00200  -99      -99      14.0     0.7     -1
   12345678901234567891  11.0  0.4  12.0  0.5  2.25
"""


def test_ascii_lephare_like_header_is_the_last_comment_line(tmp_path):
    path = tmp_path / "lephare.in"
    path.write_text(LEPHARE_IN)
    df = read_table(path, text_columns=["id"])
    assert list(df.columns) == [
        "id", "f_u", "e_u", "f_g", "e_g", "f_r", "e_r", "context", "zspec",
    ]  # fmt: skip
    assert df["id"].tolist() == ["000001", "000002", "000010"]  # leading zeros kept
    assert df["f_u"].dtype == np.float64 and df.loc[0, "f_u"] == 1.20e-29
    assert df["context"].dtype == np.int64
    assert df["zspec"].tolist() == [0.3521, -99.0, 1.2044]
    # Without text_columns the ids are numbers, like any other column.
    assert read_table(path)["id"].tolist() == [1, 2, 10]


def test_ascii_eazy_like_blanks_tabs_and_ids_beyond_int64(tmp_path):
    path = tmp_path / "eazy.cat"
    path.write_text(EAZY_CAT)
    reader = TableReader(path)
    assert reader.format == "ascii"
    assert reader.columns == ["id", "F1", "E1", "F2", "E2", "z_spec"]
    df = reader.read(["id", "F2", "z_spec"], text_columns=["id"])
    assert list(df.columns) == ["id", "F2", "z_spec"]
    assert df["id"].tolist() == ["100", "00200", "12345678901234567891"]
    assert df["F2"].tolist() == [13.25, 14.0, 12.0]


def test_ascii_without_header_and_with_a_plain_header(tmp_path):
    (tmp_path / "nohead.dat").write_text("# a note, not a header\n1 2.5 x\n2 3.5 y\n")
    df = read_table(tmp_path / "nohead.dat")
    assert list(df.columns) == ["col1", "col2", "col3"]
    assert df["col3"].tolist() == ["x", "y"]
    (tmp_path / "plain.txt").write_text("id mag_g mag_r\ngal_a 22.1 21.9\ngal_b 23 nan\n")
    df = read_table(tmp_path / "plain.txt")  # .txt: sniffed as whitespace, not CSV
    assert list(df.columns) == ["id", "mag_g", "mag_r"]
    assert df["mag_g"].tolist() == [22.1, 23.0] and np.isnan(df.loc[1, "mag_r"])


def test_txt_is_sniffed_and_names_decide_otherwise(tmp_path):
    (tmp_path / "a.txt").write_text("id,mag\n1,2\n")
    (tmp_path / "b.txt").write_text("# id mag\n1 2\n")
    assert detect_format(tmp_path / "a.txt") == "csv"
    assert detect_format(tmp_path / "b.txt") == "ascii"
    assert detect_format(tmp_path / "b.txt", name="upload") == "ascii"
    assert detect_format(tmp_path / "a.txt", name="upload.dat") == "ascii"  # the name says so
    fits_bytes = tmp_path / "ldac.cat"
    write_table(sample_frame(), tmp_path / "x.fits")
    fits_bytes.write_bytes((tmp_path / "x.fits").read_bytes())
    assert detect_format(fits_bytes) == "fits"  # SExtractor-style .cat holding FITS


def test_csv_ids_kept_as_written(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("id,mag_g\n000123,22.5\n9007199254740993,23\n00,NA\n")
    df = read_table(path, text_columns=["id"])
    assert df["id"].tolist() == ["000123", "9007199254740993", "00"]
    assert df["mag_g"].dtype == np.float64 and np.isnan(df.loc[2, "mag_g"])
    ints = read_table(path)["id"]
    assert ints.dtype == np.int64 and ints.tolist() == [123, 9007199254740993, 0]  # exact


@pytest.mark.parametrize(
    "content",
    [
        "# id a b\n1 2 3\n2 5 6 7\n3 1 1\n",  # a field too many
        "# id a b\n1 2 3\n\n# a comment between rows\n2 5\n3 1 1\n",  # one too few
    ],
)
def test_ascii_ragged_row_is_located(tmp_path, content):
    path = tmp_path / "ragged.dat"
    path.write_text(content)
    with pytest.raises(CatalogueError, match=r"data row 1 has \d fields but the header has 3") as e:
        read_table(path)
    assert e.value.row == 1 and e.value.source == str(path)
    with pytest.raises(CatalogueError, match="data row 1"):
        list(TableReader(path).iter_chunks(chunk_rows=1))


def test_ascii_not_utf8_is_located(tmp_path):
    path = tmp_path / "latin.dat"
    path.write_bytes("# id a\ng1 1\ng\xe9 2\n".encode("latin-1"))
    with pytest.raises(CatalogueError, match="byte 0xe9 in data row 1") as e:
        read_table(path, text_columns=["id"])
    assert e.value.row == 1


def test_ascii_write_read_round_trip(tmp_path):
    df = sample_frame()
    path = write_table(df, tmp_path / "cat.dat")
    assert path.read_text().startswith("# id ra mag_g flux_i name\n")
    back = read_table(path)
    np.testing.assert_array_equal(back["flux_i"].astype(np.float32), df["flux_i"])
    back["flux_i"] = back["flux_i"].astype(np.float32)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    with pytest.raises(CatalogueError, match="blanks") as e:
        write_table(df.assign(name="a b"), tmp_path / "bad.dat")
    assert (e.value.column, e.value.row) == ("name", 0)


def _big_frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            "id": [f"{i:08d}" for i in range(n)],
            "mag_g": np.where(rng.random(n) < 0.05, np.nan, rng.normal(23, 1, n)),
            "mag_r": rng.normal(22.5, 1, n),
            "flag": rng.integers(0, 3, n),
        }
    )


@pytest.mark.parametrize("filename", ["big.csv", "big.csv.gz", "big.dat", "big.parquet",
                                      "big.fits", "big.hdf5", "big.ecsv"])  # fmt: skip
def test_chunks_equal_the_full_read(tmp_path, filename):
    df = _big_frame(2_345)
    path = write_table(df, tmp_path / filename)
    reader = TableReader(path)
    cols, text = ["id", "mag_g", "flag"], ["id"]
    full = reader.read(cols, text)
    chunks = list(reader.iter_chunks(cols, text, chunk_rows=500))
    assert [c.offset for c in chunks] == [0, 500, 1000, 1500, 2000]
    assert [len(c.frame) for c in chunks] == [500] * 4 + [345]
    assert all(c.frame.index[0] == 0 for c in chunks)
    joined = pd.concat([c.frame for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(joined, full, check_exact=True)
    assert full["id"].astype(str).tolist() == df["id"].tolist()
    np.testing.assert_array_equal(full["mag_g"], df["mag_g"])
    assert reader.n_rows_hint() in (None, 2_345)


def test_chunks_of_a_headed_file_without_rows_and_bad_chunk_size(tmp_path):
    path = tmp_path / "empty.dat"
    path.write_text("# id a b\n")
    reader = TableReader(path)
    assert reader.columns == ["id", "a", "b"]
    assert list(reader.iter_chunks()) == []
    assert len(reader.read()) == 0
    with pytest.raises(ValueError, match="chunk_rows"):
        list(reader.iter_chunks(chunk_rows=0))
    with pytest.raises(CatalogueError, match="no such column") as e:
        reader.read(["nope"])
    assert e.value.column == "nope"


# ----------------------------------------------------------------------------- the corpus
# Layouts survey teams hand over, generated here. Each is read three ways (read_table, the
# reader's whole read and its chunks, which ingest uses) and must give the same values.
BIG = [2**62 + 1, 2**53 + 1, 1237648720693755918, 2**63 - 1]  # beyond float64's 2**53
MAG = [21.0, 22.5, 23.25, 24.0]


def _all_reads(path: Path, key=None) -> list[pd.DataFrame]:
    reader = TableReader(path, key=key)
    chunks = [c.frame for c in reader.iter_chunks(chunk_rows=3)]
    return [read_table(path, key=key), reader.read(), pd.concat(chunks, ignore_index=True)]


def _ids(series: pd.Series) -> list:
    return [None if pd.isna(v) else int(v) for v in series]


def test_parquet_ids_beyond_2_53_with_nulls_stay_exact(tmp_path):
    """pyarrow/Spark/Rubin writers store nullable int64/uint64; pandas' default made them
    float64 and rounded 2**62 + 1 to 2**62."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [BIG[0], None, BIG[1], BIG[3]]
    unsigned = [2**64 - 1, None, 2**63 + 5, 7]
    table = pa.table(
        {
            "objectId": pa.array(ids, pa.int64()),
            "source_id": pa.array(unsigned, pa.uint64()),
            "mag_g": MAG,
        }
    )
    for codec in ("zstd", "snappy"):
        path = tmp_path / f"ids_{codec}.parquet"
        pq.write_table(table, path, compression=codec)
        for df in _all_reads(path):
            assert _ids(df["objectId"]) == ids
            assert _ids(df["source_id"]) == unsigned
            assert df["mag_g"].tolist() == MAG


def test_parquet_index_written_by_pandas_is_a_column(tmp_path):
    """df.set_index("objectId").to_parquet(): consecutive ids are stored only as a RangeIndex
    in pandas' metadata, other ids as a column pandas makes the index; both are data."""
    frame = pd.DataFrame({"objectId": [10**18 + i for i in range(4)], "mag_g": MAG})
    frame.set_index("objectId").to_parquet(tmp_path / "range.parquet")
    frame.assign(objectId=BIG).set_index("objectId").to_parquet(tmp_path / "ids.parquet")
    frame.assign(band=pd.Categorical(["g", "r", "g", "i"])).to_parquet(tmp_path / "cat.parquet")
    for name, want in (("range.parquet", frame["objectId"].tolist()), ("ids.parquet", BIG)):
        for df in _all_reads(tmp_path / name):
            assert _ids(df["objectId"]) == want, name
        assert TableReader(tmp_path / name).read(["objectId"])["objectId"].tolist() == want
    want = frame["objectId"].tolist()
    chunks = TableReader(tmp_path / "range.parquet").iter_chunks(["objectId"], chunk_rows=3)
    assert [c.frame["objectId"].tolist() for c in chunks] == [want[:3], want[3:]]
    for df in _all_reads(tmp_path / "cat.parquet"):
        assert [str(v) for v in df["band"]] == ["g", "r", "g", "i"]


def test_fits_ids_unsigned_tnull_scaled_and_big_endian(tmp_path):
    from astropy.io import fits

    cols = [
        fits.Column(name="objid", format="K", array=np.array(BIG, dtype=">i8")),
        fits.Column(
            name="gaia",
            format="K",
            bzero=2**63,
            array=np.array([2**64 - 1, 2**63 + 5, 1, 2**53 + 1], dtype=np.uint64),
        ),
        fits.Column(name="coadd", format="K", null=-1, array=np.array([BIG[0], -1, 5, 6])),
        fits.Column(name="flag", format="J", null=-999, array=np.array([1, -999, 0, 2])),
        fits.Column(name="mag_g", format="E", array=np.array([21, np.nan, 22, 23], ">f4")),
        fits.Column(name="flux", format="J", array=np.array([1000, 1150, 1225, 1300])),
    ]
    path = tmp_path / "ids.fits"
    fits.BinTableHDU.from_columns(cols).writeto(path)
    fits.setval(path, "TSCAL6", value=0.01, ext=1)
    fits.setval(path, "TZERO6", value=10.0, ext=1)
    gz = tmp_path / "ids.fits.gz"
    gz.write_bytes(__import__("gzip").compress(path.read_bytes()))
    for p in (path, gz):
        for df in _all_reads(p):
            assert _ids(df["objid"]) == BIG
            assert _ids(df["gaia"]) == [2**64 - 1, 2**63 + 5, 1, 2**53 + 1]
            assert _ids(df["coadd"]) == [BIG[0], None, 5, 6]  # TNULL: missing, not -1
            assert _ids(df["flag"]) == [1, None, 0, 2]
            assert np.isnan(df["mag_g"][1]) and df["mag_g"][0] == 21.0
            np.testing.assert_allclose(df["flux"], [20.0, 21.5, 22.25, 23.0])


def test_fits_vector_columns_are_read_element_by_element(tmp_path):
    """SDSS MODELMAG (n, 5) in u g r i z order, SExtractor MAG_APER (n, 12): each element is a
    column NAME[i], 0-based as TOPCAT names them, with the vector's unit."""
    from astropy.table import Table

    rng = np.random.default_rng(1)
    model = rng.uniform(18, 24, (4, 5))
    t = Table({"objID": BIG, "MODELMAG": model, "MAG_APER": rng.uniform(18, 24, (4, 12))})
    t["MODELMAG"].unit = "mag"
    t.write(tmp_path / "sdss.fits")
    reader = TableReader(tmp_path / "sdss.fits")
    assert reader.columns[:6] == ["objID"] + [f"MODELMAG[{i}]" for i in range(5)]
    assert reader.columns[-1] == "MAG_APER[11]"
    assert reader.units()["MODELMAG[2]"] == "mag"
    for df in _all_reads(tmp_path / "sdss.fits"):
        np.testing.assert_array_equal(df["MODELMAG[2]"], model[:, 2])
        assert _ids(df["objID"]) == BIG
    assert read_table(tmp_path / "sdss.fits").attrs["units"]["MODELMAG[4]"] == "mag"
    with pytest.raises(CatalogueError, match=r"vector of 5 values.*MODELMAG\[0\] \.\. MODELMAG"):
        reader.read(["MODELMAG"])


def test_sextractor_fits_ldac_reads_the_objects_hdu(tmp_path):
    from astropy.io import fits

    hdus = ldac_hdus(
        [
            fits.Column(name="NUMBER", format="J", array=np.arange(1, 5)),
            fits.Column(name="MAG_AUTO", format="E", array=np.array(MAG)),
            fits.Column(name="MAG_APER", format="3E", array=np.ones((4, 3))),
        ]
    )
    other = fits.BinTableHDU.from_columns(
        [fits.Column(name="x", format="D", array=np.zeros(2))], name="EXTRA"
    )
    path = tmp_path / "field.cat"  # SExtractor's usual name, FITS bytes
    fits.HDUList([*hdus, other]).writeto(path)
    for df in _all_reads(path):
        assert df.columns.tolist() == ["NUMBER", "MAG_AUTO"] + [f"MAG_APER[{i}]" for i in range(3)]
        assert df["MAG_AUTO"].tolist() == MAG
    for key in ("EXTRA", 3):
        assert read_table(path, key=key).columns.tolist() == ["x"]
        assert TableReader(path, key=key).columns == ["x"]
    with pytest.raises(CatalogueError, match="no HDU 'NOPE'.*LDAC_OBJECTS"):
        TableReader(path, key="NOPE")
    with pytest.raises(CatalogueError, match="not a table"):
        read_table(path, key=0)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.csv", b"\xef\xbb\xbfid,name,mag_g,mag_r\n"),
        ("crlf.csv", b"id,name,mag_g,mag_r\r\n"),
        ("semicolon.csv", b"id;name;mag_g;mag_r\n"),
        ("tab.csv", b"id\tname\tmag_g\tmag_r\n"),
        ("tab.tsv", b"id\tname\tmag_g\tmag_r\n"),
        ("comments.csv", b"# written by TOPCAT\n#\n\nid,name,mag_g,mag_r\n"),
        ("semicolon.txt", b"id;name;mag_g;mag_r\n"),
    ],
)
def test_csv_dialects(tmp_path, name, content):
    header = content.splitlines()[-1]
    sep = ";" if b";" in header else "\t" if b"\t" in header else ","
    end = "\r\n" if content.endswith(b"\r\n") else "\n"
    rows = [
        ["1237648720693755918", '"NGC 1, core; east"', "21.5", "21.0"],
        ["2", "b", "--", "-99"],
        ["3", "c", "", "99.99"],
        ["4", "d", "null", "NaN"],
    ]
    body = end.join(sep.join(r) for r in rows) + end
    path = tmp_path / name
    path.write_bytes(content + body.encode())
    for df in _all_reads(path):
        assert df.columns.tolist() == ["id", "name", "mag_g", "mag_r"]
        assert _ids(df["id"]) == [1237648720693755918, 2, 3, 4]
        assert df["name"].tolist() == ["NGC 1, core; east", "b", "c", "d"]
        assert df["mag_g"].isna().tolist() == [False, True, True, True]
        assert df["mag_r"].tolist()[:3] == [21.0, -99.0, 99.99]


def test_csv_ids_with_gaps_beyond_2_53_are_not_rounded(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("objid,mag_g\n1237648720693755918,21\n,22\n18446744073709551615,23\n")
    assert _ids(read_table(path)["objid"]) == [1237648720693755918, None, 2**64 - 1]
    path.write_text("objid,mag_g\n18446744073709551615,21\n9223372036854775808,22\n")
    assert read_table(path)["objid"].dtype == np.uint64
    path.write_text("n,mag_g\n1,21\n,22\n")  # small integers with gaps: float64 as before
    assert read_table(path)["n"].dtype == np.float64


def test_ipac_votable_ecsv_with_nulls_and_units(tmp_path):
    import gzip

    from astropy.io.votable import from_table, writeto
    from astropy.table import MaskedColumn, Table

    t = Table(
        {
            "id": BIG,
            "flux_g": MaskedColumn([1.0, 2.0, 3.0, 4.0], mask=[0, 1, 0, 0], unit="nJy"),
            "n": MaskedColumn([1, 2, 3, 4], mask=[0, 0, 1, 0]),
        }
    )
    t.write(tmp_path / "irsa.tbl", format="ascii.ipac")
    t.write(tmp_path / "t.ecsv")
    (tmp_path / "t.ecsv.gz").write_bytes(gzip.compress((tmp_path / "t.ecsv").read_bytes()))
    vot = from_table(t)
    vot.get_first_table().format = "binary2"
    writeto(vot, str(tmp_path / "t.vot"))
    for name in ("irsa.tbl", "t.ecsv", "t.ecsv.gz", "t.vot"):
        assert detect_format(tmp_path / name) == {"irsa.tbl": "ipac", "t.vot": "votable"}.get(
            name, "ecsv"
        )
        for df in _all_reads(tmp_path / name):
            assert _ids(df["id"]) == BIG, name
            assert df["flux_g"].isna().tolist() == [False, True, False, False], name
            assert _ids(df["n"]) == [1, 2, None, 4], name
        assert TableReader(tmp_path / name).units()["flux_g"] == "nJy", name


def test_pandas_hdfstore(tmp_path):
    pytest.importorskip("tables")
    frame = pd.DataFrame({"objectId": BIG, "mag_g": MAG})
    frame.to_hdf(tmp_path / "t.h5", key="cat", format="table")
    frame.set_index("objectId").to_hdf(tmp_path / "f.h5", key="cat", format="fixed")
    for name in ("t.h5", "f.h5"):
        for df in _all_reads(tmp_path / name):
            assert df.columns.tolist() == ["objectId", "mag_g"], name
            assert _ids(df["objectId"]) == BIG
    frame.to_hdf(tmp_path / "t.h5", key="other", format="table")
    with pytest.raises(CatalogueError, match="several pandas frames"):
        read_table(tmp_path / "t.h5")
    assert read_table(tmp_path / "t.h5", key="other")["mag_g"].tolist() == MAG


def test_csv_header_in_a_comment_and_vizier_tsv(tmp_path):
    """``#id,mag_g`` above the numbers is the header (as in whitespace tables); VizieR's TSV
    puts a units line and a dashes line under the header, which are not data."""
    path = tmp_path / "hash.csv"
    path.write_text("# pipeline v2\n#id,mag_g,mag_r\n1,21,22\n2,23,24\n")
    for df in _all_reads(path):
        assert df.columns.tolist() == ["id", "mag_g", "mag_r"] and df["id"].tolist() == [1, 2]
    vizier = (
        "#RESOURCE=yCat_2328\n#Name: II/328\n\n"
        "_RAJ2000\t_DEJ2000\tAllWISE\tW1mag\te_W1mag\n"
        "deg\tdeg\t\tmag\tmag\n"
        "-----------\t-----------\t-------------------\t------\t-----\n"
        "010.0001\t+02.0001\tJ004000.02+020000.3\t14.123\t0.031\n"
        "010.0002\t+02.0002\tJ004000.05+020000.7\t\t\n"
    )
    path = tmp_path / "wise.tsv"
    path.write_text(vizier)
    for df in _all_reads(path):
        assert df["W1mag"].tolist()[0] == 14.123 and np.isnan(df["W1mag"][1])
        assert df["AllWISE"].tolist() == ["J004000.02+020000.3", "J004000.05+020000.7"]
    path.write_text(vizier + "010.0003\t+02.0003\n")  # a short line: located by data row
    with pytest.raises(CatalogueError, match="data row 2 has 2 fields") as info:
        read_table(path)
    assert info.value.row == 2


def test_sextractor_ascii_head_vectors(tmp_path):
    """SExtractor's ASCII_HEAD numbers its columns; a vector takes several numbers."""
    path = tmp_path / "field.cat"
    path.write_text(
        "#   1 NUMBER          Running object number\n"
        "#   2 MAG_APER        Fixed aperture magnitude vector     [mag]\n"
        "#   5 MAGERR_APER     RMS error vector for fixed aperture mag.   [mag]\n"
        "#   8 ALPHA_J2000     Right ascension of barycenter (J2000)   [deg]\n"
        "      1  21.1  20.5  20.0  0.05  0.04  0.03  150.1\n"
        "      2  22.1  21.5  21.0  0.06  0.05  0.04  150.2\n"
    )
    for df in _all_reads(path):
        assert df.columns.tolist() == ["NUMBER"] + [f"MAG_APER[{i}]" for i in range(3)] + [
            f"MAGERR_APER[{i}]" for i in range(3)
        ] + ["ALPHA_J2000"]
        assert df["MAG_APER[1]"].tolist() == [20.5, 21.5]


def test_ipac_is_written_as_ipac(tmp_path):
    """write_table wrote IPAC (.tbl) names as HDF5 bytes (assign's output of a .tbl input)."""
    df = pd.DataFrame({"id": BIG, "mag_g": MAG, "name": ["a", "b", "c", "d"]})
    df.attrs["units"] = {"mag_g": "mag"}
    path = write_table(df, tmp_path / "out.tbl")
    assert path.read_bytes().lstrip()[:1] in (b"\\", b"|")
    assert detect_format(path) == "ipac"
    back = read_table(path)
    assert _ids(back["id"]) == BIG and back["mag_g"].tolist() == MAG
    assert back["name"].tolist() == ["a", "b", "c", "d"]
    assert back.attrs["units"] == {"mag_g": "mag"}


@pytest.mark.parametrize("codec", ["gzip", "bz2", "xz"])
def test_compressed_text_and_fits_by_content(tmp_path, codec):
    """gzip, bzip2 and xz files are read by their magic bytes, whatever the name says."""
    import bz2
    import gzip
    import lzma

    pack = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[codec]
    ext = {"gzip": "gz", "bz2": "bz2", "xz": "xz"}[codec]
    csv = tmp_path / f"c.csv.{ext}"
    csv.write_bytes(pack(b"# note\nid;mag_g;mag_r\n1237648720693755918;21;22\n2;--;24\n"))
    for df in _all_reads(csv):
        assert _ids(df["id"]) == [1237648720693755918, 2] and df["mag_g"].isna().tolist() == [
            False,
            True,
        ]
    dat = tmp_path / f"c.dat.{ext}"
    dat.write_bytes(pack(b"# id mag_g\n1 21\n2 22\n3 23\n4 24\n"))
    assert [len(c.frame) for c in TableReader(dat).iter_chunks(chunk_rows=3)] == [3, 1]
    if codec != "xz":  # astropy.io.fits opens gzip and bzip2
        from astropy.table import Table

        Table({"id": BIG, "mag_g": MAG}).write(tmp_path / "f.fits")
        fz = tmp_path / f"f.fits.{ext}"
        fz.write_bytes(pack((tmp_path / "f.fits").read_bytes()))
        for df in _all_reads(fz):
            assert _ids(df["id"]) == BIG


def test_zip_archives_and_workbooks_are_refused_saying_why(tmp_path):
    import zipfile

    for name in ("book.xlsx", "cat.csv.zip", "cat.csv"):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("cat.csv", "id,mag_g\n1,21\n")
        with pytest.raises(CatalogueError, match="ZIP archive.*export the sheet as CSV"):
            TableReader(path)


def test_fits_variable_length_arrays_are_not_vectors(tmp_path):
    """A P/Q column's record is a (length, offset) descriptor of two integers: it is not a
    2-vector, and asking for it is refused by name; the other columns read."""
    from astropy.io import fits

    spectra = np.array([np.ones(3), np.ones(5)], dtype=object)
    fits.BinTableHDU.from_columns(
        [
            fits.Column(name="flux", format="PD()", array=spectra),
            fits.Column(name="mag_g", format="D", array=np.array([21.0, 22.0])),
        ]
    ).writeto(tmp_path / "vla.fits")
    reader = TableReader(tmp_path / "vla.fits")
    assert reader.columns == ["flux", "mag_g"]
    assert reader.read(["mag_g"])["mag_g"].tolist() == [21.0, 22.0]
    with pytest.raises(CatalogueError, match="variable-length array") as info:
        reader.read()
    assert info.value.column == "flux"


def test_fits_ascii_table_with_tnull(tmp_path):
    """A FITS ASCII table (TableHDU) whose float column has TNULL '*': astropy's Table.read
    refuses it; read_table falls back to the reader, which gives the null as missing."""
    from astropy.io import fits

    cols = [
        fits.Column(name="id", format="I20", array=np.array([BIG[0], 5, 6])),
        fits.Column(name="mag_g", format="F8.3", null="*", array=np.array([21.5, 0.0, 22.25])),
    ]
    path = tmp_path / "ascii.fits"
    fits.TableHDU.from_columns(cols).writeto(path)
    raw = bytearray(path.read_bytes())
    start = raw.index(b"   0.000")  # the second row's magnitude, written as 0.000
    raw[start : start + 8] = b"       *"
    path.write_bytes(bytes(raw))
    for df in _all_reads(path):
        assert _ids(df["id"]) == [BIG[0], 5, 6]
        assert df["mag_g"][0] == 21.5 and np.isnan(df["mag_g"][1])
