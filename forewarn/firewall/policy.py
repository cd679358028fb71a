"""Per-country firewall policy, read from YAML: thresholds, international-call marking, blocking of
home-country caller IDs over international trunks, roaming checks, live-counter rules, SMS
sender-ID rules, cache TTLs, the appeal deadline and how long the decision log is kept.

``policies/default.yaml`` holds every key; ``policies/<CC>.yaml`` overrides some of them for one
country, and an operator may point ``FOREWARN_FIREWALL_POLICY`` (or ``--policy``) at a file of
their own, which overrides the country file in turn. Unknown keys and bad values are rejected with
the key's path, so a typo never silently weakens the firewall.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers

from forewarn.config import read_yaml
from forewarn.reputation.decay import DecayModel
from forewarn.reputation.loader import ReputationConfig

POLICY_DIR = Path(__file__).parent / "policies"
ACTIONS = ("allow", "mark", "block")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the key."""


@dataclass(frozen=True)
class CounterRule:
    reason: str
    label: str
    score: float
    when: Mapping[str, float]


@dataclass(frozen=True)
class Policy:
    country: str
    calling_code: int
    language: str = "en"
    mark_threshold: float = 50.0
    block_threshold: float = 80.0
    min_evidence: float = 20.0
    mark_international: bool = True
    home_cli_over_international: str = "block"
    claimed_country_mismatch: str = "mark"
    roaming_foreign_cli: str = "mark"
    reports_max_action: str = "mark"
    counters_enabled: bool = True
    counters_timeout_ms: float = 15.0
    counters_cache_s: float = 1.0
    counters_failure_backoff_s: float = 5.0
    observe_attempts: bool = True
    counters_max_action: str = "mark"
    counter_rules: tuple[CounterRule, ...] = ()
    sms_unregistered_sender_id: str = "allow"
    sms_screening_mark: float = 0.6
    sms_screening_block: float = 0.97
    sms_screening_max_action: str = "mark"
    ttl_allow: int = 300
    ttl_mark: int = 120
    ttl_block: int = 900
    appeal_deadline_hours: float = 72.0
    appeal_submit_per_minute: int = 5
    refresh_s: float = 30.0
    decision_retention_days: float = 90.0
    count_retention_days: float | None = None  # None: the per-minute counts are kept forever
    prune_every_s: float = 3600.0
    prune_batch_size: int = 5_000
    prune_pause_s: float = 0.05
    reputation: ReputationConfig = field(default_factory=ReputationConfig)
    source: tuple[str, ...] = ()

    def score_for(self, action: str) -> float:
        """The score a policy rule with ``action`` contributes."""
        return {"block": 100.0, "mark": max(self.mark_threshold, 60.0), "allow": 0.0}[action]


