"""A fitted :class:`~som.deepwide.DeepWideCalibration` as one self-describing zip.

Members: ``meta.json`` (format name and version, the calibration's parameters, both
maps' colour features), ``deep_map.somcal`` and ``wide_map.somcal`` (each a saved
:class:`~som.SOM`, :mod:`som.persistence`), and ``arrays.npz`` (the cell assignments,
weights and bins the n(z) is computed from). No pickle: identifiers are stored as text or
integers. The n(z) is not stored but recomputed on load from those arrays, so a loaded
calibration gives the same n(z) and the same ensembles (for a given seed) as the fitted one,
and a file cannot carry an n(z) that disagrees with its own inputs.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from som.persistence import (
    MapFormatError,
    _json_default,
    _version,
    read_bytes,
    read_zip,
    write_atomically,
)

if TYPE_CHECKING:
    from som.deepwide.pipeline import DeepWideCalibration

FORMAT_NAME = "somcal-deepwide"
FORMAT_VERSION = 1

#: learned arrays written to ``arrays.npz`` (None values are recorded in meta.json)
_ARRAYS = (
    "transfer_deep_cells_",
    "transfer_wide_cells_",
    "spec_deep_cells_",
    "spec_z_",
    "wide_cells_",
    "wide_cell_z_",
    "cell_bins_",
    "wide_bins_",
    "transfer_bins_",
    "spec_bin_fractions_",
)
#: arrays of the n(z) inputs that are not learned attributes
_INPUT_ARRAYS = ("spec_z", "wide_weights", "transfer_weights", "spec_weights", "truth_z")


def to_bytes(cal: DeepWideCalibration) -> bytes:
    """A fitted calibration as the bytes of one zip (see the module docstring)."""
    if not hasattr(cal, "nz_"):
        raise RuntimeError("DeepWideCalibration is not fitted: call fit(...) first")
    arrays: dict[str, np.ndarray] = {}
    absent: list[str] = []
    for name in _ARRAYS:
        value = getattr(cal, name)
        if value is None:
            absent.append(name)
        else:
            arrays[name] = np.asarray(value)
    inputs = cal._nz_inputs
    for name in _INPUT_ARRAYS:
        if inputs.get(name) is None:
            absent.append("input:" + name)
        else:
            arrays["input:" + name] = np.asarray(inputs[name], dtype=np.float64)
    ids = getattr(cal, "_transfer_ids", None)
    ids_kind = None
    if ids is not None:
        ids = np.asarray(ids)
        # Integer ids stay integers; anything else is kept as its text (no pickle).
        ids_kind = "int" if ids.dtype.kind in "iu" else "str"
        arrays["transfer_ids"] = ids if ids_kind == "int" else ids.astype(str)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "somcal_version": _version(),
        "params": _params(cal),
        "deep_features": cal.deep_features_.to_dict(),
        "wide_features": cal.wide_features_.to_dict(),
        "absent": absent,
        "transfer_ids": ids_kind,
        "allow_missing_transfer": bool(inputs.get("allow_missing_transfer", False)),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", json.dumps(meta, indent=1, default=_json_default))
        zf.writestr("deep_map.somcal", cal.deep_som_.to_bytes())
        zf.writestr("wide_map.somcal", cal.wide_som_.to_bytes())
        npz = io.BytesIO()
        np.savez_compressed(npz, **arrays)
        zf.writestr("arrays.npz", npz.getvalue())
    return buf.getvalue()


def _params(cal: DeepWideCalibration) -> dict[str, Any]:
    from som.deepwide.pipeline import PARAM_NAMES

    params = {name: getattr(cal, name) for name in PARAM_NAMES}
    for name in ("deep_bands", "wide_bands", "deep_shape", "wide_shape", "bin_edges"):
        params[name] = [v for v in params[name]]
    params["z_edges"] = [float(v) for v in params["z_edges"]]
    params["transfer_prefixes"] = list(params["transfer_prefixes"])
    rs = params["random_state"]
    params["random_state"] = rs if isinstance(rs, int | type(None)) else None
    return params


def from_bytes(cls: type[DeepWideCalibration], data: bytes, source: str = "<bytes>"):
    """A fitted calibration from :func:`to_bytes` output; :class:`MapFormatError` naming
    ``source`` when the bytes are not one this somcal reads."""
    from som.deepwide.nz import deep_wide_nz
    from som.estimator import SOM
    from som.photometry import ColourFeatures

    meta, parts = read_zip(
        data,
        source,
        ("deep_map.somcal", "wide_map.somcal", "arrays.npz"),
        "somcal deep/wide calibration",
        FORMAT_NAME,
        FORMAT_VERSION,
    )
    deep_som = SOM.from_bytes(parts["deep_map.somcal"], f"{source}:deep_map.somcal")
    wide_som = SOM.from_bytes(parts["wide_map.somcal"], f"{source}:wide_map.somcal")
    try:
        with np.load(io.BytesIO(parts["arrays.npz"]), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError) as exc:
        raise MapFormatError(f"{source}: unreadable arrays.npz ({exc})") from exc

    params = dict(meta["params"])
    for name in ("deep_shape", "wide_shape", "transfer_prefixes"):
        params[name] = tuple(params[name])
    for name in ("deep_bands", "wide_bands", "bin_edges", "z_edges"):
        params[name] = tuple(params[name])
    cal = cls(**params)
    cal.deep_som_, cal.wide_som_ = deep_som, wide_som
    try:
        cal.deep_features_ = ColourFeatures.from_dict(meta["deep_features"])
        cal.wide_features_ = ColourFeatures.from_dict(meta["wide_features"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MapFormatError(f"{source}: unreadable colour features ({exc})") from exc
    absent = set(meta.get("absent", []))
    try:
        for name in _ARRAYS:
            setattr(cal, name, None if name in absent else arrays[name])
        inputs = {
            name: None if "input:" + name in absent else arrays["input:" + name]
            for name in _INPUT_ARRAYS
        }
    except KeyError as exc:
        raise MapFormatError(f"{source}: arrays.npz lacks {exc}") from exc
    cal._transfer_ids = arrays.get("transfer_ids") if meta.get("transfer_ids") else None
    cal._nz_inputs = cal._nz_inputs_from(
        inputs["spec_z"],
        wide_weights=inputs["wide_weights"],
        transfer_weights=inputs["transfer_weights"],
        spec_weights=inputs["spec_weights"],
        truth=inputs["truth_z"],
        allow_missing_transfer=bool(meta.get("allow_missing_transfer", False)),
    )
    from som.deepwide.cells import redshift_in_cells, transfer_matrix

    nd, nw = cal.deep_som_.n_cells, cal.wide_som_.n_cells
    cal.transfer_matrix_ = transfer_matrix(
        cal.transfer_deep_cells_, cal.transfer_wide_cells_, nd, nw, inputs["transfer_weights"]
    )
    cal.cell_redshifts_ = redshift_in_cells(
        cal.spec_deep_cells_, inputs["spec_z"], nd, cal.z_edges, inputs["spec_weights"]
    )
    cal.nz_ = deep_wide_nz(**cal._nz_inputs)
    cal.somcal_version_ = meta.get("somcal_version")
    return cal


def save(cal: DeepWideCalibration, path) -> Path:
    """Write the calibration to ``path`` (atomically: a crash never leaves half a file)."""
    return write_atomically(path, to_bytes(cal))


def load(cls: type[DeepWideCalibration], path):
    data, source = read_bytes(path)
    return from_bytes(cls, data, source=source)
