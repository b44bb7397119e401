"""The vocabulary is declared once: the library's own checks accept exactly its words."""

import pytest

from som import SOM
from som.grid import LATTICES, Grid
from som.photometry import NEGATIVE_ERROR_POLICIES
from som.tables import FORMATS
from som.vocabulary import (
    Distance,
    Init,
    Lattice,
    Method,
    NegativeError,
    Neighbourhood,
    Schedule,
    TableFormat,
    choices,
)


def test_table_formats_are_the_readers_formats():
    assert set(FORMATS) == set(choices(TableFormat))


def test_lattices_and_negative_error_policies_come_from_the_vocabulary():
    assert choices(Lattice) == LATTICES
    assert choices(NegativeError) == NEGATIVE_ERROR_POLICIES
    for lattice in Lattice:
        assert Grid(4, 4, lattice).lattice == lattice
    with pytest.raises(ValueError, match="lattice"):
        Grid(4, 4, "triangle")


@pytest.mark.parametrize(
    ("name", "enum"),
    [
        ("neighbourhood", Neighbourhood),
        ("init", Init),
        ("method", Method),
        ("schedule", Schedule),
        ("distance", Distance),
    ],
)
def test_estimator_accepts_exactly_the_declared_words(name, enum):
    for member in enum:
        SOM(3, 3, **{name: member})._check_params()
        SOM(3, 3, **{name: member.value})._check_params()
    with pytest.raises(ValueError, match=name):
        SOM(3, 3, **{name: "no-such-" + name})._check_params()


def test_members_are_their_strings():
    assert Lattice.hex == "hex"
    assert f"{Distance.chi2}" == "chi2"
