"""Quality of the training recipe and of the committed screening model, beyond the held-out
figures: the knowledge-base variants never leak across the split, the sign-constrained stack is
the logistic regression it claims to be, the committed model never treats risk evidence as a sign
of safety, and written legitimate look-alikes (bank OTPs, delivery notices, family chat) stay below
the threshold while the scams they resemble go above it."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from forewarn.screening import Screener
from forewarn.screening.features import DENSE_CODES
from forewarn.screening.knowledge import examples
from forewarn.screening.langid import LANGUAGES
from forewarn.screening.training import (
    FREE_SIGN_PREFIXES,
    KB_SET,
    Rows,
    _fit_signed_logistic,
    _stack_lower_bounds,
    _strip_latin_marks,
    _weights,
    _without_punctuation,
    augment_written,
    is_heldout_written,
    kb_rows,
    written_group,
)


def _rows(*items: tuple[str, str, str, str]) -> Rows:
    rows = Rows()
    for text, label, lang, channel in items:
        rows.add(text, label, None, KB_SET, lang, channel)
    return rows


def test_variants_are_lowercase_unpunctuated_and_undiacritised() -> None:
    rows = _rows(("Tài khoản của bạn bị khóa! Xác minh: http://x.top", "fraud", "vi", "sms"),
                 ("caller: Hello, this is the bank. callee: Hi!", "ham", "en", "call_transcript"),
                 ("รหัส OTP ของคุณคือ 123456 ห้ามบอกรหัสนี้", "ham", "th", "sms"))
    out = augment_written(rows)
    assert out.text[:2] == [rows.text[0], "tài khoản của bạn bị khóa xác minh http x top"]
    assert "Tai khoan cua ban bi khoa! Xac minh: http://x.top" in out.text
    # Speaker tags survive, so a variant of a call is still a call the turn splitter understands.
    assert "caller: hello this is the bank callee: hi" in out.text
    # Thai vowel and tone marks are letters of the word, not decoration: they stay.
    assert "รหัส otp ของคุณคือ 123456 ห้ามบอกรหัสนี้" in out.text
    assert all(label == src for label, src in zip(out.label, ["fraud"] * 3 + ["ham"] * 2 + ["ham"] * 2, strict=True))


def test_fillings_of_one_template_share_a_group() -> None:
    assert written_group("Pay $1.99 now at http://bit.ly/x or call +1 202 555 0147") == \
        written_group("Pay £2,500 now at https://claim.vip/ or call 0800 555 0199")
    assert written_group("Pay now") != written_group("Call now")
    rows = kb_rows()
    by_group: dict[str, set[bool]] = {}
    for text, group in zip(rows.text, rows.group, strict=True):
        by_group.setdefault(group, set()).add(is_heldout_written(text))
    assert all(len(sides) == 1 for sides in by_group.values())


def test_variants_never_reproduce_a_heldout_text() -> None:
    rows = _rows(("Win a PRIZE now!", "fraud", "en", "sms"))
    heldout = {"win a prize now"}
    assert augment_written(rows, heldout).text == ["Win a PRIZE now!"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_text_variants_are_total_and_idempotent(text: str) -> None:
    plain = _without_punctuation(text)
    assert plain == plain.lower() and _without_punctuation(plain) == plain
    assert not any(unicodedata.category(ch).startswith(("P", "S")) for ch in plain)
    bare = _strip_latin_marks(text)
    assert _strip_latin_marks(bare) == bare
    decomposed = unicodedata.normalize("NFD", bare)
    assert not any(unicodedata.category(ch) == "Mn" and prev.isascii() and prev.isalpha()
                   for prev, ch in zip(decomposed, decomposed[1:], strict=False))


def test_signed_logistic_matches_sklearn_without_bounds_and_respects_them() -> None:
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(1500, 4))
    y = (Z @ np.array([1.5, -2.0, 0.7, 0.0]) + rng.normal(size=1500) > 0).astype(int)
    w = rng.uniform(0.2, 3.0, size=1500)
    coef, bias = _fit_signed_logistic(Z, y, w, 0.5, np.full(4, -np.inf))
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(Z, y, sample_weight=w)
    assert np.allclose(coef, ref.coef_[0], atol=2e-3) and abs(bias - ref.intercept_[0]) < 2e-3
    bounded, _ = _fit_signed_logistic(Z, y, w, 0.5, np.array([-np.inf, 0.0, -np.inf, 0.0]))
    assert bounded[1] == 0.0 and bounded[0] > 0  # the negative weight is held at its bound


def test_stack_bounds_free_only_neutral_features() -> None:
    lower = _stack_lower_bounds()
    assert lower[0] > 0 and len(lower) == len(DENSE_CODES) + 1
    for code, lo in zip(DENSE_CODES, lower[1:], strict=True):
        assert (lo == -np.inf) == code.startswith(FREE_SIGN_PREFIXES), code
    assert lower[1 + DENSE_CODES.index("safety.advice")] == -np.inf
    assert lower[1 + DENSE_CODES.index("obfuscation.spacing")] == 0.0


def test_knowledge_base_weight_scales_its_share() -> None:
    rows = _rows(*[("a", "fraud", "en", "sms")] * 3, *[("b", "ham", "en", "sms")] * 5)
    for _ in range(4):
        rows.add("c", "fraud", None, "corpus", "en", "sms")
    rows.add("d", "ham", None, "corpus", "en", "sms")
    positive = np.array([label != "ham" for label in rows.label])
    w = _weights(rows, positive)
    kb = np.array(rows.set_name) == KB_SET
    # Every (set, class) pair carries the same total weight, whatever its size.
    assert np.isclose(w[kb & positive].sum(), w[~kb & ~positive].sum())
    assert np.isclose(w.sum(), len(rows))


def test_written_examples_cover_every_language_with_lookalikes() -> None:
    rows = kb_rows()
    for lang in LANGUAGES:
        labels = [label for label, row_lang in zip(rows.label, rows.lang, strict=True) if row_lang == lang]
        assert labels.count("ham") >= 20 and labels.count("fraud") >= 35, lang
    assert all(ex.origin == "written" for ex in examples())
    calls = {ex.lang for ex in examples() if ex.channel == "call_transcript" and ex.label == "ham"}
    assert calls == set(LANGUAGES)


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener.default()


def test_committed_stack_never_counts_risk_evidence_as_safety(screener: Screener) -> None:
    a = screener.artifact
    if not a.meta.get("stack_monotone"):
        pytest.skip("the committed model was trained without the sign prior")
    for code, weight in zip(DENSE_CODES, a.d_bin, strict=True):
        if not code.startswith(FREE_SIGN_PREFIXES):
            assert weight >= -1e-9, code


def test_heldout_written_lookalikes_separate_from_scams(screener: Screener) -> None:
    """The held-out fifth of the written examples (never trained on): legitimate look-alikes in
    every language score below the scams."""
    held = [ex for ex in examples() if is_heldout_written(ex.text)]
    scores = screener.scores([ex.text for ex in held])
    y = np.array([ex.label != "ham" for ex in held])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, scores) >= 0.95
    ham_flagged = np.mean(scores[~y] >= screener.threshold)
    assert ham_flagged <= 0.15


@pytest.mark.parametrize(("text", "scam"), [
    ("{code} is your verification code. Never share this code with anyone, including us.", False),
    ("Your parcel is out for delivery today between 10:00 and 14:00. No payment is needed.", False),
    ("mom I got home safe, going to sleep now. love you", False),
    ("USPS: your package could not be delivered due to an incomplete address. Confirm it at http://usps-redeliver.top/a",
     True),
    ("Hi mum, this is my new number, my phone broke. Can you transfer $900 for my rent today?", True),
    ("Tai khoan cua quy khach bi tam khoa. Vui long xac minh tai http://vcb-xacminh.xyz", True),
])
def test_unwritten_lookalikes(screener: Screener, text: str, scam: bool) -> None:
    score = screener.scores([text.replace("{code}", "482913")])[0]
    assert (score >= screener.threshold) == scam, score
