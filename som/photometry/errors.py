"""The error every photometry step raises, located by column, row and source."""

from __future__ import annotations


class PhotometryError(ValueError):
    """Bad photometric input, located as precisely as possible.

    Attributes
    ----------
    reason : str
        What is wrong.
    column : str or None
        The offending column.
    row : int or None
        First offending row, 0-based position in the input order (not a pandas index label).
    source : str or None
        The file (or other source name) the table came from, when the caller gave one.
    """

    def __init__(
        self,
        reason: str,
        *,
        column: str | None = None,
        row: int | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = reason
        self.column = None if column is None else str(column)
        self.row = None if row is None else int(row)
        self.source = None if source is None else str(source)
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        where = []
        if self.column is not None:
            where.append(f"column {self.column!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if where:
            parts.append(", ".join(where))
        parts.append(self.reason)
        return ": ".join(parts)

    def __reduce__(self):
        # Keyword-only arguments are lost by the default exception pickling; errors must survive
        # being sent back from worker processes (Dask, multiprocessing).
        return (_rebuild_error, (type(self), self.reason, self.column, self.row, self.source))


def _rebuild_error(cls, reason, column, row, source):
    return cls(reason, column=column, row=row, source=source)
