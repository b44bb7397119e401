"""What an ingest is asked for and what it answers: the request (with the options stored
beside the catalogue to recognise a repeated upload), the result, and the hook through which
the ledger sees the rows inside the ingest transaction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from app.models import Catalogue
from app.services.errors import RowError
from app.services.ingest.validation import DEFAULT_Z_MIN

#: What the service calls the option choosing the table of a multi-table file, in messages.
TABLE_KEY_HINT = "table_key (somcal ingest/assign --hdu): an HDU name or 0-based index"


def parse_table_key(value: str | int | None) -> str | int | None:
    """``table_key`` as a form field or a command-line option gives it: ``"2"`` is the
    HDU index 2 (EXTNAMEs are not numbers), other text an EXTNAME or HDF5 key, blank none."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


@dataclass
class IngestRequest:
    kind: str
    path: Path
    filename: str
    name: str | None = None
    preset: str | None = None
    mapping: dict[str, str | None] | None = None
    secure_rule: dict[str, Any] | None = None
    on_invalid: str = "reject"
    skip_missing_redshift: bool | None = None
    file_format: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    flux_unit: str | None = None
    negative_error: str = "limit"
    bands: list[dict[str, Any]] | None = None  # declared bands: name, wavelength | filter_curve
    z_min: float = DEFAULT_Z_MIN
    check: bool = True
    #: FITS: the HDU holding the table (EXTNAME or index); HDF5: the dataset, group or
    #: pandas key. Default: ``som.tables``' choice (the first table HDU that is not a
    #: FITS_LDAC image header).
    table_key: str | int | None = None

    def options(self) -> dict[str, Any]:
        """What this request asks for, in a form stored with the catalogue and compared
        when the same file comes again (not the file's name, format or size)."""
        return {
            "preset": (self.preset or "auto").strip().lower() or "auto",
            "mapping": {k: v for k, v in sorted((self.mapping or {}).items())},
            "secure_rule": self.secure_rule,
            "on_invalid": self.on_invalid,
            "skip_missing_redshift": self.skip_missing_redshift,
            "flux_unit": self.flux_unit,
            "negative_error": self.negative_error,
            "bands": list(self.bands or []),
            "z_min": self.z_min,
            "check": self.check,
            **({"table_key": self.table_key} if self.table_key is not None else {}),
        }


@dataclass
class IngestResult:
    catalogue: Catalogue
    duplicate: bool
    errors: list[RowError] = field(default_factory=list)
    n_errors: int = 0
    assigned_maps: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class LedgerHook:
    """What the ledger does with a catalogue's rows inside the ingest transaction.

    ``rows`` is called for every written chunk with the stored rows (``object_id``,
    ``row_index``, ra, dec and ``mag_<band>``/``magerr_<band>``); ``done`` once at the end
    (recompute cells) and returns, for each map it updated, how the rows landed (counts by
    photometry, by position, unassigned, outside the training set).
    """

    def rows(self, session: Session, catalogue: Catalogue, rows: pd.DataFrame) -> None:
        raise NotImplementedError

    def done(self, session: Session, catalogue: Catalogue) -> dict[int, dict[str, int]]:
        raise NotImplementedError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
