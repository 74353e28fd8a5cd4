"""Alembic environment: the engine and the schema's metadata come from vigil.db.migration,
never from an ini file."""

from __future__ import annotations

from alembic import context

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes["metadata"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
