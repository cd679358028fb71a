"""Fraud indicators: the things a country can block, mark, warn about and share.

Each indicator has a type, a canonical value (so the same phone number or account from two
sources is one key), a confidence 0–100 (STIX's scale), the source that asserted it, first/last
seen, an expiry, and a TLP 2.0 marking that limits who may see it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forewarn.model.phone import InvalidPhoneNumber, InvalidSenderId, normalise_phone, normalise_sender


class IndicatorType(StrEnum):
    PHONE = "phone"
    SENDER_ID = "sender_id"
    URL = "url"
    DOMAIN = "domain"
    BANK_ACCOUNT = "bank_account"
    EWALLET = "ewallet"
    CRYPTO_WALLET = "crypto_wallet"
    IMEI = "imei"
    APP_PACKAGE = "app_package"


class TLP(StrEnum):
    """Traffic Light Protocol 2.0 markings, from least to most restricted."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"

    @property
    def rank(self) -> int:
        return list(TLP).index(self)


class InvalidIndicator(ValueError):
    def __init__(self, kind: str, raw: object, reason: str) -> None:
        self.kind = kind
        self.raw = raw
        self.reason = reason
        super().__init__(f"invalid {kind} {str(raw)[:60]!r}: {reason}")


_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ACCOUNT_RE = re.compile(r"^[A-Z0-9]{4,34}$")
_BANK_CODE_RE = re.compile(r"^[A-Z0-9]{2,11}$")
_ETH_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_BTC_RE = re.compile(r"^(bc1[ac-hj-np-z02-9]{11,71}|[13][a-km-zA-HJ-NP-Z1-9]{25,34})$")
_TRON_RE = re.compile(r"^T[1-9A-HJ-NP-Za-km-z]{33}$")
_PACKAGE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*(\.[a-zA-Z0-9_]+)+$")
MAX_INDICATOR_LENGTH = 2048


def normalise_domain(raw: str) -> str:
    text = raw.strip().rstrip(".").lower()
    if not text:
        raise InvalidIndicator("domain", raw, "empty")
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidIndicator("domain", raw, "not a valid internationalised domain name") from None
    labels = text.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise InvalidIndicator("domain", raw, "not a domain name (labels of letters, digits and hyphens)")
    if labels[-1].isdigit():
        raise InvalidIndicator("domain", raw, "the top-level label cannot be numeric")
    return text


def normalise_url(raw: str) -> str:
    text = raw.strip()
    if "://" not in text:
        text = "http://" + text
    try:  # urlsplit checks the port only when asked for it ("0::" splits, then its port raises)
        parts = urlsplit(text)
        host = parts.hostname or ""
        port_number = parts.port
    except ValueError as exc:
        raise InvalidIndicator("url", raw, str(exc)) from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise InvalidIndicator("url", raw, f"unsupported scheme {parts.scheme!r}")
    if not host:
        raise InvalidIndicator("url", raw, "no host")
    if not re.fullmatch(r"[0-9.]+", host):
        host = normalise_domain(host)
    port = f":{port_number}" if port_number and port_number not in (80, 443) else ""
    return urlunsplit((parts.scheme.lower(), host + port, parts.path or "/", parts.query, ""))


