"""What a catalogue's band values mean beyond their unit: magnitude system, asinh softening
and Galactic extinction, decided once per band for the photometry plan, and the warnings
when two catalogues that meet (a map's training set and a new catalogue, the inputs of a
deep/wide calibration) were read differently.

(Split from ``presets``: the presets say what a survey's columns are; this module decides
what their values mean, from the presets' word, the file's units and the user's
declarations. Magnitude systems, extinction columns and their sources are described in
``presets``' docstring.)
"""

from __future__ import annotations

import re
from typing import Any

from som.bands import SDSS_SOFTENING, Band
from som.photometry import column_mag_system

from .presets import Preset, photometry_field_name


def _preset_maps(preset: Preset | None, field_name: str, column: str) -> bool:
    """Whether ``preset`` itself maps ``column`` to ``field_name`` (not the user's override
    or the generic band detection): only then does the preset's word on it count."""
    if preset is None:
        return False
    return column.lower() in {c.lower() for c in preset.columns.get(field_name, [])}


def magnitude_system(
    band: Band, column: str, preset: Preset | None, unit: str | None
) -> tuple[str, str]:
    """The magnitude system of ``band``'s magnitudes in ``column`` and why it is believed.

    One source decides, the first of: the user's declaration for this catalogue (a declared
    band with ``system``), the file's unit (``mag(AB)``, ``VEGAmag``), the preset that mapped
    the column (its ``mag_systems`` option, else AB: a preset is written against a schema
    and says when that schema is not AB), somcal's own column name ``mag_<band>`` (AB: it is
    what somcal writes, so its target lists read back unchanged), and last the filter's
    default, the system its survey's own catalogues publish (Vega for 2MASS, WISE and
    UKIDSS; AB for the rest).
    So an offset is applied once, never by two sources.
    """
    if band.system_declared:
        return band.system, "declared for this catalogue"
    from_unit = column_mag_system(unit)
    if from_unit is not None:
        return from_unit, f"the file's unit {unit!r}"
    field_name = photometry_field_name("mag", "value", band.name)
    if preset is not None and _preset_maps(preset, field_name, column):
        system = preset.options.get("mag_systems", {}).get(band.name, "AB")
        return system, f"preset {preset.name}"
    if column.lower() == field_name.lower():
        # somcal's own column name: what somcal writes (target lists, stored catalogues) is
        # AB, so reading its own files back must not shift them
        return "AB", f"somcal's own column name {field_name!r} (AB, as somcal writes it)"
    if band.system == "AB":
        return "AB", "AB assumed (no preset, unit or declaration says otherwise)"
    return band.system, f"the system {band.survey or band.name} catalogues publish"


