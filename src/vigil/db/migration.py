"""Schema migrations through Alembic, driven from code (``vigil db sync``).

Features add their tables as independent branches off the schema they need (compute, HA and
bare-metal each branch from their parent), so ``sync`` upgrades every head and a revision is
reported as the sorted set of heads.
"""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from vigil.db import schema

_HERE = os.path.join(os.path.dirname(__file__), "migrations")


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _HERE)
    cfg.attributes["engine"] = engine
    cfg.attributes["metadata"] = schema.metadata  # every model module (env.py compares to it)
    return cfg


def current(engine: Engine) -> str | None:
    """The applied revisions ("a,b" when several branches), or None for an empty database."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def head() -> str | None:
    heads = ScriptDirectory(_HERE).get_heads()
    return ",".join(sorted(heads)) if heads else None


def sync(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade every branch to its newest revision; idempotent. Returns (before, after)."""
    before = current(engine)
    command.upgrade(_config(engine), "heads")
    return before, current(engine)
