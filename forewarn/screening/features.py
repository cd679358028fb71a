"""Features of a screened message: hashed character n-grams plus cue and indicator flags.

Character 1–4-grams of the normalised text are hashed with a vectorised 64-bit hash over a whole
batch at once (numpy, no Python loop per n-gram), so the same code serves training (a sparse
matrix) and scoring (a weighted sum per message). Counts are divided by the square root of the
number of n-grams (``LENGTH_POWER``): a message's n-gram score grows like the square root of its
length for the same wording. Dividing by the count itself (a mean weight, no length effect) was
measured and generalised worse (leave-one-set-out ROC-AUC, same code otherwise: TeleAntiFraud
dialogues 0.889 against 0.931, Mendeley 0.966 against 0.979, Filipino 0.844 against 0.861). Dense features are
binary: one per cue code (lexicon, obfuscation, indicator flags), the channel, counts of distinct
risk cues and pairs of cue families (see ``_COMBOS``).

:func:`prepare` is the definition, one message at a time. :func:`prepare_batch` is the batch path
screening runs on, with the same result for every message (tests hold it to that): numpy
pre-checks over the whole batch pick the few messages each regular expression could match in
(:mod:`.charclass`), one Aho-Corasick pass finds the cues of all texts, one numpy pass counts the
scripts of all texts (CLD2 only where the script does not decide), and the n-gram buckets of the
whole batch come out of one vectorised pass (:func:`ngram_buckets`), in the order the per-message
definition produces them, so scores are the same to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from forewarn.screening.charclass import codepoints
from forewarn.screening.indicators import Scan, scan, scan_many
from forewarn.screening.langid import detect_language, detect_languages
from forewarn.screening.lexicon import DERIVED_CUES, cue_codes, default_matcher
from forewarn.screening.normalise import normalise, normalise_many

NGRAMS = (1, 2, 3, 4)
HASH_BITS = 18
# Counts are divided by (n-gram count) ** LENGTH_POWER. At 0.5 a message's n-gram score grows like
# the square root of its length for the same wording, so long texts score further from the
# middle than short ones; at 1.0 the score is the mean n-gram weight, whatever the length.
# REFERENCE_NGRAMS (an SMS of ~100 characters) keeps the scale, and so the regularisation, of a
# message of that length the same for every power.
LENGTH_POWER = 0.5
REFERENCE_NGRAMS = 400.0
_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_N_SALT = [np.uint64(0x9E3779B97F4A7C15 * (n + 1) & 0xFFFFFFFFFFFFFFFF) for n in range(8)]
# Language-agnostic combinations the n-grams of one corpus cannot teach: how many distinct risk
# cues a message carries, and the pairs of cue families that make up a scam script (a request to
# act plus a link, authority plus money, ...). They carry the weight on text in unseen languages.
_COMBOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "combo.action_link": (("link.action",), ("url.present", "phone.present")),
    "combo.urgency_link": (("urgency",), ("url.present",)),
    "combo.urgency_authority": (("urgency",), ("authority.",)),
    "combo.authority_money": (("authority.", "crime.accusation"), ("money.", "payment.fee", "money.amount")),
    "combo.authority_link": (("authority.",), ("url.present",)),
    "combo.code_request_authority": (("code.request", "info.request"), ("authority.", "account.suspension", "refund")),
    "combo.lure_link": (("prize", "loan", "investment", "job.task", "refund", "game"), ("url.present", "messaging.app")),
    "combo.lure_money": (("prize", "loan", "investment", "job.task", "refund", "game"), ("money.amount", "money.transfer", "payment.fee")),
    "combo.secrecy_money": (("secrecy",), ("money.", "payment.fee", "money.amount")),
    "combo.risky_link": (("url.shortener", "url.lookalike", "url.ip", "url.risky_tld", "url.bait_words", "url.apk"), ("",)),
    "combo.obfuscated": (("obfuscation.",), ("",)),
}
_NOT_RISK = frozenset({"safety.advice", "marketing"})
_LEXICON_CODES = frozenset(cue_codes()) - frozenset(DERIVED_CUES)
EXTRA_CODES: tuple[str, ...] = ("channel.call", "cues.2plus", "cues.3plus", "cues.5plus", *_COMBOS)
DENSE_CODES: tuple[str, ...] = (*cue_codes(), *EXTRA_CODES)
_DENSE_INDEX = {code: i for i, code in enumerate(DENSE_CODES)}


@dataclass(slots=True)
class Prepared:
    """One message after normalisation, language ID, cue matching and the indicator scan."""

    folded: str
    clean: str
    lang: str
    channel: str
    cues: list[str]
    scan: Scan


def prepare(text: str, lang: str | None = None, channel: str = "sms") -> Prepared:
    norm = normalise(text)
    matcher = default_matcher()
    found = scan(norm.clean)
    codes = [matcher.codes[i] for i in sorted(matcher.find(norm.folded))]
    codes.extend(norm.tricks)
    codes.extend(sorted(found.flags))
    detected = lang or detect_language(norm.clean)
    return Prepared(norm.folded, norm.clean, detected, channel, codes, found)


def prepare_many(texts: Sequence[str], langs: Sequence[str | None] | None = None,
                 channels: Sequence[str] | None = None) -> list[Prepared]:
    """:func:`prepare` for a batch, with the same result (through :func:`prepare_batch`)."""
    return prepare_batch(texts, langs, channels).items()


@dataclass(slots=True)
class PreparedBatch:
    """:func:`prepare` of every message of a batch, as columns, with the dense features the
    model reads (``dense``, as :func:`dense_features` computes them). ``scans[i]`` is None where
    the indicator scan found nothing."""

    folded: list[str]
    clean: list[str]
    lang: list[str]
    channel: list[str]
    cues: list[list[str]]
    scans: list[Scan | None]
    dense: np.ndarray

    def __len__(self) -> int:
        return len(self.folded)

    def item(self, i: int) -> Prepared:
        return Prepared(self.folded[i], self.clean[i], self.lang[i], self.channel[i], self.cues[i],
                        self.scans[i] or Scan())

    def items(self) -> list[Prepared]:
        return [self.item(i) for i in range(len(self))]


def prepare_batch(texts: Sequence[str], langs: Sequence[str | None] | None = None,
                  channels: Sequence[str] | None = None) -> PreparedBatch:
    """Normalise, detect the language, find cues and scan for indicators, for a whole batch."""
    n = len(texts)
    langs = langs if langs is not None else [None] * n
    channels = list(channels) if channels is not None else ["sms"] * n
    norm = normalise_many(texts)
    matcher = default_matcher()
    cue_docs, cue_ids = matcher.find_pairs(norm.folded)
    need = [i for i, lang in enumerate(langs) if not lang]
    detected = detect_languages([norm.clean[i] for i in need])
    lang_out = [lang or "" for lang in langs]
    for i, lang in zip(need, detected, strict=True):
        lang_out[i] = lang
    scans = scan_many(norm.clean, norm.folded)

    # Codes in prepare's order: lexicon cues (by index), obfuscation tricks, sorted indicator flags.
    present = np.zeros((n, len(_ALL_CODES)), dtype=np.float32)
    present[cue_docs, cue_ids] = 1.0  # the lexicon codes come first, in matcher order
    names = _CODE_NAMES[cue_ids].tolist()
    bounds = np.searchsorted(cue_docs, np.arange(n + 1)).tolist()
    codes = [names[bounds[i]:bounds[i + 1]] for i in range(n)]
    derived_docs: list[int] = []
    derived_codes: list[str] = []
    for i, (tricks, found) in enumerate(zip(norm.tricks, scans, strict=True)):
        if tricks:
            codes[i].extend(tricks)
            derived_docs.extend([i] * len(tricks))
            derived_codes.extend(tricks)
        if found is not None and found.flags:
            flags = sorted(found.flags)
            codes[i].extend(flags)
            derived_docs.extend([i] * len(flags))
            derived_codes.extend(flags)
    if derived_docs:
        present[derived_docs, [_CODE_INDEX[code] for code in derived_codes]] = 1.0
    dense = _dense_from_codes(present, channels)
    return PreparedBatch(norm.folded, norm.clean, lang_out, channels, codes, scans, dense)


@dataclass(slots=True)
class HashedBatch:
    doc: np.ndarray         # int64 message index per n-gram
    hashes: np.ndarray      # uint64 hash per n-gram
    inv_norm: np.ndarray    # float64 per message: what its counts are multiplied by (_length_scale)
    dense: np.ndarray       # float32 (messages x len(DENSE_CODES))

    @property
    def size(self) -> int:
        return len(self.inv_norm)


def hash_ngrams(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doc index, hash) of every character n-gram in ``texts``, and the length scale per text."""
    n_docs = len(texts)
    if n_docs == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), np.zeros(0)
    padded = [" " + t.replace("\x00", " ") + " " for t in texts]
    lengths = np.fromiter((len(p) for p in padded), dtype=np.int64, count=n_docs)
    cp = np.frombuffer("\x00".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths + 1)[: len(cp)]
    valid = cp != 0
    length = len(cp)
    # One row per n-gram order, one column per start position; read column-major afterwards so
    # n-grams come out grouped by message (doc index non-decreasing), which lets scoring build a
    # CSR matrix without sorting.
    table = np.zeros((len(NGRAMS), length), dtype=np.uint64)
    ok = np.zeros((len(NGRAMS), length), dtype=bool)
    h = np.zeros(0, np.uint64)
    run = valid
    with np.errstate(over="ignore"):
        for row, n in enumerate(NGRAMS):
            if n == 1:
                h = cp * _PRIME
            else:
                h = h[:-1] * _PRIME + cp[n - 1:]
                run = run[:-1] & valid[n - 1:]
            mixed = h ^ _N_SALT[n]
            mixed = (mixed ^ (mixed >> np.uint64(30))) * _MIX1
            mixed = (mixed ^ (mixed >> np.uint64(27))) * _MIX2
            mixed ^= mixed >> np.uint64(31)
            table[row, : len(h)] = mixed
            ok[row, : len(h)] = run
    keep = ok.T.ravel()
    hashes = table.T.ravel()[keep]
    doc = np.repeat(doc_of, len(NGRAMS))[keep]
    counts = np.bincount(doc, minlength=n_docs).astype(np.float64)
    return doc, hashes, _length_scale(counts)


