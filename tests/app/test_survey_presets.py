"""Catalogues as surveys publish them: each survey preset is recognised from the columns
alone, reads the survey's bands, units and error conventions (inverse variances, fluxes
without a unit in the file), and stores the same magnitudes the library computes; spectral
classes mark stars and pipeline warning flags decide what is secure. SQLite and PostgreSQL.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from sqlalchemy import select

from app.core.db import make_engine, make_session_factory
from app.models import Source, Spectrum
from app.services.phot_store import unpack
from som.mock import make_mock

N = 120


@pytest.fixture(scope="module")
def galaxies() -> pd.DataFrame:
    g = make_mock(600, seed=11)
    keep = np.isfinite(g[[f"mag_{b}" for b in "ugrizYJH"]].to_numpy()).all(axis=1)
    g = g[keep].head(N).reset_index(drop=True)
    # The mock has no y, Z or Ks: stand-ins, so that every survey's bands have values.
    g["mag_y"], g["mag_Z"], g["mag_Ks"] = g["mag_Y"] + 0.1, g["mag_z"] - 0.05, g["mag_H"] - 0.3
    return g


def _fits(table: Table) -> bytes:
    buf = io.BytesIO()
    table.write(buf, format="fits")
    return buf.getvalue()


def _njy(mag: np.ndarray) -> np.ndarray:
    return 3631e9 * 10 ** (-0.4 * mag)  # AB: 3631 Jy at magnitude 0


def _ujy(mag: np.ndarray) -> np.ndarray:
    return 3631e6 * 10 ** (-0.4 * mag)


def _stored(url: str, catalogue_id: int, n_bands: int, table=Source):
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        rows = s.execute(
            select(table.source_id, table.mags, table.magerrs)
            .where(table.catalogue_id == catalogue_id)
            .order_by(table.row_index)
        ).all()
    engine.dispose()
    mags = unpack([r[1] for r in rows], n_bands)
    errs = unpack([r[2] for r in rows], n_bands)
    return [r[0] for r in rows], mags, errs


# ------------------------------------------------------------------------ layouts
def _rubin(g: pd.DataFrame) -> tuple[bytes, str, dict[str, np.ndarray]]:
    """An Object table from Rubin's TAP service: cModel and GaaP fluxes in nJy, with no
    unit in the file (a CSV export), so the preset's nJy applies; GaaP is used."""
    t = pd.DataFrame({"objectId": g["id"] + 10**15, "coord_ra": g["ra"], "coord_dec": g["dec"]})
    expected = {}
    for b in "ugrizy":
        m = g[f"mag_{b}"].to_numpy()
        t[f"{b}_cModelFlux"] = _njy(m + 0.3)  # a different (total) flux: must not be read
        t[f"{b}_cModelFluxErr"] = 0.1 * _njy(m + 0.3)
        t[f"{b}_gaap1p0Flux"] = _njy(m)
        t[f"{b}_gaap1p0FluxErr"] = 0.05 * _njy(m)
        expected[f"{b}_lsst"] = m
    return t.to_csv(index=False).encode(), "object.csv", expected


def _des(g: pd.DataFrame):
    t = pd.DataFrame({"COADD_OBJECT_ID": g["id"], "RA": g["ra"], "DEC": g["dec"]})
    t["DNF_ZMEAN_SOF"] = g["z_true"]
    expected = {}
    for b, src in zip("GRIZY", "grizy", strict=True):
        m = g[f"mag_{src}"].to_numpy()
        t[f"SOF_CM_MAG_CORRECTED_{b}"] = m + 0.2  # BDF is preferred when both are there
        t[f"SOF_CM_MAG_ERR_{b}"] = 0.02
        t[f"BDF_MAG_{b}_CORRECTED"] = m
        t[f"BDF_MAG_ERR_{b}"] = 0.03
        expected[f"{src}_des" if b != "Y" else "Y_des"] = m
    return t.to_csv(index=False).encode(), "y6_gold.csv", expected


def _kids(g: pd.DataFrame):
    t = pd.DataFrame({"ID": [f"KiDSDR4 J{i:06d}" for i in g["id"]]})
    t["RAJ2000"], t["DECJ2000"], t["Z_B"] = g["ra"], g["dec"], g["z_true"]
    expected = {}
    for band, tag, src in (
        ("u_kids", "u", "u"),
        ("g_kids", "g", "g"),
        ("r_kids", "r", "r"),
        ("i_kids", "i1", "i"),  # DR5's first i pass
        ("Z", "Z", "Z"),
        ("J", "J", "J"),
        ("Ks", "Ks", "Ks"),
    ):
        m = g[f"mag_{src}"].to_numpy()
        t[f"MAG_GAAP_{tag}"] = np.where(np.isfinite(m), m, 99.0)
        t[f"MAGERR_GAAP_{tag}"] = np.where(np.isfinite(m), 0.04, 99.0)
        expected[band] = m
    return _fits(Table.from_pandas(t)), "kids_dr5.fits", expected


