"""Console tokens: made by the remote-consoles API, redeemed once by the console proxy.

Expiry is decided on one clock, the database's (read in the same transaction as the write or
the redemption), never the API's or the proxy's own. Redemption is a DELETE whose row count
says who won: two proxies given the same token cannot both open the console.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from vigil.db._query import now_in, translate_errors
from vigil.db.compute_models import ConsoleAuthToken
from vigil.objects.compute import ConsoleTarget


@translate_errors
def token_create(engine: Engine, token_hash: str, target: ConsoleTarget,
                 ttl: float) -> dt.datetime:
    """Store a token's hash for ``target``, valid ``ttl`` seconds; returns its expiry. Also
    drops expired tokens (a table that only grows would be the alternative)."""
    with engine.begin() as conn:
        now = now_in(conn)
        conn.execute(delete(ConsoleAuthToken).where(ConsoleAuthToken.expires <= now))
        expires = now + dt.timedelta(seconds=ttl)
        conn.execute(insert(ConsoleAuthToken).values(
            token_hash=token_hash, console_type=target.console_type,
            instance_uuid=target.instance_uuid, host=target.host,
            generation=target.generation, created_at=now, expires=expires))
    return expires


@translate_errors
def token_redeem(engine: Engine, token_hash: str) -> ConsoleTarget | None:
    """The target of a live token, which is used up by this call; None if there is no such
    token, it expired, or someone redeemed it first."""
    with engine.begin() as conn:
        now = now_in(conn)
        t = ConsoleAuthToken
        row = conn.execute(select(t.id, t.instance_uuid, t.host, t.generation, t.console_type,
                                  t.expires).where(t.token_hash == token_hash)).first()
        if row is None:
            return None
        gone = conn.execute(delete(ConsoleAuthToken).where(ConsoleAuthToken.id == row.id))
        if gone.rowcount != 1 or row.expires <= now:
            return None
        return ConsoleTarget(row.instance_uuid, row.host, row.generation, row.console_type)
