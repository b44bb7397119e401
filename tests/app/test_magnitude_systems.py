"""Magnitude systems and Galactic extinction across surveys, through the API on SQLite and
PostgreSQL: Vega catalogues (AllWISE, 2MASS, VISTA/UKIDSS archives) come out in AB with the
published offsets, once; SDSS asinh magnitudes become Pogson AB magnitudes; fluxes are never
shifted; a survey's own extinction column dereddens its bands (and can be turned off), a
catalogue's already-corrected magnitudes are not corrected twice; every step is written in
the ingest summary, and a system nobody can convert is refused, never guessed.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table
from sqlalchemy import select

from app.core.db import make_engine, make_session_factory
from app.models import Source
from app.services.phot_store import unpack

N = 40
RNG = np.random.default_rng(3)
W = {"W1": 2.699, "W2": 3.339, "W3": 5.174, "W4": 6.620}  # Jarrett et al. 2011
TWOMASS = {"J_2mass": 0.91, "H_2mass": 1.39, "Ks_2mass": 1.85}  # Blanton & Roweis 2007
SDSS_B = {"u": 1.4e-10, "g": 0.9e-10, "r": 1.2e-10, "i": 1.8e-10, "z": 7.4e-10}


def _stored(url: str, catalogue_id: int, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        rows = s.execute(
            select(Source.mags, Source.magerrs)
            .where(Source.catalogue_id == catalogue_id)
            .order_by(Source.row_index)
        ).all()
    engine.dispose()
    return unpack([r[0] for r in rows], n_bands), unpack([r[1] for r in rows], n_bands)


def _fits(table: Table) -> bytes:
    buf = io.BytesIO()
    table.write(buf, format="fits")
    return buf.getvalue()


def _column(body: dict, catalogue_mags: np.ndarray, band: str) -> np.ndarray:
    return catalogue_mags[:, body["bands"].index(band)]


def _positions() -> dict[str, np.ndarray]:
    return {"ra": RNG.uniform(149, 151, N), "dec": RNG.uniform(1, 3, N)}


def test_allwise_vega_magnitudes_come_out_ab_once(client, auth, settings, ingest):
    vega = {b: RNG.uniform(13.0, 17.0, N) for b in W}
    t = pd.DataFrame({"designation": [f"J{i:06d}" for i in range(N)], **_positions()})
    for b, m in vega.items():
        t[f"{b.lower()}mpro"], t[f"{b.lower()}sigmpro"] = m, 0.05
    t["j_m_2mass"], t["j_msig_2mass"] = vega["W1"] + 1.2, 0.03
    body = ingest("photometric", t.to_csv(index=False).encode(), "allwise.csv")
    assert body["preset"] == "allwise", body
    mags, errs = _stored(settings.database_url, body["id"], len(body["bands"]))
    for b, offset in W.items():
        np.testing.assert_allclose(_column(body, mags, b), vega[b] + offset, atol=1e-9)
        summary = body["summary"]["photometry"][b]
        assert summary["system"] == "Vega" and summary["ab_offset"] == offset
        assert summary["system_source"] == "preset allwise"
    # one known value, written out: W1 = 15.000 Vega is 17.699 AB
    np.testing.assert_allclose(
        _column(body, mags, "J_2mass"), vega["W1"] + 1.2 + TWOMASS["J_2mass"], atol=1e-9
    )
    np.testing.assert_allclose(errs, 0.05 * (errs > 0.04) + 0.03 * (errs < 0.04), atol=1e-12)
    assert any("W1" in w and "Vega" in w and "+2.699" in w for w in body["warnings"])


def test_generic_columns_of_a_vega_band_follow_the_survey_unless_declared(
    client, auth, settings, ingest
):
    t = pd.DataFrame({"id": np.arange(N), **_positions()})
    ramp = np.linspace(0, 3, N)
    t["Ks_2mass_mag"], t["Ks_2mass_magerr"] = 14.0 + ramp, 0.05
    t["W1_mag"], t["W1_magerr"] = 13.0 + ramp, 0.05
    body = ingest("photometric", t.to_csv(index=False).encode(), "mine.csv")
    assert body["preset"] == "somcal"
    mags, _ = _stored(settings.database_url, body["id"], 2)
    np.testing.assert_allclose(_column(body, mags, "Ks_2mass"), 14.0 + ramp + 1.85, atol=1e-9)
    np.testing.assert_allclose(_column(body, mags, "W1"), 13.0 + ramp + 2.699, atol=1e-9)
    ph = body["summary"]["photometry"]
    assert "2MASS" in ph["Ks_2mass"]["system_source"]
    assert any("Ks_2mass" in w and "Vega" in w for w in body["warnings"])

    # The user says they are AB already (say, from a Legacy Surveys flux): untouched.
    declared = [{"name": "Ks_2mass", "system": "AB"}, {"name": "W1", "system": "ab"}]
    t["id"] += N  # another file (the same file with other options is a conflict)
    body = ingest("photometric", t.to_csv(index=False).encode(), "mine_ab.csv", bands=declared)
    mags, _ = _stored(settings.database_url, body["id"], 2)
    np.testing.assert_allclose(_column(body, mags, "Ks_2mass"), 14.0 + ramp, atol=1e-12)
    np.testing.assert_allclose(_column(body, mags, "W1"), 13.0 + ramp, atol=1e-12)
    assert body["summary"]["photometry"]["W1"]["system_source"] == "declared for this catalogue"


def test_somcals_own_column_names_are_ab_so_its_files_read_back_unchanged(
    client, auth, settings, ingest
):
    # mag_<band> is what somcal writes (target lists, stored catalogues), always AB: a
    # target list of a zCOSMOS map (WFCAM J) sent back with its redshifts must not move
    t = pd.DataFrame({"id": np.arange(N), **_positions()})
    ramp = np.linspace(0, 3, N)
    t["mag_J_wfcam"], t["magerr_J_wfcam"] = 20.0 + ramp, 0.05
    t["mag_W1"], t["magerr_W1"] = 19.0 + ramp, 0.05
    body = ingest("photometric", t.to_csv(index=False).encode(), "targets_back.csv")
    mags, _ = _stored(settings.database_url, body["id"], 2)
    np.testing.assert_allclose(_column(body, mags, "J_wfcam"), 20.0 + ramp, atol=1e-12)
    np.testing.assert_allclose(_column(body, mags, "W1"), 19.0 + ramp, atol=1e-12)
    assert "somcal's own column name" in body["summary"]["photometry"]["W1"]["system_source"]
    assert not any("Vega" in w for w in body["warnings"])


def test_a_declared_system_on_an_ab_band_and_a_units_system(client, auth, settings, ingest):
    """VISTA J from a VHS table declared Vega (CASU: +0.916); a FITS unit 'mag(AB)' on a WISE
    column says AB, so nothing is added."""
    t = Table(_positions())
    ramp = np.linspace(0, 3, N)
    t["jAperMag3"], t["jAperMag3Err"] = 17.0 + ramp, np.full(N, 0.05)
    t["mag_W2"], t["magerr_W2"] = 16.0 + ramp, np.full(N, 0.05)
    t["mag_W2"].unit = "mag(AB)"
    buf = io.StringIO()
    t.write(buf, format="ascii.ecsv")
    body = ingest(
        "photometric",
        buf.getvalue().encode(),
        "vhs.ecsv",
        preset="somcal",
        mapping={"mag_J": "jAperMag3", "magerr_J": "jAperMag3Err"},
        bands=[{"name": "J", "system": "Vega"}],
    )
    mags, _ = _stored(settings.database_url, body["id"], 2)
    np.testing.assert_allclose(_column(body, mags, "J"), 17.916 + ramp, atol=1e-9)
    np.testing.assert_allclose(_column(body, mags, "W2"), 16.0 + ramp, atol=1e-12)
    assert body["summary"]["photometry"]["W2"]["system"] == "AB"


def test_a_system_without_a_known_offset_is_refused_not_guessed(client, auth, upload):
    t = Table({"id": np.arange(3), "ra": [150.0] * 3, "dec": [2.0] * 3})
    for b in ("g", "r"):
        t[f"mag_{b}"], t[f"magerr_{b}"] = np.array([21.0, 22.0, 23.0]), np.full(3, 0.05)
        t[f"mag_{b}"].unit = "VEGAmag"
    r = upload(client, auth, "photometric", _fits(t), "vega_hsc.fits")
    assert r.status_code == 422, r.text
    assert "no Vega-to-AB offset" in r.text and "ab_offset" in r.text
    # with the offset declared it goes in, offset applied once
    r = upload(
        client,
        auth,
        "photometric",
        _fits(t),
        "vega_hsc.fits",
        bands=[{"name": b, "system": "Vega", "ab_offset": -0.1} for b in ("g", "r")],
    )
    assert r.status_code == 201, r.text
    assert r.json()["summary"]["photometry"]["g"]["ab_offset"] == -0.1


def _luptitude(flux_maggies: np.ndarray, b: float) -> np.ndarray:
    return -2.5 / math.log(10) * (np.arcsinh(flux_maggies / (2 * b)) + math.log(b))


def test_sdss_asinh_magnitudes_become_pogson_ab_and_are_dereddened(client, auth, settings, ingest):
    pogson = {b: RNG.uniform(17.0, 23.5, N) for b in "ugriz"}
    ext = {b: RNG.uniform(0.0, 0.3, N) for b in "ugriz"}
    t = pd.DataFrame({"objID": np.arange(N) + 1237648720693755918, **_positions()})
    for b in "ugriz":
        f = 10 ** (-0.4 * pogson[b])
        t[f"modelMag_{b}"] = _luptitude(f, SDSS_B[b])
        # the error of a luptitude: 2.5 log10(e) sigma_f / sqrt(f^2 + 4 b^2); sigma_f = 5% f
        t[f"modelMagErr_{b}"] = 2.5 / math.log(10) * 0.05 * f / np.sqrt(f**2 + 4 * SDSS_B[b] ** 2)
        t[f"extinction_{b}"] = ext[b]
    t.loc[0, "modelMag_u"] = _luptitude(np.array([-1e-11]), SDSS_B["u"])[0]  # flux < 0
    body = ingest("photometric", t.to_csv(index=False).encode(), "photoobj.csv")
    assert body["preset"] == "sdss_photoobj", body
    mags, errs = _stored(settings.database_url, body["id"], 5)
    offsets = {"u": -0.04, "g": 0.0, "r": 0.0, "i": 0.0, "z": 0.02}
    for b in "ugriz":
        have = _column(body, mags, f"{b}_sdss")
        want = pogson[b] + offsets[b] - ext[b]
        if b == "u":
            assert np.isnan(have[0])  # a negative flux is a non-detection in Pogson's
            have, want = have[1:], want[1:]
        np.testing.assert_allclose(have, want, atol=1e-9)
        np.testing.assert_allclose(
            _column(body, errs, f"{b}_sdss")[1:], 2.5 / math.log(10) * 0.05, rtol=1e-6
        )
        band = body["summary"]["photometry"][f"{b}_sdss"]
        assert band["system"] == "SDSS" and band["asinh_softening"] == SDSS_B[b]
        assert band["galactic_extinction"] == {
            "dereddened": "applied",
            "column": f"extinction_{b}",
            "kind": "mag",
        }
    assert body["summary"]["photometry"]["u_sdss"]["undetected"] == 1

    # Turning the correction off: unmap the extinction fields.
    off = {f"extinction_{b}_sdss": None for b in "ugriz"}
    t["objID"] += N
    body = ingest("photometric", t.to_csv(index=False).encode(), "photoobj_raw.csv", mapping=off)
    mags, _ = _stored(settings.database_url, body["id"], 5)
    np.testing.assert_allclose(_column(body, mags, "r_sdss"), pogson["r"], atol=1e-9)
    assert body["summary"]["photometry"]["r_sdss"]["galactic_extinction"]["dereddened"] == "no"


def test_legacy_fluxes_are_divided_by_their_transmission_wise_is_not_shifted(
    client, auth, settings, ingest
):
    mags = {b: RNG.uniform(18, 22, N) for b in ("G", "R", "Z", "W1")}
    trans = {b: RNG.uniform(0.7, 0.99, N) for b in mags}
    t = Table(_positions(), names=None)
    t.rename_columns(["ra", "dec"], ["RA", "DEC"])
    for b, m in mags.items():
        flux = 10 ** (-0.4 * (m - 22.5))
        t[f"FLUX_{b}"], t[f"FLUX_IVAR_{b}"] = flux, 1 / (0.05 * flux) ** 2
        t[f"MW_TRANSMISSION_{b}"] = trans[b]
    t["MW_TRANSMISSION_R"][3] = 0.0  # unusable: an error of that row
    body = ingest("photometric", _fits(t), "sweep.fits", on_invalid="skip")
    assert body["preset"] == "legacy_surveys"
    assert body["summary"]["rows_skipped"] == 1
    stored, _ = _stored(settings.database_url, body["id"], 4)
    keep = np.arange(N) != 3
    for b, name in (("G", "g_des"), ("R", "r_des"), ("Z", "z_des"), ("W1", "W1")):
        want = mags[b] + 2.5 * np.log10(trans[b])  # flux / T, in magnitudes
        np.testing.assert_allclose(_column(body, stored, name), want[keep], atol=1e-9)
    assert body["summary"]["photometry"]["W1"]["system"] is None  # a flux: no system
    assert body["summary"]["photometry"]["W1"]["ab_offset"] == 0.0


def test_already_corrected_magnitudes_are_not_corrected_again_and_mixing_is_said(
    client, auth, settings, ingest
):
    m = RNG.uniform(20, 23, N)
    t = pd.DataFrame({"COADD_OBJECT_ID": np.arange(N), "RA": 150.0, "DEC": 2.0})
    t["BDF_MAG_G_CORRECTED"], t["BDF_MAG_ERR_G"] = m, 0.02
    t["BDF_MAG_R_CORRECTED"], t["BDF_MAG_ERR_R"] = m - 0.5, 0.02
    t["MAG_AUTO_I"], t["MAGERR_AUTO_I"] = m - 0.8, 0.02  # not corrected by DES
    t["A_G"] = 0.2
    body = ingest(
        "photometric",
        t.to_csv(index=False).encode(),
        "gold.csv",
        mapping={"extinction_g_des": "A_G"},
    )
    assert body["preset"] == "des_gold"
    stored, _ = _stored(settings.database_url, body["id"], 3)
    np.testing.assert_allclose(_column(body, stored, "g_des"), m, atol=1e-12)
    ph = body["summary"]["photometry"]
    assert ph["g_des"]["galactic_extinction"]["dereddened"] == "in the catalogue"
    assert ph["i_des"]["galactic_extinction"]["dereddened"] == "no"
    assert any("not applied again" in w for w in body["warnings"])
    assert any("i_des are not" in w for w in body["warnings"])


def test_ab_survey_presets_are_unchanged(client, auth, settings, ingest):
    """An AB survey (HSC) with no extinction column: values stored as given, state 'no'."""
    m = RNG.uniform(20, 24, N)
    t = pd.DataFrame({"object_id": np.arange(N), **_positions()})
    for k, b in enumerate("grizy"):
        t[f"{b}_cmodel_mag"], t[f"{b}_cmodel_magerr"] = m - 0.2 * k, 0.03
    body = ingest("photometric", t.to_csv(index=False).encode(), "hsc.csv")
    assert body["preset"] == "hsc_ssp"
    stored, _ = _stored(settings.database_url, body["id"], 5)
    for k, b in enumerate("grizy"):
        np.testing.assert_allclose(_column(body, stored, b), m - 0.2 * k, atol=0)
        assert body["summary"]["photometry"][b]["system"] == "AB"
        assert body["summary"]["photometry"][b]["ab_offset"] == 0.0
    assert not any("Vega" in w or "extinction" in w for w in body["warnings"])


@pytest.mark.parametrize("preset", ["allwise", "sdss_photoobj"])
def test_assign_reads_vega_and_asinh_like_ingest(preset):
    """The assignment path shares the plan: same AB values as ingest for one row."""
    from app.services.assignment import photometry_rows

    if preset == "allwise":
        frame = pd.DataFrame({"w1mpro": [15.0], "w1sigmpro": [0.1]})
        frame["w2mpro"], frame["w2sigmpro"] = 14.0, 0.1
        rows = photometry_rows(frame, "rows.csv", preset)
        assert rows.loc[0, "mag_W1"] == pytest.approx(17.699)
        assert rows.loc[0, "mag_W2"] == pytest.approx(17.339)
    else:
        frame = pd.DataFrame({"modelMag_u": [20.0], "modelMagErr_u": [0.1]})
        frame["modelMag_g"], frame["modelMagErr_g"] = 19.0, 0.05
        rows = photometry_rows(frame, "rows.csv", preset)
        f = 2 * SDSS_B["u"] * math.sinh(-20.0 * math.log(10) / 2.5 - math.log(SDSS_B["u"]))
        assert rows.loc[0, "mag_u_sdss"] == pytest.approx(-2.5 * math.log10(f) - 0.04)


def test_the_cli_declares_a_system_over_the_presets(clean_db, tmp_path):
    """vsa_vista says Vega; --mag-system Ks=AB wins for Ks (the user knows their file),
    J keeps the preset's Vega (CASU +0.916)."""
    from typer.testing import CliRunner

    from app.cli import cli

    ramp = np.linspace(0, 3, N)
    t = pd.DataFrame({"sourceID": np.arange(N) + 472446402561, **_positions()})
    t["jAperMag3"], t["jAperMag3Err"] = 17.0 + ramp, 0.05
    t["ksAperMag3"], t["ksAperMag3Err"] = 16.0 + ramp, 0.05
    path = tmp_path / "vhs_source.csv"
    t.to_csv(path, index=False)
    args = ["ingest", "photometric", str(path), "--database-url", clean_db]
    result = CliRunner().invoke(cli, [*args, "--mag-system", "Ks=AB"])
    assert result.exit_code == 0, result.output
    catalogue_id = int(result.stdout.strip().splitlines()[-1])
    mags, _ = _stored(clean_db, catalogue_id, 2)
    np.testing.assert_allclose(mags[:, 0], 17.916 + ramp, atol=1e-9)  # J
    np.testing.assert_allclose(mags[:, 1], 16.0 + ramp, atol=1e-12)  # Ks
    bad = CliRunner().invoke(cli, [*args, "--mag-system", "Ks=Vega:x"])
    assert bad.exit_code != 0 and "OFFSET" in bad.output


