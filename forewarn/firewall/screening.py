"""What the firewall needs from content screening (:mod:`forewarn.screening`), and how it copes
without it.

``Screener.default().screen_one(text, lang=None, channel="sms")`` returns a result with ``score``
(0–1), ``label``, ``category``, ``lang``, ``cues`` and ``indicators`` (values found in the text).
When the screening package is absent or fails, SMS decisions carry ``screening.unavailable`` and
still look up the URLs and numbers found by :func:`extract_indicators` in the reputation index.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Protocol

from forewarn.model.indicators import IndicatorType, InvalidIndicator, normalise_indicator

log = logging.getLogger("forewarn.firewall")


class ContentScreener(Protocol):
    def screen_one(self, text: str, lang: str | None = None, channel: str = "sms") -> Any: ...


def default_screener() -> ContentScreener | None:
    """The node's screener, or None when :mod:`forewarn.screening` does not provide one."""
    try:
        from forewarn.screening import Screener  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        return Screener.default()  # type: ignore[no-any-return]
    except Exception as exc:  # a missing model file must not stop the firewall
        log.warning("content screening unavailable: %s: %s", type(exc).__name__, exc)
        return None


_URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"']{3,200}|\b[a-z0-9-]{2,63}\.(?:[a-z]{2,12})(?:/[^\s<>\"']*)?",
                     re.IGNORECASE)
_PHONE_RE = re.compile(r"\+?[0-9][0-9 \-]{6,18}[0-9]")


def extract_indicators(text: str, default_region: str | None = None) -> list[tuple[IndicatorType, str]]:
    """URLs, their domains and phone numbers written in ``text`` (canonical), for index look-ups."""
    found: list[tuple[IndicatorType, str]] = []
    for match in _URL_RE.finditer(text[:2000]):
        raw = match.group(0).rstrip(".,;:!?)")
        try:
            url = normalise_indicator(IndicatorType.URL, raw)
        except InvalidIndicator:
            continue
        found.append((IndicatorType.URL, url))
        host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        with contextlib.suppress(InvalidIndicator):
            found.append((IndicatorType.DOMAIN, normalise_indicator(IndicatorType.DOMAIN, host)))
    for match in _PHONE_RE.finditer(text[:2000]):
        try:
            found.append((IndicatorType.PHONE, normalise_indicator(IndicatorType.PHONE, match.group(0),
                                                                   default_region)))
        except InvalidIndicator:
            continue
    return found


def result_indicators(result: Any) -> list[tuple[IndicatorType, str]]:
    """Indicators from a screening result, whatever their shape (records, pairs or mappings)."""
    out: list[tuple[IndicatorType, str]] = []
    for item in getattr(result, "indicators", None) or ():
        kind = getattr(item, "type", None)
        value = getattr(item, "value", None)
        if kind is None and isinstance(item, dict):
            kind, value = item.get("type"), item.get("value")
        if kind is None and isinstance(item, tuple | list) and len(item) == 2:
            kind, value = item
        try:
            out.append((IndicatorType(str(kind)), str(value)))
        except ValueError:
            continue
    return out
