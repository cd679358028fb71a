"""What the firewall needs from live behaviour counters, and a guard that keeps them off the
critical path.

The counters themselves live in :mod:`forewarn.behaviour.live` (``LiveCounters`` in process,
``RedisLiveCounters`` shared by several workers). :class:`GuardedCounters` puts a time budget on
every look-up (the Redis client's socket timeout), caches one number's features for a second,
and after a failure skips the counters for a back-off period, so that a slow or absent Redis
costs at most one timeout per back-off period and never stops a decision.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from forewarn.model.events import CallRecord, Ingress, Message

log = logging.getLogger("forewarn.firewall")


@runtime_checkable
class LiveCounterSource(Protocol):
    def observe_call(self, rec: CallRecord) -> None: ...

    def observe_message(self, msg: Message) -> None: ...

    def features(self, number: str, at: datetime | None = None) -> dict[str, float]: ...


def make_counters(redis_url: str | None = None, timeout_ms: float = 15.0,
                  namespace: str = "fw:attempts") -> LiveCounterSource | None:
    """Redis counters when ``redis_url`` is given, else in-process ones; None if behaviour is absent."""
    try:
        from forewarn.behaviour.live import LiveCounters, RedisLiveCounters
    except ImportError:
        return None
    if not redis_url:
        return LiveCounters()
    import redis

    seconds = timeout_ms / 1000.0
    client = redis.Redis.from_url(redis_url, socket_timeout=seconds, socket_connect_timeout=max(seconds, 0.05))
    return RedisLiveCounters(redis_url, namespace=namespace, client=client)


class GuardedCounters:
    """Counters behind a cache, a time budget and a back-off; ``features`` returns None when unavailable."""

    def __init__(self, source: LiveCounterSource, cache_s: float = 1.0, failure_backoff_s: float = 5.0) -> None:
        self.source = source
        self.cache_s = cache_s
        self.failure_backoff_s = failure_backoff_s
        self._cache: dict[str, tuple[float, float, dict[str, float]]] = {}
        self._down_until = 0.0
        self.failures = 0
        self._lock = threading.Lock()  # LiveCounters is not thread-safe; the API serves from a thread pool
        self._fast = getattr(source, "observe_call_fields", None)

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self._down_until = time.monotonic() + self.failure_backoff_s
        log.warning("live counters unavailable for %.0f s: %s: %s", self.failure_backoff_s, type(exc).__name__, exc)

    def features(self, number: str, at: float) -> dict[str, float] | None:
        mono = time.monotonic()
        if mono < self._down_until:
            return None
        if self.cache_s > 0:  # fresh in wall-clock time and for the decision's own time
            hit = self._cache.get(number)
            if hit is not None and mono - hit[0] < self.cache_s and abs(at - hit[1]) < self.cache_s:
                return hit[2]
        try:
            with self._lock:
                feats = self.source.features(number, datetime.fromtimestamp(at, UTC))
        except Exception as exc:  # redis errors, timeouts: decide without counters
            self._failed(exc)
            return None
        if self.cache_s > 0:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[number] = (mono, at, feats)
        return feats

    def observe_call(self, caller: str, callee: str, at: float, ingress: str, caller_country: str | None,
                     callee_country: str | None) -> None:
        """Count one call attempt (unanswered, as the firewall sees it before it rings)."""
        if time.monotonic() < self._down_until:
            return
        try:
            with self._lock:
                if self._fast is not None:
                    self._fast(caller, callee, at, 0.0, None, ingress, caller_country, callee_country)
                else:
                    rec = CallRecord.model_construct(
                        event_id=f"fw-{uuid.uuid4().hex}", source="firewall", kind="call", caller=caller,
                        callee=callee, start=datetime.fromtimestamp(at, UTC), duration_s=0.0, ring_s=None,
                        direction="outgoing", call_type="voice", ingress=Ingress(ingress),
                        caller_country=caller_country, callee_country=callee_country, imei=None, cell_id=None)
                    self.source.observe_call(rec)
        except Exception as exc:
            self._failed(exc)

    def observe_message(self, sender: str, recipient: str, at: float) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            msg = Message.model_construct(event_id=f"fw-{uuid.uuid4().hex}", source="firewall", kind="message",
                                          sender=sender, recipient=recipient, text="",
                                          sent_at=datetime.fromtimestamp(at, UTC), channel="sms",
                                          ingress=Ingress.DOMESTIC, lang=None)
            with self._lock:
                self.source.observe_message(msg)
        except Exception as exc:
            self._failed(exc)


def describe(source: Any) -> str:
    return type(source).__name__ if source is not None else "none"
