"""Rule detectors over the window features: mass dialling from fresh SIMs, SIM boxes, wangiri,
roaming fraud and spoofed domestic caller IDs. Thresholds follow DOMAIN.md and are settings of
each detector; every signal lists the reason codes of the conditions that held."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import numpy as np
import pandas as pd

from forewarn.behaviour.detectors.base import Detector
from forewarn.behaviour.detectors.config import NumberSet


def _col(features: pd.DataFrame, name: str, fill: float = np.nan) -> np.ndarray:
    if name not in features.columns:
        return np.full(len(features), fill)
    values = pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=np.float64)
    return np.where(np.isnan(values), fill, values) if not np.isnan(fill) else values


def _result(flag: np.ndarray, score: np.ndarray, parts: list[tuple[str, np.ndarray]]) -> pd.DataFrame:
    # Reasons only for flagged rows (few): a Python list per row would dominate the cost on large inputs.
    reasons: list[list[str]] = [[] for _ in range(len(flag))]
    for i in np.flatnonzero(flag):
        reasons[i] = [code for code, mask in parts if mask[i]]
    return pd.DataFrame({"score": np.where(flag, np.clip(score, 0.0, 1.0), 0.0), "reasons": reasons})


class MassDiallingFreshSim(Detector):
    """Preparation/attack stage: a (fresh) SIM contacting many numbers it never contacted, rarely returned.

    DOMAIN.md: SIM age of days, hundreds of distinct callees a day (so ten or more in one busy
    hour), almost none called before, low answer and call-back rates, short calls, few incoming.
    The same pattern over SMS (a fresh SIM texting many numbers, none answering) is the SMS blast
    of a phishing run. Ordinary new subscribers call or text a few people, who answer and reply;
    busy legitimate callers use established SIMs and hold real conversations.
    """

    name: ClassVar[str] = "behaviour.mass_dialling"
    scam_type: ClassVar[str | None] = None
    reasons: ClassVar[dict[str, str]] = {
        "behaviour.mass_dialling.many_new_callees": "many distinct callees in the window, almost all called for the first time",
        "behaviour.mass_dialling.fresh_sim": "SIM activated at most 30 days before",
        "behaviour.mass_dialling.low_callback": "at most 15% of callees called back",
        "behaviour.mass_dialling.short_calls": "at least a third of the calls last under 10 s",
        "behaviour.mass_dialling.shared_device": "the device (IMEI) hosted 3 or more SIMs",
        "behaviour.mass_dialling.sms_blast": "a fresh SIM texting many distinct numbers with almost no replies",
    }
    evidence_features: ClassVar[tuple[str, ...]] = (
        "distinct_callees", "first_time_callee_share", "callback_rate", "short_call_share", "sim_age_days",
        "imei_sim_max", "sms_out", "sms_in", "sms_nunique")

    def __init__(self, min_callees: int = 8, max_sim_age_days: float = 30.0, min_sms: int = 8,
                 threshold: float = 0.5) -> None:
        self.min_callees = min_callees
        self.max_sim_age_days = max_sim_age_days
        self.min_sms = min_sms
        self.threshold = threshold

    def score_many(self, features: pd.DataFrame) -> pd.DataFrame:
        distinct = _col(features, "distinct_callees", 0)
        new = _col(features, "first_time_callee_share", 0) >= 0.8
        low_cb = _col(features, "callback_rate", 0) <= 0.15
        short = _col(features, "short_call_share", 0) >= 1 / 3
        fresh = _col(features, "sim_age_days", np.inf) <= self.max_sim_age_days
        shared = _col(features, "imei_sim_max", 0) >= 3
        busy = distinct >= 3 * self.min_callees
        many = (distinct >= self.min_callees) & new & low_cb
        # Fresh SIMs need the short, unreturned calls too; without a known SIM age only heavy volume counts.
        calls_flag = many & ((fresh & short) | (busy & short) | (fresh & shared))
        sms_out = _col(features, "sms_out", 0)
        sms_in = _col(features, "sms_in", 0)
        sms_partners = _col(features, "sms_nunique", 0)
        blast = (fresh & (sms_out >= self.min_sms) & (sms_in <= 0.1 * sms_out)
                 & (sms_partners >= 0.8 * (sms_out + sms_in)))
        flag = calls_flag | blast
        score = (0.6 + 0.15 * fresh + 0.1 * short + 0.1 * busy + 0.05 * shared
                 + 0.1 * (blast & (sms_out >= 2 * self.min_sms)))
        return _result(flag, score, [(c, m) for c, m in zip(self.reasons, (many, fresh, low_cb, short, shared, blast),
                                                            strict=True)])


class SimBox(Detector):
    """International traffic terminated as local calls through banks of local SIMs.

    DOMAIN.md: many SIMs per IMEI (a SIM bank), static location, near-zero incoming, near-zero SMS.
    A dual-SIM phone shows two SIMs on one IMEI, so a bank starts at three.
    """

    name: ClassVar[str] = "behaviour.simbox"
    scam_type: ClassVar[str | None] = "simbox_bypass"
    reasons: ClassVar[dict[str, str]] = {
        "behaviour.simbox.no_incoming": "busy outgoing, almost no incoming calls (at most 15%)",
        "behaviour.simbox.static_cell": "every call from one cell",
        "behaviour.simbox.no_sms": "no SMS in the window",
        "behaviour.simbox.sims_per_imei": "the device (IMEI) hosts 3 or more SIMs",
        "behaviour.simbox.new_callees": "at least 90% of callees called for the first time",
    }
    evidence_features: ClassVar[tuple[str, ...]] = (
        "calls_out", "calls_in", "cell_count", "sms_out", "imei_sim_max", "first_time_callee_share")

    def __init__(self, min_calls: int = 5, threshold: float = 0.5) -> None:
        self.min_calls = min_calls
        self.threshold = threshold

    def score_many(self, features: pd.DataFrame) -> pd.DataFrame:
        out = _col(features, "calls_out", 0)
        inc = _col(features, "calls_in", 0)
        no_in = (out >= self.min_calls) & (inc <= 0.15 * out)
        static = (_col(features, "cell_count", 0) == 1)
        no_sms = (_col(features, "sms_out", 0) + _col(features, "sms_in", 0)) == 0
        banked = _col(features, "imei_sim_max", 0) >= 3
        new = _col(features, "first_time_callee_share", 0) >= 0.9
        heavy = out >= 6 * self.min_calls
        flag = no_in & static & no_sms & new & (banked | heavy)
        score = 0.6 + 0.2 * banked + 0.1 * heavy + 0.1 * new
        return _result(flag, score, [(c, m) for c, m in zip(self.reasons, (no_in, static, no_sms, banked, new),
                                                            strict=True)])


class Wangiri(Detector):
    """One-ring calls to many numbers, hoping for expensive call-backs."""

    name: ClassVar[str] = "behaviour.wangiri"
    scam_type: ClassVar[str | None] = "wangiri"
    reasons: ClassVar[dict[str, str]] = {
        "behaviour.wangiri.one_ring": "most calls unanswered after at most 5 s of ringing",
        "behaviour.wangiri.many_callees": "10 or more distinct callees",
        "behaviour.wangiri.international": "most calls go to another country than the caller's",
        "behaviour.wangiri.callbacks_received": "some callees called the number back (possible premium-rate charge)",
    }
    evidence_features: ClassVar[tuple[str, ...]] = (
        "one_ring_share", "distinct_callees", "intl_share", "callback_rate", "calls_in")

    def __init__(self, min_callees: int = 10, threshold: float = 0.5) -> None:
        self.min_callees = min_callees
        self.threshold = threshold

    def score_many(self, features: pd.DataFrame) -> pd.DataFrame:
        ring = _col(features, "one_ring_share", 0) >= 0.6
        many = _col(features, "distinct_callees", 0) >= self.min_callees
        intl = _col(features, "intl_share", 0) >= 0.5
        cb = _col(features, "callback_rate", 0) > 0
        flag = ring & many
        score = 0.7 + 0.15 * intl + 0.1 * cb + 0.05 * (_col(features, "distinct_callees", 0) >= 50)
        return _result(flag, score, [(c, m) for c, m in zip(self.reasons, (ring, many, intl, cb), strict=True)])


class RoamingFraud(Detector):
    """Home-country SIMs roaming abroad and calling home-country subscribers at volume.

    DOMAIN.md: SIMs registered in the victims' country, used while roaming in a neighbouring
    country. Travellers also call home while roaming, but they call people they know, who answer
    and call back, from SIMs they have had for long.
    """

    name: ClassVar[str] = "behaviour.roaming"
    scam_type: ClassVar[str | None] = None
    reasons: ClassVar[dict[str, str]] = {
        "behaviour.roaming.calls_home": "most calls made while roaming, to the SIM's home country",
        "behaviour.roaming.many_new_callees": "3 or more distinct callees, almost all called for the first time",
        "behaviour.roaming.fresh_sim": "SIM activated at most 30 days before",
        "behaviour.roaming.low_callback": "at most 15% of callees called back",
        "behaviour.roaming.short_calls": "at least half the calls last under 10 s",
    }
    evidence_features: ClassVar[tuple[str, ...]] = (
        "roaming_home_share", "distinct_callees", "first_time_callee_share", "sim_age_days", "callback_rate",
        "short_call_share")

    def __init__(self, min_callees: int = 3, max_sim_age_days: float = 30.0, threshold: float = 0.5) -> None:
        self.min_callees = min_callees
        self.max_sim_age_days = max_sim_age_days
        self.threshold = threshold

    def score_many(self, features: pd.DataFrame) -> pd.DataFrame:
        distinct = _col(features, "distinct_callees", 0)
        home = _col(features, "roaming_home_share", 0) >= 0.7
        many = (distinct >= self.min_callees) & (_col(features, "first_time_callee_share", 0) >= 0.8)
        fresh = _col(features, "sim_age_days", np.inf) <= self.max_sim_age_days
        low_cb = _col(features, "callback_rate", 0) <= 0.15
        short = _col(features, "short_call_share", 0) >= 0.5
        flag = home & many & low_cb & ((fresh & short) | (short & (distinct >= 5 * self.min_callees)))
        score = 0.65 + 0.15 * fresh + 0.1 * short + 0.1 * (distinct >= 5 * self.min_callees)
        return _result(flag, score, [(c, m) for c, m in zip(self.reasons, (home, many, fresh, low_cb, short),
                                                            strict=True)])


class SpoofedCli(Detector):
    """A home-country caller ID on calls arriving over an international trunk.

    A home-country mobile or fixed number can only legitimately reach the network over an
    international trunk when its subscriber is roaming (or under a known carrier arrangement), so
    one such call is already strong evidence: regulators (China, Singapore, India, the US under
    STIR/SHAKEN) block or label these calls outright. The detector therefore flags on the first
    call, at alert strength, and scores repeated use and many callees higher. It stands down when
    the number also made roaming calls in the window (a travelling subscriber whose calls home
    partly arrive over international routes), or when the number is in ``roaming_numbers`` (a
    known roaming record) or ``arranged_numbers`` (a known legitimate carrier arrangement, e.g. a
    company's offshore call centre presenting its home number). Both lists take numbers, ranges
    (``+6681000-+6681999``) and prefixes (``+66810*``); the node's operator keeps them in its
    detector settings (:mod:`forewarn.behaviour.detectors.config`). A genuinely foreign number never
    counts: the feature only counts calls whose caller and callee country are the same.

    The subject is the *presented* number, which may belong to an innocent subscriber whose number
    was spoofed: the signal says the number is being abused, not who abuses it.
    """

    name: ClassVar[str] = "behaviour.spoofed_cli"
    scam_type: ClassVar[str | None] = "spoofed_caller_id"
    reasons: ClassVar[dict[str, str]] = {
        "behaviour.spoofed_cli.home_number_over_international_trunk":
            "home-country caller ID presented on a call that arrived over an international trunk, not roaming",
        "behaviour.spoofed_cli.repeated": "3 or more such calls in the window",
        "behaviour.spoofed_cli.many_callees": "such calls reached 3 or more distinct callees",
        "behaviour.spoofed_cli.never_at_home": "every outgoing call of the number arrived over an international trunk",
    }
    #: spoofed_cli_calls and distinct_callees are the counts of calls and callees behind the signal
    evidence_features: ClassVar[tuple[str, ...]] = ("spoofed_cli_calls", "distinct_callees", "calls_out",
                                                    "roaming_share")

    def __init__(self, threshold: float = 0.5, roaming_numbers: Iterable[str] = (),
                 arranged_numbers: Iterable[str] = (), first_call_score: float = 0.8) -> None:
        if not 0.0 <= first_call_score <= 1.0:
            raise ValueError(f"first_call_score must be within [0, 1], got {first_call_score}")
        self.threshold = threshold
        # NumberSets keep their entries sorted, so the detector's pickle and repr stay deterministic.
        self.roaming_numbers = NumberSet(roaming_numbers)
        self.arranged_numbers = NumberSet(arranged_numbers)
        self.first_call_score = first_call_score

    def candidate_mask(self, features: pd.DataFrame) -> np.ndarray:
        """Only numbers with at least one such call can be flagged (most window rows have none)."""
        return _col(features, "spoofed_cli_calls", 0) >= 1

    def score_many(self, features: pd.DataFrame) -> pd.DataFrame:
        n = _col(features, "spoofed_cli_calls", 0)
        calls_out = _col(features, "calls_out", 0)
        distinct = _col(features, "distinct_callees", 0)
        roaming = _col(features, "roaming_share", 0) > 0
        excused = roaming
        if "number" in features.columns:
            for known in (self.roaming_numbers, self.arranged_numbers):
                if known:
                    excused = excused | known.mask(features["number"])
        seen = (n >= 1) & ~excused
        repeated = n >= 3
        # distinct_callees counts every callee of the window; for a number never used at home those
        # are exactly the callees of the spoofed calls.
        never_home = (n >= 1) & (n >= calls_out)
        many = np.minimum(distinct, n) >= 3
        # One call scores at alert strength; each extra sign of a campaign adds to it.
        score = (self.first_call_score + 0.05 * (n >= 2) + 0.05 * repeated + 0.05 * (n >= 10)
                 + 0.05 * many)
        return _result(seen, score, [(c, m) for c, m in zip(self.reasons, (seen, repeated, many, never_home),
                                                            strict=True)])
