"""Privacy by construction: personal data put into legitimate and scam messages never appears in
any screening output (library, CLI file, HTTP) or in any log record. Property-based (hypothesis)."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forewarn.screening import Screener
from forewarn.screening.calls import CallScreener
from forewarn.screening.knowledge import scam_types
from forewarn.screening.lexicon import cue_codes

NAMES = ["Nguyen Van Minh", "Siti Nurhaliza", "Somchai Jaidee", "Maria Santos", "Zhang Wei", "Aung Kyaw Moe",
         "Sokha Chan", "Bounmy Phommachanh", "Nur Aisyah binti Ahmad", "John Smithers", "王小明", "李晓楠",
         "สมชาย ใจดี", "ဦးအောင်ကျော်", "សុខា ចាន់", "ບຸນມີ ພົມມະຈັນ"]
STREETS = ["Jalan Sudirman", "Sukhumvit Soi", "Nguyen Hue Street", "Rizal Avenue", "Jalan Ampang", "人民路",
           "ถนนสุขุมวิท", "Mabini Street"]
TEMPLATES = [
    "Dear {name}, your bank account is suspended. Verify at http://bit.ly/3xK9pQ with ID {nid}. Address {addr}. Email {email}",
    "Hi {name}, your parcel to {addr} is held at customs. Pay the fee at https://customs-fee-pay.icu/pay. Ref ID {nid}",
    "尊敬的{name}，您的身份证{nid}涉嫌洗钱，请立即转账到安全账户。地址：{addr}，邮箱{email}",
    "{name}, ang iyong GCash ay na-suspend. I-verify sa http://s.id/kLm2. ID {nid}, {addr}",
    "Hi {name}, your dental appointment is tomorrow at 10:30 at {addr}. Email {email}",
    "Xin chào {name}, đơn hàng giao tới {addr} hôm nay. CCCD {nid}",
    "Transfer to account {nid} now. Customer {name}, {addr}",
    "{name} ที่อยู่ {addr} บัตรประชาชน {nid} กรุณายืนยันตัวตนด่วน",
]


def _thai_id(digits12: str) -> str:
    check = (11 - sum(int(d) * (13 - i) for i, d in enumerate(digits12)) % 11) % 10
    return digits12 + str(check)


national_ids = st.one_of(
    st.from_regex(r"[1-6][0-9]{5}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])[0-9]{3}[0-9X]", fullmatch=True),  # CN
    st.from_regex(r"[0-9]{12}", fullmatch=True).map(_thai_id),                                                     # TH
    st.from_regex(r"[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9])-[0-9]{2}-[0-9]{4}", fullmatch=True),                  # MY IC
    st.from_regex(r"3[0-9]{15}", fullmatch=True),                                                                   # ID NIK
    st.from_regex(r"0[0-9]{11}", fullmatch=True),                                                                   # VN CCCD
    st.from_regex(r"[0-9]{4}-[0-9]{4}-[0-9]{4}", fullmatch=True),                                                   # PH PhilSys
)
emails = st.from_regex(r"[a-z]{4,10}\.[a-z]{3,8}[0-9]{2}@(gmail|yahoo|outlook)\.com", fullmatch=True)
addresses = st.builds(lambda n, s: f"{n} {s}", st.integers(min_value=10, max_value=999), st.sampled_from(STREETS))

FIXED_VOCABULARY = " ".join([*cue_codes(), *scam_types(), "fraud", "spam", "ham", "und"]).lower()


def _secrets(name: str, nid: str, addr: str, email: str) -> list[str]:
    digits = "".join(c for c in nid if c.isdigit())
    return [name, nid, digits, addr, email, email.split("@")[0], *[part for part in name.split() if len(part) > 3]]


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener.default()


@given(template=st.sampled_from(TEMPLATES), name=st.sampled_from(NAMES), nid=national_ids, addr=addresses, email=emails)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_personal_data_never_leaves_the_screener(screener: Screener, caplog: pytest.LogCaptureFixture, template: str,
                                                 name: str, nid: str, addr: str, email: str) -> None:
    text = template.format(name=name, nid=nid, addr=addr, email=email)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        results = [screener.screen_one(text, id="m"), *screener.screen_many([{"text": text, "id": "m"}])]
        call = CallScreener(screener)
        call.add_turn("caller", text)
        results.append(call.add_turn("callee", f"My name is {name}, I live at {addr}"))
    output = json.dumps([r.as_dict() for r in results], ensure_ascii=False).lower()
    logs = "\n".join(rec.getMessage() for rec in caplog.records).lower()
    for secret in _secrets(name, nid, addr, email):
        secret = secret.lower()
        if secret in FIXED_VOCABULARY:
            continue
        assert secret not in output, (secret, output)
        assert secret not in logs


def test_scam_still_yields_its_indicators(screener: Screener) -> None:
    text = TEMPLATES[0].format(name="Maria Santos", nid="110101199003077777", addr="12 Rizal Avenue",
                               email="maria.santos77@gmail.com")
    result = screener.screen_one(text)
    assert result.label != "ham"
    assert {"type": "domain", "value": "bit.ly"} in result.indicators
    assert "110101199003077777" not in json.dumps(result.as_dict())
