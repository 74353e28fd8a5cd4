"""vigil.api.deps.json_response: json.dumps's compact form, integer keys as strings."""

from __future__ import annotations

import json

from vigil.api.deps import json_response


def test_str_keys_compact_as_json_wrote_them() -> None:
    body = {"services": [{"id": 1, "host": "h", "disabled_reason": None, "up": True}]}
    assert json_response(body).body == json.dumps(body, separators=(",", ":")).encode()


def test_integer_keys_are_written_as_strings() -> None:
    body = {"by_status": {1: "a", "x": {2: 3}}}
    assert json_response(body).body == b'{"by_status":{"1":"a","x":{"2":3}}}'
