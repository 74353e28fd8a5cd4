"""Identifiers typed by people and clients: "is this text a UUID, and what is its stored form?"

One rule, for every place that reads an identifier (the REST API, the CLI, the domain's
look-ups by "UUID or name"). Seven copies disagreed before: some accepted ``urn:uuid:``
prefixes and braces (``uuid.UUID`` does), some only 36 characters with four dashes, hex or
not. The rule kept is the one the API has always documented and Nova's clients send:

- 32 hexadecimal digits, any case, with or without the dashes of the 8-4-4-4-12 layout
  (each dash optional, none elsewhere): ``1B4E28BA2FA1-11d2-883f-0016d3cca427`` is one;
- nothing around them: no braces, no ``urn:uuid:``, no inner spaces (surrounding spaces are
  the caller's to strip, as every caller does for ids typed on a command line);
- the stored form is lower case and dashed (``str(uuid.UUID(...))``), which is what every
  ``uuid`` column holds, so a look-up by any spelling finds the row.

A text that is not a UUID is a name (a server's, a node's, a hypervisor's host) to its caller:
hence ``None`` rather than an error from :func:`parse_uuid`.
"""

from __future__ import annotations

import re
import uuid as uuidlib

from vigil.errors import InvalidInput, NotFound

_UUID = re.compile(r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}")

# The largest integer id a row can have (a signed 32-bit column on every engine): a larger one
# names nothing, and must not reach the database (PostgreSQL refuses it as out of range).
MAX_ID = 2**31 - 1


def parse_uuid(text: str) -> str | None:
    """The stored form of ``text`` if it is spelled as a UUID (module docstring), else None."""
    if not isinstance(text, str) or _UUID.fullmatch(text) is None:
        return None
    return str(uuidlib.UUID(text))


def is_uuid(text: str) -> bool:
    return parse_uuid(text) is not None


def parse_id_or_uuid(text: str, noun: str) -> int | str:
    """An integer id or a UUID's stored form, for look-ups that take either (``vigil service
    delete 7``, ``vigil recovery show <uuid>``).

    InvalidInput for anything else; NotFound for an integer no row can have.
    """
    text = text.strip()
    if text.isascii() and text.isdigit():
        # (A length check first: int() refuses more than 4,300 digits, and no id has 11.)
        value = int(text) if len(text) <= 10 else MAX_ID + 1
        if value > MAX_ID:
            raise NotFound(f"{noun} {text} not found")
        return value
    uuid = parse_uuid(text)
    if uuid is None:
        raise InvalidInput(f"{text!r} is neither a {noun} id nor a UUID")
    return uuid
