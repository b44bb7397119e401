"""Photometric units: magnitudes and fluxes (nJy … Jy, maggies) as astropy parses them,
and fluxes to AB magnitudes with their errors."""

from __future__ import annotations

import math
import warnings

import numpy as np

#: Flux density of an AB magnitude of zero, in Jy (the convention used by the field).
AB_ZEROPOINT_JY = 3631.0

# d(mag)/d(ln f): the factor in sigma_m = 2.5/ln(10) * sigma_f / f.
POGSON = 2.5 / math.log(10.0)


#: How astronomers write units in TUNIT/ECSV/VOTable headers that astropy does not parse,
#: as astropy spells them. Keys are matched per word, case-insensitively, and only when
#: astropy refused the text as written (so ``MJy``, megajansky, is never read as ``mJy``;
#: ``MJY`` stays unrecognised rather than guessed).
UNIT_ALIASES: dict[str, str] = {
    "nanomaggies": "nanomaggy",  # SDSS, Legacy Surveys TUNIT
    "nanomaggys": "nanomaggy",
    "nmgys": "nanomaggy",
    "maggies": "maggy",
    "ujy": "uJy",
    "µjy": "uJy",
    "μjy": "uJy",
    "microjy": "uJy",
    "microjanskys": "uJy",
    "njy": "nJy",
    "nanojy": "nJy",
    "nanojanskys": "nJy",
    "millijy": "mJy",
    "jy": "Jy",
    "janskys": "Jy",
}

#: Words that name a magnitude, and the magnitude systems a unit may name (astropy has
#: ``mag(AB)`` and ``mag(ST)`` but no Vega).
MAG_WORDS = frozenset({"mag", "mags", "magnitude", "magnitudes"})
SYSTEM_WORDS = {"ab": "AB", "vega": "Vega", "st": "ST"}
_MAG_COMPOUNDS = {f"{k}{m}": v for k, v in SYSTEM_WORDS.items() for m in ("mag", "mags")}


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"[a-zµμ]+", text.lower())


def magnitude_spelling(text: str | None) -> tuple[bool, str | None]:
    """Whether ``text`` is an astronomer's spelling of a magnitude unit, and the system it
    names: ``AB mag``, ``ABmag``, ``mag_AB``, ``mag(AB)``, ``AB magnitude`` -> (True, "AB");
    ``VEGAmag``, ``mag(Vega)`` -> (True, "Vega"); ``STmag`` -> (True, "ST"); ``mag``,
    ``MAG``, ``mags``, ``magnitude`` -> (True, None); anything else, including units with
    numbers or operators (``mag/arcsec2``, ``1/mag``), -> (False, None). Only words of this
    small vocabulary, so a flux or surface-brightness unit is never taken for one."""
    if not text or any(ch.isdigit() or ch in "/*^." for ch in str(text)):
        return False, None
    words = _words(str(text))
    if not words:
        return False, None
    systems: set[str] = set()
    has_mag = False
    for w in words:
        if w in MAG_WORDS:
            has_mag = True
        elif w in _MAG_COMPOUNDS:
            has_mag = True
            systems.add(_MAG_COMPOUNDS[w])
        elif w in SYSTEM_WORDS:
            systems.add(SYSTEM_WORDS[w])
        else:
            return False, None
    if not has_mag and len(words) != 1:
        return False, None  # "AB ST": not a unit
    if len(systems) > 1:
        return False, None  # "mag(AB) Vega": says two things, so it says nothing sure
    return True, next(iter(systems), None)


def parse_unit(text: str, strict: bool):
    """An astropy unit from a header's unit text: as written if astropy reads it, else
    through :data:`UNIT_ALIASES` (``nanomaggies``, ``microJy``, ``UJY``); the magnitude
    spellings of :func:`magnitude_spelling` first (``ABmag`` -> ``mag(AB)``, a Vega magnitude
    -> ``mag``). Not understood: ``ValueError`` when ``strict``, else an ``UnrecognizedUnit``."""
    from astropy import units as u

    with warnings.catch_warnings():
        # "erg/s/cm2/Hz" is what people write; astropy warns that FITS dislikes two slashes.
        warnings.simplefilter("ignore")
        text = str(text).strip()
        # first: astropy reads "AB mag" as the product of a flux unit and a magnitude
        is_mag, system = magnitude_spelling(text)
        if is_mag:
            return u.Unit(f"mag({system})") if system in ("AB", "ST") else u.mag
        try:
            return u.Unit(text, parse_strict="raise")
        except (ValueError, TypeError):
            pass
        import re

        aliased = re.sub(
            r"[A-Za-zµμ]+", lambda m: UNIT_ALIASES.get(m.group().lower(), m.group()), text
        )
        if aliased != text:
            try:
                return u.Unit(aliased, parse_strict="raise")
            except (ValueError, TypeError):
                pass
        return u.Unit(text, parse_strict="raise" if strict else "silent")


def is_magnitude_unit(unit) -> bool:
    from astropy import units as u

    # "AB" and "ST" parse as flux units (3631 Jy, ...) but in catalogue headers they label
    # magnitudes.
    if isinstance(unit, u.UnrecognizedUnit):
        return False
    return isinstance(unit, u.MagUnit) or unit == u.mag or unit.to_string() in ("AB", "ST")


