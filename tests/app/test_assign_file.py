"""A catalogue file assigned chunk by chunk (app.services.assign_file) gives row for row what
one assignment of every row gives, reports its progress, and refuses what it cannot do
before writing anything; bins given as text (app.services.map_queries) are read the same
through every door."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.core.db import make_engine, make_session_factory
from app.services import assign_file, assignment, map_store
from app.services.errors import InvalidInputError, NotFoundError
from app.services.map_queries import parse_bins


@pytest.fixture
def ready_map(trained_map, mock_catalogue, settings):
    """(session factory, map id, a 300-row sample with one invalid row) on a trained map."""
    frame = mock_catalogue(400, seed=3, spec_fraction=0.3)
    map_id, _ = trained_map(frame, n_rows=5, n_cols=6)
    sample = frame.iloc[:300].copy()
    sample.loc[7, "mag_r"] = 75.0  # a flux in a magnitude column: invalid, skipped
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine), map_id, sample
    engine.dispose()


def test_a_file_assigned_in_chunks_equals_one_assignment_of_every_row(ready_map, tmp_path):
    factory, map_id, sample = ready_map
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    seen: list[tuple[float, str]] = []
    with factory() as session:
        m = map_store.get_map(session, map_id)
        result = assign_file.assign_file(
            session, m, path, chunk_size=70, progress=lambda f, msg: seen.append((f, msg))
        )
        whole = assignment.assign_rows(
            session, m, assignment.photometry_rows(sample, "sample.csv"), False, max_rows=10**6
        ).frame
    assert result.output == tmp_path / "sample_cells.csv"
    got = pd.read_csv(result.output)
    assert list(got.columns) == [*sample.columns, *assign_file.added_columns("cell")]
    np.testing.assert_array_equal(got["cell"], whole["cell"])
    np.testing.assert_array_equal(got["cell_covered"], whole["covered"])
    np.testing.assert_allclose(got["cell_distance"], whole["distance"], rtol=1e-9)
    np.testing.assert_array_equal(got["cell_outside_training"], whole["outside_training"])
    assert got.loc[7, "cell"] == -1 and "mag_r" in got.loc[7, "cell_reason"]
    assert (result.n_rows, result.n_invalid) == (300, 1)
    assert result.n_assigned == int((whole["cell"] >= 0).sum())
    # read, five chunks of at most 70 rows, write: fractions never go back, and end at 1
    fractions = [f for f, _ in seen]
    assert seen[0] == (0.0, "read sample.csv") and seen[-1] == (1.0, "write sample_cells.csv")
    assert len(seen) == 2 + 5 and fractions == sorted(fractions)
    assert seen[-2] == (1.0, "assign 300 of 300 rows")


def test_a_whitespace_table_gets_the_reasons_back_instead_of_a_text_column(ready_map, tmp_path):
    factory, map_id, sample = ready_map
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    out = tmp_path / "sample.dat"
    with factory() as session:
        result = assign_file.assign_file(session, map_store.get_map(session, map_id), path, out)
    assert "cell_reason" not in result.frame.columns and result.output == out
    assert [row for row, _ in result.dropped_reasons] == [7]
    assert "mag_r" in result.dropped_reasons[0][1]


def test_what_cannot_be_done_is_refused_before_anything_is_written(ready_map, tmp_path):
    factory, map_id, sample = ready_map
    path = tmp_path / "sample.csv"
    sample.assign(cell=1).to_csv(path, index=False)
    with factory() as session:
        m = map_store.get_map(session, map_id)
        with pytest.raises(InvalidInputError, match="already has column"):
            assign_file.assign_file(session, m, path)
        with pytest.raises(InvalidInputError, match="replace the input"):
            assign_file.assign_file(session, m, path, path)
        with pytest.raises(InvalidInputError, match="cannot tell the format"):
            assign_file.assign_file(session, m, path, tmp_path / "out.unknown")
        with pytest.raises(NotFoundError):
            assign_file.assign_file(session, m, tmp_path / "absent.csv")
        (tmp_path / "taken.csv").write_text("x\n")
        with pytest.raises(InvalidInputError, match="exists"):
            assign_file.assign_file(session, m, path, tmp_path / "taken.csv")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".csv") == [
        "sample.csv",
        "taken.csv",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("", None), (" 5 ", 5), ("1000", 1000), ("0,0.5,2", [0.0, 0.5, 2.0])],
)
def test_bins_are_a_number_or_increasing_edges(text, expected):
    got = parse_bins(text, "z_bins")
    if isinstance(expected, list):
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected


@pytest.mark.parametrize("text", ["0", "1001", "x", "1,0", "1,", "0,nan", "0,,1"])
def test_bins_refused_name_the_parameter_as_the_caller_knows_it(text):
    with pytest.raises(InvalidInputError, match="--mag-bins") as info:
        parse_bins(text, "--mag-bins")
    assert info.value.errors[0].column == "--mag-bins"