def test_fluxes_shift_only_when_declared_vega_referenced(client, auth, settings, ingest):
    """unWISE-like Vega nanomaggies: AB by default (a flux is a flux), Vega when declared."""
    vega = RNG.uniform(16.5, 19, N)
    t = pd.DataFrame({"id": np.arange(N), **_positions()})
    for b in ("W1", "W2"):
        f = 10 ** (-0.4 * (vega - 22.5))
        t[f"flux_{b}"], t[f"fluxerr_{b}"] = f, 0.02 * f
    content = t.to_csv(index=False).encode()
    plain = ingest("photometric", content, "unwise.csv", flux_unit="nanomaggy")
    mags, _ = _stored(settings.database_url, plain["id"], 2)
    np.testing.assert_allclose(mags[:, 0], vega, atol=1e-9)
    declared = [{"name": "W1", "system": "Vega"}, {"name": "W2", "system": "Vega"}]
    t["id"] += N  # another file (the same one with other options is a conflict)
    content = t.to_csv(index=False).encode()
    body = ingest("photometric", content, "unwise.csv", flux_unit="nanomaggy", bands=declared)
    mags, _ = _stored(settings.database_url, body["id"], 2)
    np.testing.assert_allclose(mags[:, 0], vega + 2.699, atol=1e-9)
    np.testing.assert_allclose(mags[:, 1], vega + 3.339, atol=1e-9)


