"""Shared fixtures: a node's settings and store on SQLite (always) and PostgreSQL (when reachable),
an API client with keys per role, and the path to ``../shared/data`` (tests that need it skip
without it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from forewarn.config import Settings, load_settings
from forewarn.store import Store, open_store

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FOREWARN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
PG_ADMIN_URL = os.environ.get("FOREWARN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _pg_reason() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'forewarn[postgres]')"
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL unreachable at {PG_ADMIN_URL.split('@')[-1]}: {type(exc).__name__}"
    return None


PG_SKIP_REASON = _pg_reason()


REDIS_TEST_URL = os.environ.get("FOREWARN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_redis_skip: list[str | None] = []  # probed once, on the first test marked ``redis``


def redis_skip_reason() -> str | None:
    """Why tests marked ``redis`` cannot run here (None when Redis answers)."""
    if not _redis_skip:
        try:
            import redis
        except ImportError:
            _redis_skip.append("the redis client is not installed (pip install 'forewarn[redis]')")
        else:
            try:
                redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1, socket_timeout=1).ping()
                _redis_skip.append(None)
            except Exception as exc:
                where = REDIS_TEST_URL.split("@")[-1].removeprefix("redis://")
                _redis_skip.append(f"Redis unreachable at {where}: {type(exc).__name__}")
    return _redis_skip[0]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("redis") is not None:
        reason = redis_skip_reason()
        if reason:
            pytest.skip(reason)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path / "node")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    st = open_store(settings)
    yield st
    st.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if PG_SKIP_REASON:
        pytest.skip(PG_SKIP_REASON)
    name = f"fw_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same test against the embedded default and against PostgreSQL."""
    if request.param == "sqlite":
        st = open_store(load_settings(tmp_path / "node"))
    else:
        url = request.getfixturevalue("pg_url")
        st = open_store(load_settings(tmp_path / "node", database_url=url))
    yield st
    st.close()


@pytest.fixture
def api(settings: Settings, store: Store) -> Iterator[TestClient]:
    from forewarn.api.app import create_app

    with TestClient(create_app(settings, store=store), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api_key(store: Store) -> Callable[[str], dict[str, str]]:
    """``api_key("telco")`` -> headers carrying a fresh key of that role."""
    from forewarn.api.auth import create_key

    def make(role: str) -> dict[str, str]:
        with store.begin() as conn:
            _, secret = create_key(conn, role, f"test-{role}")
        return {"X-API-Key": secret}

    return make


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[object, object, object, object]]:
    """Two federation demo nodes, CN and TH, each with its API in process: (cn, th, transport to
    CN's API, transport to TH's API), for pulls and pushes over TAXII without a network."""
    from forewarn.api.app import create_app
    from forewarn.federation import demo

    cn, th = demo.setup_nodes(["cn", "th"], tmp_path)
    apps = [TestClient(create_app(n.settings, store=n.store), raise_server_exceptions=False) for n in (cn, th)]
    yield cn, th, apps[0]._transport, apps[1]._transport
    for app in apps:
        app.close()
    cn.store.close()
    th.store.close()