def _legacy(g: pd.DataFrame):
    """A Legacy Surveys sweep: nanomaggies with inverse variances, ivar 0 where a band was
    not observed (here W2 of every third row)."""
    t = Table()
    t["RA"], t["DEC"] = g["ra"].to_numpy(), g["dec"].to_numpy()
    expected = {}
    for band, tag, src in (("g_des", "G", "g"), ("r_des", "R", "r"), ("z_des", "Z", "z")):
        m = g[f"mag_{src}"].to_numpy()
        flux = 10 ** (-0.4 * (m - 22.5))
        t[f"FLUX_{tag}"] = flux
        t[f"FLUX_IVAR_{tag}"] = 1.0 / (0.05 * flux) ** 2
        expected[band] = m
    m = g["mag_Ks"].to_numpy() + 0.5
    flux = 10 ** (-0.4 * (m - 22.5))
    ivar = np.where(np.arange(len(g)) % 3 == 0, 0.0, 1.0 / (0.1 * flux) ** 2)
    t["FLUX_W2"], t["FLUX_IVAR_W2"] = np.where(ivar > 0, flux, 0.0), ivar
    expected["W2"] = np.where(ivar > 0, m, np.nan)
    return _fits(t), "sweep-150p000-160p005.fits", expected


def _euclid(g: pd.DataFrame):
    """Euclid Q1 MER, µJy with the unit in the file (uppercase names, as some exports)."""
    t = Table()
    t["OBJECT_ID"] = g["id"].to_numpy() * -1  # Euclid ids are negative for half the sky
    t["RIGHT_ASCENSION"], t["DECLINATION"] = g["ra"].to_numpy(), g["dec"].to_numpy()
    expected = {}
    for band, col, src in (
        ("VIS", "VIS_PSF", "i"),
        ("YE", "Y_TEMPLFIT", "Y"),
        ("HE", "H_TEMPLFIT", "H"),
    ):
        m = g[f"mag_{src}"].to_numpy()
        flux = _ujy(m)
        t[f"FLUX_{col}"] = flux
        t[f"FLUX_{col}"].unit = "uJy"
        t[f"FLUXERR_{col}"] = 0.02 * flux
        t[f"FLUXERR_{col}"].unit = "uJy"
        expected[band] = m
    return _fits(t), "EUC_MER_FINAL-CAT.fits", expected


LAYOUTS = {
    "rubin_object": _rubin,
    "des_gold": _des,
    "kids": _kids,
    "legacy_surveys": _legacy,
    "euclid_mer": _euclid,
}


@pytest.mark.parametrize("preset", list(LAYOUTS))
def test_a_survey_catalogue_is_recognised_and_read_in_its_own_units(
    preset, client, auth, settings, galaxies, ingest
):
    content, name, expected = LAYOUTS[preset](galaxies)
    body = ingest("photometric", content, name)
    assert body["preset"] == preset, body
    bands = body["bands"]
    assert sorted(bands) == sorted(expected), bands
    _, mags, _errs = _stored(settings.database_url, body["id"], len(bands))
    for j, band in enumerate(bands):
        want = expected[band]
        have = mags[:, j]
        assert np.array_equal(np.isfinite(have), np.isfinite(want)), band
        np.testing.assert_allclose(have[np.isfinite(want)], want[np.isfinite(want)], atol=1e-9)


def test_inverse_variances_become_errors_and_zero_means_not_observed(
    client, auth, settings, galaxies, ingest
):
    content, name, expected = _legacy(galaxies)
    body = ingest("photometric", content, name)
    bands = body["bands"]
    _, mags, errs = _stored(settings.database_url, body["id"], len(bands))
    g = bands.index("g_des")
    # sigma_m = 2.5/ln(10) * sigma_f / f, with sigma_f = 1/sqrt(ivar) = 0.05 f
    np.testing.assert_allclose(errs[:, g], 2.5 / np.log(10) * 0.05, rtol=1e-9)
    w2 = bands.index("W2")
    assert np.isnan(mags[::3, w2]).all() and np.isfinite(mags[1::3, w2]).all()
    assert body["summary"]["photometry"]["W2"]["error_is_inverse_variance"] is True
    assert body["summary"]["photometry"]["W2"]["missing"] >= N // 3


