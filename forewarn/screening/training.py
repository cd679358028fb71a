"""Training and evaluating the screening model, reproducibly.

Training uses only the *shippable* sets in ``../shared/data/messages`` plus the written knowledge
base; every set is split deterministically by a hash of the normalised text (so duplicates never
straddle the split) into 80% train and 20% held out. Evaluation scores the held-out share of the
shippable sets, every row of the evaluation-only sets and the held-out written examples, per set
and per language (ROC-AUC, F1 at the model's threshold, recall at 1% false positives), plus the
turn-by-turn early warning on held-out call dialogues. Leave-one-set-out trains without a set and
tests on all of it: the honest proxy for corpora we do not have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forewarn.screening.artifact import CAT_BITS, FRAUD_BITS, Artifact
from forewarn.screening.calls import CallScreener, split_turns
from forewarn.screening.features import DENSE_CODES, Prepared, design_matrix, hashed_batch, prepare
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
CALL_FPR_TARGET = 0.01


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

    def add(self, text: str, label: str, category: str | None, set_name: str, lang: str, channel: str) -> None:
        self.text.append(text)
        self.label.append(label)
        self.category.append(category)
        self.set_name.append(set_name)
        self.lang.append(lang)
        self.channel.append(channel)

    def take(self, mask: Sequence[bool] | np.ndarray) -> Rows:
        out = Rows()
        for i, keep in enumerate(mask):
            if keep:
                out.add(self.text[i], self.label[i], self.category[i], self.set_name[i], self.lang[i], self.channel[i])
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


def kb_rows() -> Rows:
    rows = Rows()
    for ex in examples():
        rows.add(ex.text, ex.label, None if ex.type.startswith("ham.") else ex.type, KB_SET, ex.lang, ex.channel)
    return rows


def concat(parts: Sequence[Rows]) -> Rows:
    out = Rows()
    for part in parts:
        for i in range(len(part)):
            out.add(part.text[i], part.label[i], part.category[i], part.set_name[i], part.lang[i], part.channel[i])
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
    kb_held = np.array([is_heldout(t) for t in kb.text], dtype=bool)
    train_parts.append(kb.take(~kb_held))
    evaluation[KB_SET] = kb.take(kb_held)
    return concat(train_parts), evaluation


def _weights(rows: Rows, positive: np.ndarray) -> np.ndarray:
    """Each (set, class) pair gets the same total weight: no set or base rate dominates, and the
    model cannot learn "this language is mostly spam" from one corpus's class balance."""
    weights = np.zeros(len(rows))
    sets = np.array(rows.set_name)
    groups = [(s, c) for s in np.unique(sets) for c in (True, False)]
    for s, c in groups:
        mask = (sets == s) & (positive == c)
        if mask.any():
            weights[mask] = 1.0 / mask.sum()
    return weights * len(rows) / max(weights.sum(), 1e-9)


def _prepare_all(rows: Rows, progress: Callable[[int], None] | None = None) -> list[Prepared]:
    out = []
    for i, (text, _lang, channel) in enumerate(zip(rows.text, rows.lang, rows.channel, strict=True)):
        out.append(prepare(text, None, channel))
        if progress and i % 500 == 0:
            progress(i)
    return out


def _fit_binary(X: Any, y: np.ndarray, w: np.ndarray, C: float) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, solver="liblinear", max_iter=200, random_state=SEED)
    model.fit(X, y, sample_weight=w)
    return model.coef_.ravel().astype(np.float64), float(model.intercept_[0])


