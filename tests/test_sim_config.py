"""Simulator configuration errors and the ``forewarn simulate`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.sim import ScenarioConfig, ScenarioConfigError, SimulationError, load_truth


@pytest.mark.parametrize(("values", "field"), [
    ({"subscribers": -5}, "subscribers"),
    ({"subscribers": 50}, "subscribers"),
    ({"days": 0}, "days"),
    ({"days": -1}, "days"),
    ({"fraud_rate": -0.1}, "fraud_rate"),
    ({"fraud_rate": 0.5}, "fraud_rate"),
    ({"seed": -1}, "seed"),
    ({"countries": "CN,XX"}, "countries"),
    ({"countries": "TH,TH"}, "countries"),
    ({"subscribers": 300, "countries": "CN,TH,MY,VN"}, "subscribers per home country"),
    ({"colour": "red"}, "colour"),
])
def test_bad_config_names_the_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(ScenarioConfigError) as info:
        ScenarioConfig.build(**values)
    assert field in str(info.value)
    assert "Traceback" not in str(info.value)


def test_countries_accept_a_comma_list() -> None:
    cfg = ScenarioConfig.build(countries="vn, th", subscribers=400)
    assert cfg.countries == ("TH", "VN")


def test_cli_writes_a_scenario(tmp_path: Path) -> None:
    out = tmp_path / "scn"
    result = CliRunner().invoke(app, ["simulate", "--out", str(out), "--seed", "5", "--subscribers", "800",
                                      "--days", "1", "--start", "2025-06-01", "--fraud-rate", "0.01"])
    assert result.exit_code == 0, result.output
    assert "ground truth:" in result.output
    manifest = json.loads((out / "truth" / "manifest.json").read_text())
    assert manifest["config"]["seed"] == 5 and manifest["config"]["start"] == "2025-06-01"
    assert manifest["counts"]["call"] > 0
    assert not list(out.glob(".partial-*")), "staging folder left behind"
    truth = load_truth(out)
    assert len(truth.fraud_numbers) > 0


@pytest.mark.parametrize(("args", "message"), [
    (["--subscribers", "-3"], "subscribers"),
    (["--days", "0"], "days"),
    (["--fraud-rate", "1.5"], "fraud_rate"),
    (["--start", "03/03/2025"], "ISO date"),
    (["--countries", "CN,FR"], "unknown home countries"),
])
def test_cli_bad_input_is_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 1
    said = " ".join(result.output.split())  # the console wraps long lines
    assert message in said
    assert "Traceback" not in said
    assert not (tmp_path / "x" / "calls.parquet").exists()


def test_cli_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["simulate", "--out", str(blocker / "sub"), "--subscribers", "400",
                                      "--days", "1", "--countries", "TH,VN"])
    assert result.exit_code == 1
    assert "cannot write" in " ".join(result.output.split())


def test_load_truth_without_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(SimulationError, match="manifest"):
        load_truth(tmp_path)
