"""Text (CSV and whitespace ASCII) helpers of the reader: normalising whitespace blocks,
rechunking Arrow batches, and typing text columns after reading."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from som.tables.formats import BLOCK_BYTES, open_binary


def normalise_block(block: bytes) -> bytes:
    """Whitespace-separated lines -> tab-separated lines without comments or blank lines.

    One pass of bytes.split per line: about ten times faster than regular expressions over
    the block, which made ASCII several times slower than CSV to read.
    """
    return b"\n".join(
        [
            b"\t".join(fields)
            for line in block.split(b"\n")
            if (fields := line.split()) and not fields[0].startswith(b"#")
        ]
    )


def ascii_blocks(path: Path, start: int) -> Iterator[bytes]:
    """Normalised blocks of about BLOCK_BYTES, cut at line ends, from byte ``start`` on."""
    with open_binary(path) as fh:
        if start:
            if not isinstance(fh, io.BufferedReader):  # compressed: no seek
                fh.read(start)
            else:
                fh.seek(start)
        rest = b""
        while True:
            buf = fh.read(BLOCK_BYTES)
            if not buf:
                if rest.strip():
                    yield normalise_block(rest + b"\n")
                return
            buf = rest + buf
            cut = buf.rfind(b"\n")
            if cut < 0:
                rest = buf
                continue
            rest = buf[cut + 1 :]
            yield normalise_block(buf[: cut + 1])


def is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def empty_strings(cols: list[str]):
    import pyarrow as pa

    return pa.table({c: pa.array([], type=pa.string()) for c in cols})


def rechunk(batches, chunk_rows: int):
    """Arrow batches/tables of any size -> tables of exactly chunk_rows rows (last: fewer)."""
    import pyarrow as pa

    pending: list = []
    held = 0
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        pending.append(table)
        held += table.num_rows
        while held >= chunk_rows:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, chunk_rows)
            rest = whole.slice(chunk_rows)
            pending, held = [rest], rest.num_rows
    if held:
        yield pa.concat_tables(pending)


def type_columns(table, text_columns: set[str]) -> pd.DataFrame:
    """String columns from a text file -> int64 / float64 / bool / text, per column."""
    out = {}
    for name in table.column_names:
        values = table.column(name)
        out[name] = values.to_pandas() if name in text_columns else infer(values)
    frame = pd.DataFrame(out, columns=table.column_names)
    return frame.reset_index(drop=True)


#: Integers up to this size are exact in float64.
EXACT = 2**53


def _integers(ints, nullable) -> pd.Series:
    """int64/uint64 without gaps; with gaps float64 (NaN) if every value is exact there,
    else pandas' nullable integers (ids beyond 2**53 would be rounded)."""
    import pyarrow.compute as pc

    if ints.null_count == 0:
        return ints.to_pandas()
    bounds = pc.min_max(ints)
    if bounds["min"].as_py() >= -EXACT and bounds["max"].as_py() <= EXACT:
        return ints.to_pandas()
    return ints.to_pandas(types_mapper=lambda t: nullable)


def infer(values) -> pd.Series:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(values)
    if values.null_count == n:
        return pd.Series(np.full(n, np.nan))
    trimmed = pc.utf8_trim_whitespace(values)
    try:
        return _integers(pc.cast(trimmed, pa.int64()), pd.Int64Dtype())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        floats = pc.cast(trimmed, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        floats = None
    if floats is not None:
        largest = pc.max(floats).as_py()
        if largest is not None and largest >= 2.0**63:
            # Only then can it be an unsigned 64-bit id column (SDSS objID beyond 2**63).
            try:
                return _integers(pc.cast(trimmed, pa.uint64()), pd.UInt64Dtype())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        return floats.to_pandas()
    if values.null_count == 0:
        lowered = pc.utf8_lower(trimmed)
        if pc.all(pc.is_in(lowered, pa.array(["true", "false"]))).as_py():
            return pc.equal(lowered, "true").to_pandas()
    return values.to_pandas()
