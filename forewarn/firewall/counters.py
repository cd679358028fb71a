"""What the firewall needs from live behaviour counters, and a guard that keeps them off the
critical path.

The counters themselves live in :mod:`forewarn.behaviour.live` (``LiveCounters`` in process,
``RedisLiveCounters`` shared by several workers). :class:`GuardedCounters` puts a time budget on
every look-up, caches one number's features for a second, and has a circuit breaker: a slow or
failed look-up costs only its own decision its counters (counted in ``lookups_failed``); the
breaker opens after several failures in a row or a high failure rate among recent look-ups, skips
the counters for a back-off period, then lets one probe through before closing again. So a slow or
absent Redis costs a few timeouts per back-off period and never stops a decision. On an event loop,
counters that can be awaited (``features_async``, as Redis has) are looked up on the loop itself:
no hand-off to another thread, whose turn at the GIL can take milliseconds under load. Once
:meth:`start` ed (as the API does), counting an attempt only appends it to a bounded queue, applied in
batches (one Redis round trip per batch) by the event loop or, without one, a background thread;
an answer never waits for its own counting.
"""

from __future__ import annotations

import asyncio
import inspect
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
    # The blocking client (sync decisions, counting without an event loop) times out like a look-up;
    # connecting may take a little longer once. Awaited look-ups keep the guard's deadline themselves.
    client = redis.Redis.from_url(redis_url, socket_timeout=max(seconds, 0.05),
                                  socket_connect_timeout=max(seconds, 0.05))
    return RedisLiveCounters(redis_url, namespace=namespace, client=client)


