"""``som.occupation`` alone: the sky split read at a coarser HEALPix order, and progress
reported partition by partition by ``occupation_parquet``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from som.distributed.occupation import healpix_pixels
from som.occupation import Occupation


def _sky_occupation(order: int = 6, n: int = 20_000, n_cells: int = 40) -> Occupation:
    rng = np.random.default_rng(11)
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    cells = rng.integers(-1, n_cells, n)
    return Occupation.from_rows(
        n_cells, cells, weights=rng.uniform(0.1, 2.0, n),
        pixels=healpix_pixels(ra, dec, order), healpix_order=order,
    )  # fmt: skip


def test_a_degraded_sky_split_sums_to_the_fine_one():
    from hats.pixel_math.healpix_pixel import get_lower_order_pixel

    fine = _sky_occupation(order=6)
    for order in (5, 3, 0):
        coarse = fine.at_order(order)
        assert coarse.healpix_order == order and fine.healpix_order == 6
        assert coarse.pixel.max() < 12 * 4**order
        # every coarse pixel holds exactly the fine pixels inside it, cell by cell
        parent = get_lower_order_pixel(6, fine.pixel, 6 - order)
        for p in np.unique(parent)[:25]:
            mine = fine.pixel_cell[parent == p]
            want = np.bincount(mine, weights=fine.pixel_counts[parent == p], minlength=40)
            mask = coarse.pixel == p
            got = np.zeros(40)
            np.add.at(got, coarse.pixel_cell[mask], coarse.pixel_counts[mask])
            np.testing.assert_array_equal(got, want)
        # and in total: per cell, and the galaxies of the map
        for occ in (fine, coarse):
            per_cell = np.bincount(occ.pixel_cell, weights=occ.pixel_counts, minlength=40)
            np.testing.assert_array_equal(per_cell, fine.counts)
            np.testing.assert_allclose(
                np.bincount(occ.pixel_cell, weights=occ.pixel_weights, minlength=40),
                fine.weights, rtol=1e-12,
            )  # fmt: skip
        assert coarse.pixel_counts.dtype == np.int64
        assert coarse.pixel_counts.sum() == fine.n_galaxies
        # the sky map of the uncovered share: the same galaxies, fewer pixels
        covered = np.arange(40) % 3 == 0
        f, c = fine.uncovered_by_pixel(covered), coarse.uncovered_by_pixel(covered)
        assert c["n_galaxies"].sum() == f["n_galaxies"].sum() == fine.n_galaxies
        assert c["n_uncovered"].sum() == f["n_uncovered"].sum()
        # sorted by (pixel, cell), as the pass leaves them
        key = coarse.pixel * 40 + coarse.pixel_cell
        assert (np.diff(key) > 0).all()
    assert fine.at_order(6) is fine
    with pytest.raises(ValueError, match="finer than the stored split"):
        fine.at_order(7)
    with pytest.raises(ValueError, match="not split by HEALPix"):
        Occupation.from_rows(4, np.array([0, 1])).at_order(2)


def test_progress_is_reported_per_partition(tmp_path):
    from som import SOM
    from som.distributed import occupation_parquet
    from som.mock import make_mock
    from som.photometry import ColourFeatures

    frame = make_mock(900, seed=5)
    features = ColourFeatures(bands=["u", "g", "r", "i", "z", "Y", "J", "H"])
    som = SOM(5, 6, random_state=1, n_epochs=1, features=features).fit(frame)
    root = tmp_path / "survey"
    root.mkdir()
    for k, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
        pq.write_table(table, root / f"part{k}.parquet", row_group_size=100)
    seen: list[tuple[float, str]] = []
    occ = occupation_parquet(som, root, rows_per_task=100,
                             progress=lambda f, msg: seen.append((f, msg)))  # fmt: skip
    assert occ.provenance["n_partitions"] == 9
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0
    assert len(seen) == 9 and seen[0][1].startswith("1/9 partitions, 100 rows; last: part0.parquet")
