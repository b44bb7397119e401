"""n(z) ensembles in the formats cosmology pipelines read: qp, SACC and CosmoSIS/2pt FITS.

:class:`NzEnsemble` is generic arrays (redshift edges, a fiducial n(z) per tomographic bin,
optional realisations per bin) so that any n(z) in somcal — one map's tomographic n(z)
today, the deep/wide n(z) later — is written the same way. Each writer has a reader that
gives back an equal ensemble.

- **qp** (RAIL): ``qp.hist`` on the edges. One file holds every row of the ensemble, with
  two ancillary columns telling rows apart: ``bin`` (tomographic bin index) and
  ``realisation`` (−1 for the fiducial, 0… for the realisations), plus ``name``. With
  ``per_bin=True`` one file per bin instead (``<stem>_<name><suffix>``), its rows the
  fiducial then the realisations, which is the shape of RAIL's summarizer output. qp stores
  unit-area densities: ``qp.hist`` normalises every row when it is built (and again when it
  is read), so write unit-area n(z).
- **SACC** (DESC: firecrown, TXPipe): one ``NZ`` tracer per bin, ``z`` the bin centres and
  ``nz`` the fiducial; the realisations are the tracer's ``extra_columns``
  (``real_0000``, …), which is what sacc's ``NZTracer`` documents them for ("additional
  realizations or estimates of the same n(z)") and needs no qp. sacc's ``QPNZTracer`` would
  need qp and is another tracer type; not used. The edges, N_eff and the bin order are in
  the metadata.
- **CosmoSIS/2pt FITS**: an ``NZ_SOURCE`` binary table (``Z_LOW``, ``Z_MID``, ``Z_HIGH``,
  ``BIN1``…``BINn``; header ``NZDATA``, ``EXTNAME``, ``NBIN``, ``NZ``). The realisations,
  which the format has no place for, go in an image HDU ``NZ_SOURCE_REALISATIONS`` of
  shape (n_real, n_bins, n_z) that CosmoSIS ignores; the bin names in ``NAME1``… cards.

qp (package ``qp-prob``) and sacc are imported only when their format is used: ``som``
itself depends on numpy, numba, scipy, pandas and astropy alone. ``pip install
"somcal[formats]"`` installs both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = ("qp", "sacc", "fits")

#: EXTNAME of the realisations image that ``write_fits`` adds beside ``NZ_SOURCE``.
REALISATIONS_EXTNAME = "NZ_SOURCE_REALISATIONS"


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"writing or reading n(z) in this format needs the {package!r} package: "
            f'pip install {package}  (or pip install "somcal[formats]")'
        ) from exc


@dataclass
class NzEnsemble:
    """n(z) of ``n_bins`` tomographic bins on common redshift edges.

    ``z_edges`` (n_z + 1,) strictly increasing; ``fiducial`` (n_bins, n_z) the density in
    each redshift bin; ``realisations`` (n_real, n_bins, n_z) or None (e.g. bootstrap draws);
    ``names`` one distinct name per bin (default ``bin_0``…); ``n_eff`` the effective number
    of galaxies per bin (n_bins,) or None; ``metadata`` flat JSON-able key → value pairs.
    """

    z_edges: np.ndarray
    fiducial: np.ndarray
    realisations: np.ndarray | None = None
    names: list[str] | None = None
    n_eff: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        edges = np.asarray(self.z_edges, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2:
            raise ValueError("z_edges must be a 1-d array of at least two edges")
        if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError("z_edges must be finite and strictly increasing")
        n_z = len(edges) - 1
        fid = np.asarray(self.fiducial, dtype=np.float64)
        if fid.ndim == 1:
            fid = fid[None, :]
        if fid.ndim != 2 or fid.shape[1] != n_z or fid.shape[0] < 1:
            raise ValueError(
                f"fiducial must have shape (n_bins, {n_z}) for {n_z + 1} edges, got {fid.shape}"
            )
        n_bins = fid.shape[0]
        real = None
        if self.realisations is not None:
            real = np.asarray(self.realisations, dtype=np.float64)
            if real.ndim == 2 and n_bins == 1:
                real = real[:, None, :]
            if real.ndim != 3 or real.shape[1:] != (n_bins, n_z) or real.shape[0] < 1:
                raise ValueError(
                    f"realisations must have shape (n_real, {n_bins}, {n_z}), got {real.shape}"
                )
        names = [f"bin_{i}" for i in range(n_bins)] if self.names is None else list(self.names)
        if len(names) != n_bins:
            raise ValueError(f"names: {len(names)} names for {n_bins} bins")
        if any(not isinstance(n, str) or not n or n != n.strip() for n in names):
            raise ValueError("names must be non-empty strings without surrounding spaces")
        if len(set(names)) != n_bins:
            raise ValueError(f"names must be distinct, got {names}")
        n_eff = None
        if self.n_eff is not None:
            n_eff = np.asarray(self.n_eff, dtype=np.float64).reshape(-1)
            if len(n_eff) != n_bins:
                raise ValueError(f"n_eff: {len(n_eff)} values for {n_bins} bins")
        self.z_edges, self.fiducial, self.realisations = edges, fid, real
        self.names, self.n_eff, self.metadata = names, n_eff, dict(self.metadata)

    @property
    def n_bins(self) -> int:
        return self.fiducial.shape[0]

    @property
    def n_real(self) -> int:
        return 0 if self.realisations is None else self.realisations.shape[0]

    @property
    def z_mid(self) -> np.ndarray:
        return 0.5 * (self.z_edges[:-1] + self.z_edges[1:])


def _by_format(fmt: str) -> str:
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown n(z) format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def write(ens: NzEnsemble, path: str | Path, fmt: str, **kwargs: Any) -> list[Path]:
    """Write ``ens`` as ``fmt`` (``qp``, ``sacc`` or ``fits``); returns the files written."""
    fmt = _by_format(fmt)
    if fmt == "qp":
        return write_qp(ens, path, **kwargs)
    if fmt == "sacc":
        return [write_sacc(ens, path, **kwargs)]
    return [write_fits(ens, path, **kwargs)]


def read(path: str | Path | Sequence[str | Path], fmt: str) -> NzEnsemble:
    """Read an ensemble written by :func:`write`."""
    fmt = _by_format(fmt)
    if fmt == "qp":
        return read_qp(path)
    if isinstance(path, (list, tuple)):
        raise ValueError(f"{fmt} n(z) is one file; got {len(path)} paths")
    return read_sacc(path) if fmt == "sacc" else read_fits(path)


# --------------------------------------------------------------------------------------
# qp
# --------------------------------------------------------------------------------------


def _qp_rows(ens: NzEnsemble, bins: Sequence[int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    pdfs, b_idx, r_idx = [], [], []
    for b in bins:
        pdfs.append(ens.fiducial[b])
        b_idx.append(b)
        r_idx.append(-1)
        for r in range(ens.n_real):
            pdfs.append(ens.realisations[r, b])  # type: ignore[index]
            b_idx.append(b)
            r_idx.append(r)
    ancil = {
        "bin": np.asarray(b_idx, dtype=np.int64),
        "realisation": np.asarray(r_idx, dtype=np.int64),
        "name": np.asarray([ens.names[b] for b in b_idx]),  # type: ignore[index]
    }
    if ens.n_eff is not None:
        ancil["n_eff"] = ens.n_eff[np.asarray(b_idx, dtype=np.int64)]
    return np.asarray(pdfs), ancil


def write_qp(ens: NzEnsemble, path: str | Path, per_bin: bool = False) -> list[Path]:
    """Write ``ens`` as a ``qp.hist`` ensemble (HDF5 for ``.hdf5``/``.h5``, FITS for
    ``.fits``, as qp chooses by suffix). One file by default; ``per_bin`` writes one file
    per bin, ``<stem>_<name><suffix>``. The ensemble's ``metadata`` is not stored (qp's
    metadata is its parametrisation's)."""
    qp = _require("qp", "qp-prob")
    path = Path(path)
    groups = [[b] for b in range(ens.n_bins)] if per_bin else [list(range(ens.n_bins))]
    written = []
    for bins in groups:
        pdfs, ancil = _qp_rows(ens, bins)
        out = path.with_name(f"{path.stem}_{ens.names[bins[0]]}{path.suffix}") if per_bin else path
        e = qp.Ensemble(qp.hist, data={"bins": ens.z_edges, "pdfs": pdfs}, ancil=ancil)
        e.write_to(str(out))
        written.append(out)
    return written


