"""Column-mapping presets for the catalogues somcal users bring.

(About 900 lines on purpose: most of it is the presets themselves, a table a reader checks
against the surveys' schemas with their sources below; then the lookup. What a band's
values mean, magnitude system and Galactic extinction, is ``app.services.band_semantics``.)

A preset maps each somcal field to a list of candidate column names (the first present one
wins, exact case first, then case-insensitively), plus a rule that turns the survey's
quality flag into ``secure``. Photometry fields are ``mag_<band>``, ``magerr_<band>``,
``flux_<band>`` and ``fluxerr_<band>`` for any band of the registry (``som.bands``: case-
sensitive names) or declared by the user; a band a catalogue lacks is left unmapped, never
substituted by a neighbouring filter. The generic presets (``somcal``, ``somcal_mock``)
recognise any column named after a known band (``mag_y_lsst``, ``flux_Ks``, ``Ks_mag``...).

Sources of the column names
---------------------------
* COSMOS2015 (Laigle et al. 2016, ApJS 224, 24): ``NUMBER, ALPHA_J2000, DELTA_J2000,
  PHOTOZ``; ``{band}_MAG_APER3`` / ``{band}_MAGERR_APER3`` (3" apertures, recommended for
  colours) falling back to ``_MAG_AUTO``; u = CFHT u*, r = Subaru r+, i = Subaru i+ (``ip``),
  z = Subaru z++ (``zpp``), Y/J/H = UltraVISTA. COSMOS2015 has no g-band broad-band column
  in this set, so g stays unmapped unless the user maps one.
* COSMOS2020 Classic (Weaver et al. 2022, ApJS 258, 11): ``ID, ALPHA_J2000, DELTA_J2000,
  lp_zBEST``; ``CFHT_u_MAG_APER2``, ``HSC_{g,r,i,z}_MAG_APER2``, ``UVISTA_{Y,J,H}_MAG_APER2``
  (2" apertures) with ``_MAGERR_APER2``, falling back to ``_MAG_AUTO``.
* COSMOS2020 Farmer: the same bands as ``{instrument}_{band}_MAG`` / ``_MAGERR`` (model
  photometry has no apertures).
* zCOSMOS-bright DR3 with COSMOS photometry (the file in ``shared/data/real``):
  ``id_zcosmos, zpec, cc, alpha, delta`` and ``{band}_photzi25`` / ``e{band}_photzi25``;
  secure when ``3 <= cc % 10 < 5`` (Lilly et al. 2009: classes 3.x and 4.x, including the
  broad-line 13.x/14.x and secondary-target 23.x/24.x variants). No Y or H band. The bands
  are named for their filters (u*, Suprime-Cam B V g+ r+ i+ z+, WFCAM J, WIRCam Ks).
* COSMOS spectroscopic compilation (Khostovan et al. 2025): ``Id_specz, ra_corrected,
  dec_corrected, specz, flag, Confidence_level, survey``; ``flag`` is 0-4 or 9, +10 for broad
  lines; flags 3 and 4 (>= 95% confidence, also 13/14) are secure, 9 (single line, 85%) is not.
* somcal mock / generic: ``id, ra, dec, z_true, z_phot, z_spec, mag_{b}, magerr_{b}``.
* Rubin Object table (DP0.2/DP1 schema browser, sdm_schemas): ``objectId, coord_ra,
  coord_dec, {b}_gaap1p0Flux, {b}_gaapOptimalFlux, {b}_cModelFlux, {b}_psfFlux`` and their
  ``...FluxErr``, in nJy. GaaP first: it is the photometry made for colours.
* DES Y3/Y6 Gold (Sevilla-Noarbe et al. 2021; Bechtol et al. 2025) and DR2:
  ``COADD_OBJECT_ID, RA, DEC``, ``BDF_MAG_{B}_CORRECTED``/``BDF_MAG_ERR_{B}``,
  ``SOF_CM_MAG_CORRECTED_{B}``/``SOF_CM_MAG_ERR_{B}``, ``MAG_AUTO_{B}``, ``DNF_ZMEAN_SOF``.
* KiDS DR4/DR5 (Kuijken et al. 2019; Wright et al. 2024): ``ID, RAJ2000, DECJ2000, Z_B``,
  ``MAG_GAAP_{b}``/``MAGERR_GAAP_{b}`` for u g r i (DR5: i1) and VIKING Z Y J H Ks.
* HSC-SSP PDR2/PDR3 (Aihara et al. 2019, 2022): ``object_id, ra, dec``,
  ``{b}_cmodel_mag``/``{b}_cmodel_magerr``.
* Euclid Q1 MER (Euclid Collaboration: Aussel et al. 2025): ``object_id, right_ascension,
  declination``, ``flux_vis_psf``, ``flux_{y,j,h}_templfit``, ``flux_{b}_ext_{instrument}_
  templfit`` and their ``fluxerr_``, in µJy.
* Legacy Surveys DR9/DR10 (Dey et al. 2019) and DESI (DESI Collaboration 2024): ``RA, DEC,
  FLUX_{G,R,I,Z,W1..W4}, FLUX_IVAR_{...}`` in nanomaggies; DESI redshift catalogues
  ``TARGETID, TARGET_RA, TARGET_DEC, Z, ZWARN, SPECTYPE`` (secure: ZWARN = 0).
* SDSS SpecObj/PhotoObj: ``specObjID, ra, dec, z, zWarning, class``; ``objID,
  modelMag_{b}, modelMagErr_{b}``, ``extinction_{b}``; asinh magnitudes (Lupton et al. 1999)
  with u_AB = u - 0.04, z_AB = z + 0.02 (Abazajian et al. 2004).
* AllWISE / CatWISE (Cutri et al. 2013; Marocco et al. 2021), IRSA: ``designation, ra, dec,
  w{1..4}mpro, w{1..4}sigmpro, {j,h,k}_m_2mass, {j,h,k}_msig_2mass``; Vega.
* 2MASS PSC (Skrutskie et al. 2006), IRSA ``fp_psc``: ``designation, ra, dec, {j,h,k}_m,
  {j,h,k}_msigcom``; Vega.
* VSA (VHS, VIKING, VIDEO; Cross et al. 2012) and WSA (UKIDSS; Hambly et al. 2008) source
  tables: ``sourceID, ra, dec, {b}AperMag3, {b}AperMag3Err, {b}PetroMag``, ``a{B}``
  extinctions; VISTA ``ks``, WFCAM ``k`` and LAS ``j_1``; Vega.
* DEEP2 DR4 (Newman et al. 2013, ApJS 208, 5) and DEEP3 (Cooper et al. 2012): ``OBJNO, RA,
  DEC, ZBEST, ZQUALITY``; ZQUALITY 3 (95%) and 4 (99%) secure, -1 a star.
* GAMA SpecObj/SpecAll (Baldry et al. 2014; Liske et al. 2015): ``SPECID, CATAID, RA, DEC, Z,
  NQ, SURVEY``; NQ >= 3 secure (NQ is the normalised quality of the best redshift).
* VIPERS PDR2 (Scodeggio et al. 2018): ``num, alpha, delta, zspec, zflg``; VVDS final
  (Le Fevre et al. 2013) and VUDS (Le Fevre et al. 2015): ``zflags``; classes 3 and 4
  (also 1x broad-line, 2x secondary and VIPERS' .5) secure, 9 (single line) not.

Magnitude systems and extinction
--------------------------------
A preset says which of its bands are not AB (``mag_systems``: "Vega", "SDSS"), which of its
columns the survey already dereddened (``dereddened``: a pattern of column names), and maps
the survey's own extinction columns (``extinction_<b>``: A_b in mag; ``mwtrans_<b>``: the
transmission). :func:`band_semantics` applies them once per band.

Not here, on purpose: 2dFGRS, 6dFGS and C3R2, whose column names differ between releases
and mirrors (map them with ``secure_rule`` ``{"kind": "min", "value": 3}``); COSMOS2020's
``EBV_MW`` (it needs per-band factors; its magnitudes are stored not dereddened, as said
in the summary).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from som.bands import BandRegistry

PHOT_FIELDS = ("source_id", "ra", "dec", "z_phot")
SPEC_FIELDS = ("source_id", "ra", "dec", "z_spec", "quality", "secure", "survey", "star")
#: Photometry field prefixes: (field prefix, kind, role). Longest prefixes first.
PHOT_PREFIXES = (
    ("magerr_", "mag", "error"),
    ("fluxerr_", "flux", "error"),
    # An inverse variance 1/sigma^2 instead of sigma (the Legacy Surveys' FLUX_IVAR_<b>).
    ("fluxivar_", "flux", "ivar"),
    ("mag_", "mag", "value"),
    ("flux_", "flux", "value"),
    # The survey's own Galactic extinction of a band: A_b in magnitudes (SDSS extinction_<b>,
    # HSC a_<b>, KiDS EXTINCTION_<b>) or a transmission 10^(-0.4 A_b) (Legacy Surveys
    # MW_TRANSMISSION_<B>); the band's magnitudes are dereddened with it.
    ("extinction_", "extinction", "mag"),
    ("mwtrans_", "extinction", "transmission"),
)


def fields_for(kind: str) -> tuple[str, ...]:
    """The non-photometric fields of a catalogue kind (photometry fields are per band)."""
    return PHOT_FIELDS if kind == "photometric" else SPEC_FIELDS


def photometry_field(name: str) -> tuple[str, str, str] | None:
    """``(kind, role, band)`` of a field such as ``flux_Ks`` or ``magerr_y_lsst``, else None."""
    for prefix, kind, role in PHOT_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return kind, role, name[len(prefix) :]
    return None


def photometry_field_name(kind: str, role: str, band: str) -> str:
    """The field of ``band``'s value or error as a magnitude or flux: the inverse of
    :func:`photometry_field` (``("flux", "error", "Ks")`` -> ``fluxerr_Ks``)."""
    if kind == "extinction":
        return f"{'mwtrans' if role == 'transmission' else 'extinction'}_{band}"
    suffix = {"error": "err", "ivar": "ivar"}.get(role, "")
    return f"{kind}{suffix}_{band}"


# Column spellings the generic presets recognise, with {b} a band name or alias (exact
# case: 'mag_y' is HSC/LSST-like y, never VISTA Y).
_COLUMN_PATTERNS = (
    ("mag", "value", ("mag_{b}", "{b}_mag", "MAG_{b}", "{b}_MAG")),
    (
        "mag",
        "error",
        (
            "magerr_{b}",
            "mag_err_{b}",
            "{b}_magerr",
            "{b}_mag_err",
            "MAGERR_{b}",
            "{b}_MAGERR",
            "e_mag_{b}",
        ),
    ),
    ("flux", "value", ("flux_{b}", "{b}_flux", "FLUX_{b}", "{b}_FLUX")),
    (
        "flux",
        "error",
        (
            "fluxerr_{b}",
            "flux_err_{b}",
            "{b}_fluxerr",
            "{b}_flux_err",
            "FLUXERR_{b}",
            "{b}_FLUXERR",
            "{b}_FLUX_ERR",
        ),
    ),
)
_PHOTOMETRY_LIKE = re.compile(
    r"^(?:(?:mag|flux|magerr|fluxerr|mag_err|flux_err)_(?P<a>.+)|(?P<b>.+?)_(?:mag|flux))$",
    re.IGNORECASE,
)


def detect_photometry(
    available: list[str], registry: BandRegistry
) -> tuple[dict[str, str], list[str]]:
    """Photometry fields found among ``available`` columns, and warnings.

    Returns ``({field: column}, warnings)``: fields like ``mag_Ks``/``flux_y_lsst`` for every
    column that names a known band (aliases resolve to the canonical band), and a warning
    for each column that looks like photometry of a band nobody declared (``mag_NB816``),
    so it is not dropped without a word.
    """
    found: dict[str, str] = {}
    used: set[str] = set()
    names = set(available)
    for band in registry:
        for alias in (band.name, *band.aliases):
            for kind, role, patterns in _COLUMN_PATTERNS:
                field_name = photometry_field_name(kind, role, band.name)
                if field_name in found:
                    continue
                for pattern in patterns:
                    col = pattern.format(b=alias)
                    if col in names and col not in used:
                        found[field_name] = col
                        used.add(col)
                        break
    warnings: list[str] = []
    for col in available:
        if col in used:
            continue
        m = _PHOTOMETRY_LIKE.match(col)
        if not m:
            continue
        stem = m.group("a") or m.group("b")
        if stem in registry:
            continue
        hint = registry.suggest(stem)
        warnings.append(
            f"column {col!r} looks like photometry of band {stem!r}, which is not a known band"
            + (f" (did you mean {' or '.join(repr(h) for h in hint)}?)" if hint else "")
            + "; it was not used: map it (e.g. mapping={'mag_<band>': "
            + repr(col)
            + "}) or declare the band with its wavelength"
        )
    return found, warnings


ZCOSMOS_RULE = {"kind": "range", "modulo": 10, "min": 3, "max": 5}
COMPILATION_RULE = {"kind": "range", "modulo": 10, "min": 3, "max": 5}
#: VVDS, VUDS and VIPERS flags (Le Fevre et al. 2005, 2013; Garilli et al. 2014): X0-X4 and
#: X9 with X = 0 galaxy, 1 broad-line AGN, 2 secondary object in the slit; a decimal .5
#: (VIPERS) marks agreement with the photo-z. 3 and 4 are >= 95% reliable; 9 (one line) is
#: not secure.
VVDS_RULE = {"kind": "range", "modulo": 10, "min": 3, "max": 5}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    columns: dict[str, list[str]]
    secure_rule: dict[str, Any] | None = None
    survey: str | None = None  # constant survey name when the file has no survey column
    options: dict[str, Any] = field(default_factory=dict)


def _bands(
    value: str, error: str, bands: dict[str, str], *, kind: str = "mag", ivar: bool = False
) -> dict[str, list[str]]:
    """The ``kind`` ("mag" or "flux") value and error fields of ``bands`` ({band: tag}),
    each a list of candidate columns ("|"-separated, ``{b}`` the tag); ``ivar``: the
    errors are inverse variances."""
    error_role = "ivar" if ivar else "error"
    out: dict[str, list[str]] = {}
    for band, tag in bands.items():
        out[photometry_field_name(kind, "value", band)] = [
            v.format(b=tag) for v in value.split("|")
        ]
        out[photometry_field_name(kind, error_role, band)] = [
            e.format(b=tag) for e in error.split("|")
        ]
    return out


def _flux_bands(value: str, error: str, bands: dict[str, str], *, ivar: bool = False):
    """Flux fields of ``bands``: :func:`_bands` of kind "flux"."""
    return _bands(value, error, bands, kind="flux", ivar=ivar)


def _extinction(
    column: str, bands: dict[str, str], *, transmission: bool = False
) -> dict[str, list[str]]:
    """The Galactic extinction fields of ``bands`` ({band: tag}): A_b in magnitudes, or the
    transmission 10^(-0.4 A_b) when ``transmission``."""
    role = "transmission" if transmission else "mag"
    return {
        photometry_field_name("extinction", role, band): [column.format(b=tag)]
        for band, tag in bands.items()
    }


#: SDSS magnitudes are asinh magnitudes with small AB offsets (som.bands); the presets say
#: so explicitly, so that an SDSS file is read right whatever the band defaults become.
_SDSS_SYSTEMS = {f"{b}_sdss": "SDSS" for b in "ugriz"}
#: WISE and 2MASS catalogue magnitudes are Vega (Cutri et al. 2003, 2012).
_VEGA_WISE_2MASS = {b: "Vega" for b in ("W1", "W2", "W3", "W4", "J_2mass", "H_2mass", "Ks_2mass")}

#: The Legacy Surveys' (and DESI's target) photometry: DECam-like grz (+ i in DR10) and WISE.
_LEGACY_BANDS = {
    "g_des": "G",
    "r_des": "R",
    "i_des": "I",
    "z_des": "Z",
    "W1": "W1",
    "W2": "W2",
    "W3": "W3",
    "W4": "W4",
}

PRESETS: dict[str, Preset] = {
    "somcal": Preset(
        name="somcal",
        description="somcal's own columns: id, ra, dec, z_phot | z_spec, mag_{b}, magerr_{b}.",
        columns={
            "source_id": ["id", "source_id", "object_id", "objid"],
            "ra": ["ra", "RA", "ALPHA_J2000"],
            "dec": ["dec", "DEC", "Dec", "DELTA_J2000"],
            "z_phot": ["z_phot", "zphot", "photoz"],
            "z_spec": ["z_spec", "zspec", "specz"],
            "quality": ["quality", "z_quality", "zflag", "z_flag"],
            "secure": ["secure"],
            "survey": ["survey"],
            "star": ["star", "is_star"],
        },
        options={"generic_bands": True},
    ),
    "somcal_mock": Preset(
        name="somcal_mock",
        description=(
            "The somcal mock (id, ra, dec, z_true, z_phot, z_spec, mag_{b}, magerr_{b}); "
            "as a spectroscopic catalogue only rows with a z_spec are taken."
        ),
        columns={
            "source_id": ["id"],
            "ra": ["ra"],
            "dec": ["dec"],
            "z_phot": ["z_phot"],
            "z_spec": ["z_spec"],
            "quality": ["quality", "z_quality"],
            "secure": ["secure"],
            "survey": ["spec_survey", "survey"],
        },
        options={"skip_missing_redshift": True, "signature": ["z_true"], "generic_bands": True},
    ),
    "cosmos2015": Preset(
        name="cosmos2015",
        description="COSMOS2015 (Laigle et al. 2016), 3-arcsec aperture magnitudes.",
        columns={
            "source_id": ["NUMBER"],
            "ra": ["ALPHA_J2000"],
            "dec": ["DELTA_J2000"],
            "z_phot": ["PHOTOZ"],
            **_bands(
                "{b}_MAG_APER3|{b}_MAG_AUTO",
                "{b}_MAGERR_APER3|{b}_MAGERR_AUTO",
                {"u": "u", "r": "r", "i": "ip", "z": "zpp", "Y": "Y", "J": "J", "H": "H"},
            ),
        },
        options={"signature": ["NUMBER", "PHOTOZ", "ip_MAG_AUTO"]},
    ),
    "cosmos2020_classic": Preset(
        name="cosmos2020_classic",
        description="COSMOS2020 Classic (Weaver et al. 2022), 2-arcsec aperture magnitudes.",
        columns={
            "source_id": ["ID"],
            "ra": ["ALPHA_J2000"],
            "dec": ["DELTA_J2000"],
            "z_phot": ["lp_zBEST"],
            **_bands(
                "{b}_MAG_APER2|{b}_MAG_AUTO",
                "{b}_MAGERR_APER2|{b}_MAGERR_AUTO",
                {
                    "u": "CFHT_u",
                    "g": "HSC_g",
                    "r": "HSC_r",
                    "i": "HSC_i",
                    "z": "HSC_z",
                    "Y": "UVISTA_Y",
                    "J": "UVISTA_J",
                    "H": "UVISTA_H",
                    "Ks": "UVISTA_Ks",
                },
            ),
        },
        options={"signature": ["HSC_i_MAG_APER2", "lp_zBEST"]},
    ),
    "cosmos2020_farmer": Preset(
        name="cosmos2020_farmer",
        description="COSMOS2020 Farmer (Weaver et al. 2022), model magnitudes.",
        columns={
            "source_id": ["ID"],
            "ra": ["ALPHA_J2000"],
            "dec": ["DELTA_J2000"],
            "z_phot": ["lp_zBEST"],
            **_bands(
                "{b}_MAG",
                "{b}_MAGERR",
                {
                    "u": "CFHT_u",
                    "g": "HSC_g",
                    "r": "HSC_r",
                    "i": "HSC_i",
                    "z": "HSC_z",
                    "Y": "UVISTA_Y",
                    "J": "UVISTA_J",
                    "H": "UVISTA_H",
                    "Ks": "UVISTA_Ks",
                },
            ),
        },
        options={"signature": ["HSC_i_MAG", "lp_zBEST"]},
    ),
    "zcosmos": Preset(
        name="zcosmos",
        description=(
            "zCOSMOS-bright DR3 with COSMOS photometry (Lilly et al. 2009; Capak et al. 2007); "
            "secure when 3 <= cc % 10 < 5."
        ),
        columns={
            "source_id": ["id_zcosmos"],
            "ra": ["alpha"],
            "dec": ["delta"],
            "z_spec": ["zpec", "zspec", "z_spec"],
            "quality": ["cc"],
            # The file's filters by name: Suprime-Cam and WFCAM/WIRCam, not the mock's HSC
            # and VISTA (map them to those explicitly to put these spectra on a mock map).
            **_bands(
                "{b}_photzi25",
                "e{b}_photzi25",
                {
                    "u": "u",
                    "B_subaru": "b",
                    "V_subaru": "v",
                    "g_subaru": "g",
                    "r_subaru": "r",
                    "i_subaru": "i",
                    "z_subaru": "z",
                    "J_wfcam": "j",
                    "Ks_wircam": "k",
                },
            ),
        },
        secure_rule=ZCOSMOS_RULE,
        survey="zCOSMOS-bright",
        options={"signature": ["id_zcosmos", "cc"]},
    ),
    "cosmos_specz_compilation": Preset(
        name="cosmos_specz_compilation",
        description=(
            "COSMOS spectroscopic redshift compilation (Khostovan et al. 2025); secure when "
            "flag % 10 is 3 or 4 (>= 95% confidence)."
        ),
        columns={
            "source_id": ["Id_specz"],
            "ra": ["ra_corrected", "ra", "RA"],
            "dec": ["dec_corrected", "dec", "DEC"],
            "z_spec": ["specz"],
            "quality": ["flag"],
            "survey": ["survey"],
        },
        secure_rule=COMPILATION_RULE,
        options={"signature": ["Id_specz", "specz", "Confidence_level"]},
    ),
    "rubin_object": Preset(
        name="rubin_object",
        description=(
            "Rubin Observatory Object table (DP0.2, DP1, data releases): objectId, coord_ra, "
            "coord_dec; GaaP fluxes (made for colours), else cModel, else PSF; nJy."
        ),
        columns={
            "source_id": ["objectId"],
            "ra": ["coord_ra"],
            "dec": ["coord_dec"],
            **_flux_bands(
                "{b}_gaap1p0Flux|{b}_gaapOptimalFlux|{b}_cModelFlux|{b}_psfFlux",
                "{b}_gaap1p0FluxErr|{b}_gaapOptimalFluxErr|{b}_cModelFluxErr|{b}_psfFluxErr",
                {f"{b}_lsst": b for b in "ugrizy"},
            ),
        },
        options={"signature": ["coord_ra", "coord_dec"], "flux_unit": "nJy"},
    ),
    "des_gold": Preset(
        name="des_gold",
        description=(
            "DES Y3/Y6 Gold and DR2 (COADD_OBJECT_ID): BDF, else SOF, else MAG_AUTO "
            "magnitudes in grizY; DNF photo-z."
        ),
        columns={
            "source_id": ["COADD_OBJECT_ID"],
            "ra": ["RA", "ALPHAWIN_J2000"],
            "dec": ["DEC", "DELTAWIN_J2000"],
            "z_phot": ["DNF_ZMEAN_SOF", "DNF_ZMEAN_MOF", "DNF_Z", "BPZ_ZMEAN_SOF"],
            **_bands(
                "BDF_MAG_{b}_CORRECTED|SOF_CM_MAG_CORRECTED_{b}|BDF_MAG_{b}|SOF_CM_MAG_{b}"
                "|MAG_AUTO_{b}",
                "BDF_MAG_ERR_{b}|SOF_CM_MAG_ERR_{b}|MAGERR_AUTO_{b}",
                {"g_des": "G", "r_des": "R", "i_des": "I", "z_des": "Z", "Y_des": "Y"},
            ),
        },
        # BDF/SOF *_CORRECTED magnitudes are dereddened by DES (SFD98 E(B-V) with the Y3/Y6
        # Gold coefficients); the other fallbacks are not.
        options={"signature": ["COADD_OBJECT_ID"], "dereddened": "CORRECTED"},
    ),
    "kids": Preset(
        name="kids",
        description=(
            "KiDS DR4/DR5 and KiDS-1000 (Kuijken et al. 2019): GAaP magnitudes in OmegaCAM "
            "ugri and VIKING ZYJHKs; Z_B photo-z."
        ),
        columns={
            "source_id": ["ID", "SeqNr"],
            "ra": ["RAJ2000", "ALPHA_J2000"],
            "dec": ["DECJ2000", "DELTA_J2000"],
            "z_phot": ["Z_B"],
            **_bands(
                "MAG_GAAP_{b}",
                "MAGERR_GAAP_{b}",
                {"u_kids": "u", "g_kids": "g", "r_kids": "r"},
            ),
            # DR5 observed i twice (i1, i2); DR4 has one i.
            "mag_i_kids": ["MAG_GAAP_i", "MAG_GAAP_i1"],
            "magerr_i_kids": ["MAGERR_GAAP_i", "MAGERR_GAAP_i1"],
            **_bands(
                "MAG_GAAP_{b}",
                "MAGERR_GAAP_{b}",
                {"Z": "Z", "Y": "Y", "J": "J", "H": "H", "Ks": "Ks"},
            ),
            # GAaP magnitudes are not dereddened; EXTINCTION_<b> is A_b (SFD98).
            **_extinction(
                "EXTINCTION_{b}",
                {
                    "u_kids": "u",
                    "g_kids": "g",
                    "r_kids": "r",
                    "Z": "Z",
                    "Y": "Y",
                    "J": "J",
                    "H": "H",
                    "Ks": "Ks",
                },
            ),
            "extinction_i_kids": ["EXTINCTION_i", "EXTINCTION_i1"],
        },
        options={"signature": ["MAG_GAAP_r"]},
    ),
    "hsc_ssp": Preset(
        name="hsc_ssp",
        description=(
            "HSC-SSP PDR2/PDR3 (Aihara et al.): object_id, ra, dec; cModel, else PSF "
            "magnitudes in grizy."
        ),
        columns={
            "source_id": ["object_id"],
            "ra": ["ra", "i_ra"],
            "dec": ["dec", "i_dec"],
            "z_phot": ["photoz_best", "photoz_median"],
            **_bands(
                "{b}_cmodel_mag|{b}_psfflux_mag",
                "{b}_cmodel_magerr|{b}_psfflux_magerr",
                {b: b for b in "grizy"},
            ),
            # cModel magnitudes are not dereddened; a_<b> is A_b (SFD98, Aihara et al.).
            **_extinction("a_{b}", {b: b for b in "grizy"}),
        },
        options={"signature": ["i_cmodel_mag"]},
    ),
    "euclid_mer": Preset(
        name="euclid_mer",
        description=(
            "Euclid MER catalogue (Q1, DR1): object_id, right_ascension, declination; VIS PSF "
            "and NISP template-fit fluxes (else 1-FWHM apertures), and the external "
            "DECam/HSC/Pan-STARRS/MegaCam r template-fit fluxes; uJy."
        ),
        columns={
            "source_id": ["object_id"],
            "ra": ["right_ascension"],
            "dec": ["declination"],
            "z_phot": ["phz_median", "phz_mode_1"],
            **_flux_bands(
                "flux_vis_psf|flux_vis_1fwhm_aper",
                "fluxerr_vis_psf|fluxerr_vis_1fwhm_aper",
                {"VIS": "vis"},
            ),
            **_flux_bands(
                "flux_{b}_templfit|flux_{b}_1fwhm_aper",
                "fluxerr_{b}_templfit|fluxerr_{b}_1fwhm_aper",
                {"YE": "y", "JE": "j", "HE": "h"},
            ),
            **_flux_bands(
                "flux_{b}_templfit",
                "fluxerr_{b}_templfit",
                {
                    "g_des": "g_ext_decam",
                    "r_des": "r_ext_decam",
                    "i_des": "i_ext_decam",
                    "z_des": "z_ext_decam",
                    "g": "g_ext_hsc",
                    "z": "z_ext_hsc",
                    "i_ps1": "i_ext_panstarrs",
                    "z_ps1": "z_ext_panstarrs",
                    "r_cfht": "r_ext_megacam",
                },
            ),
        },
        options={"signature": ["object_id", "right_ascension", "declination"], "flux_unit": "uJy"},
    ),
    "legacy_surveys": Preset(
        name="legacy_surveys",
        description=(
            "DESI Legacy Imaging Surveys DR9/DR10 (Tractor catalogues, sweeps): FLUX_<b> with "
            "FLUX_IVAR_<b> in nanomaggies, grz (i in DR10) as DECam and WISE W1-W4; fluxes "
            "are not corrected for Galactic extinction: divided by MW_TRANSMISSION_<b> when "
            "the file has it. WISE fluxes are AB like the others."
        ),
        columns={
            "source_id": ["ls_id", "TARGETID"],
            "ra": ["RA"],
            "dec": ["DEC"],
            "z_phot": ["Z_PHOT_MEDIAN"],
            **_flux_bands("FLUX_{b}", "FLUX_IVAR_{b}", _LEGACY_BANDS, ivar=True),
            **_extinction("MW_TRANSMISSION_{b}", _LEGACY_BANDS, transmission=True),
        },
        options={"signature": ["FLUX_R", "FLUX_IVAR_R"], "flux_unit": "nanomaggy"},
    ),
    "desi_zcat": Preset(
        name="desi_zcat",
        description=(
            "DESI redshift catalogues (EDR, DR1 zall/zpix): TARGETID, TARGET_RA/DEC, Z; secure "
            "when ZWARN = 0; SPECTYPE STAR is a star; Legacy Surveys target fluxes as in "
            "legacy_surveys. Apply your tracer's extra cut (e.g. DELTACHI2) with secure_rule "
            "on a column of your own if you need it."
        ),
        columns={
            "source_id": ["TARGETID"],
            "ra": ["TARGET_RA", "RA"],
            "dec": ["TARGET_DEC", "DEC"],
            "z_spec": ["Z"],
            "quality": ["ZWARN"],
            "star": ["SPECTYPE"],
            "survey": ["SURVEY"],
            **_flux_bands("FLUX_{b}", "FLUX_IVAR_{b}", _LEGACY_BANDS, ivar=True),
            **_extinction("MW_TRANSMISSION_{b}", _LEGACY_BANDS, transmission=True),
        },
        secure_rule={"kind": "in", "values": [0]},
        survey="DESI",
        options={"signature": ["TARGETID", "ZWARN"], "flux_unit": "nanomaggy"},
    ),
    "sdss_specobj": Preset(
        name="sdss_specobj",
        description=(
            "SDSS/BOSS/eBOSS SpecObj: specObjID, ra, dec, z; secure when zWarning = 0; class "
            "STAR is a star; modelMag_<b> magnitudes when joined with PhotoObj."
        ),
        columns={
            "source_id": ["specObjID", "bestObjID"],
            "ra": ["ra", "plug_ra"],
            "dec": ["dec", "plug_dec"],
            "z_spec": ["z"],
            "quality": ["zWarning"],
            "star": ["class"],
            "survey": ["survey"],
            **_bands("modelMag_{b}", "modelMagErr_{b}", {f"{b}_sdss": b for b in "ugriz"}),
            **_extinction("extinction_{b}", {f"{b}_sdss": b for b in "ugriz"}),
        },
        secure_rule={"kind": "in", "values": [0]},
        survey="SDSS",
        options={"signature": ["z", "zWarning"], "mag_systems": _SDSS_SYSTEMS},
    ),
    "sdss_photoobj": Preset(
        name="sdss_photoobj",
        description="SDSS PhotoObj: objID, ra, dec; modelMag_<b> (else cModelMag_<b>) in ugriz.",
        columns={
            "source_id": ["objID"],
            "ra": ["ra"],
            "dec": ["dec"],
            **_bands(
                "modelMag_{b}|cModelMag_{b}",
                "modelMagErr_{b}|cModelMagErr_{b}",
                {f"{b}_sdss": b for b in "ugriz"},
            ),
            **_extinction("extinction_{b}", {f"{b}_sdss": b for b in "ugriz"}),
        },
        options={"signature": ["objID", "modelMag_r"], "mag_systems": _SDSS_SYSTEMS},
    ),
    "allwise": Preset(
        name="allwise",
        description=(
            "AllWISE/CatWISE source catalogue (IRSA): w1mpro..w4mpro with w?sigmpro and the "
            "matched 2MASS j_m_2mass, h_m_2mass, k_m_2mass; Vega magnitudes, converted to AB."
        ),
        columns={
            "source_id": ["source_id", "designation", "source_name", "cntr"],
            "ra": ["ra"],
            "dec": ["dec"],
            **_bands("{b}mpro", "{b}sigmpro", {"W1": "w1", "W2": "w2", "W3": "w3", "W4": "w4"}),
            **_bands(
                "{b}_m_2mass",
                "{b}_msig_2mass",
                {"J_2mass": "j", "H_2mass": "h", "Ks_2mass": "k"},
            ),
        },
        options={"signature": ["w1mpro", "w1sigmpro"], "mag_systems": _VEGA_WISE_2MASS},
    ),
    "twomass_psc": Preset(
        name="twomass_psc",
        description=(
            "2MASS Point Source Catalog (IRSA fp_psc): j_m, h_m, k_m with j_msigcom...; Vega "
            "magnitudes, converted to AB."
        ),
        columns={
            "source_id": ["designation", "pts_key"],
            "ra": ["ra"],
            "dec": ["dec", "decl"],
            **_bands("{b}_m", "{b}_msigcom", {"J_2mass": "j", "H_2mass": "h", "Ks_2mass": "k"}),
        },
        options={"signature": ["j_m", "j_msigcom"], "mag_systems": _VEGA_WISE_2MASS},
    ),
    "vsa_vista": Preset(
        name="vsa_vista",
        description=(
            "VISTA Science Archive source tables (VHS, VIKING, VIDEO): sourceID, ra, dec; "
            "{z,y,j,h,ks}AperMag3 (2-arcsec apertures), else Petrosian; Vega magnitudes "
            "converted to AB; a{Z,Y,J,H,Ks} extinction applied when present."
        ),
        columns={
            "source_id": ["sourceID"],
            "ra": ["ra"],
            "dec": ["dec"],
            **_bands(
                "{b}AperMag3|{b}PetroMag",
                "{b}AperMag3Err|{b}PetroMagErr",
                {"Z": "z", "Y": "y", "J": "j", "H": "h", "Ks": "ks"},
            ),
            **_extinction("a{b}", {"Z": "Z", "Y": "Y", "J": "J", "H": "H", "Ks": "Ks"}),
        },
        options={
            "signature": ["sourceID", "ksAperMag3"],
            "mag_systems": {b: "Vega" for b in ("Z", "Y", "J", "H", "Ks")},
        },
    ),
    "wsa_ukidss": Preset(
        name="wsa_ukidss",
        description=(
            "WFCAM Science Archive (UKIDSS LAS, DXS, UDS) source tables: sourceID, ra, dec; "
            "{z,y,j_1,h,k}AperMag3, else Petrosian; Vega magnitudes converted to AB (Hewett "
            "et al. 2006); a{Z,Y,J,H,K} extinction applied when present."
        ),
        columns={
            "source_id": ["sourceID"],
            "ra": ["ra"],
            "dec": ["dec"],
            **_bands(
                "{b}AperMag3|{b}PetroMag",
                "{b}AperMag3Err|{b}PetroMagErr",
                {"Z_wfcam": "z", "Y_wfcam": "y", "H_wfcam": "h", "K_wfcam": "k"},
            ),
            # LAS observed J twice (j_1, j_2); DXS and UDS once.
            "mag_J_wfcam": ["j_1AperMag3", "jAperMag3", "j_1PetroMag", "jPetroMag"],
            "magerr_J_wfcam": ["j_1AperMag3Err", "jAperMag3Err", "j_1PetroMagErr", "jPetroMagErr"],
            **_extinction(
                "a{b}",
                {"Z_wfcam": "Z", "Y_wfcam": "Y", "J_wfcam": "J", "H_wfcam": "H", "K_wfcam": "K"},
            ),
        },
        options={
            "signature": ["sourceID", "kAperMag3"],
            "mag_systems": {f"{b}_wfcam": "Vega" for b in ("Z", "Y", "J", "H", "K")},
        },
    ),
    "deep2": Preset(
        name="deep2",
        description=(
            "DEEP2 DR4 / DEEP3 redshift catalogues (Newman et al. 2013; Cooper et al. 2012): "
            "OBJNO, RA, DEC, ZBEST, ZQUALITY; secure when ZQUALITY >= 3; ZQUALITY = -1 is a "
            "star."
        ),
        columns={
            "source_id": ["OBJNO"],
            "ra": ["RA"],
            "dec": ["DEC"],
            "z_spec": ["ZBEST", "Z", "ZHELIO"],
            "quality": ["ZQUALITY"],
        },
        secure_rule={"kind": "min", "value": 3, "star_values": [-1]},
        survey="DEEP2/DEEP3",
        options={"signature": ["OBJNO", "ZQUALITY"]},
    ),
    "gama": Preset(
        name="gama",
        description=(
            "GAMA SpecObj/SpecAll (Baldry et al. 2014; Liske et al. 2015; Driver et al. "
            "2022): CATAID, RA, DEC, Z, NQ; secure when NQ >= 3; stars have Z < 0.002 "
            "(below z_min, never secure)."
        ),
        columns={
            "source_id": ["SPECID", "CATAID"],
            "ra": ["RA"],
            "dec": ["DEC"],
            "z_spec": ["Z"],
            "quality": ["NQ"],
            "survey": ["SURVEY"],
        },
        secure_rule={"kind": "min", "value": 3},
        survey="GAMA",
        options={"signature": ["CATAID", "NQ"]},
    ),
    "vipers": Preset(
        name="vipers",
        description=(
            "VIPERS PDR1/PDR2 (Garilli et al. 2014; Scodeggio et al. 2018): num, alpha, "
            "delta, zspec, zflg; secure when zflg % 10 is in [3, 5) (3.x and 4.x, also "
            "broad-line 13.x/14.x and secondary 23.x/24.x; not 9.x single-line); stars have "
            "zspec 0 (below z_min)."
        ),
        columns={
            "source_id": ["num", "id_IAU"],
            "ra": ["alpha", "RA"],
            "dec": ["delta", "DEC"],
            "z_spec": ["zspec"],
            "quality": ["zflg"],
        },
        secure_rule=VVDS_RULE,
        survey="VIPERS",
        options={"signature": ["zflg", "zspec"]},
    ),
    "vvds_vuds": Preset(
        name="vvds_vuds",
        description=(
            "VVDS final release (Le Fevre et al. 2013) and VUDS (Le Fevre et al. 2015; "
            "Tasca et al. 2017): alpha, delta, z (z_spec), zflags; secure when zflags % 10 is "
            "in [3, 5) (not 9.x single-line redshifts); stars have z 0 (below z_min)."
        ),
        columns={
            "source_id": ["NUM", "ident", "id"],
            "ra": ["ALPHA", "RA"],
            "dec": ["DELTA", "DEC"],
            "z_spec": ["z_spec", "Z", "zspec"],
            "quality": ["zflags"],
        },
        secure_rule=VVDS_RULE,
        options={"signature": ["zflags"]},
    ),
}
PRESET_ALIASES = {
    "khostovan2025": "cosmos_specz_compilation",
    "mock": "somcal_mock",
    "rubin": "rubin_object",
    "lsst": "rubin_object",
    "des": "des_gold",
    "hsc": "hsc_ssp",
    "euclid": "euclid_mer",
    "desi": "desi_zcat",
    "legacy": "legacy_surveys",
    "decals": "legacy_surveys",
    "wise": "allwise",
    "catwise": "allwise",
    "2mass": "twomass_psc",
    "vhs": "vsa_vista",
    "viking": "vsa_vista",
    "ukidss": "wsa_ukidss",
    "deep3": "deep2",
    "vvds": "vvds_vuds",
    "vuds": "vvds_vuds",
}


def get_preset(name: str) -> Preset | None:
    key = name.strip().lower()
    return PRESETS.get(PRESET_ALIASES.get(key, key))


def resolve_candidates(candidates: list[str], available: list[str]) -> str | None:
    present = set(available)
    for c in candidates:
        if c in present:
            return c
    lower = {a.lower(): a for a in available}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    return None


def auto_preset(kind: str, available: list[str]) -> Preset:
    """The preset whose signature columns the file has (most specific first), else the one
    whose candidate columns it matches best; ``somcal`` (no signature) always qualifies."""
    wanted = set(fields_for(kind))
    scored: list[tuple[int, int, int, Preset]] = []
    for order, preset in enumerate(PRESETS.values()):
        signature = preset.options.get("signature", [])
        if any(resolve_candidates([s], available) is None for s in signature):
            continue
        hits = sum(
            resolve_candidates(cands, available) is not None
            for f, cands in preset.columns.items()
            if f in wanted or photometry_field(f) is not None
        )
        scored.append((len(signature), hits, -order, preset))
    return max(scored, key=lambda t: t[:3])[3]


def describe_presets() -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "description": p.description,
            "columns": p.columns,
            "secure_rule": p.secure_rule,
            "mag_systems": dict(p.options.get("mag_systems", {})),
            "dereddened": p.options.get("dereddened"),
        }
        for p in PRESETS.values()
    ]


# ----------------------------------------------------------------------------- semantics
