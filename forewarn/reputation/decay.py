"""Decay of indicator scores with time since they were last seen (MISP's polynomial model).

``score(t) = base * (1 - (t / lifetime) ** (1 / speed))`` for ``0 <= t < lifetime`` and 0 after:
a phone number's mark lapses after ~10 days unless it is seen again (MISP's vishing model), a
sender ID's or a URL's after their own lifetimes. Every new sighting restarts the clock because the
index keeps the latest ``last_seen`` over all sources.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from forewarn.model.indicators import IndicatorType
from forewarn.reputation.keys import TYPE_CODES

DAY = 86_400.0
DEFAULT_LIFETIME_DAYS: dict[str, float] = {
    "phone": 10.0, "sender_id": 30.0, "url": 14.0, "domain": 30.0, "bank_account": 90.0, "ewallet": 90.0,
    "crypto_wallet": 180.0, "imei": 60.0, "app_package": 90.0,
}


@dataclass(frozen=True)
class DecayModel:
    """Lifetimes per indicator type (days) and the polynomial's speed (1 = linear, < 1 = holds longer)."""

    lifetime_days: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_LIFETIME_DAYS))
    speed: float = 0.5

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("decay speed must be positive")
        for name, days in self.lifetime_days.items():
            IndicatorType(name)  # raises for an unknown type name
            if days <= 0:
                raise ValueError(f"lifetime of {name} must be positive days, got {days}")

    def lifetimes_by_code(self) -> np.ndarray:
        """Lifetime in seconds, indexed by type code (see ``keys.TYPE_CODES``)."""
        out = np.full(max(TYPE_CODES.values()) + 1, 10 * DAY)
        for kind, code in TYPE_CODES.items():
            out[code] = self.lifetime_days.get(kind.value, DEFAULT_LIFETIME_DAYS[kind.value]) * DAY
        return out

    def factor(self, age_s: float, lifetime_s: float) -> float:
        """Share of the base score left after ``age_s`` seconds (1 when fresh, 0 when lapsed)."""
        if age_s <= 0:
            return 1.0
        if age_s >= lifetime_s:
            return 0.0
        return 1.0 - math.pow(age_s / lifetime_s, 1.0 / self.speed)

    def factor_many(self, age_s: np.ndarray, lifetime_s: np.ndarray) -> np.ndarray:
        ratio = np.clip(age_s / lifetime_s, 0.0, 1.0)
        return 1.0 - np.power(ratio, 1.0 / self.speed)

    def remaining_s(self, base: float, threshold: float, age_s: float, lifetime_s: float) -> float:
        """Seconds until a score of ``base`` decays below ``threshold`` (0 when it already has)."""
        if base <= threshold or base <= 0:
            return 0.0
        # base * (1 - r**(1/s)) = threshold  =>  r = (1 - threshold/base) ** s
        ratio = math.pow(1.0 - threshold / base, self.speed)
        return max(0.0, ratio * lifetime_s - max(age_s, 0.0))
