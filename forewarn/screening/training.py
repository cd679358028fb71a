"""Training and evaluating the screening model, reproducibly.

Training uses only the *shippable* sets in ``../shared/data/messages`` plus the written knowledge
base; every set is split deterministically by a hash of the normalised text (so duplicates never
straddle the split; written examples by template, so slot fillings of one template stay together)
into 80% train and 20% held out. Written training examples also enter as variants (lower-cased
without punctuation; Vietnamese without diacritics), and the stack that calibrates the n-gram score
with the cue features is sign-constrained so risk evidence never lowers a score. Evaluation scores
the held-out share of the shippable sets, every row of the evaluation-only sets and the held-out
written examples, per set and per language (ROC-AUC, F1 at the model's threshold, recall at 1% false positives), plus the
turn-by-turn early warning on held-out call dialogues. Leave-one-set-out trains without a set and
tests on all of it: the honest proxy for corpora we do not have; leaving out the written examples
of one language does the same for languages no corpus covers.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.screening import features as _features
from forewarn.screening.artifact import CAT_BITS, FRAUD_BITS, Artifact
from forewarn.screening.calls import CallScreener, split_turns
from forewarn.screening.features import DENSE_CODES, Prepared, design_matrix, hashed_batch, prepare_many
from forewarn.screening.knowledge import examples, scam_types
from forewarn.screening.langid import detect_language
from forewarn.screening.normalise import normalise
from forewarn.screening.screener import Screener

SEED = 20250301
HELDOUT_PERCENT = 20
SHIPPABLE = ("en_mendeley_smishing", "en_uci_sms_spam", "zh_teleantifraud_dialogues", "tl_sms_preprocessed")
KB_SET = "kb_written"
TELEANTIFRAUD_TYPES = {"绑架诈骗": "kidnapping", "投资诈骗": "investment.fake_platform", "银行诈骗": "account.suspension",
                       "客服诈骗": "customer_service.refund", "邮件诈骗": "phishing.email", "钓鱼诈骗": "phishing.email",
                       "彩票诈骗": "prize.lottery", "身份盗窃": "identity_theft"}
EVAL_TYPES = {"impersonating boss/acquaintance": "acquaintance.impersonation",
              "impersonating police/government": "impersonation.police",
              "impersonating customer service": "customer_service.refund", "loan/credit card": "loan.fake_app"}
# Weak category labels for spam rows (documented in the model card): UCI spam is mostly
# premium-rate prize texts; the other sets' spam is mostly marketing.
SPAM_CATEGORY = {"en_uci_sms_spam": "spam.premium_rate"}
C_BIN = 4.0
C_FRAUD = 2.0
C_CAT = 4.0
STACK_C = 1.0
CALL_FPR_TARGET = 0.01
# Total weight of the written knowledge base relative to one corpus. It is the only source for six
# of the ten languages, but twice a corpus's weight was measured (leave-one-set-out) and did not
# transfer better, so it counts as one corpus.
KB_WEIGHT = 1.0
# Weight, relative to out-of-set scores, of the within-set out-of-fold n-gram scores in the stack.
# Lowering it (0.3) shrinks the n-gram weight, but the never-trained-on sets got no better.
STACK_WITHIN_WEIGHT = 1.0
# Sign prior on the stack: evidence of risk (lures, demands, pressure, risky links, obfuscation,
# cue counts and combinations) may raise the score or do nothing, never lower it. Without it the
# stack learns corpus quirks ("a link plus a call to act is *less* risky", because one corpus's
# normal customer-service talk is full of both) that invert on other corpora.
STACK_MONOTONE = True
# Extra training copies of the written examples in the forms unseen corpora arrive in: lower-cased
# without punctuation (speech-to-text transcripts, preprocessed sets, careless typing) and, for
# Vietnamese, without diacritics (typed without a Vietnamese keyboard, common in SMS).
AUGMENT_KB = True
DIACRITIC_LANGS = frozenset({"vi"})
# Stack features whose weight may take either sign: names of institutions and brands, which genuine
# notices carry as often as scams, plain presence of a link, number or amount, the channel, and the
# cues of genuine and marketing messages. Every other dense feature is evidence of risk.
FREE_SIGN_PREFIXES = ("authority.", "safety.advice", "marketing", "channel.", "url.present", "phone.present",
                      "money.amount")


class TrainingDataError(ValueError):
    """The shared data folder is missing or a set does not have the documented columns."""


@dataclass
class Rows:
    text: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    category: list[str | None] = field(default_factory=list)
    set_name: list[str] = field(default_factory=list)
    lang: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    # Rows of one group are near-copies (slot fillings of one written template, its variants): they
    # always fall on the same side of the held-out split and in the same cross-validation fold.
    group: list[str] = field(default_factory=list)

    def add(self, text: str, label: str, category: str | None, set_name: str, lang: str, channel: str,
            group: str | None = None) -> None:
        self.text.append(text)
        self.label.append(label)
        self.category.append(category)
        self.set_name.append(set_name)
        self.lang.append(lang)
        self.channel.append(channel)
        self.group.append(text if group is None else group)

    def take(self, mask: Sequence[bool] | np.ndarray) -> Rows:
        out = Rows()
        for i, keep in enumerate(mask):
            if keep:
                out.add(self.text[i], self.label[i], self.category[i], self.set_name[i], self.lang[i], self.channel[i],
                        self.group[i])
        return out

    def __len__(self) -> int:
        return len(self.text)


def is_heldout(text: str) -> bool:
    """Deterministic 20% split keyed on the normalised text (duplicates fall on the same side)."""
    digest = hashlib.blake2b(normalise(text).folded.encode("utf-8"), digest_size=8, key=b"forewarn-split").digest()
    return int.from_bytes(digest, "big") % 100 < HELDOUT_PERCENT


def load_sets(shared_data: Path) -> dict[str, pd.DataFrame]:
    folder = Path(shared_data) / "messages"
    if not folder.is_dir():
        raise TrainingDataError(f"no messages folder at {folder} (expected ../shared/data/messages)")
    sets = {}
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path, keep_default_na=False, dtype=str)
        missing = {"text", "label", "lang", "channel"} - set(frame.columns)
        if missing:
            raise TrainingDataError(f"{path.name}: missing columns {sorted(missing)}")
        bad = set(frame["label"]) - {"fraud", "spam", "ham"}
        if bad:
            raise TrainingDataError(f"{path.name}: unknown labels {sorted(bad)[:5]}")
        sets[path.stem] = frame
    if not sets:
        raise TrainingDataError(f"no CSV sets in {folder}")
    return sets


def _set_rows(name: str, frame: pd.DataFrame) -> Rows:
    rows = Rows()
    fraud_types = frame["fraud_type"] if "fraud_type" in frame else pd.Series([""] * len(frame))
    for text, label, ftype, lang, channel in zip(frame["text"], frame["label"], fraud_types, frame["lang"],
                                                 frame["channel"], strict=True):
        category = None
        if label == "fraud":
            category = TELEANTIFRAUD_TYPES.get(ftype) or EVAL_TYPES.get(ftype)
        elif label == "spam":
            category = SPAM_CATEGORY.get(name, "spam.marketing")
        rows.add(text, label, category, name, lang, channel if channel in ("sms", "call_transcript") else "sms")
    return rows


_SLOT_FILLING = re.compile(r"(?:https?://|www\.)\S+|[+$£₱€¥]?\d[\d.,:\- ]*")


def written_group(text: str) -> str:
    """The template a written example was filled from, near enough: the text without its links and
    numbers (the slots are filled with links, phone numbers, amounts, codes and references)."""
    return " ".join(_SLOT_FILLING.sub("#", normalise(text).folded).split())


def kb_rows() -> Rows:
    rows = Rows()
    for ex in examples():
        rows.add(ex.text, ex.label, None if ex.type.startswith("ham.") else ex.type, KB_SET, ex.lang, ex.channel,
                 written_group(ex.text))
    return rows


def is_heldout_written(text: str) -> bool:
    """The held-out split for written examples: by template, so no filling of a held-out template
    is trained on."""
    return is_heldout(written_group(text))


def _without_punctuation(text: str) -> str:
    """Lower-cased, punctuation and symbols removed (letters, digits and combining marks stay, so
    Thai, Lao, Khmer and Burmese words are intact)."""
    kept = "".join(ch if not unicodedata.category(ch).startswith(("P", "S")) else " " for ch in text.lower())
    return " ".join(kept.split())


def _strip_latin_marks(text: str) -> str:
    """Remove combining marks that follow a Latin letter; marks on other scripts stay."""
    out: list[str] = []
    last_base = ""
    for ch in unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D")):
        if unicodedata.category(ch) == "Mn":
            if last_base.isascii() and last_base.isalpha():
                continue
        else:
            last_base = ch
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _transcript_without_punctuation(text: str) -> str:
    turns = split_turns(text)
    if not turns:
        return _without_punctuation(text)
    return " ".join(f"{speaker}: {_without_punctuation(utterance)}" for speaker, utterance in turns)


def augment_written(rows: Rows, avoid: set[str] | None = None) -> Rows:
    """The written examples plus their variants in the forms unseen corpora arrive in (see
    ``AUGMENT_KB``). A variant equal to its original, to another row or to a text in ``avoid`` (the
    held-out examples) is dropped, so no text straddles the split."""
    avoid = avoid or set()
    out = Rows()
    seen = set(rows.text) | avoid
    for i in range(len(rows)):
        text, channel = rows.text[i], rows.channel[i]
        out.add(text, rows.label[i], rows.category[i], rows.set_name[i], rows.lang[i], channel, rows.group[i])
        variants = [_transcript_without_punctuation(text) if channel == "call_transcript" else _without_punctuation(text)]
        if rows.lang[i] in DIACRITIC_LANGS:
            variants.append(_strip_latin_marks(text))
        for variant in variants:
            if variant and variant not in seen:
                seen.add(variant)
                out.add(variant, rows.label[i], rows.category[i], rows.set_name[i], rows.lang[i], channel, rows.group[i])
    return out


def concat(parts: Sequence[Rows]) -> Rows:
    out = Rows()
    for part in parts:
        for i in range(len(part)):
            out.add(part.text[i], part.label[i], part.category[i], part.set_name[i], part.lang[i], part.channel[i],
                    part.group[i])
    return out


def split_data(sets: dict[str, pd.DataFrame], train_sets: Sequence[str] = SHIPPABLE) -> tuple[Rows, dict[str, Rows]]:
    """(training rows, evaluation rows per set). Evaluation-only sets are evaluated whole."""
    train_parts, evaluation = [], {}
    for name, frame in sets.items():
        rows = _set_rows(name, frame)
        held = np.array([is_heldout(t) for t in rows.text], dtype=bool)
        if name in train_sets:
            train_parts.append(rows.take(~held))
            evaluation[name] = rows.take(held)
        elif name in SHIPPABLE:
            evaluation[name] = rows.take(held)
        else:
            evaluation[name] = rows
    kb = kb_rows()
    kb_held = np.array([is_heldout(g) for g in kb.group], dtype=bool)
    kb_train = kb.take(~kb_held)
    evaluation[KB_SET] = kb.take(kb_held)
    evaluated = {text for rows in evaluation.values() for text in rows.text}
    train_parts.append(augment_written(kb_train, evaluated) if AUGMENT_KB else kb_train)
    return concat(train_parts), evaluation


def recipe() -> dict[str, Any]:
    """The training settings in force, recorded in the artifact so a model card states them."""
    return {"C": C_BIN, "stack_C": STACK_C, "kb_weight": KB_WEIGHT, "stack_within_weight": STACK_WITHIN_WEIGHT,
            "stack_monotone": STACK_MONOTONE, "augment_kb": AUGMENT_KB}


def _weights(rows: Rows, positive: np.ndarray) -> np.ndarray:
    """Each (set, class) pair gets the same total weight: no set or base rate dominates, and the
    model cannot learn "this language is mostly spam" from one corpus's class balance."""
    weights = np.zeros(len(rows))
    sets = np.array(rows.set_name)
    groups = [(s, c) for s in np.unique(sets) for c in (True, False)]
    for s, c in groups:
        mask = (sets == s) & (positive == c)
        if mask.any():
            weights[mask] = (KB_WEIGHT if s == KB_SET else 1.0) / mask.sum()
    return weights * len(rows) / max(weights.sum(), 1e-9)


