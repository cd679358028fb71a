"""Synthetic call traffic with ground truth, for tests and benchmarks of the behaviour detectors.

Written by us (not collected): a population of ordinary subscribers who call a small circle of
contacts (mostly by day, mostly answered, often returned), a few busy but legitimate callers,
some new SIMs used normally, and fraud operations following the patterns in DOMAIN.md: mass
dialling from fresh SIMs, SIM boxes, wangiri, roaming SIMs calling home, and domestic caller IDs
spoofed over an international trunk. Vectorised with numpy so that benchmarks can make tens of
millions of records quickly. The full scenario simulator lives in ``forewarn.sim``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

FRAUD_OPS = ("mass_dialling", "simbox", "wangiri", "roaming", "spoofed_cli")
DEFAULT_START = datetime(2025, 3, 3, tzinfo=UTC)


@dataclass
class Traffic:
    calls: pd.DataFrame
    messages: pd.DataFrame
    subscribers: pd.DataFrame
    truth: pd.DataFrame  # number, op_id, op_type, first_active_at

    @property
    def fraud_numbers(self) -> set[str]:
        return set(self.truth["number"])


def _imei(body14: str) -> str:
    """A 15-digit IMEI with a valid Luhn check digit."""
    total = 0
    for i, ch in enumerate(body14):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return body14 + str((10 - total % 10) % 10)


def _th_numbers(rng: np.random.Generator, n: int, used: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        cand = rng.integers(10_000_000, 99_999_999, size=(n - len(out)) * 2)
        prefix = rng.choice(["+6681", "+6689", "+6692", "+6686"], size=len(cand))
        for p, c in zip(prefix, cand, strict=True):
            s = f"{p}{c % 10_000_000:07d}"
            if s not in used:
                used.add(s)
                out.append(s)
                if len(out) == n:
                    break
    return out


def generate_traffic(n_subscribers: int = 2_000, hours: int = 24, *, seed: int = 0,
                     ops_per_type: int = 4, start: datetime = DEFAULT_START,
                     calls_per_sub_hour: float = 0.15) -> Traffic:
    """Traffic over ``hours`` from ``start``: ordinary subscribers plus ``ops_per_type`` of each fraud op."""
    rng = np.random.default_rng(seed)
    used: set[str] = set()
    subs = np.array(_th_numbers(rng, n_subscribers, used))
    t0 = pd.Timestamp(start).tz_convert("UTC")
    span_s = hours * 3600.0

    # Ordinary subscribers: a circle of contacts inside a community of 50, daytime-heavy.
    rate = rng.lognormal(np.log(calls_per_sub_hour), 0.6, size=n_subscribers)
    busy = rng.random(n_subscribers) < 0.01  # shops, taxi dispatch: many calls, still returned
    rate[busy] *= 15
    n_calls = rng.poisson(rate * hours * 1.25)
    caller_idx = np.repeat(np.arange(n_subscribers), n_calls)
    tsec = rng.random(len(caller_idx)) * span_s
    hour_local = ((t0.hour + 7 + tsec // 3600) % 24).astype(int)  # subscribers live at UTC+7
    keep = ~((hour_local < 6) & (rng.random(len(tsec)) < 0.85))
    caller_idx, tsec = caller_idx[keep], tsec[keep]
    community = caller_idx // 50
    circle = np.where(busy[caller_idx], 200, 10)
    offset = rng.integers(0, 10_000, size=len(caller_idx)) % circle
    callee_idx = (community * 50 + (caller_idx * 7 + offset) % 50 + np.where(circle > 10, offset * 53, 0)) % n_subscribers
    callee_idx = np.where(callee_idx == caller_idx, (callee_idx + 1) % n_subscribers, callee_idx)
    answered = rng.random(len(tsec)) < 0.85
    dur = np.where(answered, np.round(rng.lognormal(4.2, 1.0, len(tsec)), 1), 0.0)
    ring = np.round(np.where(answered, rng.uniform(2, 15, len(tsec)), rng.uniform(8, 30, len(tsec))), 1)
    sub_imei = np.array([_imei(f"35{rng.integers(10**11, 10**12 - 1)}") for _ in range(n_subscribers)])
    sub_cell = rng.integers(0, 400, size=n_subscribers)
    cell = sub_cell[caller_idx] + (rng.random(len(tsec)) < 0.3) * rng.integers(1, 3, len(tsec))
    normal = pd.DataFrame({
        "caller": subs[caller_idx], "callee": subs[callee_idx], "tsec": tsec, "duration_s": dur, "ring_s": ring,
        "ingress": "domestic", "caller_country": "TH", "callee_country": "TH", "imei": sub_imei[caller_idx],
        "cell_id": [f"TH-BKK{c // 40:02d}-{c:04d}" for c in cell],
    })
    intl = rng.random(len(normal)) < 0.02
    normal.loc[intl, "callee"] = [f"+4479{x:08d}" for x in rng.integers(0, 10**8, intl.sum())]
    normal.loc[intl, "callee_country"] = "GB"
    frames = [normal]
    truth_rows: list[dict[str, object]] = []
    fresh_numbers: list[str] = []

    def random_callees(k: int) -> np.ndarray:
        return subs[rng.integers(0, n_subscribers, size=k)]

    def callbacks(frame: pd.DataFrame, share: float, ingress: str) -> pd.DataFrame:
        pick = frame.sample(frac=share, random_state=int(rng.integers(1 << 30))) if len(frame) else frame
        return pd.DataFrame({
            "caller": pick["callee"].to_numpy(), "callee": pick["caller"].to_numpy(),
            "tsec": pick["tsec"].to_numpy() + rng.uniform(60, 1800, len(pick)),
            "duration_s": np.round(rng.uniform(20, 120, len(pick)), 1), "ring_s": 5.0, "ingress": ingress,
            "caller_country": "TH", "callee_country": pick["caller_country"].to_numpy(), "imei": None,
            "cell_id": None})

    for op_type in FRAUD_OPS:
        for k in range(ops_per_type):
            op_id = f"{op_type}-{k}"
            first = float(rng.uniform(0, max(span_s - 4 * 3600, 1)))
            active_h = float(rng.uniform(2, 6))
            if op_type == "simbox":
                numbers = _th_numbers(rng, 8, used)
                fresh_numbers += numbers
            elif op_type == "wangiri":
                numbers = [f"+4479{rng.integers(0, 10**8):08d}"]
            else:
                numbers = _th_numbers(rng, 1, used)
                if op_type != "spoofed_cli":
                    fresh_numbers += numbers
            op_cell = f"TH-BKK{rng.integers(0, 10):02d}-{rng.integers(9000, 9999):04d}"
            op_imeis = [_imei(f"86{rng.integers(10**11, 10**12 - 1)}") for _ in range(2)]
            for j, num in enumerate(numbers):
                per_hour = {"mass_dialling": (60, 150), "simbox": (20, 40), "wangiri": (150, 300),
                            "roaming": (40, 100), "spoofed_cli": (40, 100)}[op_type]
                n = int(rng.uniform(*per_hour) * active_h)
                ts = first + np.sort(rng.random(n)) * active_h * 3600
                ts = ts[ts < span_s]
                n = len(ts)
                if op_type == "wangiri":
                    dur, ans_ring = np.zeros(n), np.round(rng.uniform(1, 3, n), 1)
                elif op_type == "simbox":
                    ok = rng.random(n) < 0.7
                    dur, ans_ring = np.where(ok, np.round(rng.lognormal(4.0, 0.8, n), 1), 0.0), rng.uniform(3, 20, n)
                else:
                    ok = rng.random(n) < 0.35
                    dur, ans_ring = np.where(ok, np.round(rng.lognormal(2.5, 1.0, n), 1), 0.0), rng.uniform(5, 25, n)
                frame = pd.DataFrame({
                    "caller": num, "callee": random_callees(n), "tsec": ts, "duration_s": dur,
                    "ring_s": np.round(ans_ring, 1),
                    "ingress": {"wangiri": "international", "roaming": "roaming",
                                "spoofed_cli": "international"}.get(op_type, "domestic"),
                    "caller_country": "GB" if op_type == "wangiri" else "TH", "callee_country": "TH",
                    "imei": None if op_type in ("wangiri", "spoofed_cli") else op_imeis[j % 2],
                    "cell_id": op_cell if op_type in ("simbox", "mass_dialling") else None,
                })
                frames.append(frame)
                if op_type in ("wangiri", "mass_dialling"):
                    frames.append(callbacks(frame, 0.04, "international" if op_type == "wangiri" else "domestic"))
                truth_rows.append({"number": num, "op_id": op_id, "op_type": op_type,
                                   "first_active_at": t0 + pd.to_timedelta(first, unit="s")})

    calls = pd.concat(frames, ignore_index=True)
    calls = calls[calls["tsec"] < span_s]
    calls = calls.sort_values("tsec", kind="stable").reset_index(drop=True)
    calls.insert(0, "event_id", [f"c{i}" for i in range(len(calls))])
    calls["start"] = t0 + pd.to_timedelta(calls.pop("tsec").to_numpy(), unit="s")
    calls["start"] = calls["start"].dt.floor("ms")
    calls["direction"] = "outgoing"
    calls["call_type"] = "voice"

    # SMS between contacts (ordinary subscribers only: SIM boxes and diallers send none).
    n_sms = int(n_subscribers * hours / 12)
    s_idx = rng.integers(0, n_subscribers, n_sms)
    r_idx = (s_idx // 50 * 50 + rng.integers(0, 50, n_sms)) % n_subscribers
    messages = pd.DataFrame({
        "event_id": [f"m{i}" for i in range(n_sms)], "sender": subs[s_idx], "recipient": subs[r_idx],
        "text": "see you soon", "sent_at": (t0 + pd.to_timedelta(np.sort(rng.random(n_sms)) * span_s, unit="s")
                                            ).floor("ms"),
        "channel": "sms", "ingress": "domestic"})

    activated = t0 - pd.to_timedelta(rng.uniform(30, 3000, n_subscribers), unit="D")
    new_sims = rng.random(n_subscribers) < 0.02  # ordinary people with new SIMs
    activated = activated.where(~new_sims, t0 - pd.to_timedelta(rng.uniform(0, 5, n_subscribers), unit="D"))
    subscribers = pd.DataFrame({"event_id": [f"s{i}" for i in range(n_subscribers)], "number": subs,
                                "activated_at": activated, "country": "TH"})
    fresh = pd.DataFrame({"event_id": [f"sf{i}" for i in range(len(fresh_numbers))], "number": fresh_numbers,
                          "activated_at": t0 - pd.to_timedelta(rng.uniform(0, 5, len(fresh_numbers)), unit="D"),
                          "country": "TH"})
    subscribers = pd.concat([subscribers, fresh], ignore_index=True)
    subscribers["activated_at"] = subscribers["activated_at"].dt.floor("ms")
    truth = pd.DataFrame(truth_rows, columns=["number", "op_id", "op_type", "first_active_at"])
    return Traffic(calls=calls, messages=messages, subscribers=subscribers, truth=truth)


def scale_calls(calls: pd.DataFrame, copies: int) -> pd.DataFrame:
    """``copies`` shifted copies of ``calls`` (numbers suffixed per copy) for large benchmarks."""
    parts = []
    for i in range(copies):
        part = calls.copy()
        part["event_id"] = part["event_id"] + f"-{i}"
        part["caller"] = part["caller"] + f"#{i}"
        part["callee"] = part["callee"] + f"#{i}"
        part["start"] = part["start"] + timedelta(seconds=i)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
