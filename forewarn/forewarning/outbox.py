"""The delivery outbox: every warning, officer notification and payment-hold request is written
to ``fw_outbox`` in the same transaction that decided it, then delivered by workers.

Delivery never loses a message and never sends one twice to a receiver that honours idempotency
keys: a worker *claims* due messages under a lease (``sending``, ``claimed_by``, ``lease_until``),
records the attempt, sends with the message's idempotency key, and marks it ``delivered`` only if
it still holds the claim. A worker that dies mid-delivery leaves its lease to expire; another
worker re-claims the message and resends it with the same key, which the receiver (our file sink,
a webhook partner, an SMTP server via Message-ID) recognises. Failures retry with exponential
back-off; after ``max_attempts`` (or a permanent error) the message moves to the dead-letter list,
from which an operator can requeue it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from forewarn.forewarning import tables as ft
from forewarn.model.indicators import utcnow
from forewarn.model.records import new_id
from forewarn.store import schema as t
from forewarn.store.db import insert_ignoring_duplicates, utc

CHANNELS = ("sms", "email", "webhook", "console")


@dataclass(frozen=True)
class OutboxMessage:
    message_id: str
    idempotency_key: str
    channel: str
    recipient: str
    subject: str | None
    body: str
    payload: dict[str, Any]
    warning_id: str | None
    task_id: str | None
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class Claimed:
    """A message this worker holds under the claim ``token``."""

    message: OutboxMessage
    token: str


def enqueue(conn: Connection, *, channel: str, recipient: str, body: str, idempotency_key: str,
            subject: str | None = None, payload: dict[str, Any] | None = None, warning_id: str | None = None,
            task_id: str | None = None, max_attempts: int = 8, now: datetime | None = None) -> str:
    """Add a message (inside the caller's transaction); an existing idempotency key is not added twice.
    Returns the message id (the existing one for a repeat)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNELS)}")
    now = now or utcnow()
    message_id = new_id("msg")
    added = insert_ignoring_duplicates(conn, ft.fw_outbox, [{
        "message_id": message_id, "idempotency_key": idempotency_key, "channel": channel, "recipient": recipient,
        "subject": subject, "body": body, "payload": payload or {}, "warning_id": warning_id, "task_id": task_id,
        "status": "pending", "attempts": 0, "max_attempts": max_attempts, "next_attempt_at": now,
        "claimed_by": None, "lease_until": None, "last_error": None, "provider_ref": None, "created_at": now,
        "delivered_at": None}], ["idempotency_key"])
    if added:
        return message_id
    return str(conn.execute(select(ft.fw_outbox.c.message_id).where(
        ft.fw_outbox.c.idempotency_key == idempotency_key)).scalar_one())


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(row.message_id, row.idempotency_key, row.channel, row.recipient, row.subject, row.body,
                         dict(row.payload or {}), row.warning_id, row.task_id, row.attempts, row.max_attempts)


def claim(conn: Connection, worker: str, *, limit: int = 50, lease_seconds: float = 60,
          channels: tuple[str, ...] | None = None, now: datetime | None = None) -> list[Claimed]:
    """Claim up to ``limit`` due messages for ``worker``: pending ones whose time has come, and
    ``sending`` ones whose lease expired (their worker died). Safe with concurrent workers: the
    UPDATE re-checks the claimable condition row by row."""
    now = now or utcnow()
    claimable = or_(and_(ft.fw_outbox.c.status == "pending", ft.fw_outbox.c.next_attempt_at <= now),
                    and_(ft.fw_outbox.c.status == "sending", ft.fw_outbox.c.lease_until < now))
    pick = select(ft.fw_outbox.c.message_id).where(claimable)
    if channels:
        pick = pick.where(ft.fw_outbox.c.channel.in_(channels))
    pick = pick.order_by(ft.fw_outbox.c.next_attempt_at).limit(limit)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = [r[0] for r in conn.execute(pick)]
    if not ids:
        return []
    token = f"{worker}:{new_id('c')}"[:64]
    conn.execute(update(ft.fw_outbox).where(ft.fw_outbox.c.message_id.in_(ids), claimable).values(
        status="sending", claimed_by=token, lease_until=now + timedelta(seconds=lease_seconds),
        attempts=ft.fw_outbox.c.attempts + 1))
    rows = conn.execute(select(ft.fw_outbox).where(ft.fw_outbox.c.claimed_by == token)).all()
    conn.execute(ft.fw_delivery_attempts.insert(), [
        {"message_id": r.message_id, "attempt": r.attempts, "worker": token, "started_at": now,
         "finished_at": None, "outcome": None, "error": None} for r in rows])
    return [Claimed(_message(r), token) for r in rows]


