"""What the public portal may answer: number/URL/account checks, citizen reports and warning
verification, each bound by the portal policy.

A check reveals only *listed* or *not listed*, a coarse label (``scam`` or ``suspicious``) and the
scam type's advice — never the sources, the confidence, the sightings or any TLP:AMBER+STRICT or
TLP:RED indicator, whatever the policy says. Reports become ``CitizenReport`` events stored
idempotently (through the ingestion library when it is installed); verification asks forewarning.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, select

from forewarn.model.events import CitizenReport
from forewarn.model.indicators import TLP, IndicatorType, InvalidIndicator, normalise_indicator, utcnow
from forewarn.publishing.capabilities import optional
from forewarn.store import Store, audit
from forewarn.store import repository as repo
from forewarn.store import schema as t
from forewarn.store.db import utc

PORTAL_KINDS = (IndicatorType.PHONE, IndicatorType.URL, IndicatorType.BANK_ACCOUNT, IndicatorType.EWALLET)
NEVER_PUBLIC = (TLP.AMBER_STRICT, TLP.RED)
PORTAL_ACTOR = "public:portal"


class PortalInputError(ValueError):
    """What a citizen typed cannot be used; ``field`` names the form field, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class PortalPolicy:
    """How much the public portal reveals.

    ``max_tlp``: the most restricted marking whose indicators may be answered as listed (capped at
    AMBER: AMBER+STRICT and RED are never revealed). ``min_confidence``: below it an indicator is
    treated as not listed. ``scam_confidence``: from it on the label is ``scam``, below ``suspicious``.
    """

    max_tlp: TLP = TLP.AMBER
    min_confidence: int = 50
    scam_confidence: int = 80

    def reveals(self, tlp: TLP) -> bool:
        return tlp not in NEVER_PUBLIC and tlp.rank <= min(self.max_tlp.rank, TLP.AMBER.rank)


@dataclass(frozen=True)
class CheckAnswer:
    kind: IndicatorType
    value: str
    listed: bool
    label: str | None = None  # "scam" or "suspicious"
    scam_type: str | None = None


def _candidates(kind: IndicatorType, value: str) -> list[tuple[str, str]]:
    """The indicator keys a check looks at: a phone is also an SMS sender; a URL also its domain."""
    keys = [(kind.value, value)]
    if kind is IndicatorType.PHONE:
        keys.append((IndicatorType.SENDER_ID.value, value))
    if kind is IndicatorType.URL:
        from urllib.parse import urlsplit

        host = urlsplit(value).hostname
        if host:
            keys.append((IndicatorType.DOMAIN.value, host))
    return keys


def _allow_listed(conn: Connection, value: str) -> bool:
    """Allow-lists of the reputation capability (emergency, government, known senders) win over any
    listing, when that capability is installed. Personal allow-lists are a subscriber's own and
    say nothing to the public."""
    cap = optional("forewarn.reputation.allowlist", "load_allow_lists")
    load = cap.attr("load_allow_lists")
    if not callable(load):
        return False
    try:
        lists = load(conn)
    except Exception:  # noqa: BLE001 - tables not migrated on this store: no allow-list to apply
        return False
    return value in getattr(lists, "numbers", {})


def check_indicator(conn: Connection, kind: str, raw: str, *, policy: PortalPolicy | None = None,
                    default_region: str | None = None, now: datetime | None = None) -> CheckAnswer:
    """Listed or not, under ``policy``; raises :class:`PortalInputError` for a bad kind or value."""
    policy = policy or PortalPolicy()
    try:
        indicator_kind = IndicatorType(kind)
    except ValueError:
        raise PortalInputError("kind", "unknown kind") from None
    if indicator_kind not in PORTAL_KINDS:
        raise PortalInputError("kind", "unknown kind")
    if not raw or not raw.strip():
        raise PortalInputError("value", "empty")
    try:
        value = normalise_indicator(indicator_kind, raw, default_region)
    except InvalidIndicator as exc:
        raise PortalInputError("value", exc.reason) from None
    at = utc(now) or utcnow()
    best: tuple[int, str | None] | None = None
    ind = t.indicators.c
    for key_kind, key_value in _candidates(indicator_kind, value):
        if key_kind in (IndicatorType.PHONE.value, IndicatorType.SENDER_ID.value) and _allow_listed(conn, key_value):
            return CheckAnswer(indicator_kind, value, False)
        rows = conn.execute(select(ind.confidence, ind.tlp, ind.scam_type, ind.expires_at)
                            .where(ind.type == key_kind, ind.value == key_value, ind.revoked.is_(False)))
        for row in rows:
            expires = utc(row.expires_at)
            if expires is not None and expires <= at:
                continue
            try:
                tlp = TLP(row.tlp)
            except ValueError:
                continue  # an unknown marking is treated as the most restrictive
            if not policy.reveals(tlp) or row.confidence < policy.min_confidence:
                continue
            if best is None or row.confidence > best[0]:
                best = (row.confidence, row.scam_type)
    if best is None:
        return CheckAnswer(indicator_kind, value, False)
    label = "scam" if best[0] >= policy.scam_confidence else "suspicious"
    return CheckAnswer(indicator_kind, value, True, label, best[1])


