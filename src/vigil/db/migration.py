"""Schema migrations through Alembic, driven from code (``vigil db sync``)."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

_HERE = os.path.join(os.path.dirname(__file__), "migrations")


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _HERE)
    cfg.attributes["engine"] = engine
    return cfg


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str | None:
    return ScriptDirectory(_HERE).get_current_head()


def sync(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade to the newest schema; idempotent. Returns (before, after) revisions."""
    before = current(engine)
    command.upgrade(_config(engine), "head")
    return before, current(engine)
