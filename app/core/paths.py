"""Server-side file access, limited to the configured data directories."""

from __future__ import annotations

from pathlib import Path

from app.services.errors import ForbiddenError, NotFoundError


def resolve_data_path(requested: str, data_dirs: list[Path]) -> Path:
    """The real file behind ``requested`` if it lies inside one of ``data_dirs``.

    Relative paths are looked up in each data directory in turn. Symlinks and ``..`` are
    resolved *before* the containment check, so neither can lead outside.
    """
    if not data_dirs:
        raise ForbiddenError(
            "reading files on the server is disabled: no data directories are configured "
            "(SOMCAL_DATA_DIRS); upload the file instead"
        )
    if "\x00" in requested:
        raise ForbiddenError("path contains a NUL byte")
    raw = Path(requested).expanduser()
    candidates = [raw] if raw.is_absolute() else [d / raw for d in data_dirs]
    outside = True
    for cand in candidates:
        try:
            real = cand.resolve(strict=False)
            inside = any(real.is_relative_to(d) for d in data_dirs)
            found = inside and real.is_file()
        except (OSError, RuntimeError):
            # A symlink loop (RuntimeError) or an over-long name (ENAMETOOLONG) names no
            # readable file; without this they surfaced as HTTP 500.
            outside = False
            continue
        if not inside:
            continue
        outside = False
        if found:
            return real
    if outside:
        raise ForbiddenError(f"path {requested!r} is outside the configured data directories")
    raise NotFoundError(f"file {requested!r} not found in the data directories")