def band_semantics(
    band: Band,
    kind: str,
    value: str,
    mapping: dict[str, str],
    preset: Preset | None,
    units: dict[str, str],
) -> tuple[dict[str, Any], list[str]]:
    """What a band's values mean beyond their unit, for the photometry plan: the magnitude
    system and its offset to AB, the asinh softening of SDSS magnitudes, and Galactic
    extinction. Returns (fields of the plan's ``BandColumns``, warnings); raises
    ``ValueError`` when a magnitude system has no known offset to AB.

    Extinction, one rule for every survey: a band is dereddened with the survey's own
    correction when the file carries it (an ``extinction_<b>`` or ``mwtrans_<b>`` field,
    mapped by the preset or the user; unmap it with ``{"extinction_<b>": null}`` to turn it
    off); magnitudes the catalogue already corrected (DES ``*_CORRECTED``, the preset's
    ``dereddened`` option) are never corrected again; otherwise the band is left as it is.
    Each band's state is written in the ingest summary.
    """
    out: dict[str, Any] = {
        "system": None,
        "ab_offset": 0.0,
        "softening": None,
        "system_source": None,
        "extinction": None,
        "extinction_kind": None,
        "dereddened": "no",
    }
    warnings: list[str] = []
    if kind == "mag":
        system, why = magnitude_system(band, value, preset, units.get(value))
        offset = band.ab_offset(system)
        if offset is None:
            raise ValueError(
                f"band {band.name}: magnitudes in column {value!r} are {system} ({why}) but "
                f"somcal knows no {system}-to-AB offset for {band.describe()}; declare the "
                f'band with its offset, e.g. bands=[{{"name": "{band.name}", "system": '
                f'"{system}", "ab_offset": <m_AB - m_{system}>}}]'
            )
        out.update(system=system, ab_offset=float(offset), system_source=why)
        if system == "SDSS":
            out["softening"] = SDSS_SOFTENING.get(band.name)
            if out["softening"] is None:
                raise ValueError(
                    f"band {band.name}: SDSS asinh magnitudes need the softening of an SDSS "
                    "filter; declare the band's system as AB or Vega instead"
                )
        if system != "AB":
            warnings.append(
                f"band {band.name}: {system} magnitudes in {value!r} ({why}) converted to AB "
                f"with m_AB = m_{system} {offset:+.3f}"
                + (" after asinh to Pogson magnitudes" if system == "SDSS" else "")
            )
    elif band.system_declared and band.system != "AB":
        # Fluxes are AB-referenced unless the user says otherwise: unWISE's are "Vega
        # nanomaggies" (Schlafly et al. 2019). Only an explicit declaration shifts a flux.
        offset = band.ab_offset(band.system)
        if band.system == "SDSS" or offset is None:
            raise ValueError(
                f"band {band.name}: fluxes declared {band.system} need a Vega offset "
                "(ab_offset); SDSS asinh applies to magnitudes only"
            )
        out.update(system=band.system, ab_offset=float(offset), system_source="declared")
        warnings.append(
            f"band {band.name}: fluxes in {value!r} declared Vega-referenced; their "
            f"magnitudes converted to AB with {offset:+.3f}"
        )
    pattern = (preset.options.get("dereddened") if preset is not None else None) or ""
    already = bool(pattern) and re.search(pattern, value, re.IGNORECASE) is not None
    for role in ("mag", "transmission"):
        col = mapping.get(photometry_field_name("extinction", role, band.name))
        if col is None:
            continue
        if already:
            warnings.append(
                f"band {band.name}: {value!r} is already corrected for Galactic extinction "
                f"in the catalogue; {col!r} was not applied again"
            )
            break
        out.update(extinction=col, extinction_kind=role, dereddened="applied")
        break
    if already:
        out["dereddened"] = "in the catalogue"
    return out, warnings


def extinction_warnings(states: dict[str, str]) -> list[str]:
    """A warning when some bands are dereddened and others not: colours across the two
    groups carry the difference of their extinctions."""
    corrected = [b for b, s in states.items() if s != "no"]
    plain = [b for b, s in states.items() if s == "no"]
    if corrected and plain:
        return [
            f"bands {', '.join(corrected)} are corrected for Galactic extinction but "
            f"{', '.join(plain)} are not: colours between the two groups are biased by "
            "their extinction difference; map extinction_<b>/mwtrans_<b> for the others or "
            'unmap the correction ({"extinction_<b>": null}) to treat all bands alike'
        ]
    return []


def plan_warnings(plan: list[Any]) -> list[str]:
    """What an ingest tells its user about the plan's bands (``BandColumns``): magnitude
    systems converted to AB, corrections not applied twice, and mixed dereddening."""
    out = [note for b in plan for note in getattr(b, "notes", ())]
    return out + extinction_warnings({b.band: b.dereddened for b in plan})


