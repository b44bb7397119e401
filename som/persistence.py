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


def save(som: SOM, path) -> Path:
    """Write the map to ``path`` (atomically: a crash never leaves half a file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(som.to_bytes())
    tmp.replace(path)
    return path


def from_bytes(cls: type[SOM], data: bytes, source: str = "<bytes>") -> SOM:
    """A map of class ``cls`` from the bytes of a saved map; :class:`MapFormatError` naming
    ``source`` when they are not one this somcal reads."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise MapFormatError(f"{source}: member {bad} is corrupt (CRC mismatch)")
            meta = json.loads(zf.read("meta.json"))
            weights = np.lib.format.read_array(
                io.BytesIO(zf.read("weights.npy")), allow_pickle=False
            )
    except MapFormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, KeyError, EOFError, ValueError, OSError) as exc:
        raise MapFormatError(f"{source}: not a readable somcal map file ({exc})") from exc
    if meta.get("format") != FORMAT_NAME:
        raise MapFormatError(f"{source}: not a somcal map (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MapFormatError(
            f"{source}: map format version {version} is newer than this somcal reads "
            f"({FORMAT_VERSION}); upgrade somcal"
        )
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
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MapFormatError(f"{path}: cannot read ({exc.strerror})") from exc
    return cls.from_bytes(data, source=str(path))


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__}")