def is_flux_unit(unit) -> bool:
    from astropy import units as u

    if isinstance(unit, u.UnrecognizedUnit) or is_magnitude_unit(unit):
        return False
    try:
        return unit.is_equivalent(u.Jy)
    except Exception:  # function units and other exotic kinds: not a plain flux density
        return False


def flux_unit_in_jy(flux_unit: str) -> float:
    """Size of one ``flux_unit`` in Jy; ``ValueError`` if it is not a flux density unit."""

    try:
        unit = parse_unit(flux_unit, strict=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"flux_unit {flux_unit!r} is not a unit astropy understands") from exc
    size = unit_size_jy(unit)
    if size is None:
        raise ValueError(
            f"flux_unit {flux_unit!r} is not a spectral flux density "
            "(expected e.g. 'uJy', 'nJy', 'Jy', 'erg/s/cm2/Hz', 'nanomaggy')"
        )
    return size


def column_unit_kind(text: str | None) -> tuple[str | None, float | None]:
    """What a column's declared unit says it holds: ``("flux", size in Jy)``, ``("mag",
    None)``, or ``(None, None)`` for no unit or one that is neither (counts, "dimensionless").

    The same reading of FITS/ECSV/VOTable/Parquet unit strings as ``ColourFeatures`` applies
    to astropy tables, for callers that read a file's header themselves (the service).
    """
    if not text:
        return None, None
    unit = parse_unit(str(text), strict=False)
    if is_magnitude_unit(unit):
        return "mag", None
    size = unit_size_jy(unit)
    return ("flux", size) if size is not None else (None, None)


def unit_size_jy(unit) -> float | None:
    """Size of a parsed flux unit in Jy, or None if it is not a flux unit."""
    from astropy import units as u

    if _is_maggy_unit(unit):
        # SDSS / Legacy Survey fluxes: a maggy is by definition the AB zero-point flux.
        return float(unit.to(u.maggy)) * AB_ZEROPOINT_JY
    if is_flux_unit(unit):
        return float(unit.to(u.Jy))
    return None


def _is_maggy_unit(unit) -> bool:
    from astropy import units as u

    if isinstance(unit, u.UnrecognizedUnit) or unit == u.dimensionless_unscaled:
        return False
    try:
        return unit.is_equivalent(u.maggy)
    except Exception:
        return False


def flux_to_mag(
    flux: np.ndarray,
    flux_err: np.ndarray | None = None,
    flux_unit: str = "uJy",
) -> tuple[np.ndarray, np.ndarray | None]:
    """AB magnitudes (and errors) from fluxes; non-positive or non-finite fluxes give NaN.

    ``mag = -2.5 log10(f / 3631 Jy)`` and ``sigma_mag = 2.5/ln(10) * sigma_f / f`` (first-order
    propagation, which understates the error at low signal-to-noise).

    Parameters
    ----------
    flux, flux_err : array_like, shape (n,)
        Flux densities and their 1-sigma errors in ``flux_unit``.
    flux_unit : str
        Any astropy spectral flux density unit ("uJy", "nJy", "Jy", "erg/s/cm2/Hz", ...) or
        "nanomaggy" (1 maggy = 3631 Jy).
    """
    zeropoint = ab_zeropoint(flux_unit_in_jy(flux_unit))
    f = np.asarray(flux, dtype=np.float64)
    ok = np.isfinite(f) & (f > 0)
    mag = np.full(f.shape, np.nan)
    mag[ok] = zeropoint - 2.5 * np.log10(f[ok])
    if flux_err is None:
        return mag, None
    e = np.asarray(flux_err, dtype=np.float64)
    err = np.full(f.shape, np.nan)
    err[ok] = e[ok] / f[ok] * POGSON  # same operation order as ColourFeatures
    return mag, err


def ab_zeropoint(unit_in_jy: float) -> float:
    # mag = -2.5 log10(f * unit / 3631 Jy) = zeropoint - 2.5 log10(f): 23.9 for uJy, 31.4 for nJy.
    return 2.5 * math.log10(AB_ZEROPOINT_JY / unit_in_jy)


def column_mag_system(text: str | None) -> str | None:
    """The magnitude system a column's declared unit names, if any: ``"AB"`` for ``ABmag``,
    ``AB mag``, ``mag(AB)``, ``AB`` or ``mag_AB``; ``"Vega"`` for ``VEGAmag``, ``mag(Vega)``;
    ``"ST"`` for ``STmag``, ``mag(ST)`` (no offset to AB without the filter's pivot: the
    ingest refuses it unless declared); None for a plain ``mag`` or no unit (the system is
    then not known) and for any unit that is not a magnitude."""
    if not text:
        return None
    is_mag, system = magnitude_spelling(str(text))
    if is_mag:
        return system
    from astropy import units as u

    unit = parse_unit(str(text), strict=False)
    if isinstance(unit, u.MagUnit):
        name = unit.physical_unit.to_string()
        return {"AB": "AB", "ST": "ST"}.get(name)
    return None
