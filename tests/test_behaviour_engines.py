"""The one Ibis feature definition gives identical features on DuckDB and on Spark (local mode)."""

from __future__ import annotations

import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from forewarn.behaviour.features import FEATURE_COLUMNS, compute_features, connect
from forewarn.behaviour.synthetic import generate_traffic


def _spark_reason() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'forewarn[spark]')"
    if shutil.which("java") is None:
        return "no Java runtime on PATH (Spark needs Java 17)"
    return None


@pytest.mark.slow  # one Spark local session: about a minute on 2 cores, mostly JVM start-up
@pytest.mark.skipif(_spark_reason() is not None, reason=_spark_reason() or "")
def test_duckdb_and_spark_give_identical_features() -> None:
    from forewarn.behaviour.features import spark_local_session

    tr = generate_traffic(80, 5, seed=5, ops_per_type=1)
    end = tr.calls.start.max()
    start = end - timedelta(hours=4)
    kwargs = dict(start=start.to_pydatetime(), end=end.to_pydatetime(), flagged=list(tr.truth.number[:3]))
    duck = compute_features(tr.calls, tr.messages, tr.subscribers, engine="duckdb", **kwargs)
    session = spark_local_session()
    try:
        spark = compute_features(tr.calls, tr.messages, tr.subscribers, engine="spark",
                                 con=connect("spark", spark_session=session), **kwargs)
    finally:
        session.stop()
    assert len(duck) > 50
    assert list(duck.number) == list(spark.number)
    for col in FEATURE_COLUMNS:
        a = pd.to_numeric(duck[col], errors="coerce").to_numpy(float)
        b = pd.to_numeric(spark[col], errors="coerce").to_numpy(float)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True, err_msg=col)