def read_qp(path: str | Path | Sequence[str | Path]) -> NzEnsemble:
    """Read the file (or the per-bin files, any order) written by :func:`write_qp`."""
    qp = _require("qp", "qp-prob")
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise ValueError("read_qp: no file given")
    edges = None
    rows: dict[tuple[int, int], np.ndarray] = {}
    names: dict[int, str] = {}
    n_eff: dict[int, float] = {}
    for p in paths:
        e = qp.read(str(p))
        if e.metadata["pdf_name"][0] not in (b"hist", "hist"):
            raise ValueError(f"{p}: a qp {e.metadata['pdf_name'][0]!r} ensemble, not hist")
        anc = e.ancil or {}
        for key in ("bin", "realisation", "name"):
            if key not in anc:
                raise ValueError(f"{p}: no ancillary column {key!r}; not written by somcal?")
        e_edges = np.asarray(e.metadata["bins"], dtype=np.float64).reshape(-1)
        if edges is not None and not np.array_equal(edges, e_edges):
            raise ValueError(f"{p}: redshift edges differ from the other files'")
        edges = e_edges
        pdfs = np.asarray(e.objdata["pdfs"], dtype=np.float64)
        for i in range(len(pdfs)):
            b, r = int(anc["bin"][i]), int(anc["realisation"][i])
            rows[(b, r)] = pdfs[i]
            name = anc["name"][i]
            names[b] = name.decode() if isinstance(name, bytes) else str(name)
            if "n_eff" in anc:
                n_eff[b] = float(anc["n_eff"][i])
    bins = sorted(names)
    if bins != list(range(len(bins))):
        raise ValueError(f"bins {bins} are not 0…{len(bins) - 1}: a per-bin file is missing")
    n_real = 1 + max(r for _, r in rows)
    fid = np.array([rows[(b, -1)] for b in bins])
    real = None
    if n_real > 0:
        real = np.array([[rows[(b, r)] for b in bins] for r in range(n_real)])
    return NzEnsemble(
        z_edges=edges,
        fiducial=fid,
        realisations=real,
        names=[names[b] for b in bins],
        n_eff=np.array([n_eff[b] for b in bins]) if len(n_eff) == len(bins) else None,
    )


