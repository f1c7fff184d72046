"""The Alembic migrations build exactly the schema ``sync_server/db/schema.py`` declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from sync_server.db.engine import Database, alembic_config
from sync_server.db.schema import metadata


def test_migrations_match_the_declared_schema(db: Database) -> None:
    # Column types are left out: our own types (UTC timestamps, UUIDs) render differently from
    # what each engine reports back, and are checked by the round-trip tests.
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_migrations_run_twice_is_a_no_op(db: Database) -> None:
    db.migrate()  # already at head: nothing to do, nothing fails
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        current = context.get_current_revision()
    assert current == ScriptDirectory.from_config(alembic_config(db)).get_current_head()