def extinction_mismatch(
    reference: dict[str, Any] | None, summary: dict[str, Any] | None, what: str
) -> list[str]:
    """A warning when a catalogue and the one a map was trained on (``reference``, both
    ingest summaries) disagree on which of their shared bands are dereddened: the colours
    then differ by the extinction, and the catalogue's rows land in the wrong cells.
    Catalogues ingested before the state was recorded are not compared."""
    ref = (reference or {}).get("photometry") or {}
    new = (summary or {}).get("photometry") or {}

    def dereddened(entry: dict[str, Any]) -> bool | None:
        state = (entry.get("galactic_extinction") or {}).get("dereddened")
        return None if state is None else state != "no"

    differ = [
        band
        for band, entry in new.items()
        if band in ref
        and dereddened(entry) is not None
        and dereddened(ref[band]) is not None
        and dereddened(entry) != dereddened(ref[band])
    ]
    if not differ:
        return []
    return [
        f"{what}: band(s) {', '.join(differ)} are corrected for Galactic extinction in one "
        "catalogue and not in the other, so their colours differ by the extinction; ingest "
        "both alike (map or unmap extinction_<b>/mwtrans_<b>)"
    ]


def _system_handling(entry: dict[str, Any]) -> tuple[str, float] | None:
    """How a band's values were brought to AB (ingest summary entry): the system they were
    taken to be in and the offset applied; fluxes are AB-referenced unless declared."""
    if not entry or "kind" not in entry:
        return None
    system = entry.get("system") or "AB"
    return system, round(float(entry.get("ab_offset") or 0.0), 4)


def photometry_mismatch(
    a: dict[str, Any] | None, b: dict[str, Any] | None, a_what: str, b_what: str
) -> list[str]:
    """Warnings for two catalogues whose photometry is compared (ingest summaries ``a`` and
    ``b``, described as ``a_what`` and ``b_what``): in the bands they share, one dereddened
    and the other not, or magnitudes taken to be in different systems (one Vega converted
    with an offset, the other assumed AB). Either makes their colours differ by the
    extinction or the offset, not by the galaxies. Catalogues ingested before these states
    were recorded are not compared."""
    pa = (a or {}).get("photometry") or {}
    pb = (b or {}).get("photometry") or {}
    shared = [band for band in pb if band in pa]

    def dereddened(entry: dict[str, Any]) -> str | None:
        return (entry.get("galactic_extinction") or {}).get("dereddened")

    out: list[str] = []
    state = {"no": "not corrected", "applied": "corrected at ingest"}

    def says(entry: dict[str, Any]) -> str:
        value = dereddened(entry) or ""
        return state.get(value, f"corrected {value}")

    ext = [
        f"{band} ({says(pa[band])} in {a_what}, {says(pb[band])} in {b_what})"
        for band in shared
        if dereddened(pa[band]) is not None
        and dereddened(pb[band]) is not None
        and (dereddened(pa[band]) != "no") != (dereddened(pb[band]) != "no")
    ]
    if ext:
        out.append(
            f"{a_what} and {b_what} differ in Galactic extinction correction in band(s) "
            f"{'; '.join(ext)}: their colours differ by the extinction; ingest both alike "
            "(map or unmap extinction_<b>/mwtrans_<b>)"
        )

    def said(entry: dict[str, Any]) -> str:
        system, offset = _system_handling(entry)  # type: ignore[misc]
        how = entry.get("system_source") or ("fluxes" if entry.get("kind") == "flux" else "")
        shift = f", {offset:+.3f} to AB" if offset else ""
        return f"{system}{shift}" + (f" ({how})" if how else "")

    systems = [
        f"{band}: {said(pa[band])} in {a_what}, {said(pb[band])} in {b_what}"
        for band in shared
        if _system_handling(pa[band]) is not None
        and _system_handling(pb[band]) is not None
        and _system_handling(pa[band]) != _system_handling(pb[band])
    ]
    if systems:
        out.append(
            f"{a_what} and {b_what} took magnitudes in different systems: "
            + "; ".join(systems)
            + ": if one is wrong their colours differ by the offset; declare the system "
            '(bands=[{"name": ..., "system": ...}], --mag-system) where it is not known'
        )
    return out
