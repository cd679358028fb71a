"""The forewarning policy: reason weights, tier thresholds and deadlines, escalation, delivery
retries, languages, hotlines and banks' hold endpoints — read from YAML (``policy.yaml`` holds the
defaults; a user file may override any part)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from forewarn.config import read_yaml

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
TierAction = Literal["mark", "warning", "callback", "payment_hold", "visit"]


class PolicyError(ValueError):
    """The policy file cannot be read or is invalid; the message says where."""


class RiskPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    half_life_hours: float = Field(gt=0)
    chain_window_hours: float = Field(gt=0)
    long_call_seconds: float = Field(gt=0)
    very_long_call_seconds: float = Field(gt=0)
    conversation_seconds: float = Field(default=60.0, ge=0)
    engagement_reasons: frozenset[str] = Field(default_factory=frozenset)
    episode_reset_days: float = Field(gt=0)
    suspect_min_score: float = Field(ge=0, le=1)
    indicator_min_confidence: int = Field(ge=0, le=100)
    weights: dict[str, float]
    repeat_factor: float = Field(ge=0, le=1)
    nuisance_scam_types: list[str] = Field(default_factory=list)
    nuisance_detectors: list[str] = Field(default_factory=list)
    detector_min_score: dict[str, float] = Field(default_factory=dict)

    def min_score_for(self, detector: str) -> float:
        return self.detector_min_score.get(detector, self.suspect_min_score)

    @model_validator(mode="after")
    def _weights_in_range(self) -> RiskPolicy:
        bad = [k for k, v in self.weights.items() if not 0 <= v < 1]
        if bad:
            raise ValueError(f"weights must be in [0, 1): {', '.join(bad)}")
        unknown = sorted(self.engagement_reasons - set(self.weights))
        if unknown:
            raise ValueError(f"engagement_reasons without a weight: {', '.join(unknown)}")
        return self

    def weight(self, reason: str) -> float:
        return self.weights.get(reason, 0.0)


class Tier(BaseModel):
    """One step of the intervention ladder.

    ``needs_engagement``: the step fires only when the person engaged with a suspect within the
    chain window (a reason in ``risk.engagement_reasons``), not merely because scammers reached
    them. A ``mark`` step (no message, no task: the firewall labels the flagged numbers' calls and
    SMS) is the one meant for risk from contacts alone.
    """

    model_config = ConfigDict(extra="forbid")

    tier: int = Field(ge=0, le=9)
    action: TierAction
    at_score: float = Field(gt=0, le=1)
    ack_minutes: float | None = Field(default=None, gt=0)
    needs_engagement: bool = True

    @model_validator(mode="after")
    def _deadline_for_personal_steps(self) -> Tier:
        if self.action != "mark" and self.ack_minutes is None:
            raise ValueError(f"tier {self.tier} ({self.action}) needs ack_minutes")
        return self

    @property
    def deadline_minutes(self) -> float:
        """``ack_minutes`` of a step that has one (every step but ``mark``)."""
        if self.ack_minutes is None:
            raise ValueError(f"tier {self.tier} ({self.action}) has no deadline")
        return self.ack_minutes


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes_per_level: float = Field(gt=0)
    tick_seconds: float = Field(gt=0)


class DeliveryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(ge=1, le=100)
    backoff_base_seconds: float = Field(gt=0)
    backoff_max_seconds: float = Field(gt=0)
    lease_seconds: float = Field(gt=0)
    sender_id: str = Field(min_length=2, max_length=11)


class BankEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    secret_env: str | None = None


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    risk: RiskPolicy
    tiers: list[Tier]
    escalation: Escalation
    delivery: DeliveryPolicy
    languages: dict[str, str]
    hotlines: dict[str, str]
    banks: dict[str, BankEndpoint] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tiers_ordered(self) -> Policy:
        scores = [t.at_score for t in self.tiers]
        if not self.tiers or scores != sorted(scores) or len({t.tier for t in self.tiers}) != len(self.tiers):
            raise ValueError("tiers must be non-empty, with distinct numbers and rising at_score")
        for code, number in self.hotlines.items():
            if not number.replace(" ", "").isdigit():
                raise ValueError(f"hotline for {code} must be digits only (warnings carry no links)")
        return self

    @property
    def first_threshold(self) -> float:
        return self.tiers[0].at_score

    def language_for(self, country: str | None) -> str:
        return self.languages.get(country or "", self.languages.get("default", "en"))

    def hotline_for(self, country: str | None) -> str:
        return self.hotlines.get(country or "", self.hotlines.get("default", "112"))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Policy:
        """The default policy, with the keys of ``path`` (if given) merged over it."""
        data = _read_yaml(DEFAULT_POLICY_PATH)
        if path is not None:
            data = _merge(data, _read_yaml(Path(path)))
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PolicyError(f"invalid policy {path or DEFAULT_POLICY_PATH}: {where}: {first['msg']}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_yaml(path, PolicyError, "policy")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy {path} must be a mapping at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