# --------------------------------------------------------------------------------------
# SACC
# --------------------------------------------------------------------------------------


def _meta_value(v: Any) -> Any:
    # sacc keeps metadata in FITS header cards: scalars as they are, anything else as JSON.
    if isinstance(v, (bool, int, float, str, np.integer, np.floating, np.bool_)):
        return v.item() if isinstance(v, np.generic) else v
    return json.dumps(v)


def to_sacc(ens: NzEnsemble) -> Any:
    """A ``sacc.Sacc`` with one ``NZ`` tracer per bin (fiducial at the bin centres,
    realisations as ``extra_columns`` ``real_0000``…)."""
    sacc = _require("sacc", "sacc")
    s = sacc.Sacc()
    z = ens.z_mid
    for b, name in enumerate(ens.names):  # type: ignore[arg-type]
        extra = {}
        if ens.realisations is not None:
            extra = {f"real_{r:04d}": ens.realisations[r, b] for r in range(ens.n_real)}
        meta: dict[str, Any] = {"index": b}
        if ens.n_eff is not None:
            meta["n_eff"] = float(ens.n_eff[b])
        s.add_tracer("NZ", name, z, ens.fiducial[b], extra_columns=extra, metadata=meta)
    for k, v in ens.metadata.items():
        s.metadata[k] = _meta_value(v)
    # Centres alone do not give back uneven edges; JSON floats round-trip exactly.
    s.metadata["nz_edges"] = json.dumps(ens.z_edges.tolist())
    s.metadata["nz_n_real"] = ens.n_real
    return s


def from_sacc(s: Any) -> NzEnsemble:
    """The ensemble in a ``sacc.Sacc`` made by :func:`to_sacc` (its NZ tracers; edges from
    the metadata, else midway between the tracer's z values)."""
    tracers = [t for t in s.tracers.values() if type(t).__name__ == "NZTracer"]
    if not tracers:
        raise ValueError("the SACC data hold no NZ tracer")
    tracers.sort(key=lambda t: int(t.metadata.get("index", 0)))
    meta = dict(s.metadata)
    z = np.asarray(tracers[0].z, dtype=np.float64)
    if "nz_edges" in meta:
        edges = np.asarray(json.loads(meta.pop("nz_edges")), dtype=np.float64)
    else:
        half = np.diff(z) / 2
        edges = np.concatenate([[z[0] - half[0]], z[:-1] + half, [z[-1] + half[-1]]])
    n_real = int(meta.pop("nz_n_real", 0))
    for t in tracers:
        if not np.allclose(np.asarray(t.z), z, rtol=0, atol=1e-12):
            raise ValueError(f"tracer {t.name!r}: its z differ from the first tracer's")
    fid = np.array([np.asarray(t.nz, dtype=np.float64) for t in tracers])
    real = None
    if n_real > 0:
        real = np.array(
            [
                [np.asarray(t.extra_columns[f"real_{r:04d}"], dtype=np.float64) for t in tracers]
                for r in range(n_real)
            ]
        )
    n_eff = None
    if all("n_eff" in t.metadata for t in tracers):
        n_eff = np.array([float(t.metadata["n_eff"]) for t in tracers])
    return NzEnsemble(
        z_edges=edges,
        fiducial=fid,
        realisations=real,
        names=[t.name for t in tracers],
        n_eff=n_eff,
        metadata=meta,
    )


