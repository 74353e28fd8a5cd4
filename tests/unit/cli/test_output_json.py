"""vigil.cli.output.as_json: the ``plain`` fast path writes exactly what json.dumps writes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.cli.output import as_json

# What a plain record holds (ServiceView.to_dict): no floats. Text from the whole of Unicode,
# control characters and DEL included, so both branches (orjson, and json for what orjson
# would not escape) run.
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=12)
plain = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(plain)
def test_plain_is_json_dumps_byte_for_byte(data: Any) -> None:
    assert as_json(data, plain=True) == json.dumps(data, indent=2, sort_keys=False)


def test_non_ascii_and_del_fall_back_to_json_escapes() -> None:
    data = [{"disabled_reason": "maintenance \u00e9t\u00e9 \x7f", "n": None}]
    assert as_json(data, plain=True) == json.dumps(data, indent=2)
    assert "\\u00e9" in as_json(data, plain=True)


def test_empty_containers() -> None:
    for data in ([], {}, [[]], {"a": {}}, [{}], None):
        assert as_json(data, plain=True) == json.dumps(data, indent=2)
