"""Phone-number and sender-ID normalisation.

Every number that enters Forewarn is stored in E.164 (``+`` country code subscriber number), so
that a number seen by a telco, a bank and a partner country is one key. Invalid numbers are
rejected with the reason, never guessed.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

MAX_RAW_LENGTH = 64
_SENDER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._&-]{1,10}$")
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "invalid country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "invalid length for its country",
}


class InvalidPhoneNumber(ValueError):
    """A value that is not a valid phone number; ``reason`` says why."""

    def __init__(self, raw: object, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        shown = str(raw)
        if len(shown) > 40:
            shown = shown[:40] + "…"
        super().__init__(f"invalid phone number {shown!r}: {reason}")


@lru_cache(maxsize=2_000_000)
def _normalise_cached(raw: str, default_region: str | None) -> str:
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidPhoneNumber(raw, f"longer than {MAX_RAW_LENGTH} characters")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber(raw, "empty")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        reason = {
            NumberParseException.INVALID_COUNTRY_CODE: (
                "no country code and no default region" if not text.startswith("+") else "invalid country code"
            ),
            NumberParseException.NOT_A_NUMBER: "not a number",
            NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
            NumberParseException.TOO_SHORT_NSN: "too short",
            NumberParseException.TOO_LONG: "too long",
        }.get(exc.error_type, str(exc))
        raise InvalidPhoneNumber(raw, reason) from None
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    if possible not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        raise InvalidPhoneNumber(raw, _POSSIBLE_REASONS.get(possible, "not a possible number"))
    if not phonenumbers.is_valid_number(parsed):
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        raise InvalidPhoneNumber(raw, f"not a valid number for {region}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_phone(raw: object, default_region: str | None = None) -> str:
    """Return ``raw`` as an E.164 string or raise :class:`InvalidPhoneNumber` with the reason.

    ``default_region`` (ISO alpha-2) is used for numbers written without a country code.

    >>> normalise_phone("+66 81 234 5678")
    '+66812345678'
    >>> normalise_phone("0812345678", "TH")
    '+66812345678'
    """
    if not isinstance(raw, str | int) or isinstance(raw, bool):
        raise InvalidPhoneNumber(raw, f"expected text, got {type(raw).__name__}")
    return _normalise_cached(str(raw), default_region.upper() if default_region else None)


@lru_cache(maxsize=500_000)
def country_of(e164: str) -> str | None:
    """ISO alpha-2 country of an E.164 number (None when the code is shared and unresolvable)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except NumberParseException:
        return None
    return phonenumbers.region_code_for_number(parsed)


@lru_cache(maxsize=500_000)
def number_type(e164: str) -> str:
    """Coarse line type of a number: mobile, fixed, premium, toll_free, voip, other."""
    parsed = phonenumbers.parse(e164, None)
    kind = phonenumbers.number_type(parsed)
    return {
        PhoneNumberType.MOBILE: "mobile",
        PhoneNumberType.FIXED_LINE: "fixed",
        PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
        PhoneNumberType.PREMIUM_RATE: "premium",
        PhoneNumberType.TOLL_FREE: "toll_free",
        PhoneNumberType.VOIP: "voip",
    }.get(kind, "other")


class InvalidSenderId(ValueError):
    def __init__(self, raw: object, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"invalid SMS sender {str(raw)[:40]!r}: {reason}")


def normalise_sender(raw: object, default_region: str | None = None) -> str:
    """An SMS sender: a phone number (E.164) or an alphanumeric sender ID (upper-cased, 2–11 chars).

    A value with any letter is a sender ID; anything else must be a valid phone number.
    """
    if not isinstance(raw, str):
        raise InvalidSenderId(raw, f"expected text, got {type(raw).__name__}")
    text = raw.strip()
    if any(ch.isalpha() for ch in text):
        if not _SENDER_ID_RE.match(text):
            raise InvalidSenderId(raw, "a sender ID has 2–11 letters, digits, spaces or . _ & -")
        return text.upper()
    try:
        return normalise_phone(text, default_region)
    except InvalidPhoneNumber as exc:
        raise InvalidSenderId(raw, exc.reason) from None