class GuardedCounters:
    """Counters behind a cache, a time budget and a circuit breaker; ``features`` returns None when
    unavailable.

    The breaker opens after ``open_after`` failed look-ups in a row that span at least ``timeout_s``
    (Redis down or slow), or when at least half of the last ``rate_window`` look-ups failed and those
    failures span at least ``rate_span_s`` (a flaky Redis, failing every other time). The spans keep
    a burst of look-ups that time out together, because this process was paused or busy, from
    switching the counters off: each of those decisions goes without counters, nothing more. Open,
    it skips the counters for a back-off period, then lets one probe through: its success closes
    the breaker, its failure opens it again for twice as long. The first period is short (a quarter
    of a second: Redis paused, not gone, costs few decisions their counters), doubling up to
    ``failure_backoff_s`` while Redis stays away."""

    def __init__(self, source: LiveCounterSource, cache_s: float = 1.0, failure_backoff_s: float = 5.0, *,
                 timeout_s: float = 0.015, queue_capacity: int = 100_000, batch_window_s: float = 0.005,
                 open_after: int = 3, rate_window: int = 20, rate_span_s: float = 0.5) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self.failure_backoff_s = failure_backoff_s
        self.open_after = max(1, open_after)
        self._cache: dict[str, tuple[float, float, dict[str, float]]] = {}
        self._previous: dict[str, tuple[float, float, dict[str, float]]] = {}
        self._rotated_at = time.monotonic()
        self._executor: ThreadPoolExecutor | None = None
        # circuit breaker state
        self._down_until = 0.0
        self._backoff_s = min(0.25, failure_backoff_s)
        self._open = False
        self._probing = False
        self._in_a_row = 0
        self._streak_start = 0.0
        self.rate_span_s = rate_span_s
        self._recent: deque[float | None] = deque(maxlen=max(1, rate_window))  # when it failed, None: answered
        self._recent_failed: deque[float] = deque()  # the failure times among _recent
        # figures (per process): every look-up asked for ends as exactly one of these
        self.failures = 0  # failed look-ups and failed batches of counting
        self.lookups_ok = 0
        self.lookups_cached = 0
        self.lookups_failed = 0
        self.lookups_skipped = 0  # the breaker was open: decided without counters, no look-up made
        self.breaker_opened = 0
        self._lock = threading.Lock()  # LiveCounters is not thread-safe; look-ups and the applier share it
        self._fast = getattr(source, "observe_call_fields", None)
        # In-process counters (LiveCounters has the plain-values fast path) answer without I/O;
        # others (Redis) go over the network: awaited on the event loop when they can be
        # (features_async), else looked up in a thread; counted in batches.
        self.in_process = self._fast is not None
        self._awaitable = None if self.in_process else getattr(source, "features_async", None)
        # a source that keeps the deadline itself saves the wait_for wrapper (a task and a timer)
        self._keeps_deadline = self._awaitable is not None and "deadline_s" in inspect.signature(
            self._awaitable).parameters
        self._plain_batch = getattr(source, "observe_attempts", None) if self._fast is None else None
        self._async_batch = getattr(source, "observe_attempts_async", None) if self._fast is None else None
        self._batch = getattr(source, "observe_many", None) if self._fast is None else None
        # deferred counting (after start()): attempts wait here for the applier thread
        self.queue_capacity = queue_capacity
        self.batch_window_s = batch_window_s
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # or, started on an event loop with counters that can be awaited: the loop applies the queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._flush_scheduled = False
        self._flushing: set[asyncio.Task[None]] = set()
        self.queue_dropped = 0
        self.applied = 0

    # --- circuit breaker ------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether a look-up would be tried now (the breaker is closed, or may send its probe)."""
        return not self._open or (time.monotonic() >= self._down_until and not self._probing)

    def _admit(self) -> bool:
        """May a look-up go out now? While open, none; after the back-off, one probe at a time."""
        if not self._open:
            return True
        if time.monotonic() < self._down_until or self._probing:
            self.lookups_skipped += 1
            return False
        self._probing = True
        return True

    def _outcome(self, failed_at: float | None) -> None:
        recent = self._recent
        if len(recent) == recent.maxlen and recent[0] is not None:
            self._recent_failed.popleft()
        recent.append(failed_at)
        if failed_at is not None:
            self._recent_failed.append(failed_at)

    def _succeeded(self) -> None:
        self.lookups_ok += 1
        self._in_a_row = 0
        self._outcome(None)
        if self._open:
            self._open = self._probing = False
            log.warning("live counters answering again")

    def _failed(self, exc: Exception, lookup: bool = True) -> None:
        now = time.monotonic()
        self.failures += 1
        if self._in_a_row == 0:
            self._streak_start = now
        self._in_a_row += 1
        if lookup:
            self.lookups_failed += 1
            self._outcome(now)
        if self._open:  # the probe failed (or counting failed meanwhile): a longer back-off
            if self._probing:
                self._backoff_s = min(2 * self._backoff_s, self.failure_backoff_s)
            self._probing = False
            self._down_until = now + self._backoff_s
            return
        failed = self._recent_failed
        streak = self._in_a_row >= self.open_after and now - self._streak_start >= self.timeout_s
        rate = 2 * len(failed) >= (self._recent.maxlen or 1) and failed[-1] - failed[0] >= self.rate_span_s
        if streak or rate:
            self._open = True
            self.breaker_opened += 1
            self._backoff_s = min(0.25, self.failure_backoff_s)
            self._down_until = now + self._backoff_s
            log.warning("live counters off (for %.2f s, then probed) after %d failures in a row (%d of the last %d "
                        "look-ups): %s: %s", self._backoff_s, self._in_a_row, len(failed), len(self._recent),
                        type(exc).__name__, exc)

    # --- look-ups -------------------------------------------------------------------------------

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

    def _from_cache(self, number: str, at: float) -> tuple[float, dict[str, float] | None]:
        mono = time.monotonic()
        if self.cache_s > 0:
            hit = self._cached(number, at, mono)
            if hit is not None:
                self.lookups_cached += 1
                return mono, hit
        return mono, None

    def features(self, number: str, at: float) -> dict[str, float] | None:
        mono, hit = self._from_cache(number, at)
        if hit is not None:
            return hit
        if not self._admit():
            return None
        try:
            feats = self._fetch(number, at)
        except Exception as exc:  # redis errors, timeouts: decide without counters
            self._failed(exc)
            return None
        self._succeeded()
        if self.cache_s > 0:
            self._remember(number, at, mono, feats)
        return feats

    async def features_async(self, number: str, at: float) -> dict[str, float] | None:
        """:meth:`features` for an event loop: in-process counters answer at once; counters that can
        be awaited are awaited on this loop; others run in a small thread pool. Either way the loop
        serves other requests meanwhile, and the decision waits at most ``timeout_s``."""
        if self.in_process:
            return self.features(number, at)
        _, hit = self._from_cache(number, at)
        if hit is not None:
            return hit
        if not self._admit():
            return None
        when = datetime.fromtimestamp(at, UTC)
        lookup: Any
        if self._keeps_deadline:  # the source keeps the budget itself: no wait_for task and timer
            lookup = self._awaitable(number, when, deadline_s=self.timeout_s)  # type: ignore[misc]
        elif self._awaitable is not None:
            lookup = asyncio.wait_for(self._awaitable(number, when), self.timeout_s)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="firewall-counters-lookup")
            lookup = asyncio.wait_for(asyncio.get_running_loop().run_in_executor(
                self._executor, self._fetch, number, at), self.timeout_s)
        try:  # the budget covers the wait for a free connection or look-up thread too
            feats = await lookup
        except asyncio.CancelledError:  # the request itself went away: no verdict on the counters
            if self._open:
                self._probing = False
            raise
        except Exception as exc:  # TimeoutError included: this decision goes without counters
            self._failed(exc if str(exc) else TimeoutError(f"no answer within {self.timeout_s * 1000:.0f} ms"))
            return None
        self._succeeded()
        if self.cache_s > 0:
            self._remember(number, at, time.monotonic(), feats)
        return feats

    def stats(self) -> dict[str, Any]:
        """Look-up and counting figures of this process (for the status route and benchmarks)."""
        return {"lookups_ok": self.lookups_ok, "lookups_cached": self.lookups_cached,
                "lookups_failed": self.lookups_failed, "lookups_skipped": self.lookups_skipped,
                "breaker_open": self._open, "breaker_opened": self.breaker_opened,
                "pending": self.pending, "applied": self.applied, "dropped": self.queue_dropped,
                "failures": self.failures}

    def observe_call(self, caller: str, callee: str, at: float, ingress: str, caller_country: str | None,
                     callee_country: str | None) -> None:
        """Count one call attempt (unanswered, as the firewall sees it before it rings): queued when
        the applier runs, else applied now."""
        if self._thread is not None or self._loop is not None:
            self._enqueue(("call", caller, callee, at, ingress, caller_country, callee_country))
        elif not self._open:
            self._apply([("call", caller, callee, at, ingress, caller_country, callee_country)])

    def observe_message(self, sender: str, recipient: str, at: float) -> None:
        if self._thread is not None or self._loop is not None:
            self._enqueue(("sms", sender, recipient, at))
        elif not self._open:
            self._apply([("sms", sender, recipient, at)])

    # --- deferred counting ----------------------------------------------------------------------

    def _enqueue(self, item: tuple[Any, ...]) -> None:
        queue = self._queue
        if len(queue) >= self.queue_capacity:  # the applier fell behind (Redis down): the oldest goes
            queue.popleft()
            self.queue_dropped += 1
        queue.append(item)
        loop = self._loop
        if loop is not None:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                if threading.get_ident() == self._loop_thread:
                    loop.call_later(self.batch_window_s, self._flush_on_loop)
                else:  # a decision made in another thread (a sync caller)
                    loop.call_soon_threadsafe(loop.call_later, self.batch_window_s, self._flush_on_loop)
        elif not self._wake.is_set():
            self._wake.set()

    def _flush_on_loop(self) -> None:
        """Send what is queued as one batch, without waiting for it (its answer is checked by a task)."""
        self._flush_scheduled = False
        loop, batch = self._loop, self._async_batch
        if loop is None or batch is None:  # closed meanwhile: close() drains the rest
            return
        items: list[tuple[Any, ...]] = []
        queue = self._queue
        while queue and len(items) < 1000:
            items.append(queue.popleft())
        if queue:
            self._flush_scheduled = True
            loop.call_soon(self._flush_on_loop)
        if not items:
            return
        if self._open and time.monotonic() < self._down_until:
            self.queue_dropped += len(items)
            return
        task = loop.create_task(self._apply_async(batch, items))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _apply_async(self, batch: Any, items: list[tuple[Any, ...]]) -> None:
        try:
            await batch(items, deadline_s=1.0)
            self.applied += len(items)
        except Exception as exc:
            self._failed(exc, lookup=False)

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
                elif self._plain_batch is not None:  # Redis: plain values, one round trip
                    self._plain_batch(items)
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
            self._failed(exc, lookup=False)

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
        if self._open and time.monotonic() < self._down_until:
            self.queue_dropped += len(items)
            return 0
        for start in range(0, len(items), 1000):
            self._apply(items[start:start + 1000])
        return len(items)

    def start(self) -> None:
        """Count attempts in the background from now on (idempotent): on the running event loop when
        there is one and the counters can be awaited (no thread to share the GIL with), else in a
        thread of its own."""
        if self._loop is not None or (self._thread is not None and self._thread.is_alive()):
            return
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and self._async_batch is not None:
            self._loop, self._loop_thread = loop, threading.get_ident()
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="firewall-counters", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the background counting and apply what is queued."""
        self._loop = None
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