def _code_masks() -> dict[str, tuple[int, int]]:
    """Per cue code, bit masks of the combinations whose first / second family it belongs to."""
    masks = {}
    for code in (*cue_codes(), *DERIVED_CUES):
        first = second = 0
        for bit, (a, b) in enumerate(_COMBOS.values()):
            if any(code.startswith(p) for p in a):
                first |= 1 << bit
            if any(code.startswith(p) for p in b):
                second |= 1 << bit
        masks[code] = (first, second)
    return masks


_CODE_MASKS = _code_masks()
_COMBO_COLUMNS = [_DENSE_INDEX[name] for name in _COMBOS]


def dense_features(prepared: Sequence[Prepared]) -> np.ndarray:
    dense = np.zeros((len(prepared), len(DENSE_CODES)), dtype=np.float32)
    index = _DENSE_INDEX
    call_col, c2, c3, c5 = index["channel.call"], index["cues.2plus"], index["cues.3plus"], index["cues.5plus"]
    for row, item in enumerate(prepared):
        if item.channel == "call_transcript":
            dense[row, call_col] = 1.0
        codes = item.cues
        if not codes:
            continue
        first = second = risk = 0
        for code in codes:
            col = index.get(code)
            if col is not None:
                dense[row, col] = 1.0
            if code in _LEXICON_CODES and code not in _NOT_RISK:
                risk += 1
            masks = _CODE_MASKS.get(code)
            if masks:
                first |= masks[0]
                second |= masks[1]
        if risk >= 2:
            dense[row, c2] = 1.0
            if risk >= 3:
                dense[row, c3] = 1.0
                if risk >= 5:
                    dense[row, c5] = 1.0
        both = first & second
        bit = 0
        while both:
            if both & 1:
                dense[row, _COMBO_COLUMNS[bit]] = 1.0
            both >>= 1
            bit += 1
    return dense