def write_sacc(ens: NzEnsemble, path: str | Path, overwrite: bool = True) -> Path:
    """Write ``ens`` as a SACC FITS file (see :func:`to_sacc`)."""
    to_sacc(ens).save_fits(str(path), overwrite=overwrite)
    return Path(path)


def read_sacc(path: str | Path) -> NzEnsemble:
    """Read a SACC file written by :func:`write_sacc` (``sacc.Sacc.load_fits``)."""
    sacc = _require("sacc", "sacc")
    return from_sacc(sacc.Sacc.load_fits(str(path)))


# --------------------------------------------------------------------------------------
# CosmoSIS / 2pt FITS
# --------------------------------------------------------------------------------------


def to_fits_hdus(ens: NzEnsemble, extname: str = "NZ_SOURCE") -> Any:
    """``astropy.io.fits.HDUList``: primary, the ``NZ_SOURCE`` table and, with
    realisations, the ``NZ_SOURCE_REALISATIONS`` image."""
    from astropy.io import fits

    cols = [
        fits.Column(name="Z_LOW", format="D", array=ens.z_edges[:-1]),
        fits.Column(name="Z_MID", format="D", array=ens.z_mid),
        fits.Column(name="Z_HIGH", format="D", array=ens.z_edges[1:]),
    ]
    cols += [
        fits.Column(name=f"BIN{b + 1}", format="D", array=ens.fiducial[b])
        for b in range(ens.n_bins)
    ]
    table = fits.BinTableHDU.from_columns(cols)
    h = table.header
    h["EXTNAME"] = extname
    h["NZDATA"] = True
    h["NBIN"] = ens.n_bins
    h["NZ"] = len(ens.z_mid)
    for b, name in enumerate(ens.names):  # type: ignore[arg-type]
        h[f"NAME{b + 1}"] = name
        if ens.n_eff is not None:
            h[f"NGAL_{b + 1}"] = (float(ens.n_eff[b]), "effective number (Kish)")
    h["NREAL"] = ens.n_real
    if ens.metadata:
        h["SOMMETA"] = json.dumps(ens.metadata)
    hdus = fits.HDUList([fits.PrimaryHDU(), table])
    if ens.realisations is not None:
        img = fits.ImageHDU(ens.realisations, name=REALISATIONS_EXTNAME)
        img.header["NZ_EXT"] = extname
        hdus.append(img)
    return hdus


def write_fits(
    ens: NzEnsemble, path: str | Path, extname: str = "NZ_SOURCE", overwrite: bool = True
) -> Path:
    """Write ``ens`` as a CosmoSIS/2pt FITS n(z) table (see the module docstring)."""
    to_fits_hdus(ens, extname).writeto(str(path), overwrite=overwrite)
    return Path(path)


def read_fits(path: str | Path, extname: str = "NZ_SOURCE") -> NzEnsemble:
    """Read a CosmoSIS/2pt n(z) table (and the realisations image written beside it)."""
    from astropy.io import fits

    with fits.open(str(path)) as hdul:
        if extname not in hdul:
            raise ValueError(f"{path}: no {extname} extension")
        h = hdul[extname].header
        data = hdul[extname].data
        n_bins = int(h.get("NBIN", sum(1 for c in data.columns.names if c.startswith("BIN"))))
        edges = np.append(
            np.asarray(data["Z_LOW"], dtype=np.float64), float(data["Z_HIGH"][-1])
        )
        fid = np.array([np.asarray(data[f"BIN{b + 1}"], dtype=np.float64) for b in range(n_bins)])
        names = [str(h.get(f"NAME{b + 1}", f"bin_{b}")) for b in range(n_bins)]
        n_eff = None
        if all(f"NGAL_{b + 1}" in h for b in range(n_bins)):
            n_eff = np.array([float(h[f"NGAL_{b + 1}"]) for b in range(n_bins)])
        meta = json.loads(h["SOMMETA"]) if "SOMMETA" in h else {}
        real = None
        if REALISATIONS_EXTNAME in hdul and int(h.get("NREAL", 1)) > 0:
            real = np.asarray(hdul[REALISATIONS_EXTNAME].data, dtype=np.float64)
    return NzEnsemble(
        z_edges=edges, fiducial=fid, realisations=real, names=names, n_eff=n_eff, metadata=meta
    )
