"""Server-side file access, limited to the configured data directories."""

from __future__ import annotations

from pathlib import Path

from app.services.errors import ForbiddenError, NotFoundError


def resolve_data_path(requested: str, data_dirs: list[Path], directories: bool = False) -> Path:
    """The real file behind ``requested`` if it lies inside one of ``data_dirs`` (with
    ``directories``, a directory too: a Parquet dataset or a HATS catalogue).

    Relative paths are looked up in each data directory in turn. Symlinks and ``..`` are
    resolved *before* the containment check, so neither can lead outside. (The files of a
    directory are checked by :func:`require_inside`.)
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
            found = inside and (real.is_file() or (directories and real.is_dir()))
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
    what = "file or directory" if directories else "file"
    raise NotFoundError(f"{what} {requested!r} not found in the data directories")


def require_inside(files: list[Path], data_dirs: list[Path], shown: str) -> None:
    """Every one of ``files`` (a dataset directory's, listed by whoever reads it) must be
    inside ``data_dirs`` once its symlinks are resolved: a link in an allowed directory
    must not lead the server to read a file elsewhere."""
    for f in files:
        real = f.resolve(strict=False)
        if not any(real.is_relative_to(d) for d in data_dirs):
            raise ForbiddenError(
                f"{shown}: {f.name} leads to {real}, outside the configured data directories"
            )