def _luhn_check_digit(digits: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def normalise_imei(raw: str) -> str:
    digits = re.sub(r"[\s-]", "", raw)
    if not digits.isdigit():
        raise InvalidIndicator("imei", raw, "an IMEI has only digits")
    if len(digits) == 14:
        return digits + str(_luhn_check_digit(digits))
    if len(digits) == 16:  # IMEISV: the device is the first 14 digits
        return digits[:14] + str(_luhn_check_digit(digits[:14]))
    if len(digits) != 15:
        raise InvalidIndicator("imei", raw, "an IMEI has 14, 15 or 16 (IMEISV) digits")
    if _luhn_check_digit(digits[:14]) != int(digits[14]):
        raise InvalidIndicator("imei", raw, "check digit does not match (Luhn)")
    return digits


def normalise_account(raw: str, kind: str = "bank_account") -> str:
    """``BANKCODE:ACCOUNT`` or a bare account/IBAN, upper-cased, without spaces or dashes."""
    text = raw.strip().upper()
    bank, sep, account = text.partition(":")
    if not sep:
        bank, account = "", text
    account = re.sub(r"[\s.-]", "", account)
    if not _ACCOUNT_RE.match(account):
        raise InvalidIndicator(kind, raw, "an account has 4–34 letters or digits")
    if bank:
        bank = re.sub(r"\s", "", bank)
        if not _BANK_CODE_RE.match(bank):
            raise InvalidIndicator(kind, raw, "the bank or wallet code has 2–11 letters or digits")
        return f"{bank}:{account}"
    return account


def normalise_crypto(raw: str) -> str:
    text = raw.strip()
    if _ETH_RE.match(text):
        return text.lower()
    if _BTC_RE.match(text) or _TRON_RE.match(text):
        return text if not text.startswith("bc1") else text.lower()
    raise InvalidIndicator("crypto_wallet", raw, "not a Bitcoin, Ethereum or TRON address")


def normalise_indicator(kind: IndicatorType | str, raw: object, default_region: str | None = None) -> str:
    """Canonical value of an indicator of ``kind``; raises :class:`InvalidIndicator` with the reason."""
    kind = IndicatorType(kind)
    if not isinstance(raw, str):
        raise InvalidIndicator(kind.value, raw, f"expected text, got {type(raw).__name__}")
    if len(raw) > MAX_INDICATOR_LENGTH:
        raise InvalidIndicator(kind.value, raw[:60], f"longer than {MAX_INDICATOR_LENGTH} characters")
    try:
        if kind is IndicatorType.PHONE:
            return normalise_phone(raw, default_region)
        if kind is IndicatorType.SENDER_ID:
            return normalise_sender(raw, default_region)
    except (InvalidPhoneNumber, InvalidSenderId) as exc:
        raise InvalidIndicator(kind.value, raw, exc.reason) from None
    if kind is IndicatorType.URL:
        return normalise_url(raw)
    if kind is IndicatorType.DOMAIN:
        return normalise_domain(raw)
    if kind in (IndicatorType.BANK_ACCOUNT, IndicatorType.EWALLET):
        return normalise_account(raw, kind.value)
    if kind is IndicatorType.CRYPTO_WALLET:
        return normalise_crypto(raw)
    if kind is IndicatorType.IMEI:
        return normalise_imei(raw)
    if kind is IndicatorType.APP_PACKAGE:
        text = raw.strip()
        if not _PACKAGE_RE.match(text) or len(text) > 255:
            raise InvalidIndicator(kind.value, raw, "an app package looks like com.example.app")
        return text
    raise InvalidIndicator(kind.value, raw, "unknown indicator type")  # pragma: no cover


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Indicator(BaseModel):
    """One asserted fraud indicator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: IndicatorType
    value: str = Field(max_length=MAX_INDICATOR_LENGTH)
    confidence: int = Field(ge=0, le=100, description="0–100, STIX confidence scale")
    source: str = Field(min_length=1, max_length=200, description="who asserted it: detector, centre or partner")
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    tlp: TLP = TLP.AMBER
    scam_type: str | None = Field(default=None, max_length=80)
    description: str | None = Field(default=None, max_length=2000)

    @field_validator("first_seen", "last_seen", "expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None

    @model_validator(mode="after")
    def _canonical(self) -> Indicator:
        canonical = normalise_indicator(self.type, self.value)
        if canonical != self.value:
            object.__setattr__(self, "value", canonical)
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen is before first_seen")
        return self

    @property
    def key(self) -> str:
        return f"{self.type.value}:{self.value}"

    def is_active(self, at: datetime | None = None) -> bool:
        return self.expires_at is None or as_utc(at or utcnow()) < self.expires_at
