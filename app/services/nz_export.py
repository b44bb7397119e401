"""n(z) answers of the service as files: qp, SACC or CosmoSIS/2pt FITS bytes.

The numerics and the formats are in :mod:`som.nz_formats`; this module turns the n(z)
answers of :func:`app.services.nz.nz` (one per bin) into an
:class:`~som.nz_formats.NzEnsemble` and the ensemble into the bytes of a download.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from app.services.errors import InvalidInputError, ServiceError
from som import nz_formats

#: format → (media type, file suffix) of the download.
MEDIA: dict[str, tuple[str, str]] = {
    "qp": ("application/x-hdf5", ".hdf5"),
    "sacc": ("application/fits", ".sacc.fits"),
    "fits": ("application/fits", ".fits"),
}


class FormatUnavailableError(ServiceError):
    """The server lacks the optional package a format needs (ours to fix, not the caller's)."""

    status_code = 501


def _floats(values: Any) -> np.ndarray:
    # app.services.nz.nz answers with None where a value is undefined
    return np.array(values, dtype=np.float64)


def ensemble(
    results: list[dict[str, Any]], names: list[str], metadata: dict[str, Any] | None = None
) -> nz_formats.NzEnsemble:
    """An ensemble of the n(z) answers ``results`` (each from ``app.services.nz.nz`` with its
    realisations when it has any), named ``names``; the answers must share their edges."""
    if not results:
        raise InvalidInputError("no n(z) to write")
    edges = _floats(results[0]["bins"])
    for r, name in zip(results, names, strict=True):
        if not np.array_equal(_floats(r["bins"]), edges):
            raise InvalidInputError(f"n(z) {name!r}: its redshift edges differ from the first")
    reals = [r.get("realisations") for r in results]
    realisations = None
    if all(x is not None and len(x) > 0 for x in reals):
        # (n_real, n_bins, n_z): realisation i of every bin
        realisations = np.stack([_floats(x) for x in reals], axis=1)
    return nz_formats.NzEnsemble(
        z_edges=edges,
        fiducial=np.array([_floats(r["nz"]) for r in results]),
        realisations=realisations,
        names=list(names),
        n_eff=_floats([r.get("n_eff") for r in results]),
        metadata=dict(metadata or {}),
    )


def write(ens: nz_formats.NzEnsemble, path: Path, fmt: str) -> list[Path]:
    """Write ``ens`` as ``fmt`` to ``path``; a missing optional package is a 501 that says
    what to install."""
    try:
        return nz_formats.write(ens, path, fmt)
    except ImportError as exc:
        raise FormatUnavailableError(str(exc)) from exc


def to_bytes(ens: nz_formats.NzEnsemble, fmt: str) -> tuple[bytes, str, str]:
    """The file of ``ens`` in format ``fmt``: (bytes, media type, file suffix)."""
    media, suffix = MEDIA[fmt]
    with tempfile.TemporaryDirectory(prefix="somcal-nz-") as tmp:
        (path,) = write(ens, Path(tmp) / f"nz{suffix}", fmt)
        return path.read_bytes(), media, suffix
