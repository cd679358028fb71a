"""Sovereignty policies: one YAML file per node, written and controlled by that country.

For each partner it says what may leave (indicator types, TLP markings, minimum confidence, how
values are pseudonymised — raw, keyed hash or PSI only —, how long the partner may keep them, that
they may not be shared onward, whether we push) and how much we trust what comes in (a trust
weight; assertions from partners below the auto-approval weight wait in an approval queue).

The rules are decided here and only here (:meth:`OutboundPolicy.decide`), so the TAXII server,
file exports and PSI all apply the same answer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forewarn.config import read_yaml
from forewarn.model.indicators import TLP, IndicatorType

EXAMPLES_DIR = Path(__file__).parent / "policies"
PARTNER_SOURCE_PREFIX = "partner:"
_NAME_PATTERN = r"^[A-Z][A-Z0-9_-]{1,39}$"


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the problem."""


class Pseudonymisation(enum.StrEnum):
    RAW = "raw"
    KEYED_HASH = "keyed_hash"
    PSI_ONLY = "psi_only"


# url and domain map onto STIX's own SCOs, which have no property for a keyed hash.
HASHABLE_TYPES = frozenset(IndicatorType) - {IndicatorType.URL, IndicatorType.DOMAIN}


class OutboundPolicy(BaseModel):
    """What this node lets one partner see."""

    model_config = ConfigDict(extra="forbid")

    share: bool = True
    indicator_types: list[IndicatorType] = Field(default_factory=lambda: [IndicatorType.PHONE])
    max_tlp: TLP = TLP.GREEN
    min_confidence: int = Field(default=50, ge=0, le=100)
    pseudonymisation: dict[IndicatorType, Pseudonymisation] = Field(default_factory=dict)
    default_pseudonymisation: Pseudonymisation = Pseudonymisation.RAW
    retention_days: int = Field(default=90, ge=1, le=3650)
    no_onward_sharing: bool = True
    share_partner_derived: bool = False
    include_observables: bool = True
    include_sightings: bool = True
    push: bool = False
    psi: bool = True
    psi_types: list[IndicatorType] = Field(default_factory=lambda: [IndicatorType.PHONE])

    @field_validator("pseudonymisation", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        return value or {}

    @model_validator(mode="after")
    def _hashable(self) -> OutboundPolicy:
        for kind, how in self.pseudonymisation.items():
            if how is Pseudonymisation.KEYED_HASH and kind not in HASHABLE_TYPES:
                raise ValueError(f"keyed_hash is not available for {kind.value}; share it raw or psi_only")
        if self.default_pseudonymisation is Pseudonymisation.KEYED_HASH:
            bad = [k.value for k in self.indicator_types if k not in HASHABLE_TYPES and k not in self.pseudonymisation]
            if bad:
                raise ValueError(f"default keyed_hash is not available for {', '.join(bad)}; set them explicitly")
        return self

    def how(self, kind: IndicatorType | str) -> Pseudonymisation:
        return self.pseudonymisation.get(IndicatorType(kind), self.default_pseudonymisation)

    def allowed_tlps(self) -> list[TLP]:
        return [t for t in TLP if t.rank <= self.max_tlp.rank]

    def taxii_types(self) -> list[IndicatorType]:
        """Types that leave as STIX objects (psi_only types never do)."""
        if not self.share:
            return []
        return [k for k in self.indicator_types if self.how(k) is not Pseudonymisation.PSI_ONLY]

    def decide(self, *, type_: str, tlp: str, confidence: int, source: str,
               relay_allowed: bool = True) -> str | None:
        """``None`` if the indicator may be sent as a STIX object, else the reason it may not."""
        if not self.share:
            return "sharing with this partner is switched off"
        try:
            kind = IndicatorType(type_)
        except ValueError:
            return f"unknown indicator type {type_!r}"
        if kind not in self.indicator_types:
            return f"type {kind.value} is not shared with this partner"
        if self.how(kind) is Pseudonymisation.PSI_ONLY:
            return f"type {kind.value} is matched by PSI only"
        try:
            marking = TLP(tlp)
        except ValueError:
            return f"unknown TLP marking {tlp!r}"
        if marking.rank > self.max_tlp.rank:
            return f"TLP:{marking.value.upper()} is above this partner's TLP:{self.max_tlp.value.upper()}"
        if confidence < self.min_confidence:
            return f"confidence {confidence} is below {self.min_confidence}"
        if source.startswith(PARTNER_SOURCE_PREFIX) and not (self.share_partner_derived and relay_allowed):
            return "learnt from another partner; no onward sharing"
        return None

    def psi_allows(self, *, type_: str, tlp: str, confidence: int, source: str) -> bool:
        """PSI reveals only membership, so TLP and the types' pseudonymisation do not limit it."""
        if not self.psi:
            return False
        if type_ not in {k.value for k in self.psi_types} or confidence < self.min_confidence:
            return False
        return not (source.startswith(PARTNER_SOURCE_PREFIX) and not self.share_partner_derived)


class InboundPolicy(BaseModel):
    """How much this node believes one partner."""

    model_config = ConfigDict(extra="forbid")

    trust_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    accept_types: list[IndicatorType] = Field(default_factory=lambda: list(IndicatorType))
    allow_push: bool = True
    max_retention_days: int = Field(default=365, ge=1, le=3650)


class PartnerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="the partner's TAXII root, e.g. http://host:8000/taxii2/")
    public_key: str | None = Field(default=None, description="the partner's Ed25519 key, base64 (pinned)")
    pull_interval_seconds: float = Field(default=300.0, gt=0)
    outbound: OutboundPolicy = Field(default_factory=OutboundPolicy)
    inbound: InboundPolicy = Field(default_factory=InboundPolicy)


