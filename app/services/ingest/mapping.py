"""Column mapping of an ingest: which file column holds which somcal field (preset,
automatic detection and the caller's overrides, band names canonicalised against the band
registry and the catalogue's declared bands), and the photometry plan: per band, magnitude
or flux, value and error columns, and the flux unit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.services import band_semantics, presets
from app.services.errors import BadRequestError, InvalidInputError, RowError
from som.bands import REGISTRY, BandError, BandRegistry
from som.photometry import column_unit_kind, flux_unit_in_jy


@dataclass(frozen=True)
class BandColumns:
    """Where one band's photometry is in the file and what it is."""

    band: str  # canonical name
    kind: str  # "mag" | "flux"
    value: str  # column
    error: str | None  # column
    flux_unit: str | None = None
    #: ``error`` holds inverse variances 1/sigma^2 (in the flux unit^-2), not sigma.
    error_is_ivar: bool = False
    # What the values mean beyond their unit (``band_semantics.band_semantics``): magnitude system
    # and its offset m_AB - m_system, SDSS asinh softening, Galactic extinction column.
    system: str | None = None
    ab_offset: float = 0.0
    softening: float | None = None
    system_source: str | None = None
    extinction: str | None = None
    extinction_kind: str | None = None
    dereddened: str = "no"
    notes: tuple[str, ...] = ()


def registry_for(declared: list[dict[str, Any]] | None) -> BandRegistry:
    try:
        return REGISTRY.with_bands(declared or [])
    except BandError as exc:
        raise InvalidInputError(
            f"declared bands: {exc}", [RowError(None, "bands", None, str(exc))]
        ) from exc


def resolve_mapping(
    kind: str,
    available: list[str],
    preset_name: str | None,
    overrides: dict[str, str | None] | None,
    registry: BandRegistry = REGISTRY,
    file: str | None = None,
) -> tuple[presets.Preset, dict[str, str], list[str]]:
    """The preset used, the final {somcal field: file column} mapping and warnings.

    Photometry fields are canonicalised (``mag_IE`` becomes ``mag_VIS``); an unknown band
    is an error that suggests the nearest known names.
    """
    if preset_name in (None, "", "auto"):
        preset = presets.auto_preset(kind, available)
    else:
        found = presets.get_preset(preset_name)
        if found is None:
            raise BadRequestError(
                f"unknown preset {preset_name!r}; known presets: {', '.join(presets.PRESETS)}"
            )
        preset = found
    allowed = presets.fields_for(kind)
    mapping: dict[str, str] = {}
    warnings: list[str] = []
    errors: list[RowError] = []

    def canonical(f: str) -> str | None:
        """The field with its band's canonical name; None (and an error) if unknown."""
        parsed = presets.photometry_field(f)
        if parsed is None:
            return f if f in allowed else None
        pkind, role, band = parsed
        try:
            name = registry.canonical(band)
        except BandError as exc:
            errors.append(RowError(None, f, None, f"unknown field {f!r}: {exc}"))
            return None
        return presets.photometry_field_name(pkind, role, name)

    for f, candidates in preset.columns.items():
        if f not in allowed and presets.photometry_field(f) is None:
            continue
        col = presets.resolve_candidates(candidates, available)
        if col is not None:
            mapping[canonical(f) or f] = col
    if preset.options.get("generic_bands"):
        found, warnings = presets.detect_photometry(available, registry)
        for f, col in found.items():
            mapping.setdefault(f, col)
    for f, col in (overrides or {}).items():
        target = canonical(str(f))
        if target is None:
            if presets.photometry_field(str(f)) is None:
                errors.append(
                    RowError(
                        None,
                        str(col),
                        None,
                        f"unknown field {f!r} for a {kind} catalogue; fields are: "
                        f"{', '.join(allowed)} and mag_<band>, magerr_<band>, flux_<band>, "
                        "fluxerr_<band> for any known or declared band",
                    )
                )
            continue
        if col is None or col == "":
            mapping.pop(target, None)  # explicit null unmaps a preset column
            continue
        if col not in available:
            elements = [c for c in available if c.startswith(f"{col}[") and c.endswith("]")]
            reason = (
                f"column {col!r} (for {f}) is a vector of {len(elements)} values per row; "
                f"map the element that holds the band, one of {elements[0]} .. "
                f"{elements[-1]} (0-based), e.g. {{{f!r}: {elements[0]!r}}}"
                if elements
                else f"column {col!r} (for {f}) is not in the file"
            )
            errors.append(RowError(file, str(col), None, reason))
            continue
        mapping[target] = col
        # A band is a magnitude or a flux, not both: the override wins.
        parsed = presets.photometry_field(target)
        if parsed is not None and parsed[0] in ("mag", "flux"):
            other = "flux" if parsed[0] == "mag" else "mag"
            for stale in (
                presets.photometry_field_name(other, "value", parsed[2]),
                presets.photometry_field_name(other, "error", parsed[2]),
            ):
                if stale in mapping and stale not in (overrides or {}):
                    mapping.pop(stale)
    if errors:
        raise InvalidInputError(
            f"{file}: column mapping does not fit the file"
            if file
            else "column mapping does not fit the file",
            errors,
            available_columns=available[:200],
        )
    used = list(mapping.values())
    dupes = sorted({c for c in used if used.count(c) > 1})
    if dupes:
        fields = [f for f, c in mapping.items() if c in dupes]
        raise InvalidInputError(
            f"column {dupes[0]!r} is mapped to several fields ({', '.join(fields)})",
            [RowError(None, dupes[0], None, "mapped to more than one field")],
        )
    return preset, mapping, warnings