def _dense_from_codes(present: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """:func:`dense_features` from a (messages x cue codes) 0/1 matrix, for all rows at once."""
    dense = np.zeros((len(present), len(DENSE_CODES)), dtype=np.float32)
    dense[:, : len(_ALL_CODES)] = present
    dense[:, _DENSE_INDEX["channel.call"]] = np.fromiter((c == "call_transcript" for c in channels), dtype=bool,
                                                         count=len(channels))
    risk = present @ _RISK_COLUMN
    dense[:, _DENSE_INDEX["cues.2plus"]] = risk >= 2
    dense[:, _DENSE_INDEX["cues.3plus"]] = risk >= 3
    dense[:, _DENSE_INDEX["cues.5plus"]] = risk >= 5
    dense[:, _COMBO_COLUMNS] = ((present @ _FIRST_FAMILY) > 0) & ((present @ _SECOND_FAMILY) > 0)
    return dense


_ALL_CODES = cue_codes()
_CODE_INDEX = {code: i for i, code in enumerate(_ALL_CODES)}
_CODE_NAMES = np.array(_ALL_CODES, dtype=object)
_RISK_COLUMN = np.array([code in _LEXICON_CODES and code not in _NOT_RISK for code in _ALL_CODES], dtype=np.float32)
_FIRST_FAMILY = np.array([[(_CODE_MASKS[code][0] >> bit) & 1 for bit in range(len(_COMBOS))] for code in _ALL_CODES],
                         dtype=np.float32).reshape(len(_ALL_CODES), len(_COMBOS))
_SECOND_FAMILY = np.array([[(_CODE_MASKS[code][1] >> bit) & 1 for bit in range(len(_COMBOS))] for code in _ALL_CODES],
                          dtype=np.float32).reshape(len(_ALL_CODES), len(_COMBOS))


def hashed_batch(prepared: Sequence[Prepared]) -> HashedBatch:
    doc, hashes, inv = hash_ngrams([p.folded for p in prepared])
    return HashedBatch(doc, hashes, inv, dense_features(prepared))


def ngram_buckets(texts: Sequence[str], bits: int = HASH_BITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, buckets, length scale): the ``bits``-bit bucket of every n-gram of every
    text, texts one after the other (``buckets[indptr[i]:indptr[i + 1]]`` are text i's, int32) and
    each text's n-grams in :func:`hash_ngrams`'s order — so a CSR matrix of them sums each
    message's weights in the same order, to the same bits. Works in blocks that stay in the CPU
    cache, and stops the hash at the bucket (the last mixing step only changes lower bits)."""
    if not 0 < bits <= 32:
        raise ValueError(f"buckets of 1 to 32 bits, not {bits}")
    n_docs = len(texts)
    if n_docs == 0:
        return np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0)
    padded = " " + " \x00 ".join(texts) + " "
    if padded.count("\x00") != n_docs - 1:  # a NUL in a text: hash_ngrams reads it as a space
        padded = " " + " \x00 ".join(t.replace("\x00", " ") for t in texts) + " "
    cp = codepoints(padded).astype(np.uint64)
    length = len(cp)
    table = np.empty((length, len(NGRAMS)), dtype=np.uint32)
    block = min(_BLOCK, length)
    h = np.empty(block, dtype=np.uint64)
    x = np.empty(block, dtype=np.uint64)
    t = np.empty(block, dtype=np.uint64)
    shift = np.uint64(64 - bits)
    with np.errstate(over="ignore"):
        for a in range(0, length, block):
            b = min(a + block, length)
            hv = h[: b - a]
            np.multiply(cp[a:b], _PRIME, out=hv)
            for col, n in enumerate(NGRAMS):
                if n > 1:
                    k = min(b, length - n + 1) - a  # n-grams starting in this block
                    if k <= 0:
                        break
                    hv = h[:k]
                    np.multiply(hv, _PRIME, out=hv)
                    np.add(hv, cp[a + n - 1:a + n - 1 + k], out=hv)
                k = len(hv)
                xv, tv = x[:k], t[:k]
                np.bitwise_xor(hv, _N_SALT[n], out=xv)
                np.right_shift(xv, _S30, out=tv)
                np.bitwise_xor(xv, tv, out=xv)
                np.multiply(xv, _MIX1, out=xv)
                np.right_shift(xv, _S27, out=tv)
                np.bitwise_xor(xv, tv, out=xv)
                np.multiply(xv, _MIX2, out=xv)
                np.right_shift(xv, shift, out=xv)
                table[a:a + k, col] = xv
    valid = cp != 0
    ok = np.zeros((length, len(NGRAMS)), dtype=bool)
    ok[:, 0] = valid
    for col in range(1, min(len(NGRAMS), length)):
        ok[: length - col, col] = ok[: length - col, col - 1] & valid[col:]
    buckets = table[ok].view(np.int32)
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=n_docs) + 2
    counts = np.zeros(n_docs, dtype=np.int64)
    for n in NGRAMS:
        counts += np.maximum(sizes - (n - 1), 0)
    indptr = np.zeros(n_docs + 1, dtype=np.int32 if counts.sum() < 2**31 else np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, buckets, _length_scale(counts.astype(np.float64))


def _length_scale(counts: np.ndarray) -> np.ndarray:
    """What each message's n-gram counts are multiplied by (see ``LENGTH_POWER``)."""
    counts = np.maximum(counts, 1.0)
    if LENGTH_POWER == 0.5:
        return 1.0 / np.sqrt(counts)  # type: ignore[no-any-return]
    return REFERENCE_NGRAMS ** (LENGTH_POWER - 0.5) * counts ** -LENGTH_POWER  # type: ignore[no-any-return]


_BLOCK = 1 << 15
_S30, _S27 = np.uint64(30), np.uint64(27)


def bucket(hashes: np.ndarray, bits: int) -> np.ndarray:
    return (hashes >> np.uint64(64 - bits)).astype(np.int64)


def design_matrix(batch: HashedBatch, bits: int = HASH_BITS) -> sp.csr_matrix:
    """Sparse (messages x (2**bits + dense)) matrix: scaled n-gram counts, then dense flags."""
    n_hash = 1 << bits
    cols = bucket(batch.hashes, bits)
    grams = sp.csr_matrix((batch.inv_norm[batch.doc], (batch.doc, cols)), shape=(batch.size, n_hash))
    grams.sum_duplicates()
    return sp.hstack([grams, sp.csr_matrix(batch.dense)], format="csr")


def linear_scores(batch: HashedBatch, weights: np.ndarray, dense_weights: np.ndarray, bias: float,
                  bits: int = HASH_BITS) -> np.ndarray:
    """The same value as ``design_matrix(batch) @ [weights, dense_weights] + bias``, fast."""
    if batch.size == 0:
        return np.zeros(0)
    gram = np.bincount(batch.doc, weights=weights[bucket(batch.hashes, bits)], minlength=batch.size)
    return gram * batch.inv_norm + batch.dense @ dense_weights + bias
