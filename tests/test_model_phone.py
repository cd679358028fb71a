"""Phone, sender and indicator normalisation, and event validation messages."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from forewarn.model import (
    CallRecord,
    IndicatorType,
    InvalidIndicator,
    InvalidPhoneNumber,
    normalise_indicator,
    normalise_phone,
    parse_event,
)
from forewarn.model.phone import normalise_sender

REGIONS = ["TH", "CN", "MY", "VN", "KH", "MM", "LA", "GB", "US", None]
phone_like = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="+0123456789 ()-.", max_size=24),
    st.from_regex(r"\+?(66|86|60|84|855)[0-9 ]{6,12}", fullmatch=True),
    st.integers(min_value=-10**16, max_value=10**16),
)


@settings(max_examples=400, deadline=None)
@given(phone_like, st.sampled_from(REGIONS))
def test_normalise_phone_is_e164_and_idempotent_or_rejects_with_reason(raw, region):
    try:
        e164 = normalise_phone(raw, region)
    except InvalidPhoneNumber as exc:
        assert exc.reason and exc.reason in str(exc)
        return
    parsed = phonenumbers.parse(e164, None)
    assert e164 == phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    assert phonenumbers.is_valid_number(parsed)
    assert normalise_phone(e164) == e164
    assert normalise_phone(e164, region) == e164


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.floats(), st.booleans(), st.lists(st.integers()), st.binary()))
def test_normalise_phone_rejects_non_text_with_reason(raw):
    with pytest.raises(InvalidPhoneNumber, match="expected text"):
        normalise_phone(raw)


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("+66 81 234 5678", None, "+66812345678"),
    ("0812345678", "TH", "+66812345678"),
    ("0066812345678", None, "+66812345678"),
    ("138 0013 8000", "CN", "+8613800138000"),
])
def test_normalise_phone_examples(raw, region, expected):
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"), ("0812345678", "no country code"), ("+66 12", "too short"), ("x" * 80, "longer than"),
    ("hello", "not a number"),
])
def test_normalise_phone_reasons(raw, reason):
    with pytest.raises(InvalidPhoneNumber, match=reason):
        normalise_phone(raw)


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    (IndicatorType.PHONE, "+66 81 234 5678", "+66812345678"),
    (IndicatorType.SENDER_ID, " Bank-TH ", "BANK-TH"),
    (IndicatorType.URL, "HTTP://Example.COM:80/a?b=1#frag", "http://example.com/a?b=1"),
    (IndicatorType.URL, "bit.ly/x", "http://bit.ly/x"),
    (IndicatorType.DOMAIN, "Example.COM.", "example.com"),
    (IndicatorType.DOMAIN, "bücher.de", "xn--bcher-kva.de"),
    (IndicatorType.BANK_ACCOUNT, "kbank: 123-4-56789-0", "KBANK:1234567890"),
    (IndicatorType.EWALLET, "tmn:0812345678", "TMN:0812345678"),
    (IndicatorType.CRYPTO_WALLET, "0x52908400098527886E0F7030069857D2E4169EE7", "0x52908400098527886e0f7030069857d2e4169ee7"),
    (IndicatorType.IMEI, "49-015420-323751-8", "490154203237518"),
    (IndicatorType.IMEI, "49015420323751", "490154203237518"),
    (IndicatorType.APP_PACKAGE, " com.example.app ", "com.example.app"),
])
def test_normalise_indicator_per_type(kind, raw, expected):
    assert normalise_indicator(kind, raw) == expected
    assert normalise_indicator(kind, expected) == expected  # canonical values are fixed points


@pytest.mark.parametrize(("kind", "raw", "reason"), [
    (IndicatorType.URL, "ftp://x.com", "unsupported scheme"),
    (IndicatorType.DOMAIN, "localhost", "not a domain"),
    (IndicatorType.DOMAIN, "a.123", "numeric"),
    (IndicatorType.BANK_ACCOUNT, "12", "4–34"),
    (IndicatorType.CRYPTO_WALLET, "0x123", "not a Bitcoin"),
    (IndicatorType.IMEI, "490154203237517", "check digit"),
    (IndicatorType.APP_PACKAGE, "notapackage", "com.example.app"),
    (IndicatorType.PHONE, "+66 12", "too short"),
])
def test_normalise_indicator_rejects_with_reason(kind, raw, reason):
    with pytest.raises(InvalidIndicator, match=reason):
        normalise_indicator(kind, raw)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(IndicatorType)), st.text(max_size=80))
@example(IndicatorType.URL, "0::")  # a port that only fails when read
def test_normalise_indicator_total_and_idempotent(kind, raw):
    try:
        value = normalise_indicator(kind, raw)
    except InvalidIndicator as exc:
        assert exc.reason
        return
    assert normalise_indicator(kind, value) == value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_normalise_sender_is_idempotent(raw):
    try:
        value = normalise_sender(raw)
    except ValueError:
        return
    assert normalise_sender(value) == value


CALL = {"kind": "call", "event_id": "c-1", "caller": "+66812345678", "callee": "+8613800138000",
        "start": "2026-01-01T10:00:00+07:00", "duration_s": "12.5"}


def test_call_record_normalises_and_fills_countries():
    ev = parse_event(CALL)
    assert isinstance(ev, CallRecord)
    assert ev.start.isoformat() == "2026-01-01T03:00:00+00:00"
    assert (ev.caller_country, ev.callee_country) == ("TH", "CN")


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"caller": "12"}, "caller", "invalid phone number"),
    ({"duration_s": "-1"}, "duration_s", "greater than or equal to 0"),
    ({"duration_s": "abc"}, "duration_s", "valid number"),
    ({"start": "yesterday"}, "start", "datetime"),
    ({"event_id": "has space"}, "event_id", "pattern"),
    ({"colour": "red"}, "colour", "Extra inputs"),
    ({"kind": "fax"}, "kind", "tag"),
    ({"imei": "123"}, "imei", "IMEI"),
])
def test_event_validation_errors_name_field_and_reason(change, field, words):
    with pytest.raises(ValidationError) as info:
        parse_event({**CALL, **change})
    text = str(info.value)
    assert field in text and words in text
