"""Node configuration: where the node keeps its data and which servers it uses.

Everything has an embedded default so that a node runs on one machine with no server; each
scale-out path is switched on by one environment variable (or the matching CLI option).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = "./forewarn-data"


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one node."""

    data_dir: Path
    database_url: str
    country: str = "CN"
    redis_url: str | None = None
    nats_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "forewarn.sqlite3"


def load_settings(data_dir: str | Path | None = None, database_url: str | None = None,
                  country: str | None = None) -> Settings:
    """Settings from explicit arguments, then ``FOREWARN_*`` environment variables, then defaults.

    ``FOREWARN_DATA_DIR`` (default ``./forewarn-data``), ``FOREWARN_DATABASE_URL`` (default: a SQLite
    file in the data directory; ``postgresql+psycopg://...`` switches to PostgreSQL),
    ``FOREWARN_COUNTRY`` (ISO 3166 alpha-2 of this node), ``FOREWARN_REDIS_URL``, ``FOREWARN_NATS_URL``.
    """
    resolved_dir = Path(data_dir or os.environ.get("FOREWARN_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    resolved_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or os.environ.get("FOREWARN_DATABASE_URL") or f"sqlite:///{resolved_dir / 'forewarn.sqlite3'}"
    return Settings(
        data_dir=resolved_dir,
        database_url=url,
        country=(country or os.environ.get("FOREWARN_COUNTRY") or "CN").upper(),
        redis_url=os.environ.get("FOREWARN_REDIS_URL"),
        nats_url=os.environ.get("FOREWARN_NATS_URL"),
    )


def read_yaml(path: Path | str, error: Callable[[str], Exception], what: str = "") -> Any:
    """The YAML document in ``path`` (None when empty). A file that cannot be read or is not YAML
    raises ``error`` with a message naming it: "cannot read <what> <path>: ..." or "<what> <path>
    is not valid YAML: ..." (every configuration file of a node is reported the same way)."""
    import yaml

    label = f"{what} {path}" if what else str(path)
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {label}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{label} is not valid YAML: {exc}") from None