def test_a_negative_or_text_inverse_variance_is_refused_with_its_row(client, auth, upload):
    t = pd.DataFrame(
        {
            "RA": [150.0, 150.1, 150.2],
            "DEC": [2.0, 2.1, 2.2],
            "FLUX_G": [10.0, 12.0, 11.0],
            "FLUX_IVAR_G": ["100", "-4", "lots"],
            "FLUX_R": [20.0, 22.0, 21.0],
            "FLUX_IVAR_R": [50.0, 50.0, 50.0],
        }
    )
    r = upload(client, auth, "photometric", t.to_csv(index=False).encode(), "sweep.csv")
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    reasons = {(e["row"], e["column"]): e["reason"] for e in errors}
    # rows are numbered from 0, the first data row
    assert "negative inverse variance" in reasons[(1, "FLUX_IVAR_G")], errors
    assert "not a number" in reasons[(2, "FLUX_IVAR_G")], errors
    assert client.get("/v1/catalogues").json()["total"] == 0  # nothing half-written


def test_desi_redshifts_stars_by_spectype_and_secure_by_zwarn(
    client, auth, settings, galaxies, ingest
):
    rng = np.random.default_rng(4)
    spectype = np.array(["GALAXY"] * N, dtype=object)
    spectype[::10] = "STAR"
    spectype[5::10] = "QSO"
    zwarn = np.where(rng.random(N) < 0.2, 4, 0)
    t = Table()
    t["TARGETID"] = (galaxies["id"].to_numpy() + 39627000000000000).astype(np.int64)
    t["TARGET_RA"], t["TARGET_DEC"] = galaxies["ra"].to_numpy(), galaxies["dec"].to_numpy()
    t["Z"] = np.where(spectype == "STAR", 0.0001, galaxies["z_true"].to_numpy())
    t["ZWARN"] = zwarn
    t["SPECTYPE"] = spectype.astype(str)
    body = ingest("spectroscopic", _fits(t), "zpix-main-dark.fits")
    assert body["preset"] == "desi_zcat", body
    counts = body["summary"]["spectra"]
    stars = spectype == "STAR"
    assert counts["star"] == int(stars.sum())
    assert counts["secure"] == int(((zwarn == 0) & ~stars).sum())
    assert counts["not_secure_quality"] == int(((zwarn != 0) & ~stars).sum())
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as s:
        ids = s.scalars(
            select(Spectrum.source_id)
            .where(Spectrum.catalogue_id == body["id"], Spectrum.secure.is_(True))
            .order_by(Spectrum.row_index)
        ).all()
    engine.dispose()
    want = t["TARGETID"][(zwarn == 0) & ~stars]
    assert ids == [str(v) for v in want]  # 64-bit ids as written


def test_a_class_column_that_is_neither_boolean_nor_a_class_names_the_row(client, auth, upload):
    t = pd.DataFrame(
        {
            "TARGETID": [1, 2],
            "TARGET_RA": [150.0, 150.1],
            "TARGET_DEC": [2.0, 2.1],
            "Z": [0.5, 0.7],
            "ZWARN": [0, 0],
            "SPECTYPE": ["GALAXY", "PLANET"],
        }
    )
    r = upload(client, auth, "spectroscopic", t.to_csv(index=False).encode(), "zcat.csv")
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["row"] == 1 and err["column"] == "SPECTYPE" and "PLANET" in err["reason"]


def test_a_flux_unit_in_the_file_wins_over_the_presets(client, auth, settings, galaxies, ingest):
    """A Rubin-layout file that says its fluxes are in µJy is read in µJy, not nJy."""
    t = Table()
    t["objectId"] = galaxies["id"].to_numpy()
    t["coord_ra"], t["coord_dec"] = galaxies["ra"].to_numpy(), galaxies["dec"].to_numpy()
    for b in "gri":
        m = galaxies[f"mag_{b}"].to_numpy()
        t[f"{b}_cModelFlux"] = _ujy(m)
        t[f"{b}_cModelFlux"].unit = "uJy"
        t[f"{b}_cModelFluxErr"] = 0.01 * _ujy(m)
        t[f"{b}_cModelFluxErr"].unit = "uJy"
    body = ingest("photometric", _fits(t), "object_ujy.fits")
    assert body["preset"] == "rubin_object"
    _, mags, _ = _stored(settings.database_url, body["id"], 3)
    np.testing.assert_allclose(mags[:, 0], galaxies["mag_g"].to_numpy(), atol=1e-9)
