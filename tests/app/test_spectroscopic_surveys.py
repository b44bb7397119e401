"""Public redshift surveys as they publish them (DEEP2/DEEP3, GAMA, VIPERS, VVDS/VUDS):
each is recognised from its columns, its quality flag decides ``secure`` by the survey's
own rule, and its stars are never galaxy spectra. And every preset keeps the files it
should claim: a table of each survey's characteristic columns, new presets included.
SQLite and PostgreSQL for the ingests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.services import presets

N = 12


def _positions(n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"ra": rng.uniform(149, 151, n), "dec": rng.uniform(1, 3, n)}


def test_deep2_secure_is_zquality_3_or_4_and_minus_one_is_a_star(ingest):
    q = np.array([4, 3, 2, 1, -1, 4, 3, 0, -2, 4, 2, -1])
    t = pd.DataFrame({"OBJNO": 11000000 + np.arange(N), **_positions()})
    t.rename(columns={"ra": "RA", "dec": "DEC"}, inplace=True)
    t["ZBEST"] = np.where(q == -1, 0.0003, 0.8)
    t["ZERR"], t["ZQUALITY"], t["MAGR"] = 1e-4, q, 23.0
    body = ingest("spectroscopic", t.to_csv(index=False).encode(), "zcat.deep2.dr4.csv")
    assert body["preset"] == "deep2", body
    counts = body["summary"]["spectra"]
    assert counts["secure"] == int((q >= 3).sum())
    assert counts["star"] == int((q == -1).sum())
    assert counts["not_secure_quality"] == int(((q < 3) & (q != -1)).sum())


def test_gama_secure_is_nq_3_or_more_and_stars_are_below_z_min(ingest):
    nq = np.array([4, 3, 2, 1, 4, 3, 5, 2, 4, 4, 3, 1])
    z = np.where(np.arange(N) % 6 == 0, 0.0001, 0.25)  # GAMA stars: z ~ 0
    t = pd.DataFrame({"SPECID": [f"G{i}" for i in range(N)], "CATAID": np.arange(N) + 6802})
    t["RA"], t["DEC"] = _positions()["ra"], _positions()["dec"]
    t["Z"], t["NQ"], t["PROB"] = z, nq, 0.99
    t["SURVEY"] = ["GAMA"] * 8 + ["SDSS"] * 4
    body = ingest("spectroscopic", t.to_csv(index=False).encode(), "SpecObj.csv")
    assert body["preset"] == "gama", body
    counts = body["summary"]["spectra"]
    galaxy = z >= 0.002
    assert counts["secure"] == int(((nq >= 3) & galaxy).sum())
    assert counts["below_z_min"] == int((~galaxy).sum())


@pytest.mark.parametrize(
    "preset, columns",
    [
        ("vipers", {"id": "num", "ra": "alpha", "dec": "delta", "z": "zspec", "q": "zflg"}),
        ("vvds_vuds", {"id": "ident", "ra": "alpha", "dec": "delta", "z": "z_spec", "q": "zflags"}),
    ],
)
def test_vvds_family_flags_3_and_4_are_secure_9_is_not(preset, columns, ingest):
    # galaxy 4, 3.5 (VIPERS: agrees with the photo-z), 2, 9, 9.5; broad-line AGN 14, 13;
    # secondary 23, 29; 1; 0 (no redshift); a star (z = 0, flag 4)
    flags = np.array([4.0, 3.5, 2.0, 9.0, 9.5, 14.0, 13.0, 23.0, 29.0, 1.0, 0.0, 4.0])
    z = np.where(np.arange(N) == N - 1, 0.0, 0.7)
    secure = np.array([1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    pos = _positions()
    t = pd.DataFrame(
        {
            columns["id"]: 100 + np.arange(N),
            columns["ra"]: pos["ra"],
            columns["dec"]: pos["dec"],
            columns["z"]: z,
            columns["q"]: flags,
        }
    )
    body = ingest("spectroscopic", t.to_csv(index=False).encode(), f"{preset}.csv")
    assert body["preset"] == preset, body
    counts = body["summary"]["spectra"]
    assert counts["secure"] == int(secure.sum())
    assert counts["below_z_min"] == 1


def test_star_values_of_a_users_secure_rule_mark_stars(ingest, upload, client, auth):
    t = pd.DataFrame({"id": np.arange(4), "ra": 150.0, "dec": 2.0, "z_spec": 0.5})
    t["quality"] = [4, -1, 3, 2]
    rule = {"kind": "min", "value": 3, "star_values": [-1]}
    body = ingest("spectroscopic", t.to_csv(index=False).encode(), "mine.csv", secure_rule=rule)
    assert body["summary"]["spectra"]["star"] == 1
    assert body["summary"]["spectra"]["secure"] == 2
    bad = {"kind": "min", "value": 3, "star_values": ["STAR"]}
    r = upload(
        client, auth, "spectroscopic", t.to_csv(index=False).encode(), "m2.csv", secure_rule=bad
    )
    assert r.status_code == 422, r.text


# Each survey's characteristic columns as its files have them, and the preset that must claim
# them. New presets must not steal these files; each new preset's own file is here too.
FILES = {
    "somcal_mock": ["id", "ra", "dec", "z_true", "z_phot", "z_spec", "mag_u", "magerr_u"],
    "cosmos2015": [
        "NUMBER",
        "ALPHA_J2000",
        "DELTA_J2000",
        "PHOTOZ",
        "ip_MAG_AUTO",
        "ip_MAG_APER3",
        "ip_MAGERR_APER3",
        "r_MAG_APER3",
        "r_MAGERR_APER3",
    ],
    "cosmos2020_classic": [
        "ID",
        "ALPHA_J2000",
        "DELTA_J2000",
        "lp_zBEST",
        "HSC_i_MAG_APER2",
        "HSC_i_MAGERR_APER2",
        "EBV_MW",
    ],
    "cosmos2020_farmer": [
        "ID",
        "ALPHA_J2000",
        "DELTA_J2000",
        "lp_zBEST",
        "HSC_i_MAG",
        "HSC_i_MAGERR",
        "EBV_MW",
    ],
    "zcosmos": ["id_zcosmos", "zpec", "cc", "alpha", "delta", "i_photzi25", "ei_photzi25"],
    "cosmos_specz_compilation": [
        "Id_specz",
        "ra_corrected",
        "dec_corrected",
        "specz",
        "flag",
        "Confidence_level",
        "survey",
    ],
    "rubin_object": ["objectId", "coord_ra", "coord_dec", "g_gaap1p0Flux", "r_gaap1p0Flux"],
    "des_gold": ["COADD_OBJECT_ID", "RA", "DEC", "BDF_MAG_G_CORRECTED", "BDF_MAG_ERR_G"],
    "kids": ["ID", "RAJ2000", "DECJ2000", "Z_B", "MAG_GAAP_r", "MAGERR_GAAP_r", "EXTINCTION_r"],
    "hsc_ssp": ["object_id", "ra", "dec", "i_cmodel_mag", "i_cmodel_magerr", "a_i"],
    "euclid_mer": ["object_id", "right_ascension", "declination", "flux_vis_psf"],
    "legacy_surveys": ["RA", "DEC", "FLUX_R", "FLUX_IVAR_R", "MW_TRANSMISSION_R", "FLUX_W1"],
    "desi_zcat": [
        "TARGETID",
        "TARGET_RA",
        "TARGET_DEC",
        "Z",
        "ZWARN",
        "SPECTYPE",
        "FLUX_R",
        "FLUX_IVAR_R",
    ],
    "sdss_specobj": ["specObjID", "ra", "dec", "z", "zWarning", "class", "modelMag_r"],
    "sdss_photoobj": ["objID", "ra", "dec", "modelMag_r", "modelMagErr_r", "extinction_r"],
    "allwise": [
        "designation",
        "ra",
        "dec",
        "w1mpro",
        "w1sigmpro",
        "w2mpro",
        "w2sigmpro",
        "j_m_2mass",
        "j_msig_2mass",
    ],
    "twomass_psc": ["designation", "ra", "dec", "j_m", "j_msigcom", "k_m", "k_msigcom"],
    "vsa_vista": [
        "sourceID",
        "ra",
        "dec",
        "jAperMag3",
        "jAperMag3Err",
        "ksAperMag3",
        "ksAperMag3Err",
        "aJ",
    ],
    "wsa_ukidss": [
        "sourceID",
        "ra",
        "dec",
        "j_1AperMag3",
        "j_1AperMag3Err",
        "kAperMag3",
        "kAperMag3Err",
    ],
    "deep2": ["OBJNO", "RA", "DEC", "ZBEST", "Z", "ZERR", "ZQUALITY", "CLASS", "MAGR"],
    "gama": ["SPECID", "CATAID", "RA", "DEC", "Z", "NQ", "PROB", "SURVEY"],
    "vipers": ["num", "alpha", "delta", "zspec", "zflg", "selmag"],
    "vvds_vuds": ["ident", "alpha", "delta", "z_spec", "zflags"],
}
SPECTROSCOPIC = {
    "zcosmos",
    "cosmos_specz_compilation",
    "desi_zcat",
    "sdss_specobj",
    "deep2",
    "gama",
    "vipers",
    "vvds_vuds",
}


def test_every_preset_has_a_file_here():
    assert set(FILES) | {"somcal"} == set(presets.PRESETS)


@pytest.mark.parametrize("preset", list(FILES))
def test_each_survey_file_is_claimed_by_its_own_preset(preset):
    kind = "spectroscopic" if preset in SPECTROSCOPIC else "photometric"
    assert presets.auto_preset(kind, FILES[preset]).name == preset
    # and in lower case, as some TAP services and CSV exports write them
    lowered = [c.lower() for c in FILES[preset]]
    if preset not in ("sdss_specobj", "somcal_mock"):
        assert presets.auto_preset(kind, lowered).name == preset


def test_a_plain_file_stays_with_the_generic_preset():
    cols = ["id", "ra", "dec", "z_spec", "quality", "mag_g", "magerr_g", "mag_r", "magerr_r"]
    assert presets.auto_preset("spectroscopic", cols).name == "somcal"
    assert presets.auto_preset("photometric", cols).name == "somcal"
