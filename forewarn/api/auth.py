"""API keys and roles.

A key is shown once when created and stored only as its SHA-256 hash (keys are 256-bit random
tokens, so a slow password hash adds nothing). Each route declares the roles it allows with
``Depends(require_roles(...))``; ``admin`` is allowed everywhere.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy import Connection, select, update

from forewarn.model.indicators import utcnow
from forewarn.store import audit
from forewarn.store import schema as t


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"
    OFFICER = "officer"
    TELCO = "telco"
    BANK = "bank"
    PARTNER = "partner"
    PUBLIC = "public"


KEY_PREFIX = "fw_"
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key from `forewarn keys create`")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(conn: Connection, role: Role | str, name: str | None = None) -> tuple[str, str]:
    """Create a key; returns ``(key_id, secret)``. The secret is not stored and cannot be shown again."""
    role = Role(role)
    key_id = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    conn.execute(t.api_keys.insert().values(key_id=key_id, name=name or f"{role.value}-{key_id}", role=role.value,
                                            key_hash=hash_key(secret), created_at=utcnow()))
    audit.append(conn, "cli", "api_key.create", key_id, {"role": role.value, "name": name})
    return key_id, secret


def revoke_key(conn: Connection, key_id: str) -> bool:
    done = conn.execute(update(t.api_keys).where(t.api_keys.c.key_id == key_id, t.api_keys.c.revoked_at.is_(None))
                        .values(revoked_at=utcnow())).rowcount
    if done:
        audit.append(conn, "cli", "api_key.revoke", key_id, {})
        key_cache.clear()
    return bool(done)


def lookup_key(conn: Connection, secret: str) -> Principal | None:
    row = conn.execute(select(t.api_keys).where(t.api_keys.c.key_hash == hash_key(secret),
                                                t.api_keys.c.revoked_at.is_(None))).first()
    return Principal(row.key_id, row.name, Role(row.role)) if row else None


class KeyCache:
    """Recently verified keys, so that a hot route (the firewall answers per call) does not query
    the store on every request. An entry lives ``ttl_s`` seconds: a key revoked elsewhere stops
    working within that time; one revoked through this process stops at once."""

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, Principal | None]:
        hit = self._entries.get(key_hash)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return False, None
        return True, hit[1]

    def put(self, key_hash: str, principal: Principal | None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic(), principal)

    def clear(self) -> None:
        self._entries.clear()


key_cache = KeyCache()


def current_principal(request: Request, key: str | None = Security(api_key_header)) -> Principal:
    if not key:
        raise HTTPException(status_code=401, detail="missing API key: send it in the X-API-Key header")
    store = request.app.state.store
    # Keyed by the store too: nodes sharing one process (the federation demo) have separate keys.
    digest = f"{store.engine.url}|{hash_key(key)}"
    cached, principal = key_cache.get(digest)
    if not cached:
        with store.engine.connect() as conn:
            principal = lookup_key(conn, key)
        # Unknown keys are not cached: a key created a moment ago must work at once.
        if principal is not None:
            key_cache.put(digest, principal)
    if principal is None:
        raise HTTPException(status_code=401, detail="unknown or revoked API key")
    return principal


def require_roles(*roles: Role):  # type: ignore[no-untyped-def]
    """Dependency that admits a key of one of ``roles`` (admin is always admitted)."""
    allowed = {Role.ADMIN, *roles}

    def check(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(status_code=403, detail=f"role {principal.role.value!r} may not do this; allowed: {names}")
        return principal

    check.allowed_roles = allowed  # type: ignore[attr-defined]
    return check
