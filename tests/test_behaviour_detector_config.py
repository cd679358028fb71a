"""The node's detector settings: an operator lists roaming subscribers and known carrier
arrangements (numbers, ranges, prefixes, files of them) and the spoofed caller-ID detector stands
down for them; typos are errors naming the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from forewarn.behaviour import first_flagged
from forewarn.behaviour.detect import default_detectors, detect_into_store
from forewarn.behaviour.detectors.config import (
    CONFIG_ENV,
    DetectorConfigError,
    NumberSet,
    configured_detectors,
    load_detector_settings,
)
from forewarn.behaviour.detectors.rules import SpoofedCli
from forewarn.config import load_settings
from forewarn.store import open_store

START = datetime(2025, 3, 3, 8, tzinfo=UTC)
SPOOFED = ["+66899990001", "+66899990002", "+66899990003", "+66812345678"]


@pytest.fixture(autouse=True)
def _no_operator_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("FOREWARN_DATA_DIR", raising=False)


def _calls() -> pd.DataFrame:
    """Ordinary domestic traffic, plus home-country caller IDs arriving over an international trunk."""
    calls = [{"caller": "+66810000001", "callee": "+66810000002", "start": START + timedelta(minutes=m),
              "duration_s": 60.0, "ingress": "domestic", "caller_country": "TH", "callee_country": "TH"}
             for m in range(0, 120, 7)]
    for i, number in enumerate(SPOOFED):
        calls.append({"caller": number, "callee": f"+6681000010{i}", "start": START + timedelta(minutes=40 + i),
                      "duration_s": 30.0, "ingress": "international", "caller_country": "TH",
                      "callee_country": "TH"})
    return pd.DataFrame(calls)


def _spoof(detectors: list) -> SpoofedCli:  # type: ignore[type-arg]
    return next(d for d in detectors if isinstance(d, SpoofedCli))


def test_number_sets_match_numbers_ranges_and_prefixes() -> None:
    known = NumberSet(["+66899990001", "+66899990002-+66899990002", "+6681234*", " +66 811 000 000 "])
    numbers = pd.Series([*SPOOFED, "+66811000000", "+6681234", "+668999900020"])
    assert known.mask(numbers).tolist() == [True, True, False, True, True, True, False]
    assert "+66812340000" in known and "+66899990003" not in known
    assert NumberSet(["+6681-+6689"]).mask(pd.Series(["+6685", "+6690", "+66850"])).tolist() == [True, False, False]
    for bad in ("+66-abc", "+6681-+668", "+6689-+6681", "12*3"):
        with pytest.raises(ValueError, match="range|number"):
            NumberSet([bad])


def test_shipped_defaults_exempt_nobody() -> None:
    spoof = _spoof(configured_detectors())
    assert not spoof.roaming_numbers and not spoof.arranged_numbers and spoof.first_call_score == 0.8
    flagged = first_flagged(_calls(), detectors=[spoof])
    assert sorted(flagged.number) == sorted(SPOOFED)


def test_the_nodes_file_exempts_roaming_subscribers_and_arrangements(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "node")
    folder = settings.data_dir / "behaviour"
    folder.mkdir()
    (folder / "roaming.txt").write_text("# from the roaming partner's records, refreshed nightly\n"
                                        "+66899990001\n+66899990002-+66899990002  # one-number range\n")
    (folder / "detectors.yaml").write_text(
        "behaviour.spoofed_cli:\n"
        "  roaming_numbers_file: roaming.txt\n"
        "  arranged_numbers: ['+6681234*']   # the bank's offshore call centre\n")
    spoof = _spoof(default_detectors(settings))
    assert spoof.roaming_numbers.entries == ("+66899990001", "+66899990002-+66899990002")
    assert spoof.arranged_numbers.entries == ("+6681234*",)
    assert spoof.threshold == 0.5  # keys the node does not set keep the shipped value
    flagged = first_flagged(_calls(), detectors=[spoof])
    assert list(flagged.number) == ["+66899990003"]

    # `forewarn numbers detect` reads the node's file through the store's settings
    calls_file = tmp_path / "calls.parquet"
    _calls().to_parquet(calls_file)
    store = open_store(settings)
    try:
        detect_into_store([calls_file], store)
        with store.engine.connect() as conn:
            from forewarn.store.repository import list_alerts

            alerted = {a.subject for a in list_alerts(conn, role="suspect", limit=100)}
    finally:
        store.close()
    assert alerted == {"+66899990003"}


def test_the_environment_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ops.yaml"
    path.write_text("behaviour.spoofed_cli: {roaming_numbers: ['+66899990003']}\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert _spoof(default_detectors()).roaming_numbers.entries == ("+66899990003",)


@pytest.mark.parametrize(("text", "message"), [
    ("behaviour.spoofed_cli: {roaming_number: ['+66899990001']}", "behaviour.spoofed_cli.roaming_number"),
    ("behaviour.spoofd_cli: {}", "unknown detector"),
    ("behaviour.spoofed_cli: {arranged_numbers: ['call centre']}", "settings of behaviour.spoofed_cli"),
    ("behaviour.spoofed_cli: {roaming_numbers_file: missing.txt}", "cannot read"),
    ("- not a mapping", "map detector names"),
])
def test_bad_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "detectors.yaml"
    path.write_text(text + "\n")
    with pytest.raises(DetectorConfigError, match=message):
        configured_detectors(path)


def test_settings_merge_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "detectors.yaml"
    path.write_text("behaviour.wangiri: {min_callees: 20}\n")
    config = load_detector_settings(path)
    assert config["behaviour.wangiri"] == {"min_callees": 20}
    assert config["behaviour.spoofed_cli"]["first_call_score"] == 0.8
