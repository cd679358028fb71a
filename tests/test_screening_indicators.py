"""Indicator extraction, table-driven: what is found, in canonical form, and what never is."""

from __future__ import annotations

import pytest

from forewarn.screening.indicators import extract, looks_like_personal_number, scan
from forewarn.screening.normalise import normalise


def run(text: str, lang: str = "en") -> tuple[set[str], list[dict[str, str]]]:
    n = normalise(text)
    found = scan(n.clean)
    return found.flags, extract(n.clean, found, lang)


@pytest.mark.parametrize(("text", "lang", "flags", "expected"), [
    ("Pay now http://bit.ly/abc?u=me", "en", {"url.present", "url.shortener"},
     [("url", "http://bit.ly/abc"), ("domain", "bit.ly")]),
    ("login at paypal-secure.xyz/verify", "en", {"url.present", "url.lookalike", "url.risky_tld"},
     [("url", "http://paypal-secure.xyz/verify"), ("domain", "paypal-secure.xyz")]),
    ("hxxps://my-bank[.]top/a", "en", {"url.present", "url.risky_tld"},
     [("url", "https://my-bank.top/a"), ("domain", "my-bank.top")]),
    ("请登录www.icbc-vip.cc验证", "zh", {"url.present", "url.lookalike", "url.risky_tld"},
     [("url", "http://www.icbc-vip.cc/"), ("domain", "icbc-vip.cc")]),
    ("call +66 81 234 5678 now", "en", {"phone.present"}, [("phone", "+66812345678")]),
    ("โทร 081 234 5678", "th", {"phone.present"}, [("phone", "+66812345678")]),
    ("转账到 6222021234567890 账户", "zh", set(), []),
    ("Transfer to account no 0123456789 today", "en", {"phone.present"}, [("bank_account", "0123456789")]),
    ("send to gcash 09171234567", "tl", {"phone.present"}, [("ewallet", "GCASH:09171234567")]),
    ("USDT to TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE", "en", {"crypto.wallet"},
     [("crypto_wallet", "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE")]),
    ("install AnyDesk please", "en", set(), [("app_package", "com.anydesk.anydeskandroid")]),
    ("pay RM 350 or Rp 1.500.000", "ms", {"money.amount"}, []),
    ("ok.no see you at 5", "en", set(), []),
    ("mail me at someone@example.com", "en", set(), []),
])
def test_extraction(text: str, lang: str, flags: set[str], expected: list[tuple[str, str]]) -> None:
    got_flags, got = run(text, lang)
    assert flags <= got_flags
    assert [(i["type"], i["value"]) for i in got] == expected


@pytest.mark.parametrize("digits", ["110101199003077777", "1234567890121", "900101145678", "3201012345678901",
                                    "4111111111111111"])
def test_id_and_card_shaped_numbers_are_personal(digits: str) -> None:
    assert looks_like_personal_number(digits)


def test_national_id_is_never_an_indicator() -> None:
    for text in ["Transfer to account 110101199003077777", "my IC 900101-14-5678", "NIK 3201012345678901",
                 "card 4111 1111 1111 1111"]:
        _, got = run(text)
        assert all(i["type"] not in ("phone", "bank_account") for i in got), (text, got)
