"""Alembic environment: the engine comes from vigil.db.migration, never from an ini file."""

from __future__ import annotations

from alembic import context

from vigil.db import baremetal_models as _baremetal_models  # noqa: F401 - in the metadata
from vigil.db.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
