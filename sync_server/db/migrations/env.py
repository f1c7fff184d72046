"""Alembic environment: run with the connection the server hands in (see engine.migrate)."""

from __future__ import annotations

from alembic import context

from sync_server.db.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` command line (developers generating revisions)
    import sqlalchemy as sa

    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
