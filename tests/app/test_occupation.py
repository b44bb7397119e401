"""Occupation catalogues: a survey's per-cell counts on a map, computed on Dask from a
Parquet dataset, registered through the CLI and the API, and read by coverage, gaps,
targets, n(z), the dashboard's arrays and the sky map exactly as the rows they count.

The equality tests compare an occupation with the ledger's row catalogue of the *same*
galaxies (the mock ingested row by row and written as a Parquet dataset), on SQLite and
PostgreSQL."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.cli import cli
from som.distributed import PartitionError, occupation_parquet
from som.occupation import Occupation
from som.trust import outside_training

MAG_EDGES = [18.0, 21.0, 22.0, 23.0, 24.0, 25.0, 27.0]
Z_EDGES = [0.0, 0.5, 1.0, 1.5, 4.0]
ORDER = 5


@pytest.fixture(scope="module")
def mock() -> pd.DataFrame:
    from som.mock import make_mock

    frame = make_mock(2400, seed=3)
    # a weight per galaxy, so the weight sums are tested against something other than 1
    frame["w"] = np.random.default_rng(4).uniform(0.2, 3.0, len(frame))
    return frame


def _dataset(frame: pd.DataFrame, root, n_files: int = 3, row_group: int = 250):
    """The frame as a directory of Parquet files with several row groups each."""
    root.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(np.array_split(np.arange(len(frame)), n_files)):
        table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
        pq.write_table(table, root / f"part{k}.parquet", row_group_size=row_group)
    return root


def _splits() -> dict:
    return dict(
        mag_column="mag_i", mag_edges=MAG_EDGES, z_column="z_phot", z_edges=Z_EDGES,
        healpix_order=ORDER, ra_column="ra", dec_column="dec",
    )  # fmt: skip


@pytest.fixture
def world(client, auth, settings, mock, ingest, train_map, stored_map, tmp_path):
    """The mock as a row catalogue (photometric and spectroscopic) of a trained map, and
    the same galaxies as a Parquet dataset with their occupation of the map."""
    phot = ingest("photometric", mock, "phot.csv")
    map_id = train_map(phot["id"], n_rows=9, n_cols=11, n_epochs=3, random_state=5)
    ingest("spectroscopic", mock, "spec.csv")
    som = stored_map(settings.database_url, map_id)
    dataset = _dataset(mock, tmp_path / "survey")
    occ = occupation_parquet(som, dataset, rows_per_task=600, progress=False, **_splits())
    return {"map_id": map_id, "phot_id": phot["id"], "som": som, "dataset": dataset, "occ": occ}


def _upload(client, auth, map_id: int, occ: Occupation, tmp_path, name="occ.parquet"):
    path = tmp_path / name
    occ.write_parquet(path)
    return client.post(
        f"/v1/maps/{map_id}/occupations",
        files={"file": (name, path.read_bytes(), "application/octet-stream")},
        headers=auth,
    )


def _n_occupations(client, auth) -> int:
    return client.get("/v1/catalogues?kind=occupation", headers=auth).json()["total"]


# ----------------------------------------------------------------------------- the counts
def _row_truth(som, mock):
    X, _ = som.features.transform(mock)
    a = som.assign(X, allow_empty=True)
    used = (a.cell >= 0) & ~outside_training(a)
    return a, used


def test_dask_occupation_equals_the_bincount_of_single_process_assignment(mock, tmp_path):
    import distributed

    from som import SOM
    from som.photometry import ColourFeatures

    features = ColourFeatures(bands=["u", "g", "r", "i", "z", "Y", "J", "H"])
    som = SOM(8, 9, random_state=2, n_epochs=2, features=features).fit(mock)
    dataset = _dataset(mock, tmp_path / "survey", n_files=4, row_group=200)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as dask_client,
    ):
        occ = occupation_parquet(
            som, dataset, client=dask_client, weight_column="w", rows_per_task=400,
            progress=False, **_splits(),
        )  # fmt: skip
    a, used = _row_truth(som, mock)
    n_cells = som.n_cells
    cells, w = a.cell[used], mock["w"].to_numpy()[used]
    np.testing.assert_array_equal(occ.counts, np.bincount(cells, minlength=n_cells))
    np.testing.assert_allclose(occ.weights, np.bincount(cells, w, minlength=n_cells), rtol=1e-12)
    assert occ.n_rows == len(mock)
    assert occ.n_outside_training == int(((a.cell >= 0) & ~used).sum())
    assert occ.n_unassigned == int((a.cell < 0).sum())
    # the magnitude and photo-z splits are the bincounts of the binned rows
    mags = mock["mag_i"].to_numpy()[used]
    b = np.digitize(mags, MAG_EDGES) - 1
    inside = (b >= 0) & (b < len(MAG_EDGES) - 1)
    expected = np.zeros((len(MAG_EDGES) - 1, n_cells), np.int64)
    np.add.at(expected, (b[inside], cells[inside]), 1)
    np.testing.assert_array_equal(occ.mag_counts, expected)
    assert occ.z_counts.sum() == int(
        ((mock["z_phot"].to_numpy()[used] >= 0) & (mock["z_phot"].to_numpy()[used] <= 4)).sum()
    )
    # the HEALPix split sums to the total, cell by cell
    per_cell = np.bincount(occ.pixel_cell, weights=occ.pixel_counts, minlength=n_cells)
    np.testing.assert_array_equal(per_cell, occ.counts)
    np.testing.assert_allclose(
        np.bincount(occ.pixel_cell, weights=occ.pixel_weights, minlength=n_cells), occ.weights
    )
    # the same in this process on dask's synchronous scheduler, and from the assigned copy
    alone = occupation_parquet(
        som, dataset, weight_column="w", rows_per_task=700, progress=False, **_splits()
    )
    np.testing.assert_array_equal(alone.counts, occ.counts)
    np.testing.assert_array_equal(alone.pixel_counts, occ.pixel_counts)
    from som.distributed import assign_parquet

    assigned = tmp_path / "assigned"
    assign_parquet(som, dataset, assigned, allow_empty=True, progress=False)
    again = occupation_parquet(som, assigned, weight_column="w", progress=False, **_splits())
    assert again.provenance["from_assignment"] is True
    np.testing.assert_array_equal(again.counts, occ.counts)
    np.testing.assert_array_equal(again.mag_counts, occ.mag_counts)
    assert occ.provenance["dataset_sha256"] == alone.provenance["dataset_sha256"]


# ----------------------------------------------------------------------------- the ledger
def _summary_core(summary: dict) -> dict:
    keys = (
        "n_cells", "n_cells_occupied", "n_cells_covered", "n_cells_occupied_covered",
        "fraction_cells_covered", "fraction_occupied_cells_covered",
        "fraction_galaxies_covered", "n_galaxies", "by_magnitude", "by_redshift",
    )  # fmt: skip
    return {k: summary[k] for k in keys}


def test_coverage_gaps_targets_nz_from_an_occupation_equal_those_from_its_rows(
    client, auth, world, mock, tmp_path
):
    map_id, occ = world["map_id"], world["occ"]
    r = _upload(client, auth, map_id, occ, tmp_path)
    assert r.status_code == 201, r.text
    body = r.json()
    occ_id = body["catalogue"]["id"]
    assert body["catalogue"]["kind"] == "occupation" and body["map_id"] == map_id
    assert body["n_rows"] == len(mock) and body["healpix_order"] == ORDER
    assert body["provenance"]["dataset_sha256"] == occ.provenance["dataset_sha256"]
    assert body["provenance"]["map_fingerprint"] == occ.provenance["map_fingerprint"]
    # the same file again is recognised, not stored twice
    again = _upload(client, auth, map_id, occ, tmp_path)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["catalogue"]["id"] == occ_id
    listed = client.get(f"/v1/maps/{map_id}/occupations", headers=auth).json()
    assert [o["catalogue"]["id"] for o in listed] == [occ_id]

    edges = "&mag_bins=" + ",".join(map(str, MAG_EDGES)) + "&z_bins=" + ",".join(map(str, Z_EDGES))
    rows = client.get(f"/v1/maps/{map_id}/coverage?mag_band=i{edges}").json()
    from_occ = client.get(
        f"/v1/maps/{map_id}/coverage?mag_band=i{edges}&catalogue_id={occ_id}"
    ).json()
    assert from_occ["catalogue"] == {"catalogue_id": occ_id, "kind": "occupation",
                                     "name": "occ.parquet"}  # fmt: skip
    assert rows["catalogue"]["catalogue_id"] is None
    assert rows["summary"]["n_galaxies"] > 0 and rows["summary"]["n_cells_covered"] > 0
    assert _summary_core(from_occ["summary"]) == _summary_core(rows["summary"])
    assert from_occ["n_outside_training"] == rows["n_outside_training"]
    assert from_occ["cells"] == rows["cells"]
    # the occupation's bins are fixed when it is computed: others are refused, by name
    bad = client.get(f"/v1/maps/{map_id}/coverage?z_bins=0,2&catalogue_id={occ_id}")
    assert bad.status_code == 422 and "z_bins" in bad.text and "0, 0.5, 1" in bad.text
    other_band = client.get(f"/v1/maps/{map_id}/coverage?mag_band=r&catalogue_id={occ_id}")
    assert other_band.status_code == 422 and "'mag_i'" in other_band.text

    gaps_rows = client.get(f"/v1/maps/{map_id}/gaps?limit=1000").json()
    gaps_occ = client.get(f"/v1/maps/{map_id}/gaps?limit=1000&catalogue_id={occ_id}").json()
    assert gaps_rows["n_gaps"] > 0
    assert gaps_occ["gaps"] == gaps_rows["gaps"]
    for key in ("n_gaps", "n_galaxies_in_gaps", "fraction_in_gaps", "n_outside_training"):
        assert gaps_occ[key] == gaps_rows[key]
    assert gaps_occ["catalogue"]["catalogue_id"] == occ_id

    # targets: candidates from the rows, gaps weighted by the occupation (here the same)
    t_rows = client.get(f"/v1/maps/{map_id}/targets?budget=30").json()
    t_occ = client.get(f"/v1/maps/{map_id}/targets?budget=30&occupation_id={occ_id}").json()
    assert t_rows["n_targets"] > 0 and t_occ["targets"] == t_rows["targets"]
    assert t_occ["catalogue"]["kind"] == "occupation"
    saved = client.post(
        f"/v1/maps/{map_id}/target-lists", json={"budget": 10, "occupation_id": occ_id},
        headers=auth,
    )  # fmt: skip
    assert saved.status_code == 201, saved.text
    assert saved.json()["params"]["occupation_id"] == occ_id

    nz_body = {"n_boot": 25, "random_state": 3, "include_realisations": True}
    nz_rows = client.post(
        f"/v1/maps/{map_id}/nz", json={"catalogue_id": world["phot_id"], **nz_body}
    ).json()
    nz_occ = client.post(f"/v1/maps/{map_id}/nz", json={"catalogue_id": occ_id, **nz_body})
    assert nz_occ.status_code == 200, nz_occ.text
    nz_occ = nz_occ.json()
    for key in ("nz", "nz_err", "mean_z", "mean_z_err", "uncovered_fraction", "n_sample",
                "n_eff", "realisations", "n_outside_training"):  # fmt: skip
        got = np.asarray(nz_occ[key], dtype=float)
        np.testing.assert_allclose(got, np.asarray(nz_rows[key], dtype=float), err_msg=key)
    assert nz_occ["catalogue"]["kind"] == "occupation"
    # a tomographic bin: the rows whose photo-z falls in it
    tomo = client.post(
        f"/v1/maps/{map_id}/nz", json={"catalogue_id": occ_id, "z_bin": 1, "n_boot": 0}
    ).json()
    assert tomo["sample"]["z_bin"] == 1 and tomo["n_sample"] == int(occ.z_counts[1].sum())
    no_bin = client.post(f"/v1/maps/{map_id}/nz", json={"catalogue_id": occ_id, "z_bin": 9})
    assert no_bin.status_code == 422 and "photo-z bin 9" in no_bin.text

    arrays = client.get(f"/v1/maps/{map_id}/arrays?catalogue_id={occ_id}").json()
    assert arrays["catalogue"]["catalogue_id"] == occ_id
    assert arrays["arrays"]["n_phot"] == occ.counts.tolist()

    sky = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}/sky").json()
    assert sky["healpix_order"] == ORDER and sum(sky["n_galaxies"]) == occ.n_galaxies
    covered = np.asarray(rows["cells"]["covered"])
    uncovered = int(occ.counts[~covered].sum())
    assert sum(sky["n_uncovered"]) == uncovered
    png = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}/sky?format=png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"

    gone = client.delete(f"/v1/catalogues/{occ_id}", headers=auth)
    assert gone.status_code == 200 and gone.json()["kind"] == "occupation"
    assert _n_occupations(client, auth) == 0
    assert client.get(f"/v1/maps/{map_id}/coverage?catalogue_id={occ_id}").status_code == 404
    assert client.get(f"/v1/maps/{map_id}/occupations").json() == []
    # reversible until purged: restored, it counts again; purged, its counts are gone
    assert client.post(f"/v1/catalogues/{occ_id}/restore", headers=auth).status_code == 200
    assert _n_occupations(client, auth) == 1
    assert [o["catalogue"]["id"] for o in client.get(f"/v1/maps/{map_id}/occupations").json()] == [
        occ_id
    ]
    assert client.get(f"/v1/maps/{map_id}/coverage?catalogue_id={occ_id}").status_code == 200
    client.delete(f"/v1/catalogues/{occ_id}", headers=auth).raise_for_status()
    assert client.post(f"/v1/catalogues/{occ_id}/purge", headers=auth).status_code == 200
    assert client.get("/v1/catalogues?deleted=true").json()["total"] == 0
    entries = client.get("/v1/changes").json()["items"]
    # registering a survey's counts is audited like an ingest, with the key's name
    ingested = [
        c for c in entries if c["catalogue_id"] == occ_id and c["action"] == "catalogue_ingested"
    ]
    assert len(ingested) == 1 and ingested[0]["key_name"] == "tests", entries
    log = [(c["action"], c["catalogue_id"]) for c in entries]
    assert log[-4:] == [
        ("catalogue_deleted", occ_id),
        ("catalogue_restored", occ_id),
        ("catalogue_deleted", occ_id),
        ("catalogue_purged", occ_id),
    ]


def test_bad_occupations_are_refused_by_name_and_nothing_is_written(client, auth, world, tmp_path):
    map_id, occ = world["map_id"], world["occ"]
    # a table for a map of another size
    other = Occupation.from_rows(occ.n_cells + 5, np.array([0, 1, 1]))
    r = _upload(client, auth, map_id, other, tmp_path, "other.parquet")
    assert r.status_code == 422
    err = r.json()
    assert f"{occ.n_cells + 5} cells" in err["detail"] and "other.parquet" in err["detail"]
    assert _n_occupations(client, auth) == 0

    # a negative count, named by column and row
    frame = occ.to_frame()
    frame.loc[7, "n"] = -3
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {})}
    from som.occupation import METADATA_KEY

    buf = io.BytesIO()
    occ.write_parquet(tmp_path / "good.parquet")
    meta[METADATA_KEY] = pq.read_schema(tmp_path / "good.parquet").metadata[METADATA_KEY]
    pq.write_table(table.replace_schema_metadata(meta), buf)
    r = client.post(
        f"/v1/maps/{map_id}/occupations",
        files={"file": ("negative.parquet", buf.getvalue(), "application/octet-stream")},
        headers=auth,
    )
    assert r.status_code == 422
    item = r.json()["errors"][0]
    assert item["file"] == "negative.parquet" and item["column"] == "n" and item["row"] == 7
    assert "negative count -3" in item["reason"]
    assert _n_occupations(client, auth) == 0

    # a Parquet file that is no occupation table
    pq.write_table(pa.table({"cell": [1, 2]}), tmp_path / "plain.parquet")
    r = client.post(
        f"/v1/maps/{map_id}/occupations",
        files={"file": ("plain.parquet", (tmp_path / "plain.parquet").read_bytes())},
        headers=auth,
    )
    assert r.status_code == 422 and "somcal_occupation" in r.json()["detail"]

    # a dataset missing a needed column: the file and the column are named, before any work
    broken = _dataset(world_without(world, "mag_r"), tmp_path / "broken")
    with pytest.raises(PartitionError) as exc:
        occupation_parquet(world["som"], broken, progress=False, **_splits())
    assert "part0.parquet" in str(exc.value) and "'mag_r'" in str(exc.value)
    assert _n_occupations(client, auth) == 0


def world_without(world: dict, column: str) -> pd.DataFrame:
    frame = pq.read_table(world["dataset"]).to_pandas()
    return frame.drop(columns=[column])


def test_cli_computes_and_registers_an_occupation(client, auth, world, settings, tmp_path):
    runner = CliRunner()
    out = tmp_path / "occ_table.parquet"
    args = [
        "occupation", str(world["dataset"]), "--map", str(world["map_id"]),
        "--mag-column", "mag_i", "--mag-edges", ",".join(map(str, MAG_EDGES)),
        "--z-column", "z_phot", "--z-edges", ",".join(map(str, Z_EDGES)),
        "--healpix-order", str(ORDER), "--ra-column", "ra", "--dec-column", "dec",
        "--rows-per-task", "500", "--output", str(out),
        "--database-url", settings.database_url,
    ]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    occ_id = int(result.stdout.strip().splitlines()[-1])
    stored = client.get(f"/v1/maps/{world['map_id']}/occupations/{occ_id}", headers=auth).json()
    assert stored["catalogue"]["file_format"] == "parquet"
    assert stored["n_galaxies"] == world["occ"].n_galaxies
    assert stored["provenance"]["dataset"] == str(world["dataset"].resolve())
    cov = runner.invoke(
        cli, ["coverage", "--map-id", str(world["map_id"]), "--catalogue-id", str(occ_id),
              "--json", "--database-url", settings.database_url],
    )  # fmt: skip
    assert cov.exit_code == 0, cov.output
    cov = json.loads(cov.stdout)
    assert cov["catalogue"]["kind"] == "occupation"
    assert cov["summary"]["n_galaxies"] == world["occ"].n_galaxies
    written = Occupation.read_parquet(out)
    np.testing.assert_array_equal(written.counts, world["occ"].counts)
    # the table it wrote registers as the same counts (a new file, so a new catalogue)
    again = runner.invoke(
        cli, ["occupation", str(out), "--map", str(world["map_id"]),
              "--database-url", settings.database_url],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    # a dataset missing a column: exit 2 with the file and column, nothing registered
    broken = _dataset(world_without(world, "mag_r"), tmp_path / "broken")
    bad = runner.invoke(
        cli, ["occupation", str(broken), "--map", str(world["map_id"]),
              "--database-url", settings.database_url],
    )  # fmt: skip
    assert bad.exit_code == 2 and "'mag_r'" in bad.output and "part0.parquet" in bad.output
    assert _n_occupations(client, auth) == 2


# ----------------------------------------------------------------------------- as a job
def _compute(client, auth, map_id: int, path: str, **options):
    body = {"path": path, "rows_per_task": 500, **options}
    return client.post(f"/v1/maps/{map_id}/occupations/compute", json=body, headers=auth)


def test_api_computes_an_occupation_from_parquet_and_hats_as_a_queued_job(
    client, auth, settings, world, mock, data_dir, tmp_path, wait_job
):
    import lsdb

    map_id, occ = world["map_id"], world["occ"]
    _dataset(mock, data_dir / "survey")
    splits = {k: v for k, v in _splits().items()}
    r = _compute(client, auth, map_id, "survey", name="wide survey", **splits)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["n_files"] == 3 and body["dataset"] == str((data_dir / "survey").resolve())
    assert r.headers["location"] == f"/v1/jobs/{body['job']['id']}"
    assert body["job"]["kind"] == "compute_occupation"
    job, _ = wait_job(body["job"]["id"])
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["n_partitions"] == 6 and result["n_rows"] == len(mock)
    occ_id = result["catalogue_id"]
    stored = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}", headers=auth).json()
    assert stored["catalogue"]["name"] == "wide survey"
    assert stored["catalogue"]["file_format"] == "parquet"
    assert stored["n_galaxies"] == occ.n_galaxies and stored["healpix_order"] == ORDER
    assert stored["provenance"]["dataset_sha256"] == occ.provenance["dataset_sha256"]
    # the same counts as computed outside the service
    arrays = client.get(f"/v1/maps/{map_id}/arrays?catalogue_id={occ_id}").json()
    assert arrays["arrays"]["n_phot"] == occ.counts.tolist()
    # the same pass again, on a Dask scheduler named by address: the same counts,
    # recognised, not stored twice
    import distributed

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        address = cluster.scheduler_address
        # a scheduler runs what it is sent: only one the operator lists may be named
        refused = _compute(client, auth, map_id, "survey", dask=address, **splits)
        assert refused.status_code == 403, refused.text
        assert "SOMCAL_DASK_SCHEDULERS" in refused.json()["detail"]
        settings.dask_schedulers = [address]
        again = _compute(client, auth, map_id, str(data_dir / "survey"), dask=address, **splits)
        assert again.status_code == 202, again.text
        job2, _ = wait_job(again.json()["job"]["id"])
    assert job2["status"] == "succeeded", job2
    assert job2["result"]["engine"] == address and job2["params"]["dask"] == address
    assert job2["result"]["duplicate"] is True and job2["result"]["catalogue_id"] == occ_id

    # a HATS catalogue of the same galaxies: its own RA/Dec columns, the same counts
    frame = mock.copy()
    lsdb.from_dataframe(
        frame, ra_column="ra", dec_column="dec", highest_order=9, partition_rows=900
    ).write_catalog(data_dir / "hats", catalog_name="wide", progress_bar=False)
    hats_splits = {k: v for k, v in splits.items() if k not in ("ra_column", "dec_column")}
    r = _compute(client, auth, map_id, "hats", **hats_splits)
    assert r.status_code == 202, r.text
    job, _ = wait_job(r.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    hats_id = job["result"]["catalogue_id"]
    got = client.get(f"/v1/maps/{map_id}/occupations/{hats_id}", headers=auth).json()
    assert got["catalogue"]["file_format"] == "hats" and got["provenance"]["hats"] is True
    assert got["n_galaxies"] == occ.n_galaxies and got["n_rows"] == len(mock)
    sky = client.get(f"/v1/maps/{map_id}/occupations/{hats_id}/sky").json()
    ref = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}/sky").json()
    assert sky["pixel"] == ref["pixel"] and sky["n_galaxies"] == ref["n_galaxies"]
    assert _n_occupations(client, auth) == 2


def test_api_occupation_job_refuses_paths_outside_and_names_bad_files(
    client, auth, world, mock, data_dir, tmp_path, wait_job
):
    map_id = world["map_id"]
    # outside the data directories: by path, and by a link inside them
    r = _compute(client, auth, map_id, str(world["dataset"]))
    assert r.status_code == 403 and "outside the configured data directories" in r.text
    (data_dir / "linked").mkdir()
    (data_dir / "linked" / "part0.parquet").symlink_to(world["dataset"] / "part0.parquet")
    r = _compute(client, auth, map_id, "linked")
    assert r.status_code == 403 and "part0.parquet" in r.text
    # nothing there, or no Parquet in it
    assert _compute(client, auth, map_id, "nowhere").status_code == 404
    (data_dir / "empty").mkdir()
    r = _compute(client, auth, map_id, "empty")
    assert r.status_code == 422 and "no Parquet files" in r.text
    (data_dir / "cat.csv").write_text("a,b\n1,2\n")
    r = _compute(client, auth, map_id, "cat.csv")
    assert r.status_code == 422 and "not a Parquet file" in r.text
    # options that do not go together are refused before anything is queued
    r = _compute(client, auth, map_id, "empty", mag_column="mag_i")
    assert r.status_code == 422 and "mag_edges" in r.text
    r = _compute(client, auth, map_id, "empty", dask="http://example.org")
    assert r.status_code == 422
    # a dataset missing a needed column: the job fails naming the file and the column
    _dataset(world_without(world, "mag_r"), data_dir / "broken")
    r = _compute(client, auth, map_id, "broken")
    assert r.status_code == 202, r.text
    job, _ = wait_job(r.json()["job"]["id"])
    assert job["status"] == "failed"
    assert "part0.parquet" in job["error"] and "'mag_r'" in job["error"]
    # a weight column that is not numeric: the partition, its file and the column named
    bad = mock.copy()
    bad["w"] = "heavy"
    _dataset(bad, data_dir / "badweight")
    r = _compute(client, auth, map_id, "badweight", weight_column="w")
    job, _ = wait_job(r.json()["job"]["id"])
    assert job["status"] == "failed" and "part0.parquet" in job["error"] and "'w'" in job["error"]
    assert _n_occupations(client, auth) == 0


# ----------------------------------------------------------------------------- the sky
def test_sky_map_degrades_to_a_coarser_order_and_the_cli_writes_png_and_fits(
    client, auth, world, settings, tmp_path
):
    from astropy.io import fits

    map_id, occ = world["map_id"], world["occ"]
    occ_id = _upload(client, auth, map_id, occ, tmp_path).json()["catalogue"]["id"]
    fine = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}/sky").json()
    coarse = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}/sky?order=2").json()
    assert coarse["healpix_order"] == 2 and len(coarse["pixel"]) <= len(fine["pixel"])
    assert sum(coarse["n_galaxies"]) == sum(fine["n_galaxies"]) == occ.n_galaxies
    assert sum(coarse["n_uncovered"]) == sum(fine["n_uncovered"])
    finer = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}/sky?order={ORDER + 1}")
    assert finer.status_code == 422 and "finer than the stored split" in finer.text
    api_fits = client.get(f"/v1/maps/{map_id}/occupations/{occ_id}/sky?format=fits&order=3")
    assert api_fits.status_code == 200 and api_fits.content[:6] == b"SIMPLE"

    runner = CliRunner()
    db = ["--database-url", settings.database_url]
    out = tmp_path / "sky.fits"
    r = runner.invoke(cli, ["occupation", "skymap", str(occ_id), "--out", str(out), *db])
    assert r.exit_code == 0, r.output
    with fits.open(out) as hdus:
        h, data = hdus[1].header, hdus[1].data
        assert (h["PIXTYPE"], h["ORDERING"], h["ORDER"]) == ("HEALPIX", "NESTED", ORDER)
        assert h["NSIDE"] == 2**ORDER and len(data) == 12 * 4**ORDER
        assert h["INDXSCHM"] == "IMPLICIT" and h["COORDSYS"] == "C"
        pixels = np.asarray(fine["pixel"])
        np.testing.assert_array_equal(data["N_GALAXIES"][pixels], fine["n_galaxies"])
        np.testing.assert_allclose(data["FRACTION_UNCOVERED"][pixels], fine["fraction_uncovered"])
        empty = np.setdiff1d(np.arange(len(data)), pixels)
        assert (data["FRACTION_UNCOVERED"][empty] == h["BAD_DATA"]).all()
        assert int(data["N_GALAXIES"].sum()) == occ.n_galaxies
    coarse_out = tmp_path / "sky2.fits"
    r = runner.invoke(cli, ["occupation", "skymap", str(occ_id), "--map", str(map_id),
                            "--order", "2", "--out", str(coarse_out), *db])  # fmt: skip
    assert r.exit_code == 0, r.output
    with fits.open(coarse_out) as hdus:
        assert hdus[1].header["NSIDE"] == 4 and len(hdus[1].data) == 192
        assert int(hdus[1].data["N_GALAXIES"].sum()) == occ.n_galaxies
    png = tmp_path / "sky.png"
    r = runner.invoke(cli, ["occupation", "skymap", str(occ_id), "-o", str(png), *db])
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an existing file is kept unless told; a format it cannot write is refused
    r = runner.invoke(cli, ["occupation", "skymap", str(occ_id), "-o", str(png), *db])
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = runner.invoke(cli, ["occupation", "skymap", str(occ_id), "-o", str(tmp_path / "a.jpg"),
                            *db])  # fmt: skip
    assert r.exit_code == 2 and ".png or .fits" in r.output

    listed = runner.invoke(cli, ["occupation", "list", "--json", *db])
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [d["catalogue"]["id"] for d in items] == [occ_id] and items[0]["map_id"] == map_id
    table = runner.invoke(cli, ["occupation", "list", "--map", str(map_id), *db])
    assert table.exit_code == 0 and "occ.parquet" in table.stdout
    shown = runner.invoke(cli, ["occupation", "show", str(occ_id), *db])
    assert shown.exit_code == 0, shown.output
    shown = json.loads(shown.stdout)
    assert shown["n_galaxies"] == occ.n_galaxies and shown["healpix_order"] == ORDER
    missing = runner.invoke(cli, ["occupation", "show", "999999", *db])
    assert missing.exit_code == 3


def test_fits_sky_map_pixels_are_those_of_astropy_healpix():
    """A third party's reading of the FITS header: astropy-healpix (optional; not a
    dependency) built from NSIDE and ORDERING puts each galaxy in the pixel that counts it."""
    ahp = pytest.importorskip("astropy_healpix")
    from types import SimpleNamespace

    import astropy.units as u
    from astropy.io import fits

    from app.services.occupation import sky_fits
    from som.distributed.occupation import healpix_pixels

    rng = np.random.default_rng(8)
    ra, dec = rng.uniform(0, 360, 3000), np.degrees(np.arcsin(rng.uniform(-1, 1, 3000)))
    occ = Occupation.from_rows(
        6, rng.integers(0, 6, 3000), pixels=healpix_pixels(ra, dec, 3), healpix_order=3
    )
    frame = occ.uncovered_by_pixel(np.arange(6) < 2)
    data = sky_fits(occ, frame, SimpleNamespace(id=1, min_secure=1), 2)
    with fits.open(io.BytesIO(data)) as hdus:
        h, table = hdus[1].header, hdus[1].data
        grid = ahp.HEALPix(nside=h["NSIDE"], order=h["ORDERING"].lower())
        theirs = grid.lonlat_to_healpix(ra * u.deg, dec * u.deg)
        counts = np.bincount(theirs, minlength=grid.npix)
        np.testing.assert_array_equal(counts, table["N_GALAXIES"])


def test_other_counts_under_a_purged_occupations_id_are_read_afresh(client, auth, world, tmp_path):
    """SQLite gives a purged catalogue's id to the next one: what the service read of the
    old counts must not answer for the new."""
    import dataclasses

    map_id, occ = world["map_id"], world["occ"]
    first = _upload(client, auth, map_id, occ, tmp_path, "first.parquet")
    assert first.status_code == 201, first.text
    first_id = first.json()["catalogue"]["id"]
    url = f"/v1/maps/{map_id}/coverage"
    got = client.get(url, params={"catalogue_id": first_id}).json()["summary"]
    assert got["n_galaxies"] == occ.n_galaxies
    client.delete(f"/v1/catalogues/{first_id}", headers=auth).raise_for_status()
    client.post(f"/v1/catalogues/{first_id}/purge", headers=auth).raise_for_status()

    doubled = dataclasses.replace(
        occ, counts=2 * occ.counts, weights=2 * occ.weights, n_rows=2 * occ.n_rows,
        n_unassigned=2 * occ.n_unassigned, n_outside_training=2 * occ.n_outside_training,
        mag_column=None, mag_edges=None, mag_counts=None, mag_weights=None,
        z_column=None, z_edges=None, z_counts=None, z_weights=None,
        healpix_order=None, pixel=None, pixel_cell=None, pixel_counts=None, pixel_weights=None,
    )  # fmt: skip
    second = _upload(client, auth, map_id, doubled, tmp_path, "second.parquet")
    assert second.status_code == 201, second.text
    second_id = second.json()["catalogue"]["id"]
    got = client.get(url, params={"catalogue_id": second_id}).json()["summary"]
    assert got["n_galaxies"] == 2 * occ.n_galaxies
