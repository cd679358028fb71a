"""Allow-lists: registered SMS sender IDs, emergency and government warning numbers, numbers a
telco vouches for, and each subscriber's personal allow-list. They always win over block rules.

Values are stored canonical: E.164 for numbers, the upper-cased sender ID for sender IDs, and
bare digits for short codes (``110``, ``1199``), which have no E.164 form.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, delete, select

from forewarn.model.indicators import utcnow
from forewarn.model.phone import InvalidPhoneNumber, InvalidSenderId, normalise_phone, normalise_sender
from forewarn.reputation import tables as rt
from forewarn.reputation.index import AllowLists
from forewarn.store import audit

_SHORT_CODE = re.compile(r"^[0-9]{3,6}$")


class AllowKind(StrEnum):
    EMERGENCY = "emergency"
    GOVERNMENT = "government"
    SENDER_ID = "sender_id"
    NUMBER = "number"
    PERSONAL = "personal"


class AllowListError(ValueError):
    """A bad allow-list entry; the message says why."""


def canonical_allow_value(kind: AllowKind | str, value: str, default_region: str | None = None) -> str:
    kind = AllowKind(kind)
    text = value.strip()
    if kind in (AllowKind.EMERGENCY, AllowKind.GOVERNMENT) and _SHORT_CODE.match(text):
        return text
    try:
        if kind is AllowKind.SENDER_ID:
            canonical = normalise_sender(text, default_region)
            if canonical.startswith("+"):
                raise AllowListError("a registered sender ID has letters; add numbers with kind 'number'")
            return canonical
        if kind is AllowKind.PERSONAL:
            return normalise_sender(text, default_region)
        return normalise_phone(text, default_region)
    except (InvalidPhoneNumber, InvalidSenderId) as exc:
        raise AllowListError(f"{kind.value} entry {text[:40]!r}: {exc.reason}") from None


def add_entry(conn: Connection, kind: AllowKind | str, value: str, *, actor: str, owner: str | None = None,
              note: str | None = None, expires_at: datetime | None = None,
              default_region: str | None = None) -> dict[str, Any]:
    """Add (or refresh) one entry, audited in the caller's transaction."""
    try:
        kind = AllowKind(kind)
    except ValueError:
        raise AllowListError(f"unknown allow-list kind {kind!r}; one of: {', '.join(k.value for k in AllowKind)}") from None
    canonical = canonical_allow_value(kind, value, default_region)
    owner_value = ""
    if kind is AllowKind.PERSONAL:
        if not owner:
            raise AllowListError("a personal entry needs the owner's number")
        try:
            owner_value = normalise_phone(owner, default_region)
        except InvalidPhoneNumber as exc:
            raise AllowListError(f"owner {owner[:40]!r}: {exc.reason}") from None
    elif owner:
        raise AllowListError("only personal entries have an owner")
    if note is not None and len(note) > 300:
        raise AllowListError("a note has at most 300 characters")
    conn.execute(delete(rt.allowlist).where(and_(rt.allowlist.c.kind == kind.value,
                                                 rt.allowlist.c.value == canonical,
                                                 rt.allowlist.c.owner == owner_value)))
    row = {"kind": kind.value, "value": canonical, "owner": owner_value, "note": note, "added_by": actor,
           "added_at": utcnow(), "expires_at": expires_at}
    conn.execute(rt.allowlist.insert().values(**row))
    audit.append(conn, actor, "allowlist.add", canonical, {"kind": kind.value, "owner": owner_value or None})
    return row


def remove_entry(conn: Connection, kind: AllowKind | str, value: str, *, actor: str, owner: str | None = None,
                 default_region: str | None = None) -> bool:
    kind = AllowKind(kind)
    canonical = canonical_allow_value(kind, value, default_region)
    owner_value = normalise_phone(owner, default_region) if owner else ""
    done = conn.execute(delete(rt.allowlist).where(and_(rt.allowlist.c.kind == kind.value,
                                                        rt.allowlist.c.value == canonical,
                                                        rt.allowlist.c.owner == owner_value))).rowcount
    if done:
        audit.append(conn, actor, "allowlist.remove", canonical, {"kind": kind.value, "owner": owner_value or None})
    return bool(done)


def list_entries(conn: Connection, kind: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    stmt = select(rt.allowlist)
    if kind:
        stmt = stmt.where(rt.allowlist.c.kind == kind)
    return [dict(r) for r in conn.execute(stmt.order_by(rt.allowlist.c.id).limit(limit)).mappings()]


def load_allow_lists(conn: Connection, now: datetime | None = None) -> AllowLists:
    """Every unexpired entry, ready for the snapshot."""
    now = now or utcnow()
    numbers: dict[str, str] = {}
    personal: dict[str, set[str]] = defaultdict(set)
    rows = conn.execute(select(rt.allowlist.c.kind, rt.allowlist.c.value, rt.allowlist.c.owner,
                               rt.allowlist.c.expires_at).where(
        (rt.allowlist.c.expires_at.is_(None)) | (rt.allowlist.c.expires_at > now)))
    # emergency outranks government outranks the rest when one value is listed twice
    rank = {"emergency": 0, "government": 1, "sender_id": 2, "number": 3}
    for row in rows:
        if row.kind == AllowKind.PERSONAL.value:
            personal[row.owner].add(row.value)
        elif row.value not in numbers or rank[row.kind] < rank[numbers[row.value]]:
            numbers[row.value] = row.kind
    return AllowLists(numbers=numbers, personal={k: frozenset(v) for k, v in personal.items()})
