"""Multilingual, privacy-preserving scam screening of messages and call transcripts.

Normalise (:mod:`.normalise`) → detect language (:mod:`.langid`) → cues (:mod:`.lexicon`) and
indicators (:mod:`.indicators`) → hashed n-gram features (:mod:`.features`) → a small linear model
(:mod:`.artifact`, trained by :mod:`.training`) → a fixed, content-free :class:`ScreenResult`.
The scam typology and written examples live in :mod:`.knowledge`; calls are screened turn by turn
by :class:`forewarn.screening.calls.CallScreener`.
"""

from forewarn.screening.screener import Screener, ScreeningInputError, ScreenResult

__all__ = ["ScreenResult", "Screener", "ScreeningInputError"]
