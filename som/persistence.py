"""The saved map: one self-describing zip (``meta.json`` and ``weights.npy``) whose format
carries its name and version, so that a file from a newer somcal is refused with a message
rather than misread; no pickle. :class:`som.SOM`'s ``to_bytes``/``from_bytes``/``save``/
``load`` call these functions."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .grid import Grid
from .trust import DistanceDistribution

if TYPE_CHECKING:
    from .estimator import SOM

FORMAT_NAME = "somcal-map"
FORMAT_VERSION = 1


class MapFormatError(ValueError):
    """A saved map that cannot be read: corrupt, truncated, or from a newer somcal."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("somcal")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0+unknown"


def to_bytes(som: SOM) -> bytes:
    """A fitted map as one self-describing zip: ``meta.json`` and ``weights.npy``."""
    params = som.get_params()
    params["dtype"] = np.dtype(som.dtype).name
    rs = params["random_state"]
    params["random_state"] = rs if isinstance(rs, int | type(None)) else None
    record = getattr(som, "training_distances_", None)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "somcal_version": _version(),
        "grid": som.grid.to_dict(),
        "params": params,
        "n_features": int(som.n_features_in_),
        "features": None if som.features is None else som.features.to_dict(),
        "training": getattr(som, "training_", {}),
        "quality": getattr(som, "quality_", {}),
        "n_epochs_done": int(getattr(som, "n_epochs_done_", 0)),
        "training_distances": None if record is None else record.to_dict(),
        "n_skipped": int(getattr(som, "n_skipped_", 0) or 0),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", json.dumps(meta, indent=1, default=_json_default))
        arr = io.BytesIO()
        np.lib.format.write_array(
            arr, np.ascontiguousarray(som.weights_, np.float64), allow_pickle=False
        )
        zf.writestr("weights.npy", arr.getvalue())
    return buf.getvalue()


def write_atomically(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file: a crash never leaves half a
    file under the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def read_bytes(path) -> tuple[bytes, str]:
    """A saved file's bytes and its name for messages; :class:`MapFormatError` if unreadable."""
    path = Path(path)
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise MapFormatError(f"{path}: cannot read ({exc.strerror})") from exc


def read_zip(
    data: bytes,
    source: str,
    members: tuple[str, ...],
    what: str,
    format_name: str,
    format_version: int,
) -> tuple[dict, dict[str, bytes]]:
    """``meta.json`` (checked: ``format_name``, a version this somcal reads) and the bytes
    of ``members`` of a saved zip; :class:`MapFormatError` naming ``source`` otherwise.
    ``what`` names the kind of file in messages ("somcal map")."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise MapFormatError(f"{source}: member {bad} is corrupt (CRC mismatch)")
            meta = json.loads(zf.read("meta.json"))
            # the format first: another somcal file is named as such, not as unreadable
            found = meta.get("format") if isinstance(meta, dict) else None
            if found != format_name:
                raise MapFormatError(f"{source}: not a {what} (format {found!r})")
            version = meta.get("format_version")
            if not isinstance(version, int) or version > format_version:
                raise MapFormatError(
                    f"{source}: {what} format version {version} is newer than this somcal "
                    f"reads ({format_version}); upgrade somcal"
                )
            parts = {name: zf.read(name) for name in members}
    except MapFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, KeyError, EOFError, ValueError, OSError) as exc:
        raise MapFormatError(f"{source}: not a readable {what} file ({exc})") from exc
    return meta, parts


def save(som: SOM, path) -> Path:
    """Write the map to ``path`` (atomically: a crash never leaves half a file)."""
    return write_atomically(path, som.to_bytes())


def from_bytes(cls: type[SOM], data: bytes, source: str = "<bytes>") -> SOM:
    """A map of class ``cls`` from the bytes of a saved map; :class:`MapFormatError` naming
    ``source`` when they are not one this somcal reads."""
    meta, parts = read_zip(
        data, source, ("weights.npy",), "somcal map", FORMAT_NAME, FORMAT_VERSION
    )
    try:
        weights = np.lib.format.read_array(io.BytesIO(parts["weights.npy"]), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise MapFormatError(f"{source}: not a readable somcal map file ({exc})") from exc
    params = dict(meta["params"])
    features = None
    if meta.get("features") is not None:
        from .photometry import ColourFeatures

        features = ColourFeatures.from_dict(meta["features"])
    som = cls(**params, features=features)
    grid = Grid.from_dict(meta["grid"])
    if weights.shape != (grid.n_cells, meta["n_features"]):
        raise MapFormatError(
            f"{source}: weights have shape {weights.shape}, expected "
            f"({grid.n_cells}, {meta['n_features']})"
        )
    som.weights_ = weights
    som.n_features_in_ = int(meta["n_features"])
    som.training_ = meta.get("training", {})
    som.quality_ = meta.get("quality", {})
    som.n_epochs_done_ = int(meta.get("n_epochs_done", 0))
    som.somcal_version_ = meta.get("somcal_version")
    # maps saved before somcal recorded training distances: no percentiles (NaN)
    record = meta.get("training_distances")
    try:
        som.training_distances_ = None if record is None else DistanceDistribution.from_dict(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise MapFormatError(f"{source}: unreadable training_distances ({exc})") from exc
    som.n_skipped_ = int(meta.get("n_skipped", 0))
    return som


def load(cls: type[SOM], path) -> SOM:
    data, source = read_bytes(path)
    return cls.from_bytes(data, source=source)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")