def _fit_binary(X: Any, y: np.ndarray, w: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, solver="liblinear", max_iter=200, random_state=SEED)
    model.fit(X, y, sample_weight=w)
    return model.coef_.ravel().astype(np.float64), float(model.intercept_[0])


@dataclass
class Features:
    """Every row's prepared form, n-gram matrix and dense cue/indicator matrix, built once and
    sliced for each fit (training, out-of-fold scores and leave-one-set-out reuse them)."""

    prepared: list[Prepared]
    grams: Any              # csr (rows x 2**HASH_BITS), scaled n-gram counts
    dense: np.ndarray       # (rows x len(DENSE_CODES))

    @classmethod
    def build(cls, rows: Rows) -> Features:
        prepared = prepare_many(rows.text, None, rows.channel)
        batch = hashed_batch(prepared)
        X = design_matrix(batch)
        n_hash = X.shape[1] - len(DENSE_CODES)
        return cls(prepared, X[:, :n_hash].tocsr(), batch.dense)

    def take(self, idx: np.ndarray) -> Features:
        return Features([self.prepared[i] for i in idx], self.grams[idx], self.dense[idx])


def _out_of_group_scores(feats: Features, rows: Rows, y: np.ndarray, w: np.ndarray, kfold: bool,
                         log: Callable[[str], None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """Raw n-gram scores each row gets from a model that never saw it: from a model trained
    without the row's whole *set* (how n-grams transfer to an unseen corpus) and, with ``kfold``,
    from 3-fold models within the sets (how they do on familiar text). Returns (row index, raw score,
    stack weight, per-fold (test index, coef, bias)) over both kinds stacked."""
    from sklearn.model_selection import StratifiedGroupKFold

    sets = np.array(rows.set_name)
    idx_parts, raw_parts, w_parts, folds_out = [], [], [], []
    for held in np.unique(sets):
        test = np.flatnonzero(sets == held)
        train = np.flatnonzero(sets != held)
        if len(set(y[train])) < 2:
            continue
        log(f"n-gram scores for {held} from a model trained without it")
        coef, bias = _fit_binary(feats.grams[train], y[train], w[train], C_BIN)
        idx_parts.append(test)
        raw_parts.append(feats.grams[test] @ coef + bias)
        w_parts.append(w[test])
    # Within-set scores are down-weighted only next to out-of-set ones (a single set has nothing else).
    within_weight = STACK_WITHIN_WEIGHT if idx_parts else 1.0
    if kfold or not idx_parts:  # a single set (knowledge base alone): within-set folds only
        strata = np.array([f"{s}:{v}" for s, v in zip(rows.set_name, y, strict=True)])
        folds = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=SEED)
        for n, (train, test) in enumerate(folds.split(np.zeros(len(y)), strata, groups=rows.group)):
            log(f"n-gram scores, fold {n + 1} of 3")
            coef, bias = _fit_binary(feats.grams[train], y[train], w[train], C_BIN)
            idx_parts.append(test)
            raw_parts.append(feats.grams[test] @ coef + bias)
            w_parts.append(w[test] * within_weight)
            folds_out.append((test, coef, bias))
    return np.concatenate(idx_parts), np.concatenate(raw_parts), np.concatenate(w_parts), folds_out


def _fit_stack(raw: np.ndarray, dense: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Logistic stacking: P = sigmoid(a * ngram_raw + dense @ v + c), fitted on out-of-set scores so
    the cue and indicator features carry the weight they earn where the n-grams do not transfer."""
    from sklearn.linear_model import LogisticRegression

    Z = np.hstack([raw.reshape(-1, 1), dense])
    if STACK_MONOTONE:
        coef, intercept = _fit_signed_logistic(Z, y, w, STACK_C, _stack_lower_bounds())
        return max(float(coef[0]), 0.05), coef[1:], intercept
    model = LogisticRegression(C=STACK_C, solver="lbfgs", max_iter=2000)
    model.fit(Z, y, sample_weight=w)
    a = max(float(model.coef_[0, 0]), 0.05)
    return a, model.coef_[0, 1:].astype(np.float64), float(model.intercept_[0])


def _stack_lower_bounds() -> np.ndarray:
    """Lower bound of each stack weight: the n-gram score must count positively, risk evidence may
    not lower the score (see ``STACK_MONOTONE``), the rest is free."""
    free = [code.startswith(FREE_SIGN_PREFIXES) for code in DENSE_CODES]
    return np.array([0.05, *[-np.inf if f else 0.0 for f in free]])


def _fit_signed_logistic(Z: np.ndarray, y: np.ndarray, w: np.ndarray, C: float,
                         lower: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression with lower bounds on the weights (the intercept is free and
    not penalised): minimises 0.5*|beta|^2 + C * sum_i w_i * logloss_i, the objective scikit-learn
    uses, by L-BFGS-B."""
    from scipy.optimize import minimize

    Z = np.asarray(Z, dtype=np.float64)
    sign = np.where(y == 1, 1.0, -1.0)
    n_feat = Z.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        beta, b = theta[:n_feat], theta[n_feat]
        margin = sign * (Z @ beta + b)
        loss = np.logaddexp(0.0, -margin)
        dmargin = -C * w * sign * np.exp(-np.logaddexp(0.0, margin))  # d loss / d score
        grad = np.concatenate([beta + Z.T @ dmargin, [dmargin.sum()]])
        return 0.5 * float(beta @ beta) + C * float(w @ loss), grad

    start = np.zeros(n_feat + 1)
    start[:n_feat] = np.clip(0.0, lower, None)
    start[0] = max(1.0, lower[0])
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower] + [(None, None)]
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 5000, "gtol": 1e-6})
    return result.x[:n_feat].astype(np.float64), float(result.x[n_feat])


