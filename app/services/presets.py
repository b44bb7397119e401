"""Column-mapping presets for the catalogues somcal users bring.

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
  broad-line 13.x/14.x and secondary-target 23.x/24.x variants). No Y or H band.
* COSMOS spectroscopic compilation (Khostovan et al. 2025): ``Id_specz, ra_corrected,
  dec_corrected, specz, flag, Confidence_level, survey``; ``flag`` is 0-4 or 9, +10 for broad
  lines; flags 3 and 4 (>= 95% confidence, also 13/14) are secure, 9 (single line, 85%) is not.
* somcal mock / generic: ``id, ra, dec, z_true, z_phot, z_spec, mag_{b}, magerr_{b}``.
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
    ("mag_", "mag", "value"),
    ("flux_", "flux", "value"),
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
    return f"{kind}{'err' if role == 'error' else ''}_{band}"


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


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    columns: dict[str, list[str]]
    secure_rule: dict[str, Any] | None = None
    survey: str | None = None  # constant survey name when the file has no survey column
    options: dict[str, Any] = field(default_factory=dict)


def _bands(value: str, error: str, bands: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for band, tag in bands.items():
        out[f"mag_{band}"] = [v.format(b=tag) for v in value.split("|")]
        out[f"magerr_{band}"] = [e.format(b=tag) for e in error.split("|")]
    return out


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
            **_bands(
                "{b}_photzi25",
                "e{b}_photzi25",
                {"u": "u", "g": "g", "r": "r", "i": "i", "z": "z", "J": "j"},
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
}
PRESET_ALIASES = {"khostovan2025": "cosmos_specz_compilation", "mock": "somcal_mock"}


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
        }
        for p in PRESETS.values()
    ]