def test_assign_rows_take_a_declared_system_as_ingest_does():
    from app.services.assignment import photometry_rows

    frame = pd.DataFrame({"mag_W1": [15.0], "magerr_W1": [0.1]})
    frame["mag_W2"], frame["magerr_W2"] = 14.0, 0.1
    # somcal's own field names are AB (the API's contract), unless a band is declared
    rows = photometry_rows(frame, "rows.csv")
    assert rows.loc[0, "mag_W1"] == 15.0 and rows.loc[0, "mag_W2"] == 14.0
    rows = photometry_rows(frame, "rows.csv", bands=[{"name": "W1", "system": "Vega"}])
    assert rows.loc[0, "mag_W1"] == pytest.approx(17.699) and rows.loc[0, "mag_W2"] == 14.0


def test_the_band_list_says_each_bands_default_system(client, auth):
    bands = {b["name"]: b for b in client.get("/v1/bands", headers=auth).json()}
    assert bands["W1"]["system"] == "Vega" and bands["W1"]["ab_offsets"] == {"Vega": 2.699}
    assert bands["u_sdss"]["system"] == "SDSS" and bands["g"]["system"] == "AB"


def test_a_catalogue_dereddened_unlike_a_maps_training_set_is_warned_of(
    client, auth, ingest, train_map
):
    """The map is trained on HSC photometry dereddened with a_<b>; a second HSC file without
    a_<b> lands on it with a warning naming the map and the bands."""
    from som.mock import make_mock

    g = make_mock(400, seed=2)
    g = g[np.isfinite(g[[f"mag_{b}" for b in "griz"]].to_numpy()).all(axis=1)]
    t = pd.DataFrame({"object_id": g["id"], "ra": g["ra"], "dec": g["dec"]})
    for b in "griz":
        t[f"{b}_cmodel_mag"], t[f"{b}_cmodel_magerr"] = g[f"mag_{b}"], g[f"magerr_{b}"]
        t[f"a_{b}"] = 0.05
    deep = ingest("photometric", t.to_csv(index=False).encode(), "deep.csv")
    assert deep["summary"]["photometry"]["g"]["galactic_extinction"]["dereddened"] == "applied"
    map_id = train_map(deep["id"], n_rows=6, n_cols=6, n_epochs=4)

    wide = t.drop(columns=[f"a_{b}" for b in "griz"])
    wide["object_id"] += 10**6
    body = ingest("photometric", wide.to_csv(index=False).encode(), "wide.csv")
    said = [w for w in body["summary"]["warnings"] if f"map {map_id}" in w]
    assert said and "g, r, i, z" in said[0] and f"catalogue {deep['id']}" in said[0]
    assert said[0] in body["warnings"]
    # alike: no warning
    alike = t.copy()
    alike["object_id"] += 2 * 10**6
    body = ingest("photometric", alike.to_csv(index=False).encode(), "wide2.csv")
    assert not any("Galactic extinction in one" in w for w in body["summary"]["warnings"])


