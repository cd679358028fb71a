"""Screening benchmark: end-to-end throughput (normalise, detect language, cues, indicator scan,
hashed n-grams, three heads, result objects with indicators for positives) and single-message
latency, against a TF-IDF (char 1–4-grams) + logistic-regression baseline trained and run in the
same process on the same messages.

Messages are SMS-length texts built from the written knowledge base (ten languages, mixed scam and
legitimate, ~60–140 characters) so the benchmark runs without ../shared.

    python benchmarks/screening.py            # 20,000 messages, 2,000 single-message calls
    python benchmarks/screening.py --full     # 200,000 messages, 20,000 single-message calls
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np


def messages(n: int, seed: int = 1) -> tuple[list[str], list[int]]:
    from forewarn.screening.knowledge import examples

    pool = [e for e in examples() if e.channel == "sms"]
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        ex = rng.choice(pool)
        text = ex.text[:160]
        texts.append(text + (" " + str(rng.randrange(1000)) if rng.random() < 0.5 else ""))
        labels.append(int(ex.label != "ham"))
    return texts, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="200,000 messages instead of 20,000")
    parser.add_argument("--model", help="screening artifact to load (default: the committed one)")
    args = parser.parse_args()
    n_batch, n_single = (200_000, 20_000) if args.full else (20_000, 2_000)

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from forewarn.screening import Screener

    screener = Screener.load(args.model) if args.model else Screener.default()
    texts, labels = messages(n_batch)
    mean_len = np.mean([len(t) for t in texts])
    screener.screen_many(texts[:200])  # warm caches (automaton, model)

    chunk = 1000
    start, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, n_batch, chunk):
        screener.screen_many(texts[i:i + chunk])
    ours = n_batch / (time.perf_counter() - start)
    ours_cpu = n_batch / (time.process_time() - cpu0)

    latencies, cpu_lat = [], []
    for text in texts[:n_single]:
        t0, c0 = time.perf_counter(), time.thread_time()
        screener.screen_one(text)
        latencies.append(time.perf_counter() - t0)
        cpu_lat.append(time.thread_time() - c0)
    lat = np.array(latencies) * 1000
    clat = np.array(cpu_lat) * 1000

    train_texts, train_labels = messages(5000, seed=2)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), min_df=1, sublinear_tf=True)
    base = LogisticRegression(max_iter=500).fit(vec.fit_transform(train_texts), train_labels)
    start, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, n_batch, chunk):
        base.predict_proba(vec.transform(texts[i:i + chunk]))
    baseline = n_batch / (time.perf_counter() - start)
    baseline_cpu = n_batch / (time.process_time() - cpu0)
    base_lat = []
    for text in texts[:n_single]:
        t0 = time.perf_counter()
        base.predict_proba(vec.transform([text]))
        base_lat.append(time.perf_counter() - t0)
    blat = np.array(base_lat) * 1000

    print(f"messages: {n_batch:,} (mean {mean_len:.0f} chars, ten languages); cores visible: {os.cpu_count()}; "
          f"single process, one core; load average {os.getloadavg()[0]:.1f}")
    print("wall-clock figures include waiting for a CPU on a busy machine; CPU-time figures are per core used")
    print(f"forewarn screener end to end : {ours:10,.0f} msgs/s   single p50 {np.percentile(lat, 50):.3f} ms  "
          f"p99 {np.percentile(lat, 99):.3f} ms")
    print(f"baseline TF-IDF + LR (score only): {baseline:6,.0f} msgs/s   single p50 {np.percentile(blat, 50):.3f} ms  "
          f"p99 {np.percentile(blat, 99):.3f} ms")
    print(f"CPU time: forewarn {ours_cpu:,.0f} msgs/s per core, baseline {baseline_cpu:,.0f}; single p99 CPU "
          f"{np.percentile(clat, 99):.3f} ms")
    print(f"ratio throughput forewarn / baseline: {ours / baseline:.2f}x wall, {ours_cpu / baseline_cpu:.2f}x CPU; "
          f"p99 ratio: {np.percentile(lat, 99) / np.percentile(blat, 99):.2f}x")
    print(f"targets: >= 20,000 msgs/s per core -> {'met' if ours >= 20_000 else 'NOT met'} wall, "
          f"{'met' if ours_cpu >= 20_000 else 'NOT met'} CPU; p99 < 2 ms -> "
          f"{'met' if np.percentile(lat, 99) < 2 else 'NOT met'} wall, {'met' if np.percentile(clat, 99) < 2 else 'NOT met'} CPU")


if __name__ == "__main__":
    main()
