"""Photometric bands as data: a registry of names, filters and effective wavelengths.

A calibration team brings its own bands: LSST ``u g r i z y``, UltraVISTA ``Ks``, Euclid
``VIS``/``IE`` and ``YE JE HE``, DES ``g r i z Y``, KiDS ``u g r i``... somcal only needs
to know, for each band a catalogue declares, *which* filter it is (so that two catalogues
with the same filter can share a map) and *where* it sits in wavelength (so that colours
are formed between adjacent bands). Names are case-sensitive: LSST ``y`` (0.97 µm) is not
VISTA ``Y`` (1.02 µm).

The plain names (``u g r i z y Z Y J H Ks``...) are the filters somcal's COSMOS-like mock
uses (CFHT u*, HSC grizy, VISTA ZYJHKs); survey-specific filters have a suffix
(``y_lsst``, ``g_des``, ``u_kids``, ``Ks_vista``...). Aliases (``IE`` for ``VIS``,
``Y_E`` for ``YE``) resolve to one canonical name. A user declares any other band with an
effective wavelength, or with a filter curve from which the pivot wavelength is computed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Band",
    "BandError",
    "BandRegistry",
    "MAG_SYSTEMS",
    "REGISTRY",
    "SDSS_SOFTENING",
    "parse_system",
    "pivot_wavelength",
]


class BandError(ValueError):
    """An unknown or inconsistent band, with the nearest known names as suggestions."""

    def __init__(self, reason: str, *, band: str | None = None, suggestions: Sequence[str] = ()):
        self.reason = reason
        self.band = band
        self.suggestions = list(suggestions)
        super().__init__(reason)


@dataclass(frozen=True)
class Band:
    """One filter.

    Attributes
    ----------
    name : str
        Canonical, case-sensitive name (``"y_lsst"``, ``"Ks"``).
    wavelength : float
        Effective (pivot) wavelength in Å; orders the bands for colours.
    survey : str
        Survey or instrument, for people (``"LSST"``, ``"UltraVISTA/VISTA VIRCAM"``).
    filter : str
        Filter description (``"LSST y"``).
    aliases : tuple of str
        Other names that mean this filter.
    """

    name: str
    wavelength: float
    survey: str = ""
    filter: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    builtin: bool = True
    #: The magnitude system this filter's magnitudes are in when nobody says otherwise:
    #: the one its survey's own catalogues publish ("AB", "Vega", or "SDSS": asinh
    #: luptitudes with small AB offsets). Fluxes are physical units and have no system.
    system: str = "AB"
    #: ``((system, m_AB - m_system), ...)``: the published offsets to AB of this filter.
    ab_offsets: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    #: The system was declared for one catalogue (by its user), not the filter's default.
    system_declared: bool = False

    def ab_offset(self, system: str) -> float | None:
        """``m_AB - m_system`` for this filter: 0 for AB, None if the offset is unknown."""
        if system == "AB":
            return 0.0
        return dict(self.ab_offsets).get(system)

    def describe(self) -> str:
        what = self.filter or self.survey or "user band"
        return f"{self.name} ({what}, {self.wavelength:.0f} Å)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "wavelength": self.wavelength,
            "survey": self.survey,
            "filter": self.filter,
            "aliases": list(self.aliases),
            "builtin": self.builtin,
            "system": self.system,
            "ab_offsets": dict(self.ab_offsets),
        }


def pivot_wavelength(wavelength: np.ndarray, transmission: np.ndarray) -> float:
    """Pivot wavelength ``sqrt(∫T λ dλ / ∫T/λ dλ)`` of a filter curve (same unit as input).

    The pivot wavelength is the one for which AB magnitudes of f_ν and f_λ agree; it is what
    photometric surveys quote as a filter's effective wavelength.
    """
    lam = np.asarray(wavelength, dtype=np.float64)
    t = np.asarray(transmission, dtype=np.float64)
    ok = np.isfinite(lam) & np.isfinite(t) & (lam > 0)
    lam, t = lam[ok], np.clip(t[ok], 0, None)
    if lam.size < 2 or not (t > 0).any():
        raise BandError("filter curve needs at least two points with positive transmission")
    order = np.argsort(lam)
    lam, t = lam[order], t[order]
    num = np.trapezoid(t * lam, lam)
    den = np.trapezoid(t / lam, lam)
    if not (num > 0 and den > 0):
        raise BandError("filter curve has no area")
    return float(math.sqrt(num / den))


def read_filter_curve(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Å) and transmission from a two-column text file or an ECSV/FITS table.

    Text files are whitespace-separated with ``#`` comments (LePhare ``.res``/``.pb``, SVO
    ``.dat``); tables take their first two columns, converted to Å when a unit is given.
    """
    path = Path(path)
    if path.suffix.lower() in (".ecsv", ".fits", ".fit", ".vot", ".xml"):
        from astropy import units as u
        from astropy.table import Table

        table = Table.read(path)
        lam_col, t_col = table.columns[0], table.columns[1]
        lam = np.asarray(lam_col, dtype=np.float64)
        if lam_col.unit is not None:
            lam = (lam * lam_col.unit).to_value(u.AA, equivalencies=u.spectral())
        return lam, np.asarray(t_col, dtype=np.float64)
    try:
        data = np.loadtxt(path, comments="#", usecols=(0, 1), ndmin=2)
    except (OSError, ValueError) as exc:
        raise BandError(f"{path}: cannot read a filter curve (two columns: Å, T): {exc}") from exc
    return data[:, 0], data[:, 1]


