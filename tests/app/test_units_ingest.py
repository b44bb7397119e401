"""Unit texts of real survey files through the ingest, on SQLite and PostgreSQL: SDSS/Legacy
fluxes in 'nanomaggies' (and the other spellings of som/photometry/units.py) become the
right AB magnitudes with no flux_unit given; a column whose unit contradicts how it is mapped
is refused naming column and unit; a Vega magnitude unit goes through the magnitude-system
logic (converted to AB, said in the summary) and an ST magnitude is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from app.core.db import make_engine, make_session_factory
from app.models import Source
from app.services.phot_store import unpack

N = 25


def _ecsv(columns: dict[str, tuple[np.ndarray, str | None]]) -> bytes:
    """ECSV (UTF-8): units FITS headers cannot hold, such as 'µJy'."""
    from astropy.table import Table

    t = Table({"objid": np.arange(N)})
    for name, (values, unit) in columns.items():
        t[name] = values
        t[name].unit = unit
    buf = io.StringIO()
    t.write(buf, format="ascii.ecsv")
    return buf.getvalue().encode()


def _fits(columns: dict[str, tuple[np.ndarray, str | None]]) -> bytes:
    cols = [fits.Column(name="objid", format="K", array=np.arange(N))]
    for name, (values, unit) in columns.items():
        cols.append(fits.Column(name=name, format="D", unit=unit, array=values))
    buf = io.BytesIO()
    fits.BinTableHDU.from_columns(cols).writeto(buf)
    return buf.getvalue()


def _stored_mags(url: str, catalogue_id: int, n_bands: int) -> np.ndarray:
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        rows = s.execute(
            select(Source.mags)
            .where(Source.catalogue_id == catalogue_id)
            .order_by(Source.row_index)
        ).all()
    engine.dispose()
    return unpack([r[0] for r in rows], n_bands)


def _fluxes(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(2.0, 80.0, (N, 2))  # nanomaggies: 17.7-21.7 mag


# (unit as the file writes it, size of one unit in nanomaggies)
SPELLINGS = [
    ("nanomaggies", 1.0),
    ("nmgy", 1.0),
    ("microJy", 1e-6 / 3.631e-6),
    ("µJy", 1e-6 / 3.631e-6),  # in ECSV: FITS headers are ASCII
    ("UJY", 1e-6 / 3.631e-6),
    ("nJy", 1e-9 / 3.631e-6),
    ("erg s-1 cm-2 Hz-1", 1e23 / 3.631e-6),
]


@pytest.mark.parametrize("i", range(len(SPELLINGS)))
def test_fits_fluxes_with_survey_unit_spellings_ingest_to_ab(client, auth, upload, settings, i):
    unit, size_nmgy = SPELLINGS[i]
    nmgy = _fluxes(i)
    flux = nmgy / size_nmgy  # the same galaxies in this file's unit
    columns = {
        "flux_g": (flux[:, 0], unit),
        "fluxerr_g": (flux[:, 0] / 20, unit),
        "flux_r": (flux[:, 1], unit),
        "fluxerr_r": (flux[:, 1] / 20, unit),
    }
    name = f"sdss_{i}.fits" if unit.isascii() else f"cosmos_{i}.ecsv"
    content = _fits(columns) if unit.isascii() else _ecsv(columns)
    r = upload(client, auth, "photometric", content, name, mapping={"source_id": "objid"})
    assert r.status_code == 201, r.text
    phot = r.json()["summary"]["photometry"]
    assert phot["g"]["kind"] == "flux"
    assert phot["g"]["flux_unit"] == (unit if unit.isascii() else "uJy")  # astropy reads µ as u
    got = _stored_mags(settings.database_url, r.json()["id"], 2)
    np.testing.assert_allclose(got, 22.5 - 2.5 * np.log10(nmgy), atol=2e-5)


@pytest.mark.parametrize(
    "columns, column, unit",
    [
        # magnitudes (by their unit) mapped as fluxes
        ({"flux_g": "ABmag", "flux_r": "ABmag"}, "flux_g", "ABmag"),
        ({"flux_g": "mag(AB)", "flux_r": "mag(AB)"}, "flux_g", "mag(AB)"),
        ({"flux_g": "MAG", "flux_r": "MAG"}, "flux_g", "MAG"),
        # fluxes (by their unit) mapped as magnitudes
        ({"mag_g": "nanomaggies", "mag_r": "nanomaggies"}, "mag_g", "nanomaggies"),
        ({"mag_g": "uJy", "mag_r": "uJy"}, "mag_g", "uJy"),
    ],
)
def test_a_unit_that_contradicts_the_mapping_is_refused(
    client, auth, upload, columns, column, unit
):
    values = {name: (np.full(N, 21.0), u) for name, u in columns.items()}
    r = upload(client, auth, "photometric", _fits(values), "contradicts.fits")
    assert r.status_code == 422, r.text
    errors = [e for e in r.json()["errors"] if e["column"] == column]
    assert errors, r.text
    assert f"{unit!r}" in errors[0]["reason"] and errors[0]["file"] == "contradicts.fits"


def test_a_vega_magnitude_unit_is_converted_and_an_st_one_refused(client, auth, upload, settings):
    """UltraVISTA J and H with TUNIT 'VEGAmag' / 'mag(Vega)': the file's unit decides the
    system (not somcal's own column name, which would say AB), converted with CASU's
    offsets and said in the summary."""
    rng = np.random.default_rng(3)
    j, h = rng.uniform(19, 22, N), rng.uniform(19, 22, N)
    content = _fits(
        {
            "mag_J": (j, "VEGAmag"),
            "magerr_J": (np.full(N, 0.05), "mag"),
            "mag_H": (h, "mag(Vega)"),
            "magerr_H": (np.full(N, 0.05), "mag"),
        }
    )
    r = upload(client, auth, "photometric", content, "vhs.fits", mapping={"source_id": "objid"})
    assert r.status_code == 201, r.text
    phot = r.json()["summary"]["photometry"]
    for band, unit in (("J", "VEGAmag"), ("H", "mag(Vega)")):
        assert phot[band]["system"] == "Vega", phot[band]
        assert unit in phot[band]["system_source"], phot[band]
    got = _stored_mags(settings.database_url, r.json()["id"], 2)
    np.testing.assert_allclose(got[:, 0], j + phot["J"]["ab_offset"], atol=2e-5)
    assert phot["J"]["ab_offset"] == pytest.approx(0.916)
    assert any("Vega magnitudes" in w for w in r.json()["warnings"])

    st = _fits({"mag_J": (j, "STmag"), "mag_H": (h, "STmag")})
    r = upload(client, auth, "photometric", st, "hst.fits")
    assert r.status_code == 422, r.text
    assert any(
        e["column"] == "mag_J" and "ST" in e["reason"] and "ab_offset" in e["reason"]
        for e in r.json()["errors"]
    ), r.text
