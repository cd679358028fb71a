"""`forewarn keys` and `forewarn audit verify` through the CLI, including tamper detection."""

from __future__ import annotations

import sqlite3

from typer.testing import CliRunner

from forewarn.cli import app
from forewarn.config import load_settings

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_keys_create_prints_key_once_and_stores_only_its_hash(tmp_path):
    result = _run("keys", "create", "--role", "telco", "--name", "op-a", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("fw_")
    db = sqlite3.connect(load_settings(tmp_path).sqlite_path)
    (stored_hash, role), = db.execute("SELECT key_hash, role FROM api_keys").fetchall()
    assert role == "telco" and secret not in stored_hash
    assert secret not in " ".join(str(v) for row in db.execute("SELECT * FROM audit_log") for v in row)


def test_keys_create_rejects_unknown_role(tmp_path):
    result = _run("keys", "create", "--role", "wizard", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "unknown role" in result.output


def test_keys_revoke(tmp_path):
    _run("keys", "create", "--role", "bank", "--data-dir", str(tmp_path))
    key_id = sqlite3.connect(load_settings(tmp_path).sqlite_path).execute("SELECT key_id FROM api_keys").fetchone()[0]
    assert _run("keys", "revoke", key_id, "--data-dir", str(tmp_path)).exit_code == 0
    again = _run("keys", "revoke", key_id, "--data-dir", str(tmp_path))
    assert again.exit_code == 1 and "no active key" in again.output


def test_audit_verify_intact_then_detects_direct_sql_update(tmp_path):
    for role in ("telco", "bank", "analyst"):
        assert _run("keys", "create", "--role", role, "--data-dir", str(tmp_path)).exit_code == 0
    ok = _run("audit", "verify", "--data-dir", str(tmp_path))
    assert ok.exit_code == 0 and "3 entries" in ok.stdout
    db = sqlite3.connect(load_settings(tmp_path).sqlite_path)
    db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
    db.commit()
    bad = _run("audit", "verify", "--data-dir", str(tmp_path))
    assert bad.exit_code == 1
    assert "entry 2" in bad.output


def test_audit_verify_detects_deleted_entry(tmp_path):
    for role in ("telco", "bank", "analyst"):
        _run("keys", "create", "--role", role, "--data-dir", str(tmp_path))
    db = sqlite3.connect(load_settings(tmp_path).sqlite_path)
    db.execute("DELETE FROM audit_log WHERE seq = 1")
    db.commit()
    bad = _run("audit", "verify", "--data-dir", str(tmp_path))
    assert bad.exit_code == 1 and "entry 1" in bad.output