def train_artifact(rows: Rows, calibrate: bool = True, log: Callable[[str], None] = lambda _m: None,
                   feats: Features | None = None, binary_only: bool = False) -> Artifact:
    """Fit the heads on ``rows``: the n-gram model, the stack over it (out-of-set scores plus cues
    and indicators, which is also the calibration), and unless ``binary_only`` the fraud-versus-spam
    and scam-type heads. With ``calibrate`` the stack also sees within-set out-of-fold scores and the
    call threshold is set from out-of-fold prefixes of normal calls."""
    from sklearn.linear_model import LogisticRegression

    if feats is None:
        log(f"preparing {len(rows)} training rows")
        feats = Features.build(rows)
    prepared = feats.prepared
    labels = np.array(rows.label)
    y = (labels != "ham").astype(int)
    w = _weights(rows, y.astype(bool))
    n_hash = feats.grams.shape[1]

    idx, raw, w_stack, folds = _out_of_group_scores(feats, rows, y, w, calibrate, log)
    a, v, c = _fit_stack(raw, feats.dense[idx], y[idx], w_stack)
    log("fitting the n-gram model on all training rows")
    coef, bias = _fit_binary(feats.grams, y, w, C_BIN)
    # Folded into the artifact's form: raw = ngram + dense @ (v / a) + bias, P = sigmoid(a * raw + c').
    d_bin = v / a
    platt = (a, c)

    call_threshold = 0.5
    call_rows = [i for i, ch in enumerate(rows.channel) if ch == "call_transcript" and y[i] == 0]
    if calibrate and call_rows and folds:
        prefix_max = {}
        for test, fold_coef, fold_bias in folds:
            ham_calls = sorted(set(test.tolist()) & set(call_rows))
            full = np.concatenate([fold_coef, d_bin])
            for i, m in zip(ham_calls, _prefix_raw_max([rows.text[i] for i in ham_calls], full, fold_bias, n_hash),
                            strict=True):
                prefix_max[i] = m
        raw_cut = float(np.quantile(list(prefix_max.values()), 1.0 - CALL_FPR_TARGET))
        call_threshold = float(1.0 / (1.0 + np.exp(-(platt[0] * raw_cut + platt[1]))))
        call_threshold = min(max(call_threshold, 0.5), 0.995)

    n_dense = len(DENSE_CODES)
    if binary_only:
        k = 1
        return Artifact(w_bin=coef, d_bin=d_bin, b_bin=bias, platt=platt,
                        w_fraud=np.zeros(1 << FRAUD_BITS), d_fraud=np.zeros(n_dense), b_fraud=5.0,
                        w_cat=np.zeros((1 << CAT_BITS, k), np.float32), d_cat=np.zeros((n_dense, k), np.float32),
                        b_cat=np.zeros(k, np.float32), categories=[next(iter(scam_types()))],
                        meta={"seed": SEED, "rows": len(rows), "sets": sorted(set(rows.set_name)), **recipe()})

    log("fitting the fraud-versus-spam head")
    pos = np.flatnonzero(y == 1)
    Xf = design_matrix(hashed_batch([prepared[i] for i in pos]), FRAUD_BITS)
    yf = (labels[pos] == "fraud").astype(int)
    if len(set(yf)) == 2:
        wf = _weights(rows.take(y == 1), yf.astype(bool))
        coef_f, bias_f = _fit_binary(Xf, yf, wf, C_FRAUD)
    else:
        coef_f, bias_f = np.zeros(Xf.shape[1]), 5.0

    log("fitting the scam-type head")
    with_cat = [i for i, cat in enumerate(rows.category) if cat]
    order_of = {cat: n for n, cat in enumerate(scam_types())}
    cats: list[str] = sorted({str(rows.category[i]) for i in with_cat}, key=lambda cat: order_of[cat])
    Xc = design_matrix(hashed_batch([prepared[i] for i in with_cat]), CAT_BITS)
    yc = np.array([rows.category[i] for i in with_cat])
    sets_c = np.array([rows.set_name[i] for i in with_cat])
    wc = np.ones(len(with_cat))
    for name in np.unique(sets_c):
        wc[sets_c == name] = 1.0 / (sets_c == name).sum()
    wc *= len(with_cat) / wc.sum()
    cat_model = LogisticRegression(C=C_CAT, max_iter=300, random_state=SEED)
    cat_model.fit(Xc, yc, sample_weight=wc)
    order = [list(cat_model.classes_).index(cat) for cat in cats]
    W = cat_model.coef_[order].T
    n_cat_hash = 1 << CAT_BITS
    return Artifact(
        w_bin=coef, d_bin=d_bin, b_bin=bias, platt=platt,
        w_fraud=coef_f[: 1 << FRAUD_BITS], d_fraud=coef_f[1 << FRAUD_BITS:], b_fraud=bias_f,
        w_cat=W[:n_cat_hash].astype(np.float32), d_cat=W[n_cat_hash:].astype(np.float32),
        b_cat=cat_model.intercept_[order].astype(np.float32), categories=cats,
        threshold=0.5, call_threshold=call_threshold,
        meta={"seed": SEED, "rows": len(rows), "sets": sorted(set(rows.set_name)), **recipe(),
              "stack_ngram_weight": a},
    )


