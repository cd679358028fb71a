"""The `forewarn numbers` commands: features, score, detect; clear errors on bad input."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from forewarn.behaviour.synthetic import generate_traffic
from forewarn.cli import app, numbers_app

runner = CliRunner()


def test_every_numbers_command_has_an_example() -> None:
    for command in numbers_app.registered_commands:
        assert "Example: forewarn numbers" in (command.callback.__doc__ or ""), command.name


def test_score_sichuan_features(shared_data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = shared_data / "numbers" / "sichuan_user_features.csv"
    sample = pd.read_csv(src, keep_default_na=False, dtype=str).iloc[:300]
    path = tmp_path / "features.csv"
    sample.to_csv(path, index=False)
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["numbers", "score", str(path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns) == ["phone_no_m", "score", "label"]
    assert list(scores.phone_no_m) == list(sample.phone_no_m)
    assert scores.score.between(0, 1).all() and set(scores.label) <= {0, 1}
    labelled = sample.label.isin(["0", "1"])
    from sklearn.metrics import roc_auc_score

    # The shipped model saw these users in training: this checks the plumbing, not generalisation.
    assert roc_auc_score(sample.label[labelled].astype(int), scores.score[labelled]) > 0.9


def test_score_uses_the_call_graph_when_given(shared_data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import scipy.sparse as sp

    numbers = shared_data / "numbers"
    sample = pd.read_csv(numbers / "sichuan_user_features.csv", keep_default_na=False, dtype=str).iloc[:300]
    path, npz = tmp_path / "features.parquet", tmp_path / "graph.npz"
    sample.to_parquet(path)
    sp.save_npz(npz, sp.load_npz(numbers / "sichuan_call_graph_adjacency.npz")[:300, :300])
    with_graph, without = tmp_path / "g.csv", tmp_path / "n.csv"
    result = runner.invoke(app, ["numbers", "score", str(path), "--output", str(with_graph), "--adjacency", str(npz)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["numbers", "score", str(path), "--output", str(without)]).exit_code == 0
    g, n = pd.read_csv(with_graph, keep_default_na=False), pd.read_csv(without, keep_default_na=False)
    assert list(g.phone_no_m) == list(n.phone_no_m) == list(sample.phone_no_m)
    assert g.score.between(0, 1).all() and not g.score.equals(n.score)
    wrong = tmp_path / "wrong.npz"
    sp.save_npz(wrong, sp.eye(10, format="csr"))
    result = runner.invoke(app, ["numbers", "score", str(path), "--output", str(tmp_path / "x.csv"),
                                 "--adjacency", str(wrong)])
    assert result.exit_code == 1 and "expected 300x300" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.csv").exists()


def test_score_rejects_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.csv"
    bad.write_text("phone_no_m,opposite_count\nx,abc\n")
    result = runner.invoke(app, ["numbers", "score", str(bad), "--output", str(tmp_path / "s.csv")])
    assert result.exit_code == 1 and "error" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.csv").exists()


def test_features_and_detect_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tr = generate_traffic(300, 8, seed=6, ops_per_type=1)
    records = tmp_path / "records"
    records.mkdir()
    tr.calls.to_parquet(records / "calls.parquet")
    tr.messages.to_parquet(records / "messages.parquet")
    tr.subscribers.to_parquet(records / "subscribers.parquet")
    out = tmp_path / "features.parquet"
    result = runner.invoke(app, ["numbers", "features", str(records), "--output", str(out)])
    assert result.exit_code == 0, result.output
    features = pd.read_parquet(out)
    assert features.sim_age_days.notna().any() and features.sms_count.sum() > 0
    result = runner.invoke(app, ["numbers", "detect", str(records), "--data-dir", str(tmp_path / "node")])
    assert result.exit_code == 0, result.output
    assert "suspect alerts raised" in result.output
    result = runner.invoke(app, ["numbers", "features", str(tmp_path / "missing"), "--output", str(out)])
    assert result.exit_code == 1 and "no such file" in result.output
