"""Schema migrations through Alembic, driven from code (``vigil db sync``).

Only ``vigil db sync`` (and ``vigil up``, on its own embedded database) migrates; the daemons
check that the schema is current and refuse to start otherwise (:func:`require_current`).

Features add their tables as independent branches off the schema they need (compute, HA and
bare-metal each branch from their parent), so ``sync`` upgrades every head and a revision is
reported as the sorted set of heads.

Alembic (and every model module, :mod:`vigil.db.schema`) is imported by the functions that use
it: a process that only reads (``vigil service list``) imports this module through the assembly
(vigil.launch) and must not pay ~0.1 s for a migration it never runs (issue 12).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from vigil.db._query import translate_errors
from vigil.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = os.path.join(os.path.dirname(__file__), "migrations")


def _config(engine: Engine) -> Config:
    from alembic.config import Config

    from vigil.db import schema  # every model module: only a migration needs them all

    cfg = Config()
    cfg.set_main_option("script_location", _HERE)
    cfg.attributes["engine"] = engine
    cfg.attributes["metadata"] = schema.metadata  # every model module (env.py compares to it)
    return cfg


def current(engine: Engine) -> str | None:
    """The applied revisions ("a,b" when several branches), or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def head() -> str | None:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(_HERE).get_heads()
    return ",".join(sorted(heads)) if heads else None


def sync(engine: Engine) -> tuple[str | None, str | None]:
    """Upgrade every branch to its newest revision; idempotent. Returns (before, after)."""
    from alembic import command

    before = current(engine)
    command.upgrade(_config(engine), "heads")
    return before, current(engine)


def require_current(engine: Engine) -> None:
    """Refuse to start on a schema older than this code's (ConfigError, one line).

    Only ``vigil db sync`` migrates: a daemon that migrated at start-up (as the conductor did)
    would change the schema under the other daemons of a rolling upgrade, and several starting
    at once would race to run the same migration. A database *newer* than the code (revisions
    this code does not know: a later release ran ``db sync``) is accepted, so that old daemons
    keep running while the new ones roll out; migrations only ever add.
    """
    from alembic.script import ScriptDirectory

    applied = set(_translated_current(engine))
    wanted = set(ScriptDirectory(_HERE).get_heads())
    known = {rev.revision for rev in ScriptDirectory(_HERE).walk_revisions()}
    if wanted <= applied or applied - known:
        return
    have = ",".join(sorted(applied)) or "empty"
    raise ConfigError(f"the database schema is behind this Vigil (at {have}, needs "
                      f"{','.join(sorted(wanted))}): run 'vigil db sync' first")


@translate_errors
def _translated_current(engine: Engine) -> list[str]:
    """The applied heads, with the database's errors translated (DatabaseUnavailable)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return list(MigrationContext.configure(conn).get_current_heads())
