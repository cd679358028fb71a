"""API keys and roles.

A key is shown once when created and stored only as its SHA-256 hash (keys are 256-bit random
tokens, so a slow password hash adds nothing). Each route declares the roles it allows with
``Depends(require_roles(...))``; ``admin`` is allowed everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import weakref
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy import Connection, select, update
from starlette.concurrency import run_in_threadpool

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


log = logging.getLogger("forewarn.api")
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
    working within that time; one revoked through this process stops at once. After
    ``refresh_after`` of its life an entry is re-verified in the background while it keeps
    answering, so that a busy key never waits for the store."""

    def __init__(self, ttl_s: float = 5.0, max_entries: int = 10_000, refresh_after: float = 0.6) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.refresh_after = refresh_after
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    def get(self, key_hash: str) -> tuple[bool, Principal | None]:
        hit = self._entries.get(key_hash)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return False, None
        return True, hit[1]

    def stale(self, key_hash: str) -> bool:
        """True when the entry should be re-verified soon (or is missing)."""
        hit = self._entries.get(key_hash)
        return hit is None or time.monotonic() - hit[0] > self.ttl_s * self.refresh_after

    def put(self, key_hash: str, principal: Principal | None) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic(), principal)

    def drop(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def clear(self) -> None:
        self._entries.clear()


key_cache = KeyCache()
# Store lookups in flight, per cache key: concurrent requests with one key share one lookup.
_lookups: dict[str, asyncio.Future[Principal | None]] = {}
_store_names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _lookup_in_store(store: Any, key: str) -> Principal | None:
    with store.engine.connect() as conn:
        return lookup_key(conn, key)


def _lookup(store: Any, key: str, digest: str) -> asyncio.Future[Principal | None]:
    """The store look-up of one key: in a worker thread (the event loop never waits on it), and
    once per digest however many requests ask at the same time. Registered before it starts, so
    that requests arriving meanwhile join it instead of starting their own."""
    loop = asyncio.get_running_loop()
    pending = _lookups.get(digest)
    if pending is not None and pending.get_loop() is loop:
        return pending
    future: asyncio.Future[Principal | None] = loop.create_future()
    _lookups[digest] = future

    async def run() -> None:
        try:
            principal = await run_in_threadpool(_lookup_in_store, store, key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: a background re-check may have no one waiting
            raise
        finally:
            if _lookups.get(digest) is future:
                del _lookups[digest]
        if principal is None:
            key_cache.drop(digest)  # unknown or revoked: unknown keys are not cached (a new key works at once)
        else:
            key_cache.put(digest, principal)
        future.set_result(principal)

    task = loop.create_task(run())
    _background.add(task)
    task.add_done_callback(_finished)
    return future


def _finished(task: asyncio.Task[None]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # the requests waiting on it got the error; a background re-check only logs it
        log.warning("API key look-up failed: %s", task.exception())


_background: set[asyncio.Task[None]] = set()


async def current_principal(request: Request, key: str | None = Security(api_key_header)) -> Principal:
    return await principal_of(request, key)


async def principal_of(request: Request, key: str | None) -> Principal:
    """The key's principal (401 when missing, unknown or revoked), from the cache when fresh."""
    if not key:
        raise HTTPException(status_code=401, detail="missing API key: send it in the X-API-Key header")
    store = request.app.state.store
    # Keyed by the store too: nodes sharing one process (the federation demo) have separate keys.
    name = _store_names.get(store.engine)
    if name is None:  # rendering the URL costs more than the rest of the check: once per store
        name = _store_names[store.engine] = str(store.engine.url)
    digest = f"{name}|{hash_key(key)}"
    cached, principal = key_cache.get(digest)
    if not cached:
        principal = await asyncio.shield(_lookup(store, key, digest))
    elif digest not in _lookups and key_cache.stale(digest):
        _lookup(store, key, digest)  # re-verified in the background; this request goes on
    if principal is None:
        raise HTTPException(status_code=401, detail="unknown or revoked API key")
    return principal


def admit(principal: Principal, allowed: set[Role] | frozenset[Role]) -> Principal:
    """``principal`` when its role is in ``allowed``, else 403 naming the roles that are."""
    if principal.role not in allowed:
        names = ", ".join(sorted(r.value for r in allowed))
        raise HTTPException(status_code=403, detail=f"role {principal.role.value!r} may not do this; allowed: {names}")
    return principal


async def authorize(request: Request, *roles: Role) -> Principal:
    """The same check as ``Depends(require_roles(*roles))``, called inline by a hot route (it saves
    FastAPI's per-request dependency resolution); such a route declares the key in its OpenAPI
    ``security`` itself."""
    return admit(await principal_of(request, request.headers.get(api_key_header.model.name)),
                 {Role.ADMIN, *roles})


def require_roles(*roles: Role):  # type: ignore[no-untyped-def]
    """Dependency that admits a key of one of ``roles`` (admin is always admitted)."""
    allowed = {Role.ADMIN, *roles}

    async def check(principal: Principal = Depends(current_principal)) -> Principal:
        return admit(principal, allowed)

    check.allowed_roles = allowed  # type: ignore[attr-defined]
    return check
