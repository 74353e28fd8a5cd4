"""Request validation against Nova's JSON schemas, with Nova's error messages.

Nova validates bodies and query strings with JSON Schema per microversion and answers 400
``Invalid input for field/attribute <path>. Value: <value>. <reason>``. The schemas used here
are small (objects of strings, enums and Nova's string-or-bool booleans), so this module
implements exactly that subset instead of adding a JSON Schema engine to the runtime: every
keyword it meets is one it checks, and an unknown keyword is a programming error caught by the
unit tests. The same dicts are published in the OpenAPI document, so what is documented is what
is enforced.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from vigil import ids
from vigil.api import bodyguard
from vigil.api.errors import Fault

Schema = dict[str, Any]

_KNOWN = {"type", "enum", "minLength", "maxLength", "pattern", "properties", "required",
          "additionalProperties", "format", "items", "description"}

# Nova's parameter_types.boolean: JSON booleans and these strings.
BOOLEAN_STRINGS_TRUE = ("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes")
BOOLEAN_STRINGS_FALSE = ("False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no")
BOOLEAN: Schema = {"type": ["boolean", "string"],
                   "enum": [True, *BOOLEAN_STRINGS_TRUE, False, *BOOLEAN_STRINGS_FALSE]}
# Nova's parameter_types.fqdn (the service "host" field).
FQDN: Schema = {"type": "string", "minLength": 1, "maxLength": 255,
                "pattern": "^[a-zA-Z0-9-._]*$"}
# Names and reasons: no control characters (C0, DEL, C1: NUL, CR/LF, ANSI ESC...), as Nova's
# name patterns exclude the Cc category. They would forge log lines and terminal output.
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"
# Nova's parameter_types.common_query_param: a query parameter may be repeated.
COMMON_QUERY_PARAM: Schema = {"type": "array", "items": {"type": "string"}}

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def to_bool(value: bool | str) -> bool:
    """A value that passed :data:`BOOLEAN` as a bool."""
    if isinstance(value, bool):
        return value
    return value in BOOLEAN_STRINGS_TRUE


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _JSON_TYPES[name])


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else json.dumps(value) \
        if isinstance(value, bool | None) else str(value)


def _fail(path: str, value: Any, reason: str) -> Fault:
    return Fault(400, f"Invalid input for field/attribute {path}. Value: {value}. {reason}")


def check(schema: Schema, value: Any, path: str = "") -> None:
    """Raise a 400 Fault with Nova's message at the first violation."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise AssertionError(f"unsupported schema keywords {sorted(unknown)}")
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in names):
            shown = names[0] if len(names) == 1 else names
            raise _fail(path, value, f"{_fmt(value)} is not of type {shown!r}")
    if "enum" in schema and not any(
        value == e and type(value) is type(e) for e in schema["enum"]
    ):
        raise _fail(path, value, f"{_fmt(value)} is not one of {schema['enum']!r}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            reason = ("should be non-empty" if schema["minLength"] == 1
                      else "is too short")
            raise _fail(path, value, f"{_fmt(value)} {reason}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise _fail(path, value, f"{_fmt(value)} is too long")
        if "pattern" in schema and _pattern(schema["pattern"]).search(value) is None:
            raise _fail(path, value, f"{_fmt(value)} does not match {schema['pattern']!r}")
        if schema.get("format") == "uuid" and not is_uuid_like(value):
            raise _fail(path, value, f"{_fmt(value)} is not a 'uuid'")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(schema["items"], item, f"{path}/{i}" if path else str(i))
    if isinstance(value, dict):
        props: Mapping[str, Schema] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise _fail(path, value, f"{name!r} is a required property")
        if schema.get("additionalProperties", True) is False:
            extra = sorted(k for k in value if k not in props)
            if extra:
                listed = ", ".join(repr(k) for k in extra)
                verb = "was" if len(extra) == 1 else "were"
                raise _fail(path, value,
                            f"Additional properties are not allowed ({listed} {verb} unexpected)")
        for name, sub in props.items():
            if name in value:
                check(sub, value[name], f"{path}/{name}" if path else name)


@functools.lru_cache(maxsize=64)
def _pattern(pattern: str) -> re.Pattern[str]:
    """A schema pattern with JSON Schema's meaning: a final ``$`` is the end of the string.

    Python's ``$`` also matches before a trailing newline, so ``^[a-z]*$`` would let
    ``"host1\\n"`` through a pattern written to refuse it.
    """
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return re.compile(pattern)


_ASCII_INT = re.compile(r"-?[0-9]{1,30}\Z")


def ascii_int(text: str) -> int | None:
    """``text`` as an integer when it is one written in ASCII digits (an optional minus, at
    most 30 digits), else None.

    ``str.isdigit`` and ``int`` accept other scripts' digits (Arabic-Indic one, U+0661, is 1;
    ``"²"`` passes ``isdigit`` and fails ``int``) and ``int`` accepts ``" 1_0 "``: an id must
    be spelt one way.
    The length bound keeps ``int`` far from its 4,300-digit limit; callers bound the value.
    """
    return int(text) if _ASCII_INT.match(text) else None


def is_uuid_like(text: str) -> bool:
    """A UUID in any accepted spelling (:mod:`vigil.ids`, the one rule)."""
    return ids.is_uuid(text)


# Nova's (oslo.middleware sizelimit) default max_request_body_size.
MAX_BODY = 114688
JSON_TYPES = ("application/json", "application/vnd.openstack.compute+json")


async def read_json_body(request: Request) -> Any:
    """The request's JSON body, refusing a non-JSON Content-Type (415) and a body larger than
    :data:`MAX_BODY` (413) before reading more of it than that."""
    ctype = request.headers.get("content-type")
    if ctype is not None and ctype.split(";")[0].strip().lower() not in JSON_TYPES:
        raise Fault(415, f"Invalid content type {ctype}.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Fault(413, "Request is too large.")
        chunks.append(chunk)
    return parse_json_body(b"".join(chunks))


def parse_json_body(raw: bytes) -> Any:
    """The decoded body, or Nova's 400 for an empty, malformed or hostile one
    (:mod:`vigil.api.bodyguard`)."""
    if not raw.strip():
        raise Fault(400, "The request body is required.")
    return bodyguard.decode(raw)


def query_dict(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Query parameters as Nova's query schemas see them: every name maps to a list."""
    out: dict[str, list[str]] = {}
    for key, value in items:
        out.setdefault(key, []).append(value)
    return out
