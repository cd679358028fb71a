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


# --- links that lost their dots ----------------------------------------------------------------

LOST_DOT_CASES = [
    ("Click bit ly/3xYz now", "bit.ly", "/3xYz"),
    ("go bit. ly/abc", "bit.ly", "/abc"),
    ("go bit , ly/abc", "bit.ly", "/abc"),
    ("visit www xyz com today", "www.xyz.com", ""),
    ("open www. bank-verify .com", "www.bank-verify.com", ""),
    ("book online www bdo com ph travel", "www.bdo.com.ph", ""),
    ("claim http phlinks center ausoi", "phlinks.center", ""),
    ("www dot bank-secure dot com", "www.bank-secure.com", ""),
    ("tinyurl com/x9", "tinyurl.com", "/x9"),
]


@pytest.mark.parametrize(("raw", "host", "path"), LOST_DOT_CASES)
def test_links_that_lost_their_dots_are_found(raw: str, host: str, path: str) -> None:
    from forewarn.screening.indicators import scan

    norm = normalise(raw)
    assert "obfuscation.link_spaced" in norm.tricks
    found = scan(norm.clean)
    assert "url.present" in found.flags
    assert (host, path) in [(h, p) for _, h, _, p in found.urls]


@pytest.mark.parametrize("raw", ["It is a bit. Ly said so", "I went to t co yesterday", "see me/you at 5",
                                 "go to/from work", "done. com on", "the http protocol is old", "pay 5. Net total"])
def test_sentences_are_not_taken_for_links(raw: str) -> None:
    norm = normalise(raw)
    assert "obfuscation.link_spaced" not in norm.tricks
    assert norm.folded == " ".join(raw.lower().split())


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=3, max_size=12).filter(
    lambda s: any(c.isalpha() for c in s))
_SEPARATOR = st.sampled_from([" ", " . ", ". ", " .", " dot ", "  "])
_WORDS_AROUND = st.lists(st.sampled_from(["please", "claim", "your", "prize", "at", "now", "today", "link"]),
                         max_size=4)


@given(_LABEL, st.sampled_from(["com", "xyz", "net", "top", "vip"]), _SEPARATOR, _SEPARATOR, _WORDS_AROUND,
       _WORDS_AROUND)
@settings(max_examples=300, deadline=None)
def test_www_link_with_lost_dots_comes_back(name: str, tld: str, sep1: str, sep2: str, before: list[str],
                                             after: list[str]) -> None:
    """"www" + name + TLD joined by any mix of lost-dot separators is read as www.name.tld, and the
    indicator scan finds that host, wherever the link stands in a sentence."""
    from forewarn.screening.indicators import scan

    raw = " ".join([*before, f"www{sep1}{name}{sep2}{tld}", *after])
    norm = normalise(raw)
    assert f"www.{name}.{tld}" in norm.clean.split()  # (folded also undoes leetspeak: a0a -> aoa)
    assert f"www.{name}.{tld}" in [h for _, h, _, _ in scan(norm.clean).urls]


@given(st.sampled_from(["bit.ly", "goo.gl", "tinyurl.com", "cutt.ly", "t.co", "s.id"]), _SEPARATOR,
       st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=10),
       _WORDS_AROUND)
@settings(max_examples=300, deadline=None)
def test_shortener_with_lost_dot_is_a_shortener(short: str, sep: str, path: str, before: list[str]) -> None:
    from forewarn.screening.indicators import scan

    first, tld = short.split(".")
    norm = normalise(" ".join([*before, f"{first}{sep}{tld}/{path}"]))
    found = scan(norm.clean)
    assert {"url.present", "url.shortener"} <= found.flags
    assert (short, f"/{path}") in [(h, p) for _, h, _, p in found.urls]


@given(st.lists(st.sampled_from(["www", "bit", "ly", "com", "http", "dot", ".", "/", "xyz", "me", "to", "the",
                                 "bank", "go", "t", "co", "  ", "https", ":", "//"]), max_size=12))
@settings(max_examples=400, deadline=None)
def test_relinking_is_stable_and_batch_agrees(tokens: list[str]) -> None:
    """Link-like word salad: normalising twice changes nothing more, and the batch path gives the
    per-message result."""
    from forewarn.screening.normalise import normalise_many

    text = " ".join(tokens)
    once = normalise(text)
    assert normalise(once.clean).folded == once.folded
    batch = normalise_many([text, "plain words", text.upper()])
    assert batch[0] == once
    assert batch[2] == normalise(text.upper())


# --- Vietnamese without marks -----------------------------------------------------------------

@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_strip_marks_keeps_length_and_removes_latin_marks(text: str) -> None:
    import unicodedata

    from forewarn.screening.normalise import strip_marks

    bare = strip_marks(text)
    assert len(bare) == len(text)
    for a, b in zip(text, bare, strict=True):
        if a != b:
            assert b.isascii() and b.isalpha()
            assert unicodedata.normalize("NFD", a)[0] == b or a in "đĐı"