def band_columns(
    mapping: dict[str, str],
    registry: BandRegistry,
    flux_unit: str | None,
    units: dict[str, str],
    file: str,
    default_flux_unit: str | None = None,
    preset: presets.Preset | None = None,
) -> list[BandColumns]:
    """The photometry plan in wavelength order, with each flux band's unit: the request's
    ``flux_unit``, else the file's, else the preset's (``default_flux_unit``: a survey whose
    fluxes always have one unit, such as Rubin's nJy)."""
    by_band: dict[str, dict[str, str]] = {}
    for f, col in mapping.items():
        parsed = presets.photometry_field(f)
        if parsed is None:
            continue
        kind, role, band = parsed
        if kind != "extinction":  # read with the band's values (band_semantics.band_semantics)
            by_band.setdefault(band, {})[f"{kind}_{role}"] = col
    errors: list[RowError] = []
    plan: list[BandColumns] = []
    for band in registry.ordered_names(list(by_band)):
        cols = by_band[band]
        kinds = {k.split("_")[0] for k in cols}
        if len(kinds) > 1:
            errors.append(
                RowError(
                    file,
                    cols.get("mag_value") or cols.get("mag_error"),
                    None,
                    f"band {band} is mapped both as a magnitude and as a flux",
                )
            )
            continue
        kind = kinds.pop()
        value = cols.get(f"{kind}_value")
        error = cols.get(f"{kind}_error")
        # sigma when the file has it, else an inverse variance (never both for one band).
        error_is_ivar = error is None and cols.get(f"{kind}_ivar") is not None
        if error_is_ivar:
            error = cols[f"{kind}_ivar"]
        if value is None:
            errors.append(
                RowError(file, error, None, f"error column given for band {band} without a value")
            )
            continue
        declared, declared_jy = column_unit_kind(units.get(value))
        if declared is not None and declared != kind:
            errors.append(
                RowError(
                    file,
                    value,
                    None,
                    f"the file gives column {value!r} the unit {units[value]!r}, a "
                    f"{'flux' if declared == 'flux' else 'magnitude'}, but it is mapped as "
                    f"{kind}_{band}; map it as "
                    f"{presets.photometry_field_name(declared, 'value', band)}",
                )
            )
            continue
        unit = None
        if kind == "flux":
            unit = flux_unit or units.get(value) or default_flux_unit
            if unit is None:
                errors.append(
                    RowError(
                        file,
                        value,
                        None,
                        f"flux column for band {band} has no unit in the file; give flux_unit "
                        "(nJy, uJy, mJy, Jy, nanomaggy)",
                    )
                )
                continue
            try:
                size = flux_unit_in_jy(unit)
            except ValueError as exc:
                from_file = flux_unit is None and units.get(value) == unit
                reason = (
                    f"the file gives flux column {value!r} the unit {unit!r}, which is not a "
                    "flux density astropy understands; give flux_unit (nJy, uJy, mJy, Jy, "
                    "nanomaggy) to say what it is"
                    if from_file
                    else str(exc)
                )
                errors.append(RowError(file, value, None, reason))
                continue
            if declared_jy is not None and not math.isclose(size, declared_jy, rel_tol=1e-9):
                errors.append(
                    RowError(
                        file,
                        value,
                        None,
                        f"the file gives column {value!r} the unit {units[value]!r} but "
                        f"flux_unit is {flux_unit!r}; leave flux_unit out to use the file's",
                    )
                )
                continue
        try:
            meaning, notes = band_semantics.band_semantics(
                registry.get(band), kind, value, mapping, preset, units
            )
        except ValueError as exc:
            errors.append(RowError(file, value, None, str(exc)))
            continue
        plan.append(
            BandColumns(
                band, kind, value, error, unit, error_is_ivar, **meaning, notes=tuple(notes)
            )
        )
    if errors:
        raise InvalidInputError(f"{file}: photometry columns do not fit", errors)
    return plan