# Effective (pivot) wavelengths in Å. Sources: SVO Filter Profile Service values for the
# named instruments, rounded to 10 Å; ordering is all that colours need, identity is what
# the names carry.
_BUILTIN: tuple[tuple[str, float, str, str, tuple[str, ...]], ...] = (
    # The somcal mock's bands (COSMOS: CFHT u*, HSC grizy, VISTA ZYJHKs), plain names.
    ("u", 3810, "CFHT MegaCam", "CFHT u*", ("u_cfht", "ustar")),
    ("g", 4800, "Subaru HSC", "HSC g", ("g_hsc",)),
    ("r", 6200, "Subaru HSC", "HSC r", ("r_hsc",)),
    ("i", 7670, "Subaru HSC", "HSC i", ("i_hsc",)),
    ("z", 8910, "Subaru HSC", "HSC z", ("z_hsc",)),
    ("y", 9760, "Subaru HSC", "HSC y", ("y_hsc",)),
    ("Z", 8780, "UltraVISTA/VIKING (VISTA VIRCAM)", "VISTA Z", ("Z_vista",)),
    ("Y", 10210, "UltraVISTA/VIKING (VISTA VIRCAM)", "VISTA Y", ("Y_vista",)),
    ("J", 12520, "UltraVISTA/VIKING (VISTA VIRCAM)", "VISTA J", ("J_vista",)),
    ("H", 16450, "UltraVISTA/VIKING (VISTA VIRCAM)", "VISTA H", ("H_vista",)),
    ("Ks", 21470, "UltraVISTA/VIKING (VISTA VIRCAM)", "VISTA Ks", ("Ks_vista",)),
    # Rubin/LSST
    ("u_lsst", 3690, "Rubin LSST", "LSST u", ()),
    ("g_lsst", 4840, "Rubin LSST", "LSST g", ()),
    ("r_lsst", 6260, "Rubin LSST", "LSST r", ()),
    ("i_lsst", 7690, "Rubin LSST", "LSST i", ()),
    ("z_lsst", 8710, "Rubin LSST", "LSST z", ()),
    ("y_lsst", 9710, "Rubin LSST", "LSST y", ()),
    # Euclid VIS and NISP (Q1/DR names as aliases)
    ("VIS", 7180, "Euclid", "Euclid VIS (I_E)", ("IE", "I_E")),
    ("YE", 10810, "Euclid", "Euclid NISP Y_E", ("Y_E", "NISP_Y")),
    ("JE", 13670, "Euclid", "Euclid NISP J_E", ("J_E", "NISP_J")),
    ("HE", 17710, "Euclid", "Euclid NISP H_E", ("H_E", "NISP_H")),
    # DES (DECam)
    ("g_des", 4820, "DES (DECam)", "DECam g", ("g_decam",)),
    ("r_des", 6420, "DES (DECam)", "DECam r", ("r_decam",)),
    ("i_des", 7840, "DES (DECam)", "DECam i", ("i_decam",)),
    ("z_des", 9260, "DES (DECam)", "DECam z", ("z_decam",)),
    ("Y_des", 10090, "DES (DECam)", "DECam Y", ("Y_decam",)),
    # KiDS (VST OmegaCAM)
    ("u_kids", 3550, "KiDS (VST OmegaCAM)", "OmegaCAM u", ()),
    ("g_kids", 4780, "KiDS (VST OmegaCAM)", "OmegaCAM g", ()),
    ("r_kids", 6240, "KiDS (VST OmegaCAM)", "OmegaCAM r", ()),
    ("i_kids", 7630, "KiDS (VST OmegaCAM)", "OmegaCAM i", ()),
    # SDSS
    ("u_sdss", 3560, "SDSS", "SDSS u", ()),
    ("g_sdss", 4700, "SDSS", "SDSS g", ()),
    ("r_sdss", 6180, "SDSS", "SDSS r", ()),
    ("i_sdss", 7500, "SDSS", "SDSS i", ()),
    ("z_sdss", 8950, "SDSS", "SDSS z", ()),
    # CFHT MegaCam (CFHTLS / VVDS / CFHTLenS: u* g' r' i' z')
    ("g_cfht", 4750, "CFHT MegaCam", "CFHT g'", ()),
    ("r_cfht", 6250, "CFHT MegaCam", "CFHT r'", ()),
    ("i_cfht", 7700, "CFHT MegaCam", "CFHT i'", ("ic_cfht",)),
    ("z_cfht", 8850, "CFHT MegaCam", "CFHT z'", ()),
    # Subaru Suprime-Cam broad bands (COSMOS 2007-2015)
    ("B_subaru", 4460, "Subaru Suprime-Cam", "Suprime-Cam B", ("B",)),
    ("V_subaru", 5480, "Subaru Suprime-Cam", "Suprime-Cam V", ("V",)),
    ("g_subaru", 4780, "Subaru Suprime-Cam", "Suprime-Cam g+", ("gp",)),
    ("r_subaru", 6290, "Subaru Suprime-Cam", "Suprime-Cam r+", ("rp",)),
    ("i_subaru", 7680, "Subaru Suprime-Cam", "Suprime-Cam i+", ("ip",)),
    ("z_subaru", 9040, "Subaru Suprime-Cam", "Suprime-Cam z+", ("zp", "zpp")),
    # Near-infrared from other instruments
    ("J_wfcam", 12500, "UKIRT WFCAM", "WFCAM J", ()),
    ("H_wfcam", 16360, "UKIRT WFCAM", "WFCAM H", ()),
    ("K_wfcam", 22060, "UKIRT WFCAM", "WFCAM K", ()),
    ("Z_wfcam", 8830, "UKIRT WFCAM", "WFCAM Z", ()),
    ("Y_wfcam", 10310, "UKIRT WFCAM", "WFCAM Y", ()),
    ("Ks_wircam", 21570, "CFHT WIRCam", "WIRCam Ks", ()),
    ("H_wircam", 16250, "CFHT WIRCam", "WIRCam H", ()),
    # Ultraviolet and mid-infrared
    ("FUV", 1540, "GALEX", "GALEX FUV", ()),
    ("NUV", 2310, "GALEX", "GALEX NUV", ()),
    ("ch1", 35570, "Spitzer IRAC", "IRAC 3.6 µm", ("irac1",)),
    ("ch2", 45040, "Spitzer IRAC", "IRAC 4.5 µm", ("irac2",)),
    # Pan-STARRS1 (3pi, Medium Deep): Tonry et al. (2012) effective wavelengths
    ("g_ps1", 4850, "Pan-STARRS1", "PS1 g", ()),
    ("r_ps1", 6200, "Pan-STARRS1", "PS1 r", ()),
    ("i_ps1", 7530, "Pan-STARRS1", "PS1 i", ()),
    ("z_ps1", 8670, "Pan-STARRS1", "PS1 z", ()),
    ("y_ps1", 9630, "Pan-STARRS1", "PS1 y", ()),
    # 2MASS (Cohen et al. 2003)
    ("J_2mass", 12350, "2MASS", "2MASS J", ()),
    ("H_2mass", 16620, "2MASS", "2MASS H", ()),
    ("Ks_2mass", 21590, "2MASS", "2MASS Ks", ()),
    # WISE (Jarrett et al. 2011 isophotal wavelengths; the Legacy Surveys' W1-W4 fluxes)
    ("W1", 33530, "WISE", "WISE W1 3.4 µm", ("W1_wise",)),
    ("W2", 46030, "WISE", "WISE W2 4.6 µm", ("W2_wise",)),
    ("W3", 115610, "WISE", "WISE W3 12 µm", ("W3_wise",)),
    ("W4", 220880, "WISE", "WISE W4 22 µm", ("W4_wise",)),
)