# --- citizen reports ------------------------------------------------------------------------------

REPORT_KINDS = (IndicatorType.PHONE, IndicatorType.SENDER_ID, IndicatorType.URL, IndicatorType.BANK_ACCOUNT,
                IndicatorType.EWALLET, IndicatorType.CRYPTO_WALLET)


def build_report(kind: str, value: str, *, scam_type: str | None, loss: str | None, currency: str | None,
                 reporter: str | None, lang: str, default_region: str | None = None,
                 now: datetime | None = None) -> CitizenReport:
    """A validated ``CitizenReport`` from the portal form, or :class:`PortalInputError`."""
    try:
        indicator_kind = IndicatorType(kind)
    except ValueError:
        raise PortalInputError("kind", "unknown kind") from None
    if indicator_kind not in REPORT_KINDS:
        raise PortalInputError("kind", "unknown kind")
    try:
        canonical = normalise_indicator(indicator_kind, value or "", default_region)
    except InvalidIndicator as exc:
        raise PortalInputError("value", exc.reason) from None
    reporter_e164 = None
    if reporter and reporter.strip():
        try:
            reporter_e164 = normalise_indicator(IndicatorType.PHONE, reporter, default_region)
        except InvalidIndicator as exc:
            raise PortalInputError("reporter", exc.reason) from None
    amount: Decimal | None = None
    if loss and loss.strip():
        try:
            amount = Decimal(loss.strip().replace(",", ""))
        except InvalidOperation:
            raise PortalInputError("loss", "not a number") from None
        if amount < 0 or amount > Decimal("1e15"):
            raise PortalInputError("loss", "out of range")
        amount = amount.quantize(Decimal("0.01"))
    data: dict[str, Any] = {
        "event_id": f"portal-{uuid.uuid4().hex}", "source": "portal", "kind": "report",
        "reporter": reporter_e164, "indicator_type": indicator_kind.value, "indicator_value": canonical,
        "verdict": "scam", "scam_type": (scam_type or "").strip()[:80] or None,
        "loss_amount": amount, "currency": (currency or "").strip().upper() or None if amount is not None else None,
        "reported_at": utc(now) or utcnow(), "lang": lang[:8],
    }
    try:
        return CitizenReport.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PortalInputError(str(first["loc"][0]) if first.get("loc") else "form", str(first["msg"])) from None


def store_report(store: Store, report: CitizenReport) -> str:
    """Store the report and audit it; returns its event id.

    Through the ingestion library when installed (validation, idempotent storage, the audit entry
    and the fan-out to detectors in one go), else straight into the events table. Either way the
    audit entry names the origin, never the reporter or the reported value.
    """
    cap = optional("forewarn.ingest", "ingest_records")
    ingest = cap.attr("ingest_records")
    if callable(ingest):
        result = ingest(store, [report.model_dump(mode="json")], "portal", PORTAL_ACTOR, "report.create")
        if result.errors:
            raise PortalInputError("form", str(result.errors[0].get("reason", "rejected"))[:200])
        return report.event_id
    with store.begin() as conn:
        repo.insert_events(conn, [report])
        audit.append(conn, PORTAL_ACTOR, "report.create", report.event_id,
                     {"indicator_type": report.indicator_type.value, "scam_type": report.scam_type})
    return report.event_id


# --- verifying a warning ---------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyAnswer:
    code: str
    found: bool
    genuine: bool
    issued_at: datetime | None = None
    scam_type: str | None = None
    language: str | None = None
    signature_checked: bool = True


def verify_warning(conn: Connection, code: str) -> VerifyAnswer:
    """Ask forewarning whether the code belongs to a genuine, signed warning of this node.

    Without forewarning's signing module the stored code is looked up but the signature cannot be
    checked, which the answer says (``signature_checked=False``) rather than claiming it genuine.
    """
    cleaned = (code or "").strip()
    if not cleaned or len(cleaned) > 40:
        raise PortalInputError("code", "empty" if not cleaned else "too long")
    cap = optional("forewarn.forewarning.signing", "verify_code")
    verify = cap.attr("verify_code")
    if callable(verify):
        result = verify(conn, cleaned)
        return VerifyAnswer(result.code, bool(result.found), bool(result.genuine), result.issued_at,
                            result.scam_type, result.language)
    row = conn.execute(select(t.warnings_.c.verification_code, t.warnings_.c.created_at, t.warnings_.c.scam_type,
                              t.warnings_.c.language)
                       .where(t.warnings_.c.verification_code == cleaned.upper())).first()
    if row is None:
        return VerifyAnswer(cleaned.upper(), False, False, signature_checked=False)
    return VerifyAnswer(row.verification_code, True, False, utc(row.created_at), row.scam_type, row.language,
                        signature_checked=False)