class NodePolicy(BaseModel):
    """The whole policy file of one node."""

    model_config = ConfigDict(extra="forbid")

    node: str = Field(pattern=_NAME_PATTERN)
    display_name: str | None = None
    auto_approve_min_weight: float = Field(default=0.8, ge=0.0, le=1.0)
    replay_window_seconds: int = Field(default=300, ge=5, le=86_400)
    bundle_max_age_days: int = Field(default=7, ge=1, le=365)
    psi_reveal_min_countries: int = Field(default=1, ge=1, le=50)
    partners: dict[str, PartnerPolicy] = Field(default_factory=dict)

    @field_validator("node", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("partners", mode="before")
    @classmethod
    def _partner_names(cls, value: Any) -> Any:
        if value is None:
            return {}
        if isinstance(value, dict):
            import re

            fixed = {}
            for name, body in value.items():
                upper = str(name).upper()
                if not re.match(_NAME_PATTERN, upper):
                    raise ValueError(f"partner name {name!r} must be 2–40 letters, digits, '-' or '_'")
                fixed[upper] = body if body is not None else {}
            return fixed
        return value

    @model_validator(mode="after")
    def _not_self(self) -> NodePolicy:
        if self.node in self.partners:
            raise ValueError(f"node {self.node} lists itself as a partner")
        return self

    def partner(self, name: str) -> PartnerPolicy:
        try:
            return self.partners[name.upper()]
        except KeyError:
            raise PolicyError(f"{name!r} is not a partner in the policy of node {self.node}") from None

    def auto_approves(self, partner: str) -> bool:
        return self.partner(partner).inbound.trust_weight >= self.auto_approve_min_weight


def load_policy(path: Path) -> NodePolicy:
    """Read and check a policy file; raises :class:`PolicyError` with the file and the problem."""
    return parse_policy(read_yaml(path, PolicyError, "policy"), str(path))


def parse_policy(raw: Any, origin: str = "<policy>") -> NodePolicy:
    if not isinstance(raw, dict):
        raise PolicyError(f"policy {origin} must be a mapping with 'node' and 'partners'")
    try:
        return NodePolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:10])
        raise PolicyError(f"policy {origin} is invalid: {problems}") from None


def example_policy_path(country: str) -> Path:
    path = EXAMPLES_DIR / f"{country.lower()}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml")))
        raise PolicyError(f"no example policy for {country!r}; examples exist for: {known}")
    return path


def dump_policy(policy: NodePolicy) -> str:
    return yaml.safe_dump(policy.model_dump(mode="json", exclude_none=False), sort_keys=False, allow_unicode=True)


@dataclass(frozen=True)
class Decision:
    """Why one indicator would or would not go to a partner (``forewarn federation policy explain``)."""

    partner: str
    allowed: bool
    reason: str