def _prefix_raw_max(transcripts: Sequence[str], coef: np.ndarray, bias: float, n_hash: int) -> np.ndarray:
    """Highest raw score over the growing prefixes (turn by turn) of each transcript."""
    from forewarn.screening.features import linear_scores

    out = np.zeros(len(transcripts))
    for i, transcript in enumerate(transcripts):
        turns = split_turns(transcript)
        prefixes = [" ".join(f"{s}: {t}" for s, t in turns[:k]) for k in range(1, len(turns) + 1)] or [transcript]
        batch = hashed_batch(prepare_many(prefixes, ["zh"] * len(prefixes), ["call_transcript"] * len(prefixes)))
        out[i] = linear_scores(batch, coef[:n_hash], coef[n_hash:], bias).max()
    return out


# --- evaluation -----------------------------------------------------------------------------

def recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float = 0.01) -> float:
    neg = score[y == 0]
    pos = score[y == 1]
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    cut = np.quantile(neg, 1.0 - fpr, method="higher")
    return float((pos > cut).mean())


def metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    out: dict[str, float] = {"n": float(len(y)), "positives": float(y.sum())}
    both = 0 < y.sum() < len(y)
    out["roc_auc"] = float(roc_auc_score(y, score)) if both else float("nan")
    out["f1"] = float(f1_score(y, score >= threshold, zero_division=0))
    out["recall_at_1pct_fpr"] = recall_at_fpr(y, score) if both else float("nan")
    return out


