"""Opening the store: engine, connection pragmas and schema migrations.

The embedded default is a SQLite file in WAL mode under the node's data directory, so a reader
(the API) never blocks the writer (ingestion) and a crash loses nothing committed. Setting
``FOREWARN_DATABASE_URL=postgresql+psycopg://...`` switches to PostgreSQL with no other change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, inspect
from sqlalchemy.dialects import postgresql, sqlite

from forewarn.config import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says why and what to do."""


@dataclass
class Store:
    """An open store: the engine plus the settings it came from."""

    engine: Engine
    settings: Settings | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on any error."""
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    raise StoreError(f"unsupported database URL {url.split('://')[0]}://…; use sqlite:/// or postgresql+psycopg://")


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision of every branch (idempotent)."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "heads")


def open_store(settings: Settings, *, upgrade: bool = True) -> Store:
    """Open (and by default migrate) the store the settings point at."""
    try:
        engine = create_store_engine(settings.database_url)
        if upgrade:
            migrate(engine)
        else:
            inspect(engine).get_table_names()
    except StoreError:
        raise
    except Exception as exc:  # driver errors differ by backend; give one clear message
        raise StoreError(f"cannot open the store at {_redact(settings.database_url)}: {exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    return Store(engine=engine, settings=settings)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def insert_ignoring_duplicates(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                               key: Sequence[str]) -> int:
    """Insert rows, skipping those whose ``key`` already exists; returns how many were new."""
    if not rows:
        return 0
    if conn.dialect.name == "sqlite":
        stmt: Any = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
    elif conn.dialect.name == "postgresql":
        # psycopg reports rowcount -1 for executemany; count the rows RETURNING gives back instead
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(key)) \
            .returning(table.c[key[0]])
        return len(conn.execute(stmt, list(rows)).all())
    else:  # pragma: no cover - only the two supported backends
        stmt = insert(table)
    result = conn.execute(stmt, list(rows))
    return int(result.rowcount or 0)


def utc(value: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite are naive; the store only ever writes UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
