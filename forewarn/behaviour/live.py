"""Live per-number window counters, updated per event, for the firewall.

``LiveCounters`` keeps the events of the last ``window_s`` seconds per number in process;
``RedisLiveCounters`` keeps them in Redis so that several firewall workers share one view. Both
answer ``features(number, at)`` with the window features of
:data:`forewarn.behaviour.features.LIVE_FEATURES` over ``(at - window_s, at]``: the same names and
meanings as the batch features computed with ``start=at - window_s, end=at`` over the same
records (a test asserts they agree). "First-time callee" looks back over everything observed
(``history_s``, default 30 days, in Redis); events are expected roughly in time order.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from forewarn.behaviour.features import LIVE_FEATURES, NIGHT_HOURS, ONE_RING_S, SHORT_CALL_S
from forewarn.model.events import CallRecord, Message
from forewarn.model.indicators import as_utc

# An outgoing leg: (t, callee, duration_s, ring_s, ingress, own_country, other_country, imei, cell_id)
OutLeg = tuple[float, str, float, float | None, str, str | None, str | None, str | None, str | None]
InLeg = tuple[float, str, str]  # (t, caller, ingress)


def _ts(value: datetime | None) -> float | None:
    return None if value is None else as_utc(value).timestamp()


def window_features(out_legs: Iterable[OutLeg], in_legs: Iterable[InLeg], sms_out: Iterable[float],
                    sms_in: Iterable[float], first_out: dict[str, float], lo: float, hi: float,
                    utc_offset_hours: int = 0) -> dict[str, float]:
    """The live feature values from the raw events of one number; events outside ``(lo, hi]`` are ignored."""
    n_out = n_short = n_unans = n_ring = n_night = n_intl = n_roam = n_roam_home = n_spoof = 0
    callees: set[str] = set()
    imeis: set[str] = set()
    cells: set[str] = set()
    hours: set[int] = set()
    off = utc_offset_hours * 3600.0
    for t, callee, dur, ring, ingress, own, other, imei, cell in out_legs:
        if not lo < t <= hi:
            continue
        n_out += 1
        callees.add(callee)
        hours.add(math.floor(t / 3600.0))
        if dur < SHORT_CALL_S:
            n_short += 1
        if dur == 0:
            n_unans += 1
            if ring is not None and ring <= ONE_RING_S:
                n_ring += 1
        local_hour = int(((t + off) // 3600) % 24)
        if NIGHT_HOURS[0] <= local_hour < NIGHT_HOURS[1]:
            n_night += 1
        same_country = own is not None and other is not None and own == other
        if own is not None and other is not None and own != other:
            n_intl += 1
        if ingress == "roaming":
            n_roam += 1
            if same_country:
                n_roam_home += 1
        elif ingress == "international" and same_country:
            n_spoof += 1
        if imei is not None:
            imeis.add(imei)
        if cell is not None:
            cells.add(cell)
    n_in = n_intl_in = 0
    callers: set[str] = set()
    for t, caller, ingress in in_legs:
        if lo < t <= hi:
            n_in += 1
            callers.add(caller)
            if ingress == "international":
                n_intl_in += 1
    distinct = len(callees)
    nan = float("nan")

    def share(num: int, den: int) -> float:
        return num / den if den > 0 else nan

    first_time = sum(1 for c in callees if first_out.get(c, hi) > lo)
    values = {
        "calls_out": float(n_out), "calls_in": float(n_in), "distinct_callees": float(distinct),
        "short_call_share": share(n_short, n_out), "unanswered_share": share(n_unans, n_out),
        "one_ring_share": share(n_ring, n_out),
        "callback_rate": share(len(callees & callers), distinct),
        "first_time_callee_share": share(first_time, distinct),
        "distinct_callees_per_hour": share(distinct, len(hours)),
        "night_share": share(n_night, n_out), "intl_share": share(n_intl, n_out),
        "intl_in_share": share(n_intl_in, n_in), "roaming_share": share(n_roam, n_out),
        "roaming_home_share": share(n_roam_home, n_out), "spoofed_cli_calls": float(n_spoof),
        "imei_count": float(len(imeis)), "cell_count": float(len(cells)),
        "sms_out": float(sum(1 for t in sms_out if lo < t <= hi)),
        "sms_in": float(sum(1 for t in sms_in if lo < t <= hi)),
    }
    assert tuple(values) == LIVE_FEATURES
    return values


class _NumberState:
    __slots__ = ("first_out", "inc", "out", "sms_in", "sms_out")

    def __init__(self) -> None:
        self.out: deque[OutLeg] = deque()
        self.inc: deque[InLeg] = deque()
        self.sms_out: deque[float] = deque()
        self.sms_in: deque[float] = deque()
        self.first_out: dict[str, float] = {}


class LiveCounters:
    """In-process window counters. Not thread-safe: one instance per worker (use Redis to share)."""

    def __init__(self, window_s: float = 3600.0, *, utc_offset_hours: int = 0) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = float(window_s)
        self.utc_offset_hours = utc_offset_hours
        self._numbers: dict[str, _NumberState] = {}
        self._latest = float("-inf")

    def _state(self, number: str) -> _NumberState:
        state = self._numbers.get(number)
        if state is None:
            state = self._numbers[number] = _NumberState()
        return state

    def _evict(self, state: _NumberState, horizon: float) -> None:
        for dq in (state.out, state.inc):
            while dq and dq[0][0] <= horizon:
                dq.popleft()
        for sq in (state.sms_out, state.sms_in):
            while sq and sq[0] <= horizon:
                sq.popleft()

    def observe_call(self, rec: CallRecord) -> None:
        self.observe_call_fields(rec.caller, rec.callee, rec.start.timestamp(), rec.duration_s, rec.ring_s,
                                 str(rec.ingress.value), rec.caller_country, rec.callee_country, rec.imei,
                                 rec.cell_id)

    def observe_call_fields(self, caller: str, callee: str, t: float, duration_s: float, ring_s: float | None,
                            ingress: str = "domestic", caller_country: str | None = None,
                            callee_country: str | None = None, imei: str | None = None,
                            cell_id: str | None = None) -> None:
        """The fast path: one call given as plain values (``t`` in epoch seconds)."""
        if t > self._latest:
            self._latest = t
        horizon = t - self.window_s
        state = self._numbers.get(caller) or self._state(caller)
        out = state.out
        out.append((t, callee, duration_s, ring_s, ingress, caller_country, callee_country, imei, cell_id))
        if out[0][0] <= horizon:
            self._evict(state, horizon)
        first = state.first_out
        if callee not in first or first[callee] > t:
            first[callee] = t
        other = self._numbers.get(callee) or self._state(callee)
        other.inc.append((t, caller, ingress))
        if other.inc[0][0] <= horizon:
            self._evict(other, horizon)

    def observe_message(self, msg: Message) -> None:
        t = msg.sent_at.timestamp()
        self._latest = max(self._latest, t)
        self._state(msg.sender).sms_out.append(t)
        self._state(msg.recipient).sms_in.append(t)

    def observe_many(self, events: Iterable[CallRecord | Message]) -> int:
        n = 0
        for ev in events:
            if isinstance(ev, CallRecord):
                self.observe_call(ev)
            else:
                self.observe_message(ev)
            n += 1
        return n

    def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
        """Window features of ``number`` over ``(at - window_s, at]`` (``at`` defaults to the latest event)."""
        hi = _ts(at) if at is not None else self._latest
        if hi is None or hi == float("-inf"):
            hi = 0.0
        lo = hi - self.window_s
        state = self._numbers.get(number) or _NumberState()
        return window_features(state.out, state.inc, state.sms_out, state.sms_in, state.first_out, lo, hi,
                               self.utc_offset_hours)

    def numbers(self) -> list[str]:
        return list(self._numbers)


class RedisLiveCounters:
    """The same counters in Redis, shared by several worker processes.

    Per number: sorted sets ``{ns}:out:{n}`` / ``{ns}:in:{n}`` / ``{ns}:smo:{n}`` / ``{ns}:smi:{n}``
    scored by event time, and a hash ``{ns}:first:{n}`` of first call time per callee. Each
    observation is one pipelined round trip; old members are trimmed as new ones arrive.
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", window_s: float = 3600.0, *,
                 namespace: str = "fw:live", history_s: float = 30 * 86_400.0, utc_offset_hours: int = 0,
                 client: Any = None) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("RedisLiveCounters needs the redis client: pip install 'forewarn[redis]'") from exc
        self.window_s = float(window_s)
        self.history_s = float(history_s)
        self.ns = namespace
        self.utc_offset_hours = utc_offset_hours
        self._redis = client or redis.Redis.from_url(url)
        self._ttl = int(max(self.window_s, self.history_s)) + 60

    def _key(self, kind: str, number: str) -> str:
        return f"{self.ns}:{kind}:{number}"

    def _add_call(self, pipe: Any, caller: str, callee: str, t: float, duration_s: float, ring_s: float | None,
                  ingress: str, caller_country: str | None, callee_country: str | None, imei: str | None,
                  cell_id: str | None, event_id: str) -> None:
        out_key, in_key, first_key = self._key("out", caller), self._key("in", callee), self._key("first", caller)
        horizon = t - self.window_s
        out_member = json.dumps([t, callee, duration_s, ring_s, ingress, caller_country, callee_country, imei,
                                 cell_id, event_id], separators=(",", ":"))
        pipe.zadd(out_key, {out_member: t})
        pipe.zremrangebyscore(out_key, "-inf", horizon)
        pipe.expire(out_key, int(self.window_s) + 60)
        pipe.zadd(in_key, {json.dumps([t, caller, ingress, event_id], separators=(",", ":")): t})
        pipe.zremrangebyscore(in_key, "-inf", horizon)
        pipe.expire(in_key, int(self.window_s) + 60)
        pipe.hsetnx(first_key, callee, repr(t))
        pipe.expire(first_key, self._ttl)

    def observe_call(self, rec: CallRecord) -> None:
        self.observe_many([rec])

    def observe_message(self, msg: Message) -> None:
        self.observe_many([msg])

    def observe_many(self, events: Sequence[CallRecord | Message]) -> int:
        """Observe a batch in one pipelined round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for ev in events:
            if isinstance(ev, CallRecord):
                self._add_call(pipe, ev.caller, ev.callee, ev.start.timestamp(), ev.duration_s, ev.ring_s,
                               str(ev.ingress.value), ev.caller_country, ev.callee_country, ev.imei, ev.cell_id,
                               ev.event_id)
            else:
                t = ev.sent_at.timestamp()
                for kind, number in (("smo", ev.sender), ("smi", ev.recipient)):
                    key = self._key(kind, number)
                    pipe.zadd(key, {ev.event_id: t})
                    pipe.zremrangebyscore(key, "-inf", t - self.window_s)
                    pipe.expire(key, int(self.window_s) + 60)
        pipe.execute()
        return len(events)

    def features(self, number: str, at: datetime | None = None) -> dict[str, float]:
        hi = _ts(at)
        pipe = self._redis.pipeline(transaction=False)
        if hi is None:
            hi = float("inf")
        lo = hi - self.window_s
        lo_arg = f"({lo}" if math.isfinite(lo) else "-inf"
        hi_arg = repr(hi) if math.isfinite(hi) else "+inf"
        for kind in ("out", "in", "smo", "smi"):
            pipe.zrangebyscore(self._key(kind, number), lo_arg, hi_arg, withscores=True)
        pipe.hgetall(self._key("first", number))
        out_raw, in_raw, smo, smi, first_raw = pipe.execute()
        if not math.isfinite(hi):  # default: the latest event of this number
            times = [s for _, s in out_raw + in_raw + smo + smi]
            hi = max(times) if times else 0.0
            lo = hi - self.window_s
        out_legs: list[OutLeg] = [tuple(json.loads(m)[:9]) for m, _ in out_raw]  # type: ignore[misc]
        in_legs: list[InLeg] = [tuple(json.loads(m)[:3]) for m, _ in in_raw]  # type: ignore[misc]
        first = {k.decode(): float(v) for k, v in first_raw.items()}
        return window_features(out_legs, in_legs, [s for _, s in smo], [s for _, s in smi], first, lo, hi,
                               self.utc_offset_hours)

    def clear(self) -> None:
        """Delete every key of this namespace (tests, resets)."""
        keys = list(self._redis.scan_iter(match=f"{self.ns}:*", count=1000))
        for i in range(0, len(keys), 500):
            self._redis.delete(*keys[i:i + 500])
