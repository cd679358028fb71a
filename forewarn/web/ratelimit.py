"""Per-client rate limits of the public portal (token buckets kept in process).

Each action (check, report, verify, page) has its own bucket per client IP: ``capacity`` requests
at once, refilled at ``per_minute``. Buckets idle long enough to be full again are dropped, so the
table stays small however many clients come by. Several workers each keep their own buckets; a
shared limit (Redis) is the scale-out path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from threading import Lock


@dataclass(frozen=True)
class Limit:
    capacity: int
    per_minute: float


DEFAULT_LIMITS: dict[str, Limit] = {
    "check": Limit(capacity=20, per_minute=20),
    "report": Limit(capacity=5, per_minute=2),
    "verify": Limit(capacity=10, per_minute=10),
    "page": Limit(capacity=120, per_minute=240),
}


class RateLimiter:
    def __init__(self, limits: dict[str, Limit] | None = None, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = Lock()
        self._last_sweep = clock()

    def allow(self, action: str, client: str) -> tuple[bool, float]:
        """Take one token; returns ``(allowed, seconds until the next token when refused)``."""
        limit = self.limits.get(action)
        if limit is None:
            return True, 0.0
        now = self._clock()
        rate = limit.per_minute / 60.0
        with self._lock:
            tokens, seen = self._buckets.get((action, client), (float(limit.capacity), now))
            tokens = min(float(limit.capacity), tokens + (now - seen) * rate)
            if tokens >= 1.0:
                self._buckets[(action, client)] = (tokens - 1.0, now)
                allowed, wait = True, 0.0
            else:
                self._buckets[(action, client)] = (tokens, now)
                allowed, wait = False, (1.0 - tokens) / rate if rate > 0 else float("inf")
            if now - self._last_sweep > 60:
                self._sweep(now)
        return allowed, wait

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for key, (tokens, seen) in list(self._buckets.items()):
            limit = self.limits.get(key[0])
            if limit is None or tokens + (now - seen) * limit.per_minute / 60.0 >= limit.capacity:
                del self._buckets[key]
