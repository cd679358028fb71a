"""In-process fan-out of newly stored events.

After each committed chunk (file chunk, HTTP batch or broker chunk) ingestion calls
:func:`publish` with the events that chunk stored for the first time; duplicates and quarantined
rows never appear. So a detector or a live counter that subscribes sees every event once, after
it is durable::

    from forewarn.ingest import bus

    def count_calls(events):          # events: list[StoredEvent], in file order
        calls = sum(1 for e in events if e.kind == "call")
        ...

    unsubscribe = bus.subscribe(count_calls)
    ...
    unsubscribe()

Callbacks run synchronously in the ingesting thread, so keep them quick (hand heavy work to a
queue). Each :class:`~forewarn.ingest.validate.StoredEvent` has ``kind``, ``event_id``, ``subject``,
``counterpart``, ``occurred_at``, the JSON ``payload``, ``data`` (the decoded dict) and ``model()``
(the typed event). A callback that raises is logged and does not stop ingestion, nor the other
callbacks: the events are already stored. Between processes use NATS (:mod:`forewarn.ingest.nats`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forewarn.ingest.validate import EventBatch, StoredEvent

Callback = Callable[[list["StoredEvent"]], None]
log = logging.getLogger("forewarn.ingest.bus")
_subscribers: list[Callback] = []
_lock = threading.Lock()


def subscribe(callback: Callback) -> Callable[[], None]:
    """Register ``callback``; returns a function that unsubscribes it."""
    with _lock:
        _subscribers.append(callback)

    def unsubscribe() -> None:
        with _lock:
            if callback in _subscribers:
                _subscribers.remove(callback)

    return unsubscribe


def publish(events: EventBatch | Sequence[StoredEvent]) -> None:
    """Hand newly stored events to every subscriber (no-op when there are none or no events)."""
    if not len(events):
        return
    with _lock:
        targets = list(_subscribers)
    if not targets:
        return  # building event objects costs; only when someone listens
    batch = events.events() if hasattr(events, "events") else list(events)
    for callback in targets:
        try:
            callback(batch)
        except Exception:  # the events are stored; one faulty listener must not stop ingestion
            log.exception("ingest bus subscriber %r failed", callback)
