"""The node's own products: signals, alerts, warnings, cases and centres.

A *signal* is one detector's finding about one subject, with reason codes an analyst can read.
An *alert* is what risk scoring raises from signals, about a suspect or a potential victim, and is
routed to a centre. A *warning* is what reaches a person; a *case* groups alerts, people and
indicators under an officer. Reason codes are short stable identifiers (``behaviour.mass_dialling``,
``reputation.listed``, ``screening.cue.otp_request``) documented by the module that emits them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from forewarn.model.indicators import TLP, utcnow


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class SubjectType(StrEnum):
    PHONE = "phone"
    SENDER_ID = "sender_id"
    ACCOUNT = "account"
    URL = "url"
    DOMAIN = "domain"
    IMEI = "imei"
    CELL = "cell"


class Signal(BaseModel):
    """One detector's finding about one subject."""

    model_config = ConfigDict(extra="forbid")

    signal_id: str = Field(default_factory=lambda: new_id("sig"))
    detector: str = Field(max_length=80)
    subject_type: SubjectType
    subject: str = Field(max_length=2048)
    score: float = Field(ge=0, le=1)
    reasons: list[str] = Field(default_factory=list, description="stable reason codes")
    observed_at: datetime = Field(default_factory=utcnow)
    evidence: list[str] = Field(default_factory=list, description="event ids that support it")
    scam_type: str | None = None
    detail: dict[str, float | int | str | bool | None] = Field(default_factory=dict)


class AlertRole(StrEnum):
    SUSPECT = "suspect"
    VICTIM = "victim"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    CLOSED = "closed"
    DISMISSED = "dismissed"


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: str = Field(default_factory=lambda: new_id("alr"))
    role: AlertRole
    subject_type: SubjectType
    subject: str
    score: float = Field(ge=0, le=1)
    reasons: list[str] = Field(default_factory=list)
    signal_ids: list[str] = Field(default_factory=list)
    status: AlertStatus = AlertStatus.OPEN
    centre_id: str | None = None
    scam_type: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WarningStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"


class Warning(BaseModel):  # noqa: A001 - the domain's word; never shadows the builtin in use
    """A warning addressed to one person, in their language, verifiable by its code."""

    model_config = ConfigDict(extra="forbid")

    warning_id: str = Field(default_factory=lambda: new_id("wrn"))
    recipient: str
    language: str = "en"
    channel: str = "sms"
    scam_type: str | None = None
    alert_id: str | None = None
    body: str = Field(default="", max_length=1000, description="the text sent; never contains a link")
    verification_code: str | None = None
    signature: str | None = None
    status: WarningStatus = WarningStatus.QUEUED
    decisive_event_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class CaseStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    SOLVED = "solved"
    CLOSED = "closed"


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(default_factory=lambda: new_id("case"))
    title: str = Field(max_length=300)
    status: CaseStatus = CaseStatus.OPEN
    centre_id: str | None = None
    scam_type: str | None = None
    alert_ids: list[str] = Field(default_factory=list)
    victims: list[str] = Field(default_factory=list)
    suspects: list[str] = Field(default_factory=list)
    indicators: list[str] = Field(default_factory=list, description="indicator keys type:value")
    loss_amount: float = 0.0
    recovered_amount: float = 0.0
    suspects_arrested: int = 0
    tlp: TLP = TLP.AMBER
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CentreLevel(StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    CITY = "city"


class Centre(BaseModel):
    model_config = ConfigDict(extra="forbid")

    centre_id: str = Field(max_length=80)
    name: str
    level: CentreLevel
    parent_id: str | None = None
    country: str = Field(pattern=r"^[A-Z]{2}$")
    regions: list[str] = Field(default_factory=list, description="home-region codes it is responsible for")
    prefixes: list[str] = Field(default_factory=list, description="E.164 prefixes it is responsible for")
    languages: list[str] = Field(default_factory=list)