def _merge(base: dict[str, Any], over: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        where = f"{path}{key}"
        if key not in base:
            raise PolicyError(f"unknown policy key {where!r}")
        if isinstance(base[key], dict) and key not in ("when", "lifetime_days", "source_weights"):
            if not isinstance(value, Mapping):
                raise PolicyError(f"policy key {where!r} must be a mapping")
            out[key] = _merge(base[key], value, where + ".")
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict[str, Any]:
    data = read_yaml(path, PolicyError, "policy") or {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy {path} must be a mapping of keys")
    return data


def _choice(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise PolicyError(f"policy key {key!r} is {value!r}; one of: {', '.join(allowed)}")
    return str(value)


def _number(value: Any, key: str, lo: float = 0.0, hi: float = float("inf")) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise PolicyError(f"policy key {key!r} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def load_policy(country: str, path: str | Path | None = None) -> Policy:
    """The policy of ``country`` (ISO alpha-2): default, then the country file, then ``path``."""
    country = country.strip().upper()
    code = phonenumbers.country_code_for_region(country)
    if not code:
        raise PolicyError(f"unknown country {country!r}; use an ISO 3166 alpha-2 code such as TH")
    data = _read(POLICY_DIR / "default.yaml")
    sources = [str(POLICY_DIR / "default.yaml")]
    country_file = POLICY_DIR / f"{country}.yaml"
    if country_file.exists():
        data = _merge(data, _read(country_file))
        sources.append(str(country_file))
    path = path or os.environ.get("FOREWARN_FIREWALL_POLICY")
    if path:
        data = _merge(data, _read(Path(path)))
        sources.append(str(path))
    return _build(country, code, data, tuple(sources))


def _build(country: str, code: int, d: dict[str, Any], sources: tuple[str, ...]) -> Policy:
    th, counters, sms, ttl = d["thresholds"], d["counters"], d["sms"], d["ttl_s"]
    mark = _number(th["mark"], "thresholds.mark", 1, 100)
    block = _number(th["block"], "thresholds.block", 1, 100)
    if block < mark:
        raise PolicyError("thresholds.block must not be below thresholds.mark")
    rules = []
    for i, rule in enumerate(counters["rules"] or []):
        where = f"counters.rules[{i}]"
        if not isinstance(rule, Mapping) or set(rule) - {"reason", "label", "score", "when"}:
            raise PolicyError(f"{where} has keys reason, label, score, when")
        when = rule.get("when") or {}
        if not isinstance(when, Mapping) or not when:
            raise PolicyError(f"{where}.when names at least one feature and its minimum")
        from forewarn.firewall.labels import LABEL_KEYS

        if rule.get("label") not in LABEL_KEYS:
            raise PolicyError(f"{where}.label must be one of: {', '.join(LABEL_KEYS)}")
        rules.append(CounterRule(str(rule["reason"]), str(rule["label"]),
                                 _number(rule.get("score"), f"{where}.score", 0, 100),
                                 {str(k): _number(v, f"{where}.when.{k}") for k, v in when.items()}))
    rep = d["reputation"]
    try:
        decay = DecayModel(lifetime_days={str(k): float(v) for k, v in (rep["lifetime_days"] or {}).items()},
                           speed=_number(rep["decay_speed"], "reputation.decay_speed", 0.01, 10))
    except ValueError as exc:
        raise PolicyError(f"reputation: {exc}") from None
    weights = {str(k): _number(v, f"reputation.source_weights.{k}", 0, 1)
               for k, v in (rep["source_weights"] or {}).items()}
    language = str(d["language"]).lower()
    from forewarn.firewall.labels import LANGUAGES

    if language not in LANGUAGES:
        raise PolicyError(f"policy key 'language' is {language!r}; one of: {', '.join(LANGUAGES)}")
    retention = d["retention"]
    decisions_days = _number(retention["decisions_days"], "retention.decisions_days", 1, 36_500)
    counts_days = (None if retention["decision_counts_days"] is None else
                   _number(retention["decision_counts_days"], "retention.decision_counts_days", 1, 36_500))
    if counts_days is not None and counts_days < decisions_days:
        raise PolicyError("retention.decision_counts_days must not be below retention.decisions_days "
                          "(the counts summarise the decisions and outlive them)")
    return Policy(
        country=country, calling_code=code, language=language, mark_threshold=mark, block_threshold=block,
        min_evidence=_number(th["min_evidence"], "thresholds.min_evidence", 0, 100),
        mark_international=bool(d["international_call"]["mark"]),
        home_cli_over_international=_choice(d["home_cli_over_international"], ACTIONS, "home_cli_over_international"),
        claimed_country_mismatch=_choice(d["claimed_country_mismatch"], ("allow", "mark"), "claimed_country_mismatch"),
        roaming_foreign_cli=_choice(d["roaming"]["foreign_cli"], ("allow", "mark"), "roaming.foreign_cli"),
        reports_max_action=_choice(d["reports"]["max_action"], ACTIONS, "reports.max_action"),
        counters_enabled=bool(counters["enabled"]),
        counters_timeout_ms=_number(counters["timeout_ms"], "counters.timeout_ms", 1, 200),
        counters_cache_s=_number(counters["cache_s"], "counters.cache_s", 0, 60),
        counters_failure_backoff_s=_number(counters["failure_backoff_s"], "counters.failure_backoff_s", 0, 600),
        observe_attempts=bool(counters["observe_attempts"]),
        counters_max_action=_choice(counters["max_action"], ACTIONS, "counters.max_action"),
        counter_rules=tuple(rules),
        sms_unregistered_sender_id=_choice(sms["unregistered_sender_id"], ("allow", "mark"),
                                           "sms.unregistered_sender_id"),
        sms_screening_mark=_number(sms["screening_mark"], "sms.screening_mark", 0, 1),
        sms_screening_block=_number(sms["screening_block"], "sms.screening_block", 0, 1),
        sms_screening_max_action=_choice(sms["screening_max_action"], ACTIONS, "sms.screening_max_action"),
        ttl_allow=int(_number(ttl["allow"], "ttl_s.allow", 0, 86_400)),
        ttl_mark=int(_number(ttl["mark"], "ttl_s.mark", 0, 86_400)),
        ttl_block=int(_number(ttl["block"], "ttl_s.block", 0, 86_400)),
        appeal_deadline_hours=_number(d["appeals"]["deadline_hours"], "appeals.deadline_hours", 0.01, 24 * 90),
        appeal_submit_per_minute=int(_number(d["appeals"]["submit_per_minute"], "appeals.submit_per_minute", 1, 10_000)),
        refresh_s=_number(d["refresh_s"], "refresh_s", 0.1, 86_400),
        decision_retention_days=decisions_days, count_retention_days=counts_days,
        prune_every_s=_number(retention["prune_every_s"], "retention.prune_every_s", 1, 7 * 86_400),
        prune_batch_size=int(_number(retention["batch_size"], "retention.batch_size", 1, 1_000_000)),
        prune_pause_s=_number(retention["pause_s"], "retention.pause_s", 0, 60),
        reputation=ReputationConfig(
            decay=decay, source_weights=weights,
            verdict_hold_days=_number(rep["verdict_hold_days"], "reputation.verdict_hold_days", 0, 3650),
            lift_overdue_after_confirmation=bool(d["appeals"]["lift_overdue_after_rejection"])),
        source=sources,
    )
