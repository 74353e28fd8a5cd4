"""Column types and the database clock.

Every liveness timestamp is written *and* compared with the database's own clock
(:class:`utcnow`), so agents' and readers' wall clocks never enter the comparison.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

# MySQL/MariaDB DATETIME drops sub-second precision unless asked for it.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class utcnow(FunctionElement[Any]):
    """The database server's current UTC time, with microseconds, as a naive timestamp."""

    type = DateTime()
    inherit_cache = True
    name = "utcnow"


@compiles(utcnow)
def _utcnow_default(element: utcnow, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: Any, **kw: Any) -> str:
    # The same text layout SQLAlchemy stores for DateTime on SQLite (microseconds, 6 digits),
    # so values sort and compare correctly as strings and parse back exactly.
    return "STRFTIME('%Y-%m-%d %H:%M:%f000', 'now')"


@compiles(utcnow, "postgresql")
def _utcnow_pg(element: utcnow, compiler: Any, **kw: Any) -> str:
    # statement_timestamp(), not now(): a long transaction must not read an old "now".
    return "(statement_timestamp() AT TIME ZONE 'UTC')"


@compiles(utcnow, "mysql")
@compiles(utcnow, "mariadb")
def _utcnow_mysql(element: utcnow, compiler: Any, **kw: Any) -> str:
    return "UTC_TIMESTAMP(6)"
