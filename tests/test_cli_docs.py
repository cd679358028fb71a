"""The CLI documents itself: every command's help carries an ``Example:`` that names the command,
and the README's quick start is exactly what the Makefile and CI run."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.main import get_command

from forewarn.cli import app

REPO_ROOT = Path(__file__).resolve().parent.parent


def _leaf_commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    found: list[tuple[tuple[str, ...], object]] = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            found.extend(_leaf_commands(command, (*prefix, name)))
        else:
            found.append(((*prefix, name), command))
    return found


def test_every_command_has_an_example_naming_it() -> None:
    commands = _leaf_commands(get_command(app))
    assert len(commands) > 30
    missing = []
    for path, command in commands:
        help_text = getattr(command, "help", "") or ""
        example = re.search(r"Example:\s*(.+)", help_text)
        if not example or not example.group(1).startswith("forewarn " + " ".join(path)):
            missing.append(" ".join(path))
    assert not missing, f"commands without an 'Example: forewarn <command> ...' line: {missing}"


# Commands that work file to file (or start throw-away nodes of their own) and never open a node.
NODELESS = {"simulate", "screen", "train screener", "eval screener", "numbers features", "numbers score",
            "numbers train", "firewall kamailio-config", "federation demo"}


def test_every_command_that_touches_a_node_takes_data_dir() -> None:
    without = []
    for path, command in _leaf_commands(get_command(app)):
        options = {opt for p in getattr(command, "params", []) for opt in getattr(p, "opts", [])}
        if "--data-dir" not in options and " ".join(path) not in NODELESS:
            without.append(" ".join(path))
    assert not without, f"commands without --data-dir: {without}"


def test_readme_quick_start_is_what_make_and_ci_run() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^(make \w+)", quick, flags=re.MULTILINE)
    assert commands == ["make demo", "make test"]
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, flags=re.MULTILINE) and re.search(r"^test:", makefile, flags=re.MULTILINE)
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, flags=re.MULTILINE)


def test_typer_app_is_the_console_script() -> None:
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["forewarn"] == "forewarn.cli:main"
    assert isinstance(app, typer.Typer)
