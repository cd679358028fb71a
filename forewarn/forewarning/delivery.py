"""Delivery workers: drain the outbox through the channels, with leases, retries and dead letters
(see :mod:`forewarn.forewarning.outbox` for the guarantees)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from forewarn.forewarning import outbox
from forewarn.forewarning.channels import Channel, DeliveryError, FileSink
from forewarn.forewarning.policy import Policy
from forewarn.store import Store


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    superseded: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def default_worker_id() -> str:
    return f"{socket.gethostname()[:20]}-{os.getpid()}"


def deliver(store: Store, channels: dict[str, Channel], *, policy: Policy | None = None,
            worker: str | None = None, batch: int = 50, max_messages: int | None = None,
            follow: bool = False, poll_seconds: float = 1.0, stop: threading.Event | None = None,
            on_message: Callable[[str, str], None] | None = None) -> DeliveryReport:
    """Deliver due messages until none is due (or forever with ``follow``, until ``stop`` is set).

    ``on_message(message_id, outcome)`` is called after each message (for progress bars)."""
    policy = policy or Policy.load()
    worker = worker or default_worker_id()
    stop = stop or threading.Event()
    report = DeliveryReport()
    done = 0
    while not stop.is_set():
        with store.begin() as conn:
            claimed = outbox.claim(conn, worker, limit=batch, lease_seconds=policy.delivery.lease_seconds,
                                   channels=tuple(channels))
        if not claimed:
            if not follow:
                break
            stop.wait(poll_seconds)
            continue
        for item in claimed:
            msg = item.message
            channel = channels.get(msg.channel)
            try:
                if channel is None:
                    raise DeliveryError(f"no channel {msg.channel!r} configured", permanent=True)
                ref = channel.send(msg)
            except DeliveryError as exc:
                with store.begin() as conn:
                    status = outbox.mark_failed(conn, item, str(exc), permanent=exc.permanent,
                                                base=policy.delivery.backoff_base_seconds,
                                                cap=policy.delivery.backoff_max_seconds)
                if status == "dead":
                    report.dead += 1
                elif status == "pending":
                    report.retried += 1
                else:
                    report.superseded += 1
                outcome = status
            else:
                final = "delivered" if isinstance(channel, FileSink) else "sent"
                with store.begin() as conn:
                    ok = outbox.mark_delivered(conn, item, ref, warning_status=final)
                if ok:
                    report.delivered += 1
                    report.by_channel[msg.channel] = report.by_channel.get(msg.channel, 0) + 1
                else:
                    report.superseded += 1
                outcome = "delivered" if ok else "superseded"
            if on_message is not None:
                on_message(msg.message_id, outcome)
            done += 1
            if max_messages is not None and done >= max_messages:
                return report
            if stop.is_set():
                break
    return report


def run_forever(store: Store, channels: dict[str, Channel], *, policy: Policy | None = None,
                stop: threading.Event, poll_seconds: float = 1.0) -> None:
    """A background delivery loop that survives channel and store errors (logged, then retried)."""
    import logging

    log = logging.getLogger("forewarn.forewarning.delivery")
    while not stop.is_set():
        try:
            deliver(store, channels, policy=policy, follow=True, poll_seconds=poll_seconds, stop=stop)
        except Exception:  # keep the loop alive; the outbox keeps every message
            log.exception("delivery loop error; retrying")
            time.sleep(poll_seconds)
