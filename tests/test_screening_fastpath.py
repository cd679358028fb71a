"""The batched fast path gives exactly what the one-message path gives: batched cue matching,
batched language ID and the bincount scam-type scores must not change any result."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from forewarn.screening.features import dense_features, prepare, prepare_many
from forewarn.screening.indicators import has_money
from forewarn.screening.knowledge import examples
from forewarn.screening.langid import detect_language, detect_languages
from forewarn.screening.lexicon import default_matcher

_PIECES = st.sampled_from([ex.text for ex in examples()[::7]] + ["", " ", "\x00", "ok.no", "http://1.2.3.4/x",
                                                                 "Ｖｅｒｉｆｙ аcc0unt", "50 บาท", "RM 20", "p0lice"])
_TEXTS = st.lists(st.one_of(_PIECES, st.text(max_size=40), st.tuples(_PIECES, st.text(max_size=10)).map("".join)),
                  max_size=12)


@settings(max_examples=60, deadline=None)
@given(_TEXTS)
def test_batched_preparation_equals_one_by_one(texts: list[str]) -> None:
    assert prepare_many(texts) == [prepare(t) for t in texts]


@settings(max_examples=60, deadline=None)
@given(_TEXTS)
def test_batched_cues_and_language_equal_one_by_one(texts: list[str]) -> None:
    matcher = default_matcher()
    assert matcher.find_many(texts) == [matcher.find(t) for t in texts]
    assert detect_languages(texts) == [detect_language(t) for t in texts]


def test_batch_of_written_examples_matches_and_has_combo_features() -> None:
    texts = [ex.text for ex in examples()]
    batch = prepare_many(texts)
    assert batch == [prepare(t) for t in texts]
    dense = dense_features(batch)
    assert dense.shape == (len(texts), dense.shape[1]) and dense.sum() > len(texts)


def test_money_amounts() -> None:
    for text in ("pay $49.90 now", "转账5000元", "Rp 1.500.000", "RM2.50", "1,500 บาท", "2.500.000đ", "₱1,200"):
        assert has_money(text), text
    for text in ("call 0812 3456 7890", "room 101 at 3pm", "version 2.5", "mp3 player"):
        assert not has_money(text), text


def test_screen_many_equals_screen_one() -> None:
    from forewarn.screening import Screener

    screener = Screener.default()
    texts = [ex.text for ex in examples()[::5]]
    batch = screener.screen_many(texts)
    for text, result in zip(texts, batch, strict=True):
        single = screener.screen_one(text)
        assert (single.label, single.category, single.cues, single.indicators, single.lang) == \
            (result.label, result.category, result.cues, result.indicators, result.lang)
        assert abs(single.score - result.score) < 1e-5
