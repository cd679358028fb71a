"""Message texts: the simulator's own templates (forewarn/sim/templates, written by us, not collected)
rendered into a table of distinct texts, so that messages pick a text by index (vectorised).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from forewarn.sim.geography import BUSINESS_SENDERS, LANGUAGES

LURES = ("parcel_customs", "bank_account_suspended", "police_impersonation", "job_task", "investment",
         "loan", "prize")


@cache
def load_templates(lang: str) -> dict[str, Any]:
    """The template set of one language (``zh``, ``th``, ``ms``, ``en``, ``vi``)."""
    text = resources.files("forewarn.sim").joinpath("templates", f"{lang}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    missing = [lure for lure in LURES if lure not in data["scam"]]
    if missing:
        raise ValueError(f"template set {lang} lacks lures {missing}")
    return data


def _amount(rng: np.random.Generator, lang: str) -> str:
    if lang == "vi":
        return f"{int(rng.integers(2, 90)) * 100_000:,}".replace(",", ".")
    if lang == "zh":
        return str(int(rng.integers(2, 100)) * 100)
    if lang == "th":
        return f"{int(rng.integers(3, 200)) * 100:,}"
    return str(int(rng.integers(5, 300)) * 10)


@dataclass
class TextBank:
    """All distinct texts; per-category index arrays; the URL inside each scam text."""

    texts: list[str] = field(default_factory=list)
    url_of: dict[int, str] = field(default_factory=dict)
    ham: dict[str, np.ndarray] = field(default_factory=dict)
    notify: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (country, lang)

    def add(self, text: str, url: str | None = None) -> int:
        self.texts.append(text)
        if url is not None:
            self.url_of[len(self.texts) - 1] = url
        return len(self.texts) - 1

    def _fill(self, template: str, data: dict[str, Any], rng: np.random.Generator, **extra: str) -> str:
        values = {
            "name": data["names"][int(rng.integers(len(data["names"])))],
            "place": data["places"][int(rng.integers(len(data["places"])))],
            "time": data["times"][int(rng.integers(len(data["times"])))],
            "benign_url": data["benign_urls"][int(rng.integers(len(data["benign_urls"])))],
            "code": str(int(rng.integers(1000, 999_999))).zfill(6),
            "amount": _amount(rng, data["lang"]),
        }
        values.update(extra)
        return template.format(**values)

    def build_common(self, rng: np.random.Generator, home_languages: dict[str, tuple[str, ...]]) -> None:
        for lang in LANGUAGES:
            data = load_templates(lang)
            idx = [self.add(self._fill(t, data, rng)) for t in data["ham"] for _ in range(6)]
            self.ham[lang] = np.array(sorted(set(idx)), dtype=np.int32)
        for country, langs in home_languages.items():
            for lang in langs:
                data = load_templates(lang)
                idx = [self.add(self._fill(t, data, rng, brand=brand))
                       for brand in BUSINESS_SENDERS[country] for t in data["notify"] for _ in range(8)]
                self.notify[(country, lang)] = np.array(idx, dtype=np.int32)

    def build_scam(self, rng: np.random.Generator, lang: str, lure: str, urls: list[str], brand: str) -> np.ndarray:
        """Scam texts for one operation in one language; each names one of the operation's URLs."""
        data = load_templates(lang)
        idx = []
        for template in data["scam"][lure]:
            for url in urls:
                for _ in range(3):
                    idx.append(self.add(self._fill(template, data, rng, url=url, brand=brand), url))
        return np.array(idx, dtype=np.int32)