#: Magnitude systems somcal converts to AB: ``AB``; ``Vega``; ``SDSS`` (asinh magnitudes,
#: "luptitudes", whose zero points are AB to within a few hundredths).
MAG_SYSTEMS = ("AB", "Vega", "SDSS")

#: The built-in filters whose magnitudes are not AB by default, or whose offsets to AB are
#: published: ``{band: (default system, {system: m_AB - m_system})}``. The default is the
#: system the filter's own survey catalogues publish; a preset or the user can say otherwise
#: for one catalogue.
_SYSTEMS: dict[str, tuple[str, dict[str, float]]] = {
    # 2MASS (Vega): Blanton & Roweis (2007, AJ 133, 734), Table 1.
    "J_2mass": ("Vega", {"Vega": 0.91}),
    "H_2mass": ("Vega", {"Vega": 1.39}),
    "Ks_2mass": ("Vega", {"Vega": 1.85}),
    # WISE (Vega in the WISE/AllWISE/unWISE catalogues' magnitudes): Jarrett et al. (2011,
    # ApJ 735, 112) and Cutri et al. (2012), Explanatory Supplement §IV.4.h.i. The Legacy
    # Surveys' FLUX_W1..W4 are AB nanomaggies: fluxes have no system and are never shifted.
    "W1": ("Vega", {"Vega": 2.699}),
    "W2": ("Vega", {"Vega": 3.339}),
    "W3": ("Vega", {"Vega": 5.174}),
    "W4": ("Vega", {"Vega": 6.620}),
    # UKIRT WFCAM (UKIDSS releases are Vega): Hewett et al. (2006, MNRAS 367, 454), Table 7.
    "Z_wfcam": ("Vega", {"Vega": 0.528}),
    "Y_wfcam": ("Vega", {"Vega": 0.634}),
    "J_wfcam": ("Vega", {"Vega": 0.938}),
    "H_wfcam": ("Vega", {"Vega": 1.379}),
    "K_wfcam": ("Vega", {"Vega": 1.900}),
    # VISTA VIRCAM: AB by default (UltraVISTA/COSMOS and KiDS-VIKING publish AB); the VSA's
    # VHS/VIKING/VIDEO source tables are Vega, declared per catalogue. Offsets: CASU's
    # VIRCAM filter-set page (González-Fernández et al. 2018, MNRAS 474, 5459).
    "Z": ("AB", {"Vega": 0.502}),
    "Y": ("AB", {"Vega": 0.600}),
    "J": ("AB", {"Vega": 0.916}),
    "H": ("AB", {"Vega": 1.366}),
    "Ks": ("AB", {"Vega": 1.827}),
    # SDSS (asinh magnitudes): u_AB = u_SDSS - 0.04, z_AB = z_SDSS + 0.02, g r i AB to
    # ~0.01 (Abazajian et al. 2004, AJ 128, 502, §3.3; SDSS DR7 "photometric calibration").
    "u_sdss": ("SDSS", {"SDSS": -0.04}),
    "g_sdss": ("SDSS", {"SDSS": 0.0}),
    "r_sdss": ("SDSS", {"SDSS": 0.0}),
    "i_sdss": ("SDSS", {"SDSS": 0.0}),
    "z_sdss": ("SDSS", {"SDSS": 0.02}),
}

