"""The scam-script knowledge base: Forewarn's typology of scam types and its written examples.

``data/scam_types.yaml`` holds the stable scam-type IDs the whole system uses (forewarning picks
warning templates by them, publishing groups bulletins by them, the simulator's lures map to
them), with names, stages, typical cue codes and advice in all ten languages.
``data/examples/<lang>.yaml`` holds example messages and call openings that the Forewarn team
*wrote* (not collected from anyone), including legitimate look-alikes (real-style OTP notices,
delivery notices, reminders) so that a model does not learn "any bank word = fraud". Slots such
as ``{url}`` are filled deterministically from per-language pools.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from forewarn.screening.langid import LANGUAGES


@dataclass(frozen=True)
class ScamType:
    id: str
    label: str                      # "fraud" or "spam"
    names: dict[str, str]
    stages: tuple[str, ...]
    cues: tuple[str, ...]
    advice: dict[str, str]


@dataclass(frozen=True)
class Example:
    lang: str
    type: str                       # scam-type ID, or "ham.<kind>" for legitimate look-alikes
    label: str                      # fraud / spam / ham
    channel: str                    # sms / call_transcript
    text: str
    origin: str = "written"         # always written by the Forewarn team, never collected


def _data(path: str) -> str:
    return resources.files("forewarn.screening").joinpath(f"data/{path}").read_text("utf-8")


@cache
def scam_types() -> dict[str, ScamType]:
    """Every scam type by ID (stable order of the typology file)."""
    raw: dict[str, Any] = yaml.safe_load(_data("scam_types.yaml"))
    return {t["id"]: ScamType(t["id"], t["label"], dict(t["names"]), tuple(t["stages"]), tuple(t["cues"]),
                              dict(t["advice"])) for t in raw["types"]}


def scam_type_ids() -> list[str]:
    return list(scam_types())


_URLS = ["http://bit.ly/3xK9pQ", "https://tinyurl.com/y7d2kq", "https://secure-verify-account.xyz/login",
         "http://paket-redelivery.top/track", "https://claim-reward.vip/", "http://s.id/kLm2", "https://cutt.ly/Qw8eR",
         "http://my-bank-update.online/verify", "https://customs-fee-pay.icu/pay", "http://192.168.10.7/login"]
_PHONES = {"en": ["+1 202 555 0147", "0800 555 0199"], "zh": ["13812345678", "+86 171 2345 6789"],
           "th": ["081 234 5678", "+66 92 345 6789"], "vi": ["0912 345 678", "+84 387 654 321"],
           "id": ["0812 3456 7890", "+62 857 1234 5678"], "ms": ["012-345 6789", "+60 11 2345 6789"],
           "tl": ["0917 123 4567", "+63 998 765 4321"], "my": ["09 123 456 789", "+95 9 765 432 10"],
           "km": ["012 345 678", "+855 97 765 4321"], "lo": ["020 5555 1234", "+856 20 9876 5432"]}
_AMOUNTS = {"en": ["$1,250", "£2.99", "$49.90", "$3,000"], "zh": ["5000元", "1.5万元", "298元", "20000元"],
            "th": ["1,500 บาท", "35 บาท", "50,000 บาท"], "vi": ["2.500.000đ", "35.000 VND", "15 triệu đồng"],
            "id": ["Rp 1.500.000", "Rp15.000", "Rp 50 juta"], "ms": ["RM 350", "RM2.50", "RM 10,000"],
            "tl": ["PHP 5,000", "₱1,200", "₱50,000"], "my": ["50,000 ကျပ်", "10,000 Ks"], "km": ["$50", "200,000 រៀល"],
            "lo": ["500,000 ກີບ", "2,000,000 ກີບ"]}


def _fill(text: str, lang: str, rng: random.Random) -> str:
    phones = _PHONES.get(lang, _PHONES["en"])
    amounts = _AMOUNTS.get(lang, _AMOUNTS["en"])
    return (text.replace("{url}", rng.choice(_URLS)).replace("{okurl}", "https://www.example.com")
            .replace("{phone}", rng.choice(phones)).replace("{amount}", rng.choice(amounts))
            .replace("{code}", f"{rng.randrange(10**6):06d}").replace("{ref}", f"{rng.randrange(10**10):010d}"))


@cache
def examples(variants: int = 2, seed: int = 7) -> tuple[Example, ...]:
    """All written examples, each with ``variants`` slot fillings (deterministic for a seed)."""
    rng = random.Random(seed)
    out: list[Example] = []
    types = scam_types()
    for lang in LANGUAGES:
        raw: dict[str, Any] = yaml.safe_load(_data(f"examples/{lang}.yaml"))
        for item in raw["examples"]:
            kind, label = str(item["type"]), str(item["label"])
            if not kind.startswith("ham.") and kind not in types:
                raise ValueError(f"examples/{lang}.yaml: unknown scam type {kind!r}")
            texts = {_fill(item["text"], lang, rng) for _ in range(variants)} if "{" in item["text"] else {item["text"]}
            for text in sorted(texts):
                out.append(Example(lang, kind, label, str(item.get("channel", "sms")), text))
    return tuple(out)
