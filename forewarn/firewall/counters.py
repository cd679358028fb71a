"""What the firewall needs from live behaviour counters, and a guard that keeps them off the
critical path.

The counters themselves live in :mod:`forewarn.behaviour.live` (``LiveCounters`` in process,
``RedisLiveCounters`` shared by several workers). :class:`GuardedCounters` puts a time budget on
every look-up (the Redis client's socket timeout), caches one number's features for a second,
and after a failure skips the counters for a back-off period, so that a slow or absent Redis
costs at most one timeout per back-off period and never stops a decision. Once :meth:`start`
ed (as the API does), counting an attempt only appends it to a bounded queue; a background thread
applies the queue in batches (one pipelined Redis round trip per batch), so an answer never waits
for its own counting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
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

    def __init__(self, source: LiveCounterSource, cache_s: float = 1.0, failure_backoff_s: float = 5.0, *,
                 timeout_s: float = 0.015, queue_capacity: int = 100_000, batch_window_s: float = 0.005) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self.failure_backoff_s = failure_backoff_s
        self._cache: dict[str, tuple[float, float, dict[str, float]]] = {}
        self._previous: dict[str, tuple[float, float, dict[str, float]]] = {}
        self._rotated_at = time.monotonic()
        self._executor: ThreadPoolExecutor | None = None
        self._down_until = 0.0
        self.failures = 0
        self._lock = threading.Lock()  # LiveCounters is not thread-safe; look-ups and the applier share it
        self._fast = getattr(source, "observe_call_fields", None)
        # In-process counters (LiveCounters has the plain-values fast path) answer without I/O;
        # others (Redis) go over the network: looked up off the event loop, counted in batches.
        self.in_process = self._fast is not None
        self._batch = getattr(source, "observe_many", None) if self._fast is None else None
        # deferred counting (after start()): attempts wait here for the applier thread
        self.queue_capacity = queue_capacity
        self.batch_window_s = batch_window_s
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queue_dropped = 0
        self.applied = 0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self._down_until = time.monotonic() + self.failure_backoff_s
        log.warning("live counters unavailable for %.0f s: %s: %s", self.failure_backoff_s, type(exc).__name__, exc)

    def _cached(self, number: str, at: float, mono: float) -> dict[str, float] | None:
        # fresh in wall-clock time and for the decision's own time
        hit = self._cache.get(number)
        if hit is None:
            hit = self._previous.get(number)
        if hit is not None and mono - hit[0] < self.cache_s and abs(at - hit[1]) < self.cache_s:
            return hit[2]
        return None

    def _remember(self, number: str, at: float, mono: float, feats: dict[str, float]) -> None:
        # Two generations, swapped every cache_s: entries live between one and two periods, so the
        # cache holds a few seconds of numbers, not every number seen (less memory, and fewer
        # objects for the garbage collector to walk while decisions wait).
        if mono - self._rotated_at >= self.cache_s:
            self._previous, self._cache = self._cache, {}
            self._rotated_at = mono
        self._cache[number] = (mono, at, feats)

    def _fetch(self, number: str, at: float) -> dict[str, float]:
        if self.in_process:
            with self._lock:
                return self.source.features(number, datetime.fromtimestamp(at, UTC))
        return self.source.features(number, datetime.fromtimestamp(at, UTC))  # a Redis client is thread-safe

    def features(self, number: str, at: float) -> dict[str, float] | None:
        mono = time.monotonic()
        if mono < self._down_until:
            return None
        if self.cache_s > 0:
            hit = self._cached(number, at, mono)
            if hit is not None:
                return hit
        try:
            feats = self._fetch(number, at)
        except Exception as exc:  # redis errors, timeouts: decide without counters
            self._failed(exc)
            return None
        if self.cache_s > 0:
            self._remember(number, at, mono, feats)
        return feats

    async def features_async(self, number: str, at: float) -> dict[str, float] | None:
        """:meth:`features` for an event loop: in-process counters answer at once; a network look-up
        runs in a small thread pool, so the loop serves other requests meanwhile (the decision
        itself still waits, at most ``timeout_s``)."""
        if self.in_process:
            return self.features(number, at)
        mono = time.monotonic()
        if mono < self._down_until:
            return None
        if self.cache_s > 0:
            hit = self._cached(number, at, mono)
            if hit is not None:
                return hit
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="firewall-counters-lookup")
        lookup = asyncio.get_running_loop().run_in_executor(self._executor, self._fetch, number, at)
        try:  # the budget covers the wait for a free look-up thread too
            feats = await asyncio.wait_for(lookup, self.timeout_s)
        except Exception as exc:  # TimeoutError included: decide without counters, back off
            self._failed(exc if str(exc) else TimeoutError(f"no answer within {self.timeout_s * 1000:.0f} ms"))
            return None
        if self.cache_s > 0:
            self._remember(number, at, time.monotonic(), feats)
        return feats

    def observe_call(self, caller: str, callee: str, at: float, ingress: str, caller_country: str | None,
                     callee_country: str | None) -> None:
        """Count one call attempt (unanswered, as the firewall sees it before it rings): queued when
        the applier runs, else applied now."""
        if self._thread is not None:
            self._enqueue(("call", caller, callee, at, ingress, caller_country, callee_country))
        elif time.monotonic() >= self._down_until:
            self._apply([("call", caller, callee, at, ingress, caller_country, callee_country)])

    def observe_message(self, sender: str, recipient: str, at: float) -> None:
        if self._thread is not None:
            self._enqueue(("sms", sender, recipient, at))
        elif time.monotonic() >= self._down_until:
            self._apply([("sms", sender, recipient, at)])

    # --- deferred counting ----------------------------------------------------------------------

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        queue = self._queue
        if len(queue) >= self.queue_capacity:  # the applier fell behind (Redis down): the oldest goes
            queue.popleft()
            self.queue_dropped += 1
        queue.append(item)
        if not self._wake.is_set():
            self._wake.set()

    @staticmethod
    def _record(item: tuple[Any, ...]) -> CallRecord | Message:
        if item[0] == "call":
            _, caller, callee, at, ingress, caller_country, callee_country = item
            return CallRecord.model_construct(
                event_id=f"fw-{uuid.uuid4().hex}", source="firewall", kind="call", caller=caller, callee=callee,
                start=datetime.fromtimestamp(at, UTC), duration_s=0.0, ring_s=None, direction="outgoing",
                call_type="voice", ingress=Ingress(ingress), caller_country=caller_country,
                callee_country=callee_country, imei=None, cell_id=None)
        _, sender, recipient, at = item
        return Message.model_construct(event_id=f"fw-{uuid.uuid4().hex}", source="firewall", kind="message",
                                       sender=sender, recipient=recipient, text="",
                                       sent_at=datetime.fromtimestamp(at, UTC), channel="sms",
                                       ingress=Ingress.DOMESTIC, lang=None)

    def _apply(self, items: list[tuple[Any, ...]]) -> None:
        """Count a batch: in-process counters one by one, others (Redis) in one ``observe_many``."""
        try:
            with self._lock:
                if self._fast is not None:
                    fast = self._fast
                    for item in items:
                        if item[0] == "call":
                            _, caller, callee, at, ingress, caller_country, callee_country = item
                            fast(caller, callee, at, 0.0, None, ingress, caller_country, callee_country)
                        else:
                            self.source.observe_message(self._record(item))  # type: ignore[arg-type]
                elif self._batch is not None:
                    self._batch([self._record(item) for item in items])
                else:
                    for item in items:
                        rec = self._record(item)
                        if isinstance(rec, CallRecord):
                            self.source.observe_call(rec)
                        else:
                            self.source.observe_message(rec)
            self.applied += len(items)
        except Exception as exc:
            self._failed(exc)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if not self._stop.is_set():
                time.sleep(self.batch_window_s)  # let a batch gather: one round trip for many attempts
            self._wake.clear()
            self.drain()
            if self._stop.is_set():
                return

    def drain(self) -> int:
        """Apply everything queued so far (skipped, and counted as dropped, while counters are down)."""
        items: list[tuple[Any, ...]] = []
        queue = self._queue
        while queue:
            try:
                items.append(queue.popleft())
            except IndexError:
                break
        if not items:
            return 0
        if time.monotonic() < self._down_until:
            self.queue_dropped += len(items)
            return 0
        for start in range(0, len(items), 1000):
            self._apply(items[start:start + 1000])
        return len(items)

    def start(self) -> None:
        """Count attempts in the background from now on (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="firewall-counters", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the background counting and apply what is queued."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout=5)
        self.drain()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    @property
    def pending(self) -> int:
        return len(self._queue)


def describe(source: Any) -> str:
    return type(source).__name__ if source is not None else "none"