@dataclass
class Evaluation:
    per_set: dict[str, dict[str, float]]
    per_language: dict[str, dict[str, float]]
    category_accuracy: dict[str, float]
    langid_accuracy: dict[str, float]
    calls: dict[str, float]
    calibration: list[tuple[float, float, int]]
    loso: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"per_set": self.per_set, "per_language": self.per_language, "category_accuracy": self.category_accuracy,
                "langid_accuracy": self.langid_accuracy, "calls": self.calls, "calibration": self.calibration,
                "loso": self.loso}


def evaluate(screener: Screener, evaluation: dict[str, Rows], calls: bool = True,
             log: Callable[[str], None] = lambda _m: None) -> Evaluation:
    per_set: dict[str, dict[str, float]] = {}
    lang_y: dict[str, list[np.ndarray]] = {}
    lang_s: dict[str, list[np.ndarray]] = {}
    cat_acc: dict[str, float] = {}
    lid: dict[str, float] = {}
    all_y, all_s = [], []
    for name, rows in evaluation.items():
        if not len(rows):
            continue
        log(f"scoring {name} ({len(rows)} rows)")
        prepared = prepare_many(rows.text, None, rows.channel)
        score, p_fraud, cat = screener.probabilities(prepared, categories="all")
        y = (np.array(rows.label) != "ham").astype(int)
        per_set[name] = metrics(y, score, screener.threshold)
        all_y.append(y)
        all_s.append(score)
        for lang in sorted(set(rows.lang)):
            mask = np.array(rows.lang) == lang
            lang_y.setdefault(lang, []).append(y[mask])
            lang_s.setdefault(lang, []).append(score[mask])
        lid[name] = float(np.mean([p.lang == stated for p, stated in zip(prepared, rows.lang, strict=True)]))
        known = [i for i, c in enumerate(rows.category) if c and rows.label[i] == "fraud"]
        if known:
            names = screener.artifact.categories
            fraud_cols = [i for i, c in enumerate(names) if scam_types()[c].label == "fraud"]
            hits = [names[fraud_cols[int(np.argmax(cat[i, fraud_cols]))]] == rows.category[i] for i in known]
            cat_acc[name] = float(np.mean(hits))
    per_language = {lang: metrics(np.concatenate(lang_y[lang]), np.concatenate(lang_s[lang]), screener.threshold)
                    for lang in sorted(lang_y)}
    y_all, s_all = np.concatenate(all_y), np.concatenate(all_s)
    calibration = []
    edges = np.linspace(0, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (s_all >= lo) & (s_all < hi if hi < 1 else s_all <= hi)
        if mask.any():
            calibration.append((float(s_all[mask].mean()), float(y_all[mask].mean()), int(mask.sum())))
    call_stats: dict[str, float] = {}
    if calls and "zh_teleantifraud_dialogues" in evaluation:
        log("turn-by-turn early warning on held-out dialogues")
        call_stats = evaluate_calls(screener, evaluation["zh_teleantifraud_dialogues"])
    return Evaluation(per_set, per_language, cat_acc, lid, call_stats, calibration)


def evaluate_calls(screener: Screener, rows: Rows, exchanges: int = 3) -> dict[str, float]:
    """Share of scam calls alerted within the first ``exchanges`` caller/callee exchanges, share by the
    end, and the false-alarm rate on normal calls (any alert at any turn)."""
    early, ever, fraud_n, false_alarm, ham_n = 0, 0, 0, 0, 0
    turns_to_alert = []
    for text, label in zip(rows.text, rows.label, strict=True):
        call = CallScreener(screener, lang="zh")
        for speaker, utterance in split_turns(text):
            call.add_turn(speaker, utterance)
            if call.alerted and label == "ham":
                break
            if call.alerted:
                break
        if label == "ham":
            ham_n += 1
            false_alarm += call.alerted
        else:
            fraud_n += 1
            ever += call.alerted
            if call.alert_turn is not None:
                turns_to_alert.append(call.alert_turn)
                early += call.alert_turn <= 2 * exchanges
    return {"scam_calls": float(fraud_n), "normal_calls": float(ham_n),
            f"flagged_within_{exchanges}_exchanges": early / max(fraud_n, 1), "flagged_by_end": ever / max(fraud_n, 1),
            "false_alarm_rate": false_alarm / max(ham_n, 1),
            "median_alert_turn": float(np.median(turns_to_alert)) if turns_to_alert else float("nan"),
            "call_threshold": screener.call_threshold}


# Languages with no corpus here: only written examples teach them, so leaving a language's examples
# out shows what a language the system has never read gets from the cues and the other languages.
# Indonesian is one of them for training (id_sms is evaluation only), and is also tested on id_sms.
UNSEEN_LANGUAGE_PROXIES = ("th", "vi", "id", "ms", "my", "km", "lo")


def leave_one_set_out(sets: dict[str, pd.DataFrame], log: Callable[[str], None] = lambda _m: None,
                      languages: Sequence[str] = UNSEEN_LANGUAGE_PROXIES) -> dict[str, dict[str, float]]:
    """Train without each shippable set (the knowledge base and the other sets' training shares
    stay, and the stack is fitted on out-of-set scores of what remains); test on all of the left-out
    set. Then the knowledge base alone, tested on every set. Then, for each of ``languages``, train
    without any written example in that language and test on all of them (and on id_sms for
    Indonesian). Rows are prepared and hashed once; binary heads only."""
    names = [s for s in SHIPPABLE if s in sets]
    whole = {name: _set_rows(name, sets[name]) for name in sets}
    train_all, evaluation = split_data({k: v for k, v in sets.items() if k in names}, names)
    kb_held = evaluation[KB_SET]
    pool = concat([train_all, *whole.values(), kb_held])
    log(f"leave-one-set-out: preparing {len(pool)} rows once")
    feats = Features.build(pool)
    n_train = len(train_all)
    offsets, start = {}, n_train
    for name, rows in [*whole.items(), (KB_SET, kb_held)]:
        offsets[name] = np.arange(start, start + len(rows))
        start += len(rows)
    train_sets = np.array(train_all.set_name)
    train_langs = np.array(train_all.lang)
    originals = {ex.text for ex in examples()}
    written = [i for i in range(n_train) if train_sets[i] == KB_SET and train_all.text[i] in originals]
    written_idx = np.array(written + offsets[KB_SET].tolist(), dtype=np.int64)
    pool_langs = np.array(pool.lang)
    pool_y = (np.array(pool.label) != "ham").astype(int)
    rounds: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]] = []
    for held in names:
        rounds.append((held, np.flatnonzero(train_sets != held), [(held, offsets[held])]))
    rounds.append(("*all*", np.flatnonzero(train_sets == KB_SET),
                   [(f"kb_only→{target}", offsets[target]) for target in whole]))
    for lang in languages:
        targets = [(f"no_written_{lang}→written_{lang}", written_idx[pool_langs[written_idx] == lang])]
        if lang == "id" and "id_sms" in offsets:
            targets.append((f"no_written_{lang}→id_sms", offsets["id_sms"]))
        keep = np.flatnonzero(~((train_sets == KB_SET) & (train_langs == lang)))
        if len(targets[0][1]):
            rounds.append((f"written {lang}", keep, targets))
    out = {}
    for held, keep, targets in rounds:
        log(f"leave-one-set-out: without {held} ({len(keep)} training rows)")
        screener = Screener(train_artifact(train_all.take(np.isin(np.arange(n_train), keep)), calibrate=False,
                                           feats=feats.take(keep), binary_only=True, log=log))
        for key, idx in targets:
            score = screener.probabilities([feats.prepared[i] for i in idx], categories="none")[0]
            out[key] = metrics(pool_y[idx], score, 0.5)
    return out


