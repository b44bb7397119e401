"""Serialise the transactions that change the coverage ledger.

Ingests, deletions and the end of a training job all read "which catalogues and maps
exist" and then write assignments and cell statistics from it. Run concurrently, a new
spectroscopic catalogue could be missed by a map finishing its training at the same
moment. Such transactions run under this lock: a process lock (threads of one server) and,
on PostgreSQL, a transaction-scoped advisory lock (several server processes).

The lock is taken *before* a transaction's first write: on SQLite a writer holding the
database lock while waiting for ours, and another thread holding ours while waiting for
the database, would otherwise deadlock until the busy timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

_PROCESS_LOCK = threading.RLock()
# Arbitrary but fixed key of the advisory lock ("somcal" in ASCII, as a 64-bit integer).
ADVISORY_KEY = 0x736F6D63616C


@contextmanager
def ledger_transaction(session: Session) -> Iterator[Session]:
    """Hold the ledger lock for the session's transaction; commit inside the block."""
    with _PROCESS_LOCK:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})
        yield session
