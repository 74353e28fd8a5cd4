"""What a JSON request body may hold, checked so that hostile bodies are a 400, never a 500.

Every body the API reads goes through :func:`vigil.api.validation.parse_json_body`, which
calls :func:`decode` here. It runs inside a handler, so after authentication (the
``ComputeMiddleware``), as in Nova: an anonymous caller learns nothing about bodies; a reader
token with a hostile body gets the same 400 as an admin, before any policy check or work.

The hazards, each once seen as a 500:

* **Deep nesting.** ``[[[[...]]]]`` about 1,000 levels deep (2.4 KB) makes Python's JSON
  decoder raise ``RecursionError``. :func:`nesting_depth` counts brackets outside strings on
  the raw bytes *before* decoding, so the decoder never recurses deeply. No body Vigil or Nova
  accepts is deeper than a handful of levels; :data:`MAX_DEPTH` leaves a wide margin.
* **Lone surrogates.** ``"\\ud800"`` is valid JSON but no valid Unicode: the database driver
  fails to bind it. Refused anywhere in the body, keys included.
* **Non-finite numbers.** ``NaN``/``Infinity`` are not JSON; Python's decoder accepts them.
* **Huge integers.** Python refuses to convert more than 4,300 digits (CVE-2020-10735); the
  decoder raises ``ValueError``, answered 400 here like any malformed body.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vigil.api.errors import Fault

# Deeper than any body the API accepts (Nova's deepest is about 4) by a wide margin, and far
# below the depth where the decoder recurses into trouble.
MAX_DEPTH = 32

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw`` (brackets inside strings do not
    count). Linear in the body's size; it does not decode anything."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for ch in brackets:
        if ch in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break  # enough to refuse; the rest need not be read
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(raw: bytes) -> Any:
    """The decoded body, or a 400 Fault in Nova's body for any of the hazards above."""
    if nesting_depth(raw) > MAX_DEPTH:
        raise Fault(400, f"Malformed request body: nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError cannot happen below MAX_DEPTH; caught all the same, as the last line.
        raise Fault(400, "Malformed request body") from exc
    _check_strings(value)
    return value


def _check_strings(value: Any) -> None:
    """Refuse a string (or key) that is not valid Unicode: a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts: list[str] = [item]
        elif isinstance(item, dict):
            texts = [k for k in item if isinstance(k, str)]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Fault(400, "Malformed request body: a string holds a lone surrogate "
                                 f"({text.encode('utf-8', 'backslashreplace').decode()!r})"
                            ) from exc
