"""Three nodes on loopback (the demo), and the `forewarn federation` commands end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.federation.demo import run_nodes

runner = CliRunner()


def test_three_nodes_propagate_where_allowed_and_nowhere_else(tmp_path: Path) -> None:
    result = run_nodes(["cn", "th", "my"], base_dir=tmp_path, interval=0.25, timeout=30)
    assert result["expected"] == {"TH": True, "MY": False}  # CN shares phones raw with TH, PSI-only with MY
    assert result["arrivals"]["TH"] is not None and result["arrivals"]["MY"] is None
    assert result["policy_violations"] == 0, result["violations"]
    assert not math.isnan(result["propagation_seconds"]) and result["propagation_seconds"] < 15
    assert result["psi"]["MY"]["matched"] == [result["number"]]  # MY may still ask by PSI
    assert result["sighting_seconds"] is not None and result["revocation_seconds"] is not None


def invoke(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return flat(res.output)


def flat(text: str) -> str:
    """Rich wraps long lines; compare words, not line breaks."""
    return " ".join(text.split())


def test_cli_keygen_policy_export_import_and_queue(tmp_path: Path) -> None:
    cn, th = tmp_path / "cn", tmp_path / "th"
    invoke("federation", "policy", "init", "--country", "cn", "--data-dir", str(cn))
    invoke("federation", "policy", "init", "--country", "th", "--data-dir", str(th))
    cn_key = invoke("federation", "keygen", "--data-dir", str(cn)).split()[-1]
    invoke("federation", "keygen", "--data-dir", str(th))
    policy = th / "federation" / "policy.yaml"
    text = policy.read_text().replace("  CN:\n    url: null\n    public_key: null",
                                      f"  CN:\n    url: null\n    public_key: {cn_key}", 1)
    text = text.replace("trust_weight: 0.9", "trust_weight: 0.5", 1)  # below auto-approval: the queue decides
    policy.write_text(text)
    assert "key pinned" in invoke("federation", "policy", "check", "--data-dir", str(th))

    from forewarn.config import load_settings
    from forewarn.model.indicators import Indicator
    from forewarn.store import open_store
    from forewarn.store import repository as repo

    store = open_store(load_settings(cn))
    with store.begin() as conn:
        repo.upsert_indicator(conn, Indicator(type="phone", value="+66812345678", confidence=90, source="d", tlp="green"))
    store.close()
    bundle = tmp_path / "to-th.json"
    out = invoke("federation", "export", "--output", str(bundle), "--partner", "TH", "--data-dir", str(cn))
    assert (tmp_path / "to-th.json.sig").exists() and '"indicator": 1' in out
    imported = invoke("federation", "import", str(bundle), "--data-dir", str(th))
    assert "1 queued" in imported
    again = runner.invoke(app, ["federation", "import", str(bundle), "--data-dir", str(th)])
    assert again.exit_code == 1 and "already received" in flat(again.output)
    listing = invoke("federation", "queue", "list", "--data-dir", str(th))
    queue_id = listing.split()[0]
    assert "+66812345678" in listing
    invoke("federation", "queue", "approve", queue_id, "--note", "ok", "--data-dir", str(th))
    store = open_store(load_settings(th))
    with store.engine.connect() as conn:
        assert [i.source for i in repo.list_indicators(conn)] == ["partner:CN"]
    store.close()

    tampered = tmp_path / "tampered.json"
    tampered.write_text(bundle.read_text().replace("+66812345678", "+66812345679"))
    (tmp_path / "tampered.json.sig").write_text((tmp_path / "to-th.json.sig").read_text())
    bad = runner.invoke(app, ["federation", "import", str(tampered), "--data-dir", str(th)])
    assert bad.exit_code == 1 and "bad signature" in flat(bad.output)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    res = runner.invoke(app, ["federation", "import", str(garbage), "--partner", "CN", "--data-dir", str(th)])
    assert res.exit_code == 1 and "not JSON" in flat(res.output)


def test_every_federation_command_has_an_example() -> None:
    import typer.main

    group = typer.main.get_command(app).commands["federation"]  # type: ignore[attr-defined]

    def walk(cmd):  # type: ignore[no-untyped-def]
        if hasattr(cmd, "commands"):
            for sub in cmd.commands.values():
                yield from walk(sub)
        else:
            yield cmd

    commands = list(walk(group))
    assert len(commands) >= 14
    for cmd in commands:
        assert "Example: forewarn federation" in (cmd.help or ""), cmd.name
    json.dumps([c.name for c in commands])
