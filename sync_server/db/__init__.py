"""HQ storage: one schema (SQLAlchemy Core) on SQLite and PostgreSQL, migrated by Alembic."""
