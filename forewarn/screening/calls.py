"""Screening a call transcript turn by turn, so a victim can be warned while the call goes on.

Each turn is appended to the transcript (``caller: ... callee: ...``, the form the model was
trained on) and the whole transcript so far is rescored. The first turn at which the calibrated
score reaches the model's call threshold raises the alert; it stays raised. The transcript lives
only in this object's memory and is never logged or returned.
"""

from __future__ import annotations

from forewarn.screening.screener import Screener, ScreeningInputError, ScreenResult

SPEAKERS = ("caller", "callee")


class CallScreener:
    """Incremental screening of one call. ``alert_turn`` is the 1-based turn that crossed the threshold."""

    def __init__(self, screener: Screener | None = None, threshold: float | None = None, lang: str | None = None,
                 call_id: str | None = None) -> None:
        self.screener = screener or Screener.default()
        self.threshold = self.screener.call_threshold if threshold is None else threshold
        self.lang = lang
        self.call_id = call_id
        self._parts: list[str] = []
        self.alert_turn: int | None = None
        self.last: ScreenResult | None = None
        self.max_score = 0.0

    @property
    def turns(self) -> int:
        return len(self._parts)

    @property
    def alerted(self) -> bool:
        return self.alert_turn is not None

    def add_turn(self, speaker: str, text: str) -> ScreenResult:
        """Add one utterance (``speaker`` is caller or callee) and rescore the call so far."""
        if speaker not in SPEAKERS:
            raise ScreeningInputError(f"speaker must be 'caller' or 'callee', not {str(speaker)[:20]!r}")
        if not isinstance(text, str):
            raise ScreeningInputError(f"text must be a string, got {type(text).__name__}")
        self._parts.append(f"{speaker}: {text.strip()}")
        result = self.screener.screen_one(" ".join(self._parts), lang=self.lang, channel="call_transcript",
                                          id=self.call_id)
        self.max_score = max(self.max_score, result.score)
        if self.alert_turn is None and result.score >= self.threshold:
            self.alert_turn = len(self._parts)
        self.last = result
        return result


def split_turns(transcript: str) -> list[tuple[str, str]]:
    """Split a ``caller: ... callee: ...`` transcript into (speaker, text) turns."""
    import re

    turns: list[tuple[str, str]] = []
    for m in re.finditer(r"(caller|callee)\s*[:：]\s*(.*?)(?=\s*(?:caller|callee)\s*[:：]|\Z)", transcript, re.S):
        turns.append((m.group(1), m.group(2).strip()))
    return turns
