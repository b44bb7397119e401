"""Assignment and batch training on a Dask LocalCluster agree with the single-process engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")
dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] is not installed")
da = pytest.importorskip("dask.array", reason="dask[array] is not installed")

from som import SOM  # noqa: E402
from som.distributed import (  # noqa: E402
    MANIFEST,
    TRUST_COLUMNS,
    PartitionError,
    assign_parquet,
    fit_distributed,
    list_parquet_files,
)
from som.photometry import ColourFeatures  # noqa: E402
from som.trust import outside_training  # noqa: E402

FEATURES = [f"f{k}" for k in range(5)]


@pytest.fixture(scope="module")
def cluster():
    # separate processes: the map, the tasks and their errors cross a pickle boundary as on a
    # real cluster. Not the default client, so client=None still means "this process".
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cl:
        yield cl


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def _features(rng, n):
    centres = rng.normal(scale=3.0, size=(6, len(FEATURES)))
    return (centres[rng.integers(0, 6, n)] + rng.normal(size=(n, len(FEATURES)))).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(11)
    return SOM(8, 10, random_state=3, n_epochs=3).fit(_features(rng, 4000))


def _frame(rng, n, start):
    X = _features(rng, n)
    df = pd.DataFrame({"id": np.arange(start, start + n, dtype=np.int64)})
    for k, name in enumerate(FEATURES):
        df[name] = X[:, k]
    df["label"] = [f"src{i}" for i in df["id"]]
    return df


def _write(df, path, row_group_size=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size)


def _read_dataset(root: Path) -> pd.DataFrame:
    _, files = list_parquet_files(root)
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


@pytest.fixture
def dataset(tmp_path):
    """Three files: one cut into two tasks, one in a hive-style subdirectory with missing
    features, one empty; plus files the discovery must skip."""
    rng = np.random.default_rng(5)
    a = _frame(rng, 3000, 0)
    sub = _frame(rng, 1500, 10_000)
    sub.loc[rng.random(len(sub)) < 0.2, "f1"] = np.nan  # masked-distance kernel
    empty = _frame(rng, 0, 0)
    root = tmp_path / "cat"
    _write(a, root / "a.parquet", row_group_size=1000)
    _write(empty, root / "b.parquet")
    _write(sub, root / "sub" / "Norder=1" / "Npix=3.parquet", row_group_size=400)
    _write(a.head(5), root / "_ignored.parquet")
    (root / ".hidden").mkdir()
    _write(a.head(5), root / ".hidden" / "x.parquet")
    return root, pd.concat([a, sub], ignore_index=True)


def _cell_stats(som):
    cells = np.arange(0, som.n_cells, 3)  # every third cell: the others get nulls
    return pd.DataFrame(
        {"z_median": cells / 100.0, "covered": cells % 2 == 0, "n_spec": cells * 2},
        index=pd.Index(cells, name="cell"),
    )


def test_discovery_keeps_file_order_and_skips_hidden(dataset):
    root, _ = dataset
    _, files = list_parquet_files(root)
    assert [f.relative_to(root).as_posix() for f in files] == [
        "a.parquet",
        "b.parquet",
        "sub/Norder=1/Npix=3.parquet",
    ]


def _hats_catalogue(tmp_path, n=3000):
    """A small HATS collection (catalogue and margin) written by lsdb itself."""
    import lsdb

    rng = np.random.default_rng(0)
    df = _frame(rng, n, 0)
    df["ra"] = rng.uniform(0, 360, n)
    df["dec"] = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    catalogue = lsdb.from_dataframe(
        df, ra_column="ra", dec_column="dec", highest_order=2, partition_rows=500
    )
    catalogue.write_catalog(tmp_path / "hats", catalog_name="cat", progress_bar=False)
    return tmp_path / "hats", df


def test_hats_catalogue_contributes_its_pixel_files_only(tmp_path):
    import hats

    root, df = _hats_catalogue(tmp_path)
    got, files = list_parquet_files(root)
    main = hats.read_hats(root).main_catalog
    assert got == (root / "cat").resolve()  # the collection's main catalogue, not its margin
    assert len(files) == len(main.get_healpix_pixels()) > 1
    rels = [f.relative_to(got).as_posix() for f in files]
    assert all(r.startswith("dataset/Norder=") and "/Dir=" in r for r in rels)
    assert sum(pq.read_metadata(f).num_rows for f in files) == len(df)  # no margin rows


def test_hats_catalogue_is_assigned_into_a_hats_catalogue(trained, tmp_path, client):
    import hats
    import lsdb

    root, df = _hats_catalogue(tmp_path)
    summary = assign_parquet(
        trained, root, tmp_path / "out", client=client, feature_columns=FEATURES,
        columns=["id"], cell_stats=_cell_stats(trained), progress=False, rows_per_task=100,
    )  # fmt: skip
    assert summary["hats"] and summary["n_rows"] == len(df)
    # a pixel is never cut into several files, whatever rows_per_task says
    _, pixels_in = list_parquet_files(root)
    assert summary["n_partitions"] == len(pixels_in)
    info = hats.read_hats(tmp_path / "out").catalog_info
    assert info.total_rows == len(df) and info.catalog_name == "out"
    out = lsdb.read_hats(tmp_path / "out").compute().sort_values("id")
    assert {"ra", "dec", "cell", "cell_distance", "z_median"} <= set(out.columns)
    expected = trained.assign(df.sort_values("id")[FEATURES].to_numpy())
    np.testing.assert_array_equal(out["id"], np.sort(df["id"]))
    np.testing.assert_array_equal(out["cell"], expected.cell)
    np.testing.assert_array_equal(out["cell_distance"], expected.distance)
    # lsdb can work on the result as on any HATS catalogue
    cone = lsdb.read_hats(tmp_path / "out").cone_search(ra=10, dec=5, radius_arcsec=20 * 3600)
    assert 0 < len(cone.compute()) < len(df)


@pytest.mark.parametrize("engine", ["cluster", "in-process", "local"])
def test_assign_equals_single_process(trained, dataset, tmp_path, client, engine):
    root, table = dataset
    stats = _cell_stats(trained)
    seen = []
    summary = assign_parquet(
        trained,
        root,
        tmp_path / "out",
        client={"cluster": client, "in-process": None, "local": "local"}[engine],
        feature_columns=FEATURES,
        columns=["id", "label"],
        cell_stats=stats,
        rows_per_task=2000,
        batch_rows=700,
        progress=lambda frac, msg: seen.append(frac),
    )
    expected = trained.assign(table[FEATURES].to_numpy())
    out = _read_dataset(tmp_path / "out")
    assert list(out.columns) == [
        "id",
        "label",
        "cell",
        "cell_distance",
        *TRUST_COLUMNS,
        *stats.columns,
    ]
    np.testing.assert_array_equal(out["id"], table["id"])
    # each row's trust, as the estimator gives it
    np.testing.assert_array_equal(out["cell_n_colours"], expected.n_features)
    np.testing.assert_array_equal(out["cell_percentile"], expected.percentile)
    np.testing.assert_array_equal(out["cell_outside_training"], outside_training(expected))
    assert list(out["label"]) == list(table["label"])
    np.testing.assert_array_equal(out["cell"], expected.cell)
    np.testing.assert_array_equal(out["cell_distance"], expected.distance)
    joined = stats.reindex(expected.cell)
    np.testing.assert_array_equal(out["z_median"], joined["z_median"])
    listed = np.isin(expected.cell, stats.index)
    assert out["covered"][~listed].isna().all() and out["n_spec"][~listed].isna().all()
    assert list(out["covered"][listed]) == list(joined["covered"][listed])
    np.testing.assert_array_equal(out["n_spec"][listed], joined["n_spec"][listed])

    assert summary["n_rows"] == len(table) and summary["failed"] == []
    assert summary["n_partitions"] == 4 and summary["n_files"] == 3
    if engine == "cluster":
        assert summary["engine"] == client.scheduler.address
    elif engine == "in-process":
        assert summary["engine"] == "in-process"
    else:  # "local" starts a cluster of its own, and closes it
        assert summary["engine"].startswith("tcp://")
    assert seen[-1] == pytest.approx(1.0)
    out_dir = tmp_path / "out"
    names = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*"))
    assert names == [
        MANIFEST,
        "a.0000.parquet",
        "a.0001.parquet",
        "b.parquet",
        "sub",
        "sub/Norder=1",
        "sub/Norder=1/Npix=3.parquet",
    ]
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert sum(p["n_rows"] for p in manifest["parts"]) == len(table)
    assert manifest["map_sha256"] == summary["map_sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat", "out"]  # no temporary left


def test_assign_with_colour_features_from_saved_map(tmp_path, client):
    rng = np.random.default_rng(8)
    bands = ("u", "g", "r", "i", "z")
    n = 2500
    mags = 22 + np.cumsum(rng.normal(-0.2, 0.3, size=(n, len(bands))), axis=1)
    df = pd.DataFrame({f"mag_{b}": mags[:, k] for k, b in enumerate(bands)})
    for b in bands:
        df[f"magerr_{b}"] = rng.uniform(0.02, 0.2, n)
    df.loc[rng.random(n) < 0.1, "mag_u"] = 99.0  # undetected: a sentinel, masked
    df.loc[[7, 1800], [f"mag_{b}" for b in bands]] = np.nan  # nothing usable
    features = ColourFeatures(bands=bands, magnitude_band="i")
    som = SOM(6, 6, random_state=1, n_epochs=2, distance="chi2", features=features)
    som.fit(df.drop(index=[7, 1800]))
    som.save(tmp_path / "map.somcal")
    _write(df.iloc[:1200], tmp_path / "cat" / "p0.parquet", row_group_size=500)
    _write(df.iloc[1200:], tmp_path / "cat" / "p1.parquet", row_group_size=500)

    summary = assign_parquet(
        tmp_path / "map.somcal",
        tmp_path / "cat",
        tmp_path / "out",
        client=client,
        allow_empty=True,
        progress=False,
    )
    expected = som.assign(df, allow_empty=True)
    out = _read_dataset(tmp_path / "out")
    np.testing.assert_array_equal(out["cell"], expected.cell)
    np.testing.assert_array_equal(out["cell_distance"], expected.distance)
    assert list(out["cell"][[7, 1800]]) == [-1, -1]
    assert summary["n_unassigned"] == 2
    pd.testing.assert_frame_equal(out[df.columns], df)  # every input column carried, untouched


def _bad_dataset(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "cat"
    _write(_frame(rng, 800, 0), root / "good.parquet")
    text = _frame(rng, 600, 1000)
    text["f2"] = text["f2"].map(lambda v: f"{v:.3f}")  # numbers stored as strings
    _write(text, root / "text.parquet")
    holes = _frame(rng, 600, 2000)
    holes.loc[[3, 250], FEATURES] = np.nan  # rows without any usable feature
    _write(holes, root / "holes.parquet", row_group_size=200)
    _write(_frame(rng, 100, 3000).drop(columns=["f4"]), root / "short.parquet")
    return root


def test_failing_partitions_are_named_and_nothing_is_written(trained, tmp_path, client, cluster):
    root = _bad_dataset(tmp_path)
    with pytest.raises(PartitionError) as info:
        assign_parquet(
            trained, root, tmp_path / "out", client=client, feature_columns=FEATURES,
            progress=False,
        )  # fmt: skip
    # the missing column is found from the footers, before any task runs
    assert [f["where"] for f in info.value.failures] == ["short.parquet"]
    assert "'f4'" in str(info.value) and "missing" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]

    (root / "short.parquet").unlink()
    with pytest.raises(PartitionError) as info:
        assign_parquet(
            trained,
            root,
            tmp_path / "out",
            client=cluster.scheduler_address,  # an address: a client is opened and closed
            feature_columns=FEATURES,
            progress=False,
        )
    failures = {f["where"]: f["reason"] for f in info.value.failures}
    assert "text.parquet (row group 0, file rows 0..599)" in failures
    assert "'f2'" in failures["text.parquet (row group 0, file rows 0..599)"]
    assert "string" in failures["text.parquet (row group 0, file rows 0..599)"]
    holes = failures["holes.parquet (row groups 0-2, file rows 0..599)"]
    assert "row 3: no usable feature" in holes
    assert "good.parquet" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]  # no half-written output

    with pytest.warns(UserWarning, match="2 partition"):
        summary = assign_parquet(
            trained, root, tmp_path / "out", client=client, feature_columns=FEATURES,
            errors_ok=True, progress=False,
        )  # fmt: skip
    assert sorted(f["where"].split()[0] for f in summary["failed"]) == [
        "holes.parquet",
        "text.parquet",
    ]
    assert summary["n_rows"] == 800
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert len(manifest["failed"]) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST, "good.parquet"]


def test_failure_row_counts_from_the_file(trained, tmp_path):
    rng = np.random.default_rng(4)
    df = _frame(rng, 900, 0)
    df.loc[650, FEATURES] = np.nan
    _write(df, tmp_path / "cat" / "x.parquet", row_group_size=300)
    with pytest.raises(PartitionError) as info:
        assign_parquet(
            trained, tmp_path / "cat", tmp_path / "out", feature_columns=FEATURES,
            batch_rows=300, progress=False,
        )  # fmt: skip
    assert "row 50: no usable feature" in str(info.value)
    assert "count from file row 600" in str(info.value)


def test_existing_output_is_kept_unless_overwrite(trained, dataset, tmp_path):
    root, table = dataset
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    kw = dict(feature_columns=FEATURES, columns=["id"], progress=False)
    with pytest.raises(FileExistsError):
        assign_parquet(trained, root, out, **kw)
    assert (out / "keep.txt").exists()
    assign_parquet(trained, root, out, overwrite=True, **kw)
    assert not (out / "keep.txt").exists()
    assert len(_read_dataset(out)) == len(table)
    with pytest.raises(ValueError, match="would be overwritten"):
        assign_parquet(trained, root, tmp_path / "o2", **{**kw, "columns": ["id", "cell"]})
    with pytest.raises(ValueError, match="a.parquet: input column.*'id'"):
        assign_parquet(trained, root, tmp_path / "o3", feature_columns=FEATURES,
                       cell_stats=pd.DataFrame({"id": [1.0]}, index=[0]))  # fmt: skip
    with pytest.raises(ValueError, match="inside the input"):
        assign_parquet(trained, root, root / "out", **kw)


# ---------------------------------------------------------------------------------- training
def _training_data(n=3000):
    rng = np.random.default_rng(21)
    X = rng.normal(size=(n, 4)) + rng.integers(0, 3, size=(n, 1)) * 2.0
    X[rng.random(n) < 0.05, 2] = np.nan
    w = rng.uniform(0.5, 2.0, n)
    return X, w


def _reference_from_start(X, w, n_epochs):
    """The single-machine batch map, spelled out from the same initial weights."""
    ref = SOM(6, 7, random_state=5, n_epochs=n_epochs)
    ref.initialize(len(X), lambda rows: X[rows])  # the public hooks fit_distributed uses
    for sigma in ref.sigma_schedule(n_epochs):
        S, N, sq = ref.batch_sums(X, sample_weight=w)
        ref.apply_batch_sums(S, N, sigma)
        ref.record_epoch(sigma, sq, len(X))
    return ref


def test_distributed_training_equals_single_machine(tmp_path, client):
    X, w = _training_data()
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(w=w)
    for k, (lo, hi) in enumerate([(0, 1000), (1000, 1700), (1700, 3000)]):
        _write(df.iloc[lo:hi], tmp_path / "train" / f"p{k}.parquet", row_group_size=400)
    single = SOM(6, 7, random_state=5, n_epochs=4).fit(X, sample_weight=w)
    reference = _reference_from_start(X, w, 4)
    np.testing.assert_allclose(single.weights_, reference.weights_, rtol=0, atol=0)

    epochs = []
    dist = fit_distributed(
        SOM(6, 7, random_state=5, n_epochs=4),
        tmp_path / "train",
        client=client,
        feature_columns=["a", "b", "c", "d"],
        weight_column="w",
        rows_per_task=800,
        progress=lambda frac, msg: epochs.append(msg),
    )
    assert len(epochs) == 4
    np.testing.assert_allclose(dist.weights_, reference.weights_, rtol=1e-10, atol=1e-12)
    assert dist.quality_["occupied_cells"] == single.quality_["occupied_cells"]
    assert dist.quality_["n_rows_trained"] == len(X)
    assert dist.quality_["topographic_error"] == single.quality_["topographic_error"]
    # the cluster sums distances in float64, SOM.fit takes the mean of the engine's distances
    assert dist.quality_["quantization_error"] == pytest.approx(
        single.quality_["quantization_error"], rel=1e-6
    )
    rms = [e["rms_distance"] for e in dist.training_["epochs"]]
    assert rms == pytest.approx([e["rms_distance"] for e in single.training_["epochs"]])
    # the training rows' own distances: a histogram summed over partitions, as fit records it
    assert dist.training_distances_.n == len(X)
    assert dist.training_distances_ == single.training_distances_
    np.testing.assert_array_equal(dist.assign(X).percentile, single.assign(X).percentile)

    # the same data as a Dask DataFrame, features re-read every epoch
    ddf = dd.from_pandas(df, npartitions=3)
    again = fit_distributed(
        SOM(6, 7, random_state=5, n_epochs=4), ddf, client=client,
        feature_columns=["a", "b", "c", "d"], weight_column="w", persist=False,
    )  # fmt: skip
    np.testing.assert_allclose(again.weights_, reference.weights_, rtol=1e-10, atol=1e-12)
    # no cluster at all: the same bag reductions on dask's synchronous scheduler
    alone = fit_distributed(
        SOM(6, 7, random_state=5, n_epochs=4), tmp_path / "train", client=None,
        feature_columns=["a", "b", "c", "d"], weight_column="w", rows_per_task=800,
    )  # fmt: skip
    np.testing.assert_allclose(alone.weights_, reference.weights_, rtol=1e-10, atol=1e-12)
    assert alone.training_distances_ == single.training_distances_
    assert alone.training_["distributed"]["n_partitions"] == 5


def test_initial_sample_equals_fit_above_the_sample_size(client):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(101_000, 3)).astype(np.float32)  # > 100,000: fit subsamples
    params = dict(n_rows=4, n_cols=5, random_state=7, n_epochs=2, init="random")
    single = SOM(**params).fit(X)
    dist = fit_distributed(SOM(**params), da.from_array(X, chunks=(30_000, 3)), client=client)
    np.testing.assert_allclose(dist.weights_, single.weights_, rtol=1e-9, atol=1e-9)
    other = fit_distributed(
        SOM(**{**params, "random_state": 8}), da.from_array(X, chunks=(30_000, 3)), client=client
    )
    assert not np.allclose(other.weights_, single.weights_)


def test_training_failures_name_the_partition(tmp_path, client):
    X, _ = _training_data(900)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    holes = df.copy()
    holes.loc[40, ["a", "b", "c", "d"]] = np.nan
    ddf = dd.from_pandas(pd.concat([df, holes], ignore_index=True), npartitions=2, sort=False)
    with pytest.raises(PartitionError) as info:
        fit_distributed(
            SOM(4, 4, random_state=0, n_epochs=2), ddf, client=client,
            feature_columns=["a", "b", "c", "d"],
        )  # fmt: skip
    assert "partition 1 of the Dask DataFrame" in str(info.value)
    assert "row 40: no usable feature" in str(info.value)
    # skip_empty leaves such rows out and counts them, as SOM.fit(skip_empty=True) does
    skipped = fit_distributed(
        SOM(4, 4, random_state=0, n_epochs=2), ddf, client=client,
        feature_columns=["a", "b", "c", "d"], skip_empty=True,
    )  # fmt: skip
    single = SOM(4, 4, random_state=0, n_epochs=2).fit(ddf.compute().to_numpy(), skip_empty=True)
    assert skipped.n_skipped_ == single.n_skipped_ == 1
    assert skipped.quality_["n_rows_trained"] == 2 * len(df) - 1
    np.testing.assert_allclose(skipped.weights_, single.weights_, rtol=1e-10, atol=1e-12)

    text = df.assign(c=df["c"].astype(str))
    _write(df, tmp_path / "train" / "ok.parquet")
    _write(text, tmp_path / "train" / "text.parquet")
    with pytest.raises(PartitionError, match=r"text\.parquet.*'c' has Arrow type (large_)?string"):
        fit_distributed(
            SOM(4, 4, random_state=0, n_epochs=2), tmp_path / "train", client=client,
            feature_columns=["a", "b", "c", "d"],
        )  # fmt: skip


def test_hats_pixel_that_fails_is_named_and_left_out_of_the_catalogue(trained, tmp_path):
    import hats
    import lsdb

    root, df = _hats_catalogue(tmp_path)
    _, files = list_parquet_files(root)
    bad = files[1]
    table = pq.read_table(bad)
    i = table.schema.get_field_index("f2")
    text = pa.array([f"{v:.3f}" for v in table.column("f2").to_pylist()])
    pq.write_table(table.set_column(i, "f2", text), bad)  # numbers stored as strings
    kw = dict(feature_columns=FEATURES, columns=["id"], progress=False)
    with pytest.raises(PartitionError) as info:
        assign_parquet(trained, root, tmp_path / "out", **kw)
    (only,) = info.value.failures
    assert only["where"].startswith(bad.relative_to(root / "cat").as_posix())
    assert "'f2'" in only["reason"]
    assert not (tmp_path / "out").exists()

    with pytest.warns(UserWarning, match="1 partition"):
        summary = assign_parquet(trained, root, tmp_path / "out", errors_ok=True, **kw)
    n_bad = table.num_rows
    assert summary["n_rows"] == len(df) - n_bad
    catalogue = hats.read_hats(tmp_path / "out")
    assert len(catalogue.get_healpix_pixels()) == len(files) - 1
    assert len(lsdb.read_hats(tmp_path / "out").compute()) == len(df) - n_bad
