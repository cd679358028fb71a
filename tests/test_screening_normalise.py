"""Normalisation against evasion: table-driven cases and properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.screening.normalise import normalise

CASES = [
    ("Ｖｅｒｉｆｙ ｎｏｗ", "verify now", ()),
    ("Verify your аccount", "verify your account", ("obfuscation.homoglyph",)),
    ("pay\u200bpal login", "paypal login", ("obfuscation.zero_width",)),
    ("hxxps://bank-login[.]xyz", "https://bank-login.xyz", ("obfuscation.defanged",)),
    ("visit scam(dot)xyz today", "visit scam.xyz today", ("obfuscation.defanged",)),
    ("w w w . s c a m . x y z", "www.scam.xyz", ("obfuscation.spacing",)),
    ("c.l.i.c.k here", "click here", ("obfuscation.spacing",)),
    ("点 击 链 接 领取", "点击链接 领取", ("obfuscation.spacing",)),
    ("your acc0unt is l0cked", "your account is locked", ("obfuscation.leet",)),
    ("𝐂𝐥𝐚𝐢𝐦 your prize", "claim your prize", ()),
    ("Meet at 4pm, 24hrs, mp3, 4G", "meet at 4pm, 24hrs, mp3, 4g", ()),
    ("ธนาคาร\u200bแจ้ง", "ธนาคารแจ้ง", ()),
    ("", "", ()),
]


@pytest.mark.parametrize(("raw", "folded", "tricks"), CASES)
def test_normalise_cases(raw: str, folded: str, tricks: tuple[str, ...]) -> None:
    result = normalise(raw)
    assert result.folded == folded
    assert set(result.tricks) == set(tricks)


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_normalise_never_raises_and_is_stable(text: str) -> None:
    once = normalise(text)
    assert isinstance(once.folded, str)
    assert "\x00" not in once.folded
    # Normalising already-normalised text changes nothing that the model reads.
    twice = normalise(once.clean)
    assert normalise(twice.clean).folded == twice.folded


WORDS = st.lists(st.sampled_from(["verify", "your", "account", "bank", "parcel", "customs", "prize", "claim",
                                  "suspended", "login", "urgent", "transfer"]), min_size=2, max_size=8)
_FULLWIDTH = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}
_HOMOGLYPH = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с"}


@given(WORDS, st.integers(min_value=0, max_value=2**31), st.sampled_from(["zw", "full", "homoglyph", "upper"]))
@settings(max_examples=200, deadline=None)
def test_disguised_text_normalises_to_the_plain_text(words: list[str], seed: int, trick: str) -> None:
    plain = " ".join(words)
    if trick == "zw":
        disguised = "".join(ch + ("\u200b" if (seed >> (i % 31)) & 1 and ch.isalpha() else "") for i, ch in enumerate(plain))
    elif trick == "full":
        disguised = "".join(_FULLWIDTH.get(ch, ch) for ch in plain)
    elif trick == "homoglyph":
        disguised = "".join(_HOMOGLYPH.get(ch, ch) if (seed >> (i % 31)) & 1 else ch for i, ch in enumerate(plain))
    else:
        disguised = plain.upper()
    assert normalise(disguised).folded == normalise(plain).folded
