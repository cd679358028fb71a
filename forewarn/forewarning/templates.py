"""Warning texts per scam type and language, rendered without links.

Texts live in ``templates/warnings.yaml``: a frame per language (header, how to verify, "police
never ask you to transfer money") around advice per scam-type ID, with ``generic`` as the fallback
for any other type. Every text is checked on load and every rendered warning is checked again by
:func:`find_link`: a warning that looks like it carries a link, a domain or an address is refused,
because scammers imitate warnings with links and recipients are taught that real ones have none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

TEMPLATES_PATH = Path(__file__).parent / "templates" / "warnings.yaml"
LANGUAGES = ("zh", "en", "th", "vi", "id", "ms", "tl", "my", "km", "lo")
GENERIC = "generic"
MAX_BODY = 1000

# Anything a phone might turn into a tappable link, or a reader might type into a browser.
_LINK_PATTERNS = [
    re.compile(r"[a-z][a-z0-9+.\-]*://", re.I),                       # scheme://
    re.compile(r"\b(?:www|wap|m)\s*[.。．]\s*\S", re.I),               # www. / wap.
    re.compile(r"\b(?:hxxps?|https?|ftp|mailto|tel|sms|intent|market)\s*:", re.I),
    re.compile(r"[A-Za-z0-9\-]+(?:\.|\s*[。．]\s*)(?:[A-Za-z0-9\-]+(?:\.|\s*[。．]\s*))*"
               r"(?:com|net|org|info|biz|xyz|top|vip|cc|io|ly|me|co|app|link|site|online|club|shop|"
               r"gov|edu|cn|th|vn|my|id|ph|kh|la|mm|sg|hk|tw|uk|us|ru|in|tk|ml|ga|cf|gq)\b", re.I),
    re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),                         # IPv4
    re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+"),                  # e-mail address
    re.compile(r"\b[a-z0-9\-]{2,}\.[a-z]{2,}/", re.I),                  # host/path
]


def find_link(text: str) -> str | None:
    """The first link-like fragment in ``text``, or None when it has none."""
    for pattern in _LINK_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(0)
    return None


class TemplateError(ValueError):
    """A template or a rendered warning is missing or unsafe."""


@dataclass(frozen=True)
class Templates:
    frames: dict[str, str]
    advice: dict[str, dict[str, str]]
    aliases: dict[str, str] = field(default_factory=dict)

    @property
    def scam_types(self) -> list[str]:
        return sorted(self.advice)

    def render(self, scam_type: str | None, language: str, *, code: str, hotline: str) -> tuple[str, str]:
        """``(body, language_used)``: the warning for ``scam_type`` in ``language`` (English when the
        language has no template); raises :class:`TemplateError` if the result looks like a link."""
        lang = language if language in self.frames else "en"
        key = self.aliases.get(scam_type or "", scam_type or GENERIC)
        advice = self.advice.get(key, self.advice[GENERIC])
        if not hotline.replace(" ", "").isdigit():
            raise TemplateError(f"hotline {hotline!r} must be digits only")
        body = self.frames[lang].format(advice=advice.get(lang, self.advice[GENERIC][lang]), code=code,
                                        hotline=hotline)
        link = find_link(body)
        if link is not None:
            raise TemplateError(f"refusing a warning that contains link-like text {link!r}")
        if len(body) > MAX_BODY:
            raise TemplateError(f"warning longer than {MAX_BODY} characters")
        return body, lang


def _check(frames: dict[str, str], advice: dict[str, dict[str, str]]) -> None:
    missing = [lang for lang in LANGUAGES if lang not in frames]
    if missing:
        raise TemplateError(f"frame missing for languages: {', '.join(missing)}")
    if GENERIC not in advice:
        raise TemplateError("advice has no 'generic' fallback")
    for lang, frame in frames.items():
        for slot in ("{advice}", "{code}", "{hotline}"):
            if slot not in frame:
                raise TemplateError(f"frame {lang} lacks {slot}")
    for scam_type, texts in advice.items():
        absent = [lang for lang in LANGUAGES if lang not in texts]
        if absent:
            raise TemplateError(f"advice {scam_type} missing languages: {', '.join(absent)}")
        for lang, text in texts.items():
            if "{" in text or "}" in text:
                raise TemplateError(f"advice {scam_type}/{lang} must not contain braces")
            link = find_link(text)
            if link:
                raise TemplateError(f"advice {scam_type}/{lang} contains link-like text {link!r}")
    for lang, frame in frames.items():
        link = find_link(frame.replace("{advice}", "").replace("{code}", "").replace("{hotline}", ""))
        if link:
            raise TemplateError(f"frame {lang} contains link-like text {link!r}")


def load_templates(path: Path | None = None) -> Templates:
    try:
        data = yaml.safe_load((path or TEMPLATES_PATH).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read warning templates {path or TEMPLATES_PATH}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("frame"), dict) or not isinstance(data.get("advice"), dict):
        raise TemplateError("warning templates need 'frame' and 'advice' mappings")
    frames = {str(k): str(v) for k, v in data["frame"].items()}
    advice = {str(k): {str(lk): str(lv) for lk, lv in v.items()} for k, v in data["advice"].items()}
    aliases = {str(k): str(v) for k, v in (data.get("aliases") or {}).items()}
    unknown = sorted(v for v in aliases.values() if v not in advice)
    if unknown:
        raise TemplateError(f"aliases point at scam types without advice: {', '.join(unknown)}")
    _check(frames, advice)
    return Templates(frames, advice, aliases)


@lru_cache(maxsize=1)
def default_templates() -> Templates:
    return load_templates()
