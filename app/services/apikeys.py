"""Create, verify and revoke API keys stored in the database."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core import security
from app.models import ApiKey, utcnow


def create_api_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """Store a new key and return (row, plaintext key). The plaintext is not kept."""
    name = name.strip()
    if not name:
        raise ValueError("an API key needs a non-empty name")
    new = security.generate_key()
    row = ApiKey(name=name[:100], prefix=new.prefix, key_hash=new.key_hash)
    session.add(row)
    session.flush()
    return row, new.key


def verify_api_key(
    session: Session, key: str, static_hashes: tuple[str, ...] = ()
) -> ApiKey | str | None:
    """The matching active key row (or "static" for a configured key), else None."""
    presented = security.hash_key(key)
    matched_static = False
    for h in static_hashes:
        # No early exit: every configured key is compared, in constant time each.
        matched_static |= security.hashes_equal(presented, h)
    if matched_static:
        return "static"
    prefix = security.key_prefix(key)
    if prefix is None:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not security.hashes_equal(presented, row.key_hash):
        return None
    return row


def revoke_api_key(session: Session, prefix_or_name: str) -> int:
    rows = session.scalars(
        select(ApiKey).where(
            (ApiKey.prefix == prefix_or_name) | (ApiKey.name == prefix_or_name),
            ApiKey.revoked_at.is_(None),
        )
    ).all()
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)