#: Softening ``b`` of the SDSS asinh magnitudes (fluxes in maggies): Lupton, Gunn & Szalay
#: (1999, AJ 118, 1406); values of Stoughton et al. (2002, AJ 123, 485) and the SDSS
#: "magnitudes" documentation.
SDSS_SOFTENING = {
    "u_sdss": 1.4e-10,
    "g_sdss": 0.9e-10,
    "r_sdss": 1.2e-10,
    "i_sdss": 1.8e-10,
    "z_sdss": 7.4e-10,
}


def parse_system(text: Any) -> str:
    """The canonical name of a magnitude system (``"vega"`` -> ``"Vega"``), else BandError."""
    key = str(text).strip().lower()
    for system in MAG_SYSTEMS:
        if key == system.lower():
            return system
    raise BandError(
        f"magnitude system {text!r} is not one of {', '.join(MAG_SYSTEMS)}",
        suggestions=list(MAG_SYSTEMS),
    )


class BandRegistry:
    """Known bands by name and alias; :meth:`resolve` orders a band list by wavelength.

    ``REGISTRY`` holds the built-ins; ``REGISTRY.with_bands(declared)`` is a copy that also
    knows a catalogue's declared bands (the global registry is never mutated by a request).
    """

    def __init__(self, bands: Iterable[Band] = ()) -> None:
        self._bands: dict[str, Band] = {}
        self._aliases: dict[str, str] = {}
        for band in bands:
            self._add(band)

    # ------------------------------------------------------------------ building
    def _add(self, band: Band) -> None:
        for key in (band.name, *band.aliases):
            owner = self._aliases.get(key) or (key if key in self._bands else None)
            if owner is not None and owner != band.name:
                raise BandError(
                    f"band name {key!r} is already taken by {self._bands[owner].describe()}",
                    band=key,
                )
        self._bands[band.name] = band
        for alias in band.aliases:
            self._aliases[alias] = band.name

    def copy(self) -> BandRegistry:
        out = BandRegistry()
        out._bands = dict(self._bands)
        out._aliases = dict(self._aliases)
        return out

    def declare(
        self,
        name: str,
        wavelength: float | None = None,
        *,
        filter_curve: str | Path | None = None,
        survey: str = "",
        filter: str = "",
    ) -> Band:
        """Add a user band, by effective wavelength (Å) or from a filter curve file.

        Declaring a name that is already known with the same wavelength (within 1%) is
        allowed and returns the known band; a different wavelength is an error (a name
        means one filter).
        """
        name = _check_name(name)
        if filter_curve is not None:
            lam, t = read_filter_curve(filter_curve)
            wl = pivot_wavelength(lam, t)
            if wavelength is not None and not math.isclose(wl, float(wavelength), rel_tol=0.02):
                raise BandError(
                    f"band {name!r}: wavelength {wavelength} Å disagrees with the pivot "
                    f"wavelength {wl:.0f} Å of its filter curve",
                    band=name,
                )
            wavelength = wl
        if wavelength is None:
            raise BandError(
                f"band {name!r} is not a built-in band: declare it with an effective "
                "wavelength in Å or a filter curve file",
                band=name,
                suggestions=self.suggest(name),
            )
        try:
            wl = float(wavelength)
        except (TypeError, ValueError) as exc:
            raise BandError(f"band {name!r}: wavelength {wavelength!r} is not a number") from exc
        if not (math.isfinite(wl) and 500.0 <= wl <= 1e6):
            raise BandError(
                f"band {name!r}: wavelength {wavelength!r} Å is outside 500 Å - 100 µm "
                "(give it in Ångström)",
                band=name,
            )
        known = self.get(name, required=False)
        if known is not None:
            if math.isclose(known.wavelength, wl, rel_tol=0.01):
                return known
            raise BandError(
                f"band {name!r} is already {known.describe()}; a declared band with another "
                f"wavelength ({wl:.0f} Å) needs another name",
                band=name,
            )
        band = Band(name, wl, survey=str(survey), filter=str(filter), builtin=False)
        self._add(band)
        return band

    def with_bands(self, declared: Iterable[Mapping[str, Any] | Band]) -> BandRegistry:
        """A copy of this registry that also knows ``declared`` bands (dicts or Bands).

        A dict may also give the magnitude ``system`` of this catalogue's magnitudes in the
        band ("AB", "Vega", "SDSS") and ``ab_offset`` (m_AB - m_system) when the registry
        does not know it; for a known band the wavelength may then be left out
        (``{"name": "J", "system": "Vega"}``: VISTA J magnitudes from a VHS table).
        """
        out = self.copy()
        for item in declared:
            if isinstance(item, Band):
                out.declare(item.name, item.wavelength, survey=item.survey, filter=item.filter)
                continue
            if not isinstance(item, Mapping) or "name" not in item:
                raise BandError(f"a declared band needs at least a 'name'; got {item!r}")
            system = item.get("system")
            known = out.get(str(item["name"]).strip(), required=False)
            if (
                known is not None
                and item.get("wavelength") is None
                and not item.get("filter_curve")
            ):
                if system is None:
                    raise BandError(
                        f"band {item['name']!r} is already {known.describe()}: declare it "
                        "with a 'system' to say its magnitudes' system, or leave it out",
                        band=str(item["name"]),
                    )
                band = known
            else:
                band = out.declare(
                    item["name"],
                    item.get("wavelength"),
                    filter_curve=item.get("filter_curve"),
                    survey=item.get("survey", ""),
                    filter=item.get("filter", ""),
                )
            if system is not None or item.get("ab_offset") is not None:
                out._set_system(band, system, item.get("ab_offset"))
        return out

    def _set_system(self, band: Band, system: Any, offset: Any) -> None:
        """This catalogue's magnitudes of ``band`` are in ``system`` (offset m_AB - m_system
        given, or the filter's published one)."""
        name = parse_system(system if system is not None else band.system)
        offsets = dict(band.ab_offsets)
        if offset is not None:
            try:
                value = float(offset)
            except (TypeError, ValueError) as exc:
                raise BandError(
                    f"band {band.name!r}: ab_offset {offset!r} is not a number"
                ) from exc
            if name == "AB" or not (math.isfinite(value) and abs(value) < 10):
                raise BandError(
                    f"band {band.name!r}: ab_offset {offset!r} needs a non-AB system and a "
                    "magnitude offset m_AB - m_system between -10 and 10",
                    band=band.name,
                )
            offsets[name] = value
        elif name != "AB" and name not in offsets:
            raise BandError(
                f"band {band.name!r}: somcal knows no {name}-to-AB offset for "
                f"{band.describe()}; give ab_offset (m_AB - m_{name}) with the system",
                band=band.name,
            )
        self._bands[band.name] = replace(
            band, system=name, ab_offsets=tuple(offsets.items()), system_declared=True
        )

    # ------------------------------------------------------------------ lookups
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._bands or name in self._aliases)

    def __iter__(self):
        return iter(self._bands.values())

    def __len__(self) -> int:
        return len(self._bands)

    def canonical(self, name: str) -> str:
        """The canonical name of ``name`` (itself or what it is an alias of)."""
        return self.get(name).name

    def get(self, name: str, *, required: bool = True) -> Band | None:
        key = str(name)
        if key in self._bands:
            return self._bands[key]
        if key in self._aliases:
            return self._bands[self._aliases[key]]
        if not required:
            return None
        suggestions = self.suggest(key)
        hint = ""
        if suggestions:
            hint = (
                "; did you mean "
                + " or ".join(
                    f"{s!r} ({self._bands[s].filter or self._bands[s].survey})" for s in suggestions
                )
                + "?"
            )
        raise BandError(
            f"unknown band {key!r}{hint} Declare a new band with its effective wavelength "
            "(Å) or a filter curve; `somcal bands` lists the known ones",
            band=key,
            suggestions=suggestions,
        )

    def suggest(self, name: str, n: int = 3) -> list[str]:
        """Known canonical names close to ``name``: other case, suffixed forms, typos."""
        key = str(name)
        rank: dict[str, int] = {}

        def add(canon: str, priority: int) -> None:
            rank[canon] = min(priority, rank.get(canon, priority))

        low = key.lower()
        for candidate in (*self._bands, *self._aliases):
            canon = self._aliases.get(candidate, candidate)
            stem = candidate.split("_")[0]
            if candidate.lower() == low:
                add(canon, 0)  # another case: 'Y_lsst' -> 'y_lsst'
            elif stem == key:
                add(canon, 1)  # a survey's variant: 'y' -> 'y_lsst'
            elif stem.lower() == low or (
                len(stem) <= len(key) + 1 and stem.lower().startswith(low)
            ):
                add(canon, 2)  # 'K' -> 'Ks', 'Y' -> 'y'
        names = list(self._bands) + list(self._aliases)
        for candidate in difflib.get_close_matches(key, names, n=n, cutoff=0.75):
            add(self._aliases.get(candidate, candidate), 3)
        found = sorted(rank, key=lambda c: (rank[c], self._bands[c].wavelength))
        return found[:n]

    def resolve(self, names: Sequence[str], *, order: bool = True) -> list[Band]:
        """The bands of ``names`` (aliases resolved), sorted by wavelength when ``order``.

        Raises :class:`BandError` for an unknown band, for a filter named twice (``VIS`` and
        ``IE``) and for two bands at the same wavelength (no colour between them).
        """
        bands = [self.get(n) for n in names]
        seen: dict[str, str] = {}
        for given, band in zip(names, bands, strict=True):
            if band.name in seen:
                raise BandError(
                    f"bands {seen[band.name]!r} and {given!r} are the same filter "
                    f"({band.describe()})",
                    band=given,
                )
            seen[band.name] = given
        if order:
            bands.sort(key=lambda b: b.wavelength)
        return bands

    def ordered_names(self, names: Sequence[str]) -> list[str]:
        """Canonical names of ``names`` in wavelength order."""
        return [b.name for b in self.resolve(names)]


def _check_name(name: Any) -> str:
    name = str(name).strip()
    if not name or len(name) > 32 or not all(c.isalnum() or c in "_-+." for c in name):
        raise BandError(
            f"band name {name!r} must be 1-32 characters of letters, digits, '_', '-', '+', '.'",
            band=name,
        )
    return name


#: The built-in bands.
REGISTRY = BandRegistry(
    Band(
        name,
        float(wl),
        survey=survey,
        filter=filt,
        aliases=aliases,
        system=_SYSTEMS.get(name, ("AB", {}))[0],
        ab_offsets=tuple(_SYSTEMS.get(name, ("AB", {}))[1].items()),
    )
    for name, wl, survey, filt, aliases in _BUILTIN
)
