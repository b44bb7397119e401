"""Errors raised by services; the API layer turns them into JSON responses.

Services do not import FastAPI: they say *what* went wrong (status class, message, and
for bad files which file/column/row and why), the routers decide how it is sent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from som.tables import CatalogueError


@dataclass(frozen=True)
class RowError:
    file: str | None
    column: str | None
    row: int | None  # 0-based data row (header excluded), as in som.photometry
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str, errors: list[RowError] | None = None, **extra) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])
        self.extra = extra


class InvalidInputError(ServiceError):
    status_code = 422


class BadRequestError(ServiceError):
    status_code = 400


class NotFoundError(ServiceError):
    status_code = 404


class ForbiddenError(ServiceError):
    status_code = 403


class ConflictError(ServiceError):
    status_code = 409


class TooLargeError(ServiceError):
    status_code = 413


def unreadable_file(exc: CatalogueError, file: str | None = None) -> InvalidInputError:
    """A table ``som.tables`` could not read, as the service's 422: the file (``file``, or
    the name the reader was given), the column and the 0-based data row where known, and
    why. The one place a ``CatalogueError`` becomes a service error (the API's handler and
    the ingest both use it)."""
    name = file or exc.source or "file"
    where = f" column {exc.column!r}:" if exc.column else ""
    return InvalidInputError(
        f"{name}:{where} {exc.reason}", [RowError(name, exc.column, exc.row, exc.reason)]
    )