def test_a_vhs_table_is_vega_to_ab_and_dereddened_each_once(client, auth, settings, ingest):
    vega = {b: RNG.uniform(16, 19, N) for b in ("j", "ks")}
    ext = {"J": RNG.uniform(0, 0.05, N), "Ks": RNG.uniform(0, 0.02, N)}
    t = pd.DataFrame({"sourceID": np.arange(N) + 472446402561, **_positions()})
    for b in ("j", "ks"):
        t[f"{b}AperMag3"], t[f"{b}AperMag3Err"] = vega[b], 0.03
    t["aJ"], t["aKs"] = ext["J"], ext["Ks"]
    body = ingest("photometric", t.to_csv(index=False).encode(), "vhsSource.csv")
    assert body["preset"] == "vsa_vista", body
    mags, _ = _stored(settings.database_url, body["id"], 2)
    np.testing.assert_allclose(_column(body, mags, "J"), vega["j"] + 0.916 - ext["J"], atol=1e-9)
    np.testing.assert_allclose(_column(body, mags, "Ks"), vega["ks"] + 1.827 - ext["Ks"], atol=1e-9)
    assert body["summary"]["photometry"]["Ks"]["system_source"] == "preset vsa_vista"


def test_the_preset_list_says_which_bands_are_not_ab(client, auth):
    listed = {p["name"]: p for p in client.get("/v1/catalogues/presets", headers=auth).json()}
    assert listed["allwise"]["mag_systems"]["W1"] == "Vega"
    assert listed["sdss_photoobj"]["mag_systems"]["u_sdss"] == "SDSS"
    assert listed["hsc_ssp"]["mag_systems"] == {} and listed["des_gold"]["dereddened"]
    assert listed["legacy_surveys"]["columns"]["mwtrans_g_des"] == ["MW_TRANSMISSION_G"]
