"""The Alembic migrations and the table metadata agree, on SQLite and on PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from forewarn.store.tables import all_metadata


def test_autogenerate_finds_no_difference(any_store):
    with any_store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, all_metadata())
    assert diff == [], f"migrations and metadata differ on {any_store.dialect}: {diff}"


def test_store_is_at_every_head_and_upgrading_again_changes_nothing(any_store):
    from alembic.script import ScriptDirectory

    from forewarn.store import migrate
    from forewarn.store.db import alembic_config

    migrate(any_store.engine)  # a second upgrade to heads changes nothing
    expected = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with any_store.engine.connect() as conn:
        heads = {r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}
        diff = compare_metadata(MigrationContext.configure(conn), all_metadata())
    assert heads == expected
    assert diff == []
