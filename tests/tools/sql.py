"""SQL helpers for tests that assert what a path costs, in statements sent to the server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Engine


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` sends while the block runs, in order (a list that grows
    as they are sent; clear it to start counting again)."""
    seen: list[str] = []

    def _before(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", _before)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", _before)
