"""Cue lexicon matching: overlapping terms all count, Vietnamese matches without its marks, and
the batch search finds what the per-message search finds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.screening.lexicon import default_matcher, load_cues
from forewarn.screening.normalise import normalise, strip_marks


def cues(text: str) -> set[str]:
    matcher = default_matcher()
    return {matcher.codes[i] for i in matcher.find(normalise(text).folded)}


def test_a_cue_inside_a_longer_cue_still_counts() -> None:
    # Every term of the lexicon that stands as a whole word inside another cue's term is found
    # there too (a longest-match search found only the outer one).
    matcher = default_matcher()
    terms = [(code, term.rstrip("*")) for code, cue in load_cues().items()
             for lang_terms in cue.terms.values() for term in lang_terms]
    nested = [(outer_code, outer, inner_code, inner) for outer_code, outer in terms for inner_code, inner in terms
              if inner != outer and f" {inner} " in f" {outer} " and inner_code != outer_code]
    assert nested, "the lexicon has no term inside another cue's term: this test tests nothing"
    for outer_code, outer, inner_code, _inner in nested[:200]:
        found = {matcher.codes[i] for i in matcher.find(normalise(outer).folded)}
        assert {outer_code, inner_code} <= found, outer


def test_vietnamese_cues_match_without_marks() -> None:
    marked = "Tài khoản ngân hàng của bạn đã bị khóa, vui lòng xác minh ngay lập tức"
    assert cues(marked)
    assert cues(strip_marks(marked)) == cues(marked)
    # Marks dropped on some words only (typing on a phone without a Vietnamese keyboard).
    assert cues("Tai khoản ngan hàng cua ban da bi khoa, vui long xác minh ngay lap tuc") == cues(marked)


def test_short_words_without_marks_do_not_match() -> None:
    # "gấp" (urgent) without marks is the English "gap": only the marked word counts.
    assert "urgency" in cues("chuyển tiền gấp")
    assert "urgency" not in cues("mind the gap")


_VI_WORDS = ["tài khoản", "ngân hàng", "xác minh", "bị khóa", "chuyển tiền", "công an", "mã otp", "trúng thưởng",
             "khẩn cấp", "hôm nay", "vui lòng", "nhấn vào", "đường link", "bạn", "của", "và", "mẹ ơi", "cảm ơn"]


@given(st.lists(st.sampled_from(_VI_WORDS), min_size=1, max_size=10), st.integers(min_value=0, max_value=2**20))
@settings(max_examples=200, deadline=None)
def test_batch_matches_single_and_marks_never_lose_cues(words: list[str], mask: int) -> None:
    """Removing marks from any words never loses a phrase cue the marked text had, and the batch
    search agrees with the per-message search on marked, unmarked and partly marked texts."""
    matcher = default_matcher()
    marked = " ".join(words)
    partly = " ".join(strip_marks(w) if (mask >> i) & 1 else w for i, w in enumerate(words))
    texts = [normalise(t).folded for t in (marked, partly, strip_marks(marked))]
    single = [matcher.find(t) for t in texts]
    assert matcher.find_many(texts) == single
    phrase_cues = {matcher.codes[i] for i in single[0]} - {"urgency"}  # "gấp"-like short words aside
    assert phrase_cues <= {matcher.codes[i] for i in single[2]}
