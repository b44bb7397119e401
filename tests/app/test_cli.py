"""The ``somcal`` CLI through typer's CliRunner, on SQLite and PostgreSQL (``clean_db``).

Every number the commands write is checked against the same computation done independently
from the mock and the stored map (as the HTTP flow test does for the API).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from astropy.table import Table
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.core.db import make_engine, make_session_factory
from app.models import Map
from som.calibration import cell_spec_counts
from som.plotting import PNG_SIGNATURE

runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, (
        f"somcal {' '.join(map(str, args))} -> {result.exit_code}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
    )
    return result


@pytest.fixture(scope="module")
def mock_file(tmp_path_factory) -> Path:
    """A 2000-galaxy mock written by the CLI itself (the `mock` command)."""
    path = tmp_path_factory.mktemp("mock") / "mock.parquet"
    result = run("mock", path, "-n", 2000, "--seed", 4)
    assert result.stdout.strip() == str(path)
    assert "with a spectroscopic redshift" in result.stderr
    return path


def test_every_command_has_help():
    group = typer.main.get_command(cli)
    names = [n for n in group.commands if n not in ("db", "apikey")]
    names += ["db upgrade", "apikey create"]
    assert {"mock", "ingest", "train", "assign", "coverage", "gaps", "targets", "nz"} <= set(names)
    assert {"plot", "serve", "quickstart"} <= set(names)
    for name in names:
        result = run(*name.split(), "--help")
        assert "Usage" in result.stdout, name


def test_whole_flow(clean_db, mock_file, tmp_path, stored_map):
    url = clean_db
    mock = pd.read_parquet(mock_file)
    has_z = mock["z_spec"].notna().to_numpy()

    out = run("ingest", "photometric", mock_file, "--database-url", url)
    assert "catalogue" in out.stderr and "2,000 rows" in out.stderr
    cat_id = int(out.stdout)
    again = run("ingest", "photometric", mock_file, "--database-url", url)
    assert "already catalogue" in again.stderr and int(again.stdout) == cat_id

    trained = run(
        "train",
        cat_id,
        "--rows",
        8,
        "--cols",
        10,
        "--epochs",
        3,
        "--seed",
        2,
        "--database-url",
        url,
    )
    map_id = int(trained.stdout.strip())
    assert "train map" in trained.stderr and f"map {map_id} ready" in trained.stderr
    som = stored_map(url, map_id)
    X, _ = som.features.transform(mock)
    a = som.assign(X, skip_empty=True)
    # Rows outside what the map was trained on are in no cell's numbers.
    phot_cells = np.where(som.outside_training(a), -1, a.cell)

    spec = run("ingest", "spectroscopic", mock_file, "--database-url", url)
    assert f"{has_z.sum():,} rows" in spec.stderr and f"[{map_id}]" in spec.stderr

    # Coverage: the cells holding a secure spectrum (all of the mock's are secure).
    spec_cells = phot_cells[has_z]
    expected_cov = cell_spec_counts(spec_cells[spec_cells >= 0], 80) >= 1
    cov = json.loads(run("coverage", "--json", "--database-url", url).stdout)
    assert cov["summary"]["n_cells_covered"] == expected_cov.sum() > 0
    n_phot = np.bincount(phot_cells[phot_cells >= 0], minlength=80)
    assert cov["summary"]["fraction_galaxies_covered"] == pytest.approx(
        n_phot[expected_cov].sum() / n_phot.sum()
    )
    n_out = int(((phot_cells < 0) & (a.cell >= 0)).sum())
    assert cov["n_outside_training"] == n_out
    assert re.search(
        rf"galaxies outside the training set\s*│\s*{n_out:,}\b",
        run("coverage", "--database-url", url).stdout,
    )
    table = run("coverage", "--mag-band", "i", "--mag-bins", 3, "--database-url", url).stdout
    assert "by i magnitude" in table

    # Gaps and targets: one target per uncovered occupied cell, none in a covered cell.
    gaps_csv = tmp_path / "gaps.csv"
    run("gaps", "-o", gaps_csv, "--database-url", url)
    gaps = pd.read_csv(gaps_csv)
    gap_cells = set(np.flatnonzero((n_phot > 0) & ~expected_cov))
    assert set(gaps["cell"]) == gap_cells
    assert list(gaps["n_galaxies"]) == sorted(gaps["n_galaxies"], reverse=True)
    t_csv = tmp_path / "targets.csv"
    run("targets", "-o", t_csv, "--database-url", url)
    targets = pd.read_csv(t_csv)
    assert set(targets["cell"]) == gap_cells and len(targets) == len(gap_cells)
    t_fits = tmp_path / "targets.fits"
    run("targets", "-o", t_fits, "--budget", 5, "--map-id", map_id, "--database-url", url)
    fits = Table.read(t_fits)
    assert len(fits) == 5 and fits.meta["MAP_ID"] == map_id and fits.meta["BUDGET"] == 5
    assert list(fits["source_id"]) == [str(s) for s in targets["source_id"][:5]]

    # Assign: a CSV comes back as CSV with the stored map's cells and the cells' statistics.
    sample = mock.iloc[:300].copy()
    sample_csv = tmp_path / "sample.csv"
    sample.to_csv(sample_csv, index=False)
    res = run("assign", sample_csv, "--database-url", url)
    out_path = tmp_path / "sample_cells.csv"
    assert res.stdout.strip() == str(out_path)
    got = pd.read_csv(out_path)
    assert list(got.columns[: len(sample.columns)]) == list(sample.columns)
    # Every row gets its cell; rows outside the training set are flagged, never covered.
    cells300, out300 = a.cell[:300], som.outside_training(a)[:300]
    np.testing.assert_array_equal(got["cell"], cells300)
    np.testing.assert_array_equal(got["cell_row"], cells300 // 10)
    np.testing.assert_array_equal(got["cell_n_phot"], n_phot[cells300])
    np.testing.assert_array_equal(got["cell_covered"], expected_cov[cells300] & ~out300)
    np.testing.assert_array_equal(got["cell_outside_training"], out300)
    np.testing.assert_array_equal(got["cell_n_colours"], a.n_features[:300])
    np.testing.assert_allclose(got["cell_percentile"], a.percentile[:300], rtol=1e-6)
    dist = som.assign(X[:300], allow_empty=True).distance
    np.testing.assert_allclose(got["cell_distance"], dist, rtol=1e-5)
    # ... FITS in, FITS out (the format follows the file), refusing to overwrite.
    sample_fits = tmp_path / "sample.fits"
    Table.from_pandas(sample.drop(columns=["spec_survey"])).write(sample_fits)
    run("assign", sample_fits, "--database-url", url)
    got_fits = Table.read(tmp_path / "sample_cells.fits")
    np.testing.assert_array_equal(got_fits["cell"], cells300)
    again = run("assign", sample_fits, "--database-url", url, code=2)
    assert "--overwrite" in again.stderr
    # ... and a Parquet dataset on a Dask cluster: the same cells and statistics.
    dataset = tmp_path / "sample_ds"
    dataset.mkdir()
    sample.iloc[:150].to_parquet(dataset / "part0.parquet")
    sample.iloc[150:].to_parquet(dataset / "part1.parquet")
    res = run("assign", dataset, "--dask", "local", "--database-url", url)
    out_dir = tmp_path / "sample_ds_cells"
    assert res.stdout.strip() == str(out_dir)
    got_ds = pd.concat(
        [pd.read_parquet(out_dir / "part0.parquet"), pd.read_parquet(out_dir / "part1.parquet")],
        ignore_index=True,
    )
    np.testing.assert_array_equal(got_ds["cell"], cells300)
    np.testing.assert_array_equal(got_ds["cell_n_phot"], n_phot[cells300])
    np.testing.assert_array_equal(got_ds["cell_covered"], expected_cov[cells300] & ~out300)
    np.testing.assert_allclose(got_ds["cell_distance"], dist, rtol=1e-5)

    # n(z) per tomographic bin: members counted by photo-z, densities of unit area.
    nz = json.loads(
        run(
            "nz", "--tomo-bins", "0.2,0.7,1.5", "--n-boot", 10, "--json", "--database-url", url
        ).stdout
    )
    z = mock["z_phot"].to_numpy()
    assert [b["n_members"] for b in nz] == [
        int(((z >= 0.2) & (z < 0.7)).sum()),
        int(((z >= 0.7) & (z < 1.5)).sum()),
    ]
    for b in nz:
        assert np.sum(np.array(b["nz"]) * np.diff(b["bins"])) == pytest.approx(1.0)
        assert 0 < b["uncovered_fraction"] < 1
    nz_csv = tmp_path / "nz.csv"
    run("nz", "-o", nz_csv, "--n-boot", 0, "--database-url", url)
    assert set(pd.read_csv(nz_csv)["tomo_bin"]) <= {0, 1, 2, 3}
    # The same n(z) as files the pipelines read: fiducial and bootstrap realisations.
    from som import nz_formats

    for fmt, name in [("qp", "nz.hdf5"), ("sacc", "nz.sacc"), ("fits", "nz_2pt.fits")]:
        if fmt == "qp":
            pytest.importorskip("qp")
        path = tmp_path / name
        args = ("nz", "--tomo-bins", "0.2,0.7,1.5", "--n-boot", 10, "-o", path)
        result = run(*args, "--format", fmt, "--database-url", url)
        assert "2 bin(s) with 10 realisation(s)" in result.stderr
        back = nz_formats.read(path, fmt)
        assert back.names == ["source_0", "source_1"] and back.n_real == 10
        np.testing.assert_allclose(back.z_edges, nz[0]["bins"], rtol=1e-14)
        np.testing.assert_allclose(back.fiducial, [b["nz"] for b in nz], rtol=1e-12)
        np.testing.assert_allclose(back.n_eff, [b["n_eff"] for b in nz])
        std = back.realisations.std(axis=0, ddof=1)
        np.testing.assert_allclose(std, [b["nz_err"] for b in nz], rtol=1e-10, atol=1e-14)
    bad = run(*args, "--format", "hdf5", "--database-url", url, code=2)
    assert "choose one of qp, sacc, fits" in bad.stderr

    # Plots: PNG files.
    png = tmp_path / "coverage.png"
    run("plot", "coverage", "-o", png, "--database-url", url)
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    # (`plot all` is exercised by the quickstart test)
    nz_png = tmp_path / "nz.png"
    run(
        "plot",
        "nz",
        "-o",
        nz_png,
        "--tomo-bins",
        "0.2,0.7,1.5",
        "--n-boot",
        5,
        "--database-url",
        url,
    )
    assert nz_png.read_bytes()[:8] == PNG_SIGNATURE

    listing = run("maps", "--database-url", url).stdout
    assert re.search(rf"{map_id}\s.*ready", listing)
    assert "spectroscopic" in run("catalogues", "--database-url", url).stdout


def test_errors_say_what_to_do(clean_db, tmp_path, mock_file):
    url = clean_db
    missing = run("ingest", "photometric", tmp_path / "nope.csv", "--database-url", url, code=3)
    assert "nope.csv" in missing.stderr
    no_map = run("coverage", "--database-url", url, code=3)
    assert "somcal train" in no_map.stderr
    assert "not found" in run("plot", "redshift", "-m", 99, "--database-url", url, code=3).stderr
    bad_map = run(
        "ingest", "photometric", mock_file, "--map", "mag_u", "--database-url", url, code=2
    )
    assert "FIELD=COLUMN" in bad_map.stderr

    # A bad value is named by file, column and row, and nothing is stored.
    frame = pd.read_parquet(mock_file).iloc[:20].copy()
    frame.loc[7, "mag_r"] = 75.0
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    res = run("ingest", "photometric", bad, "--database-url", url, code=2)
    assert "bad.csv, column 'mag_r', row 7" in res.stderr and "nothing was stored" in res.stderr
    assert "0 catalogue(s)" in run("catalogues", "--database-url", url).stdout
    cols = run("ingest", "photometric", bad, "--map", "mag_q=x", "--database-url", url, code=2)
    assert "unknown field 'mag_q'" in cols.stderr

    res = run("train", 12345, "--database-url", url, code=3)
    assert "catalogue 12345 not found" in res.stderr
    bins = run("coverage", "--z-bins", "1,0", "--database-url", url, code=2)
    assert "--z-bins" in bins.stderr


def test_a_database_without_the_schema_is_named(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    res = run("catalogs", "--database-url", url, code=1)  # the old spelling still runs
    assert "somcal db upgrade" in res.stderr and "empty" in res.stderr


def test_quickstart_runs_the_whole_job_and_reuses_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'qs.db'}"
    args = ("quickstart", "--workdir", tmp_path / "var", "-n", 1500, "--rows", 6, "--cols", 8)
    first = run(*args, "--epochs", 2, "--no-serve", "--database-url", url)
    assert "quickstart done" in first.stdout and "somcal serve" in first.stdout
    plots = sorted((tmp_path / "var" / "plots").glob("*.png"))
    assert len(plots) == 7 and all(p.read_bytes()[:8] == PNG_SIGNATURE for p in plots)
    targets = pd.read_csv(tmp_path / "var" / "targets_map1.csv")
    assert len(targets) > 0 and targets["priority"].tolist() == list(range(1, len(targets) + 1))
    # The second run finds the mock, both catalogues and the map, and trains nothing.
    second = run(*args, "--epochs", 2, "--no-serve", "--database-url", url)
    assert "reused" in second.stderr and "already catalogue" in second.stderr
    assert "train map" not in second.stderr
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        assert len(s.scalars(select(Map)).all()) == 1
    engine.dispose()


def test_train_options_refuse_what_the_api_refuses():
    """The CLI's size limits are the training request's, not a second copy of them."""
    from app.schemas import TrainMapIn

    most = next(r.le for r in TrainMapIn.model_fields["n_rows"].metadata if hasattr(r, "le"))
    result = runner.invoke(cli, ["train", "1", "--rows", str(most + 1)])
    assert result.exit_code == 2
    assert str(most) in result.output