def reliability_plot(evaluation: Evaluation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    if evaluation.calibration:
        pred, obs, counts = zip(*evaluation.calibration, strict=True)
        ax.plot(pred, obs, "o-", label="Forewarn screener (all held-out rows)")
        for p, o, c in evaluation.calibration:
            ax.annotate(str(c), (p, o), fontsize=7, textcoords="offset points", xytext=(3, -9))
    ax.set_xlabel("predicted P(fraud or spam)")
    ax.set_ylabel("observed share fraud or spam")
    ax.set_title("Reliability of screening scores")
    ax.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def langid_on_examples() -> dict[str, float]:
    """Language-ID accuracy on the written examples, per language."""
    hits: dict[str, list[bool]] = {}
    for ex in examples():
        hits.setdefault(ex.lang, []).append(detect_language(ex.text) == ex.lang)
    return {lang: float(np.mean(v)) for lang, v in hits.items()}


def write_model_card(path: Path, artifact: Artifact, evaluation: Evaluation) -> None:
    def table(rows: dict[str, dict[str, float]]) -> str:
        lines = ["| set | n | positives | ROC-AUC | F1 | recall @1% FPR |", "|---|---|---|---|---|---|"]
        for name, m in rows.items():
            lines.append(f"| {name} | {int(m['n'])} | {int(m['positives'])} | {m['roc_auc']:.4f} | {m['f1']:.4f} | "
                         f"{m['recall_at_1pct_fpr']:.4f} |")
        return "\n".join(lines)

    calls = evaluation.calls
    meta_recipe = {**recipe(), **artifact.meta}
    counts: dict[str, dict[str, int]] = {}
    for ex in examples():
        counts.setdefault(ex.lang, {"fraud": 0, "spam": 0, "ham": 0})[ex.label] += 1
    kb_counts = ", ".join(f"{lang} {c['fraud']}/{c['spam']}/{c['ham']}" for lang, c in counts.items())
    unseen = {**evaluation.per_set, **{k if "→" in k else f"{k} (left out)": m for k, m in evaluation.loso.items()}}
    below_target = ", ".join(f"{k} {m['roc_auc']:.3f}" for k, m in unseen.items() if m["roc_auc"] < 0.98)
    weak_recall = ", ".join(k for k, m in unseen.items() if m["recall_at_1pct_fpr"] < 0.90)
    text = f"""# Forewarn screening model card

Generated by `forewarn train screener` (seed {artifact.meta.get('seed')}). Figures below were measured on
rows the model did not train on.

## Model
- Fraud-or-spam vs ham, in two stages. (1) A logistic regression over hashed character 1–4-grams
  (2^18 buckets) of the normalised text, counts divided by (n-gram count)^{_features.LENGTH_POWER}
  ({'the n-gram score is a mean weight: the same wording scores the same in a short or a long message'
    if _features.LENGTH_POWER >= 1.0 else 'longer messages get larger n-gram scores for the same wording'}).
  (2) A logistic *stack* over that model's raw score plus
  {len(DENSE_CODES)} language-agnostic features: cue flags from the ten-language lexicons (every
  term counts, also inside a longer term; Latin terms also match without tone marks), indicator
  flags (link, shortener, look-alike, IP host, risky TLD, bait-word host, no https, APK, phone,
  money amount, crypto wallet; links whose dots were lost or spaced out are read as links),
  obfuscation tricks, counts of distinct risk cues and pairs of cue
  families (act + link, authority + money, code request + authority, lure + link, ...). The stack
  is fitted on *out-of-set* n-gram scores (each set scored by a model trained without it) and
  within-set out-of-fold scores (weight {meta_recipe['stack_within_weight']} relative to out-of-set
  ones), each (set, class) weighted equally, so the cues carry the weight they earn where n-grams do
  not transfer; its output is the calibrated probability.
  Weight of the n-gram score in the stack: {artifact.meta.get('stack_ngram_weight', float('nan')):.3f}.
- Sign prior on the stack: {'on' if meta_recipe['stack_monotone'] else 'off'}. With it, every risk
  feature (lures, demands, pressure, secrecy, risky links, obfuscation, cue counts and combinations)
  has a weight of zero or more: evidence of risk never lowers a score. Only institution and brand
  names, plain link/number/amount presence, the channel, safety advice and marketing wording may
  take either sign. Without it the stack learnt corpus quirks that invert elsewhere (for example a
  negative weight on "request to act + link", because one corpus's normal customer-service calls
  are full of both).
- Regularisation: n-gram model C={meta_recipe['C']}, stack C={meta_recipe['stack_C']}.
- Fraud vs spam and scam type ({len(artifact.categories)} types of the Forewarn typology): linear heads
  over hashed n-grams (2^16, 2^15) plus the same dense features.
Label threshold {artifact.threshold:.2f}; call early-warning threshold {artifact.call_threshold:.3f}
(chosen for ~1% false alarms on out-of-fold normal calls).

## Training data
- Shippable sets from `../shared/data/messages`, 80% of each (hash split on normalised text):
  en_mendeley_smishing (CC BY 4.0), en_uci_sms_spam (CC BY 4.0), zh_teleantifraud_dialogues
  (Apache-2.0, LLM-generated dialogues), tl_sms_preprocessed (MIT).
- The Forewarn knowledge base: {len(examples())} example messages, calls and victim reports in ten
  languages, *written by the Forewarn team* (not collected), 80% of them: scams of every type in the
  typology and legitimate look-alikes (bank OTPs and alerts, deliveries, bills, telco notices,
  school and work messages, family chat, genuine service calls). Per language (fraud/spam/ham):
  {kb_counts}.
- Knowledge-base variants: {'on' if meta_recipe['augment_kb'] else 'off'}. Each written training
  example also appears lower-cased without punctuation (the form of speech-to-text transcripts and
  preprocessed corpora) and, for Vietnamese, without diacritics; variants never cross the split.
- Each (set, class) pair carries equal total weight, the knowledge base {meta_recipe['kb_weight']}x
  a corpus. {artifact.meta.get('rows')} training rows.
- Never trained on: zh_telecom_fraud_texts and id_sms (evaluation only); their figures below are
  on every row.
- Weak scam-type labels: TeleAntiFraud types mapped to our IDs; UCI spam as spam.premium_rate,
  other spam as spam.marketing.

## Held-out results per set
{table(evaluation.per_set)}

## Per language (stated language of the rows)
{table(evaluation.per_language)}

Languages th, vi, ms, my, km, lo are measured only on held-out *written* examples (few rows):
treat those figures as a smoke test, not as evidence of field performance.

## Leave-one-set-out (train without the set, test on all of it)
Each shippable set in turn is left out entirely (n-gram model *and* stack trained on the others plus
the knowledge base), then scored whole; `kb_only→X` trains on the written knowledge base alone;
`no_written_L→…` trains on everything except the written examples in language L and scores all of
them (and id_sms for Indonesian): what a language no corpus covers gets from cues, indicators and the
other languages. These are the closest proxy here for corpora the system has never seen. Time for all of it:
{artifact.meta.get('loso_seconds', 'not measured')} s (rows prepared and hashed once, binary heads only).

{table(evaluation.loso) if evaluation.loso else 'not run'}

## Calls, turn by turn (held-out TeleAntiFraud dialogues)
- scam calls flagged within the first 3 exchanges: {calls.get('flagged_within_3_exchanges', float('nan')):.3f}
- flagged by the end of the call: {calls.get('flagged_by_end', float('nan')):.3f}
- false alarms on normal calls: {calls.get('false_alarm_rate', float('nan')):.3f}
- median turn of the alert: {calls.get('median_alert_turn', float('nan'))}

## Scam-type accuracy (fraud rows with a known type)
{json.dumps(evaluation.category_accuracy)}

## Language identification accuracy (detected vs stated language)
{json.dumps(evaluation.langid_accuracy)}

## Known limits
- Below the 0.98 ROC-AUC target on rows not trained on: {below_target or 'none'}.
  Recall at 1% false positives is the harder figure: {weak_recall or 'none'} are below 0.90.
- No real SMS in th, vi, ms, my, km, lo was available for training or testing; those languages rely on
  the written knowledge base, the cue lexicons and language-agnostic indicator features. Their
  figures come from written examples (held-out templates, or all of them with the language left
  out) and say how the model separates *our* examples, not how it does on field traffic.
- Written examples are ours: their style is narrower than real traffic, and held-out written
  templates are easier than an unseen corpus (compare kb_written with the leave-one-set-out rows).
- Code-switching (Taglish, Manglish, English brand names inside Thai or Vietnamese) is covered by cue
  terms and written examples in mixed language; Vietnamese without diacritics (wholly or partly) by
  matching every text's cues also with the marks removed, and by training variants. Romanised Thai,
  Khmer, Lao and Burmese are not covered.
- Cue terms and written examples come from the same team: `no_written_L→written_L` leaves out the
  examples but not the cue terms written alongside them, so it flatters the cues somewhat.
- zh_telecom_fraud_texts labels registered marketing as ham while the English sets label marketing as
  spam; the knowledge base follows each market's practice (registered 【brand】 marketing with 退订 is ham).
- tl_sms_preprocessed is lower-cased with stop-words removed, unlike real messages.
- The TeleAntiFraud dialogues are LLM-generated, not real calls.
- Phone numbers in a scam message are emitted as indicators; a message quoting the *victim's* own
  number would expose it. Numbers shaped like national IDs or cards are never emitted.
"""
    path.write_text(text, encoding="utf-8")


def train_screener(shared_data: Path, out: Path | None = None, card: Path | None = None, loso: bool = True,
                   log: Callable[[str], None] = lambda _m: None) -> tuple[Path, Evaluation]:
    """Train on the shippable sets and the knowledge base, evaluate, write the artifact and its card."""
    from forewarn.screening.artifact import default_artifact_path

    out = out or default_artifact_path()
    card = card or out.with_name("MODEL_CARD.md")
    sets = load_sets(shared_data)
    train, evaluation = split_data(sets)
    artifact = train_artifact(train, log=log)
    artifact.save(out)
    result = evaluate(Screener(artifact), evaluation, log=log)
    if loso:
        started = time.perf_counter()
        result.loso = leave_one_set_out(sets, log=log)
        artifact.meta["loso_seconds"] = round(time.perf_counter() - started, 1)
    write_model_card(card, artifact, result)
    reliability_plot(result, card.with_name("reliability.png"))
    return out, result


def evaluate_screener(shared_data: Path, model: Path | None = None, plot: Path | None = None, loso: bool = False,
                      log: Callable[[str], None] = lambda _m: None) -> tuple[Evaluation, Path | None]:
    """Evaluate a trained artifact on everything it did not train on; optionally save the reliability plot."""
    screener = Screener.load(model) if model else Screener.default()
    sets = load_sets(shared_data)
    _, evaluation = split_data(sets)
    result = evaluate(screener, evaluation, log=log)
    if loso:
        result.loso = leave_one_set_out(sets, log=log)
    return result, (reliability_plot(result, plot) if plot else None)