def _finish_attempt(conn: Connection, message_id: str, token: str, outcome: str, error: str | None,
                    now: datetime) -> None:
    conn.execute(update(ft.fw_delivery_attempts).where(
        ft.fw_delivery_attempts.c.message_id == message_id, ft.fw_delivery_attempts.c.worker == token,
        ft.fw_delivery_attempts.c.finished_at.is_(None)).values(finished_at=now, outcome=outcome, error=error))


def mark_delivered(conn: Connection, claimed: Claimed, provider_ref: str | None, *,
                   warning_status: str = "sent", now: datetime | None = None) -> bool:
    """Mark delivered if this worker still holds the claim (fencing); True when it did."""
    now = now or utcnow()
    msg = claimed.message
    done = conn.execute(update(ft.fw_outbox).where(
        ft.fw_outbox.c.message_id == msg.message_id, ft.fw_outbox.c.claimed_by == claimed.token,
        ft.fw_outbox.c.status == "sending").values(
        status="delivered", delivered_at=now, provider_ref=(provider_ref or "")[:200], lease_until=None,
        last_error=None)).rowcount
    _finish_attempt(conn, msg.message_id, claimed.token, "delivered" if done else "superseded", None, now)
    if done and msg.warning_id:
        conn.execute(update(t.warnings_).where(t.warnings_.c.warning_id == msg.warning_id,
                                               t.warnings_.c.status.in_(("queued", "failed")))
                     .values(status=warning_status))
    return bool(done)


def backoff_seconds(attempts: int, base: float, cap: float) -> float:
    """Exponential back-off with full jitter in its upper half: base·2^(n-1), capped."""
    raw = min(cap, base * (2 ** max(0, attempts - 1)))
    return raw / 2 + random.random() * raw / 2


def mark_failed(conn: Connection, claimed: Claimed, error: str, *, permanent: bool, base: float = 5,
                cap: float = 900, now: datetime | None = None) -> str:
    """Schedule a retry, or dead-letter the message; returns the new status."""
    now = now or utcnow()
    msg = claimed.message
    row = conn.execute(select(ft.fw_outbox.c.attempts, ft.fw_outbox.c.claimed_by, ft.fw_outbox.c.status)
                       .where(ft.fw_outbox.c.message_id == msg.message_id)).first()
    if row is None or row.claimed_by != claimed.token or row.status != "sending":
        _finish_attempt(conn, msg.message_id, claimed.token, "superseded", error[:2000], now)
        return "superseded"
    dead = permanent or row.attempts >= msg.max_attempts
    if dead:
        conn.execute(update(ft.fw_outbox).where(ft.fw_outbox.c.message_id == msg.message_id).values(
            status="dead", last_error=error[:4000], lease_until=None))
        conn.execute(ft.fw_dead_letters.insert().values(
            message_id=msg.message_id, channel=msg.channel, recipient=msg.recipient, reason=error[:4000],
            attempts=row.attempts, dead_at=now, requeued_at=None))
        if msg.warning_id:
            conn.execute(update(t.warnings_).where(t.warnings_.c.warning_id == msg.warning_id).values(status="failed"))
    else:
        conn.execute(update(ft.fw_outbox).where(ft.fw_outbox.c.message_id == msg.message_id).values(
            status="pending", last_error=error[:4000], lease_until=None, claimed_by=None,
            next_attempt_at=now + timedelta(seconds=backoff_seconds(row.attempts, base, cap))))
    _finish_attempt(conn, msg.message_id, claimed.token, "dead" if dead else "failed", error[:2000], now)
    return "dead" if dead else "pending"


def requeue_dead(conn: Connection, message_id: str, now: datetime | None = None) -> bool:
    """Give a dead letter a fresh set of attempts."""
    now = now or utcnow()
    done = conn.execute(update(ft.fw_outbox).where(ft.fw_outbox.c.message_id == message_id,
                                                   ft.fw_outbox.c.status == "dead").values(
        status="pending", attempts=0, next_attempt_at=now, claimed_by=None, lease_until=None)).rowcount
    if done:
        conn.execute(update(ft.fw_dead_letters).where(ft.fw_dead_letters.c.message_id == message_id,
                                                      ft.fw_dead_letters.c.requeued_at.is_(None))
                     .values(requeued_at=now))
    return bool(done)


def dead_letters(conn: Connection, limit: int = 100, include_requeued: bool = False) -> list[dict[str, Any]]:
    stmt = select(ft.fw_dead_letters)
    if not include_requeued:
        stmt = stmt.where(ft.fw_dead_letters.c.requeued_at.is_(None))
    rows = conn.execute(stmt.order_by(ft.fw_dead_letters.c.dead_at.desc()).limit(limit)).mappings()
    return [{**dict(r), "dead_at": utc(r["dead_at"]), "requeued_at": utc(r["requeued_at"])} for r in rows]


def status_counts(conn: Connection) -> dict[str, int]:
    return {s: int(n) for s, n in conn.execute(select(ft.fw_outbox.c.status, func.count())
                                                .group_by(ft.fw_outbox.c.status))}