def train_artifact(rows: Rows, calibrate: bool = True, log: Callable[[str], None] = lambda _m: None) -> Artifact:
    """Fit the three heads (and, with ``calibrate``, Platt scaling and the call threshold from
    out-of-fold predictions) on ``rows``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    log(f"preparing {len(rows)} training rows")
    prepared = _prepare_all(rows)
    batch = hashed_batch(prepared)
    X = design_matrix(batch)
    labels = np.array(rows.label)
    y = (labels != "ham").astype(int)
    w = _weights(rows, y.astype(bool))
    n_hash = X.shape[1] - len(DENSE_CODES)

    platt = (1.0, 0.0)
    call_threshold = 0.5
    if calibrate:
        log("out-of-fold scores for calibration")
        oof = np.zeros(len(rows))
        strata = np.array([f"{s}:{v}" for s, v in zip(rows.set_name, y, strict=True)])
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=SEED)
        call_rows = [i for i, ch in enumerate(rows.channel) if ch == "call_transcript"]
        prefix_max = np.zeros(len(rows))
        for train_idx, test_idx in folds.split(np.zeros(len(rows)), strata):
            coef, bias = _fit_binary(X[train_idx], y[train_idx], w[train_idx], C_BIN)
            oof[test_idx] = X[test_idx] @ coef + bias
            test_calls = sorted(set(test_idx) & set(call_rows))
            prefix_max[test_calls] = _prefix_raw_max([rows.text[i] for i in test_calls], coef, bias, n_hash)
        calib = LogisticRegression(C=1e4, solver="lbfgs")
        calib.fit(oof.reshape(-1, 1), y, sample_weight=w)
        platt = (float(calib.coef_[0, 0]), float(calib.intercept_[0]))
        ham_calls = [i for i in call_rows if y[i] == 0]
        if ham_calls:
            raw_cut = float(np.quantile(prefix_max[ham_calls], 1.0 - CALL_FPR_TARGET))
            call_threshold = float(1.0 / (1.0 + np.exp(-(platt[0] * raw_cut + platt[1]))))
            call_threshold = min(max(call_threshold, 0.5), 0.995)
    log("fitting the fraud-or-spam head")
    coef, bias = _fit_binary(X, y, w, C_BIN)

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
    with_cat = [i for i, c in enumerate(rows.category) if c]
    order_of = {c: n for n, c in enumerate(scam_types())}
    cats: list[str] = sorted({str(rows.category[i]) for i in with_cat}, key=lambda c: order_of[c])
    Xc = design_matrix(hashed_batch([prepared[i] for i in with_cat]), CAT_BITS)
    yc = np.array([rows.category[i] for i in with_cat])
    sets_c = np.array([rows.set_name[i] for i in with_cat])
    wc = np.ones(len(with_cat))
    for s in np.unique(sets_c):
        wc[sets_c == s] = 1.0 / (sets_c == s).sum()
    wc *= len(with_cat) / wc.sum()
    cat_model = LogisticRegression(C=C_CAT, max_iter=300, random_state=SEED)
    cat_model.fit(Xc, yc, sample_weight=wc)
    order = [list(cat_model.classes_).index(c) for c in cats]
    W = cat_model.coef_[order].T
    n_cat_hash = 1 << CAT_BITS
    return Artifact(
        w_bin=coef[:n_hash], d_bin=coef[n_hash:], b_bin=bias, platt=platt,
        w_fraud=coef_f[: 1 << FRAUD_BITS], d_fraud=coef_f[1 << FRAUD_BITS:], b_fraud=bias_f,
        w_cat=W[:n_cat_hash].astype(np.float32), d_cat=W[n_cat_hash:].astype(np.float32),
        b_cat=cat_model.intercept_[order].astype(np.float32), categories=cats,
        threshold=0.5, call_threshold=call_threshold,
        meta={"seed": SEED, "rows": len(rows), "sets": sorted(set(rows.set_name)), "C": C_BIN},
    )


def _prefix_raw_max(transcripts: Sequence[str], coef: np.ndarray, bias: float, n_hash: int) -> np.ndarray:
    """Highest raw score over the growing prefixes (turn by turn) of each transcript."""
    from forewarn.screening.features import linear_scores

    out = np.zeros(len(transcripts))
    for i, transcript in enumerate(transcripts):
        turns = split_turns(transcript)
        prefixes = [" ".join(f"{s}: {t}" for s, t in turns[:k]) for k in range(1, len(turns) + 1)] or [transcript]
        batch = hashed_batch([prepare(p, "zh", "call_transcript") for p in prefixes])
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
        prepared = [prepare(t, None, ch) for t, ch in zip(rows.text, rows.channel, strict=True)]
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


def leave_one_set_out(sets: dict[str, pd.DataFrame], log: Callable[[str], None] = lambda _m: None) -> dict[str, dict[str, float]]:
    """Train without each shippable set (and on the knowledge base alone); test on all of the left-out set."""
    out = {}
    for held in [*SHIPPABLE, "*all*"]:
        others = [s for s in SHIPPABLE if s != held and s in sets] if held != "*all*" else []
        train, _ = split_data({k: v for k, v in sets.items() if k in others}, others)
        log(f"leave-one-set-out: without {held} ({len(train)} training rows)")
        screener = Screener(train_artifact(train, calibrate=False))
        targets = [held] if held != "*all*" else [s for s in sets]
        for target in targets:
            if target not in sets:
                continue
            rows = _set_rows(target, sets[target])
            score = screener.scores(rows.text) if target != "zh_teleantifraud_dialogues" else \
                screener.probabilities([prepare(t, None, "call_transcript") for t in rows.text])[0]
            key = target if held != "*all*" else f"kb_only→{target}"
            out[key] = metrics((np.array(rows.label) != "ham").astype(int), score, 0.5)
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
    text = f"""# Forewarn screening model card

Generated by `forewarn train screener` (seed {artifact.meta.get('seed')}). Figures below were measured on
rows the model did not train on.

## Model
Three linear heads (logistic regression) over hashed character 1–4-grams (2^18 buckets) of the
normalised text plus {len(DENSE_CODES)} binary cue and indicator flags: fraud-or-spam vs ham
(Platt-calibrated), fraud vs spam, and scam type ({len(artifact.categories)} types of the Forewarn typology).
Label threshold {artifact.threshold:.2f}; call early-warning threshold {artifact.call_threshold:.3f}
(chosen for ~1% false alarms on out-of-fold normal calls).

## Training data
- Shippable sets from `../shared/data/messages`, 80% of each (hash split on normalised text):
  en_mendeley_smishing (CC BY 4.0), en_uci_sms_spam (CC BY 4.0), zh_teleantifraud_dialogues
  (Apache-2.0, LLM-generated dialogues), tl_sms_preprocessed (MIT).
- The Forewarn knowledge base: {len(examples())} example messages and call openings in ten languages,
  *written by the Forewarn team* (not collected), 80% of them.
- Each (set, class) pair carries equal total weight. {artifact.meta.get('rows')} training rows.
- Weak scam-type labels: TeleAntiFraud types mapped to our IDs; UCI spam as spam.premium_rate,
  other spam as spam.marketing.

## Held-out results per set
{table(evaluation.per_set)}

## Per language (stated language of the rows)
{table(evaluation.per_language)}

Languages th, vi, ms, my, km, lo are measured only on held-out *written* examples (few rows):
treat those figures as a smoke test, not as evidence of field performance.

## Leave-one-set-out (train without the set, test on all of it)
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
- No real SMS in th, vi, ms, my, km, lo was available for training or testing; those languages rely on
  the written knowledge base, the cue lexicons and language-agnostic indicator features.
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
        result.loso = leave_one_set_out(sets, log=log)
    write_model_card(card, artifact, result)
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
