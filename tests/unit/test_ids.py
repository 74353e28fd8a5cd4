"""vigil.ids: the one answer to "is this text a UUID, and what is its stored form?"."""

from __future__ import annotations

import uuid as uuidlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil import ids
from vigil.errors import InvalidInput, NotFound

STORED = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.mark.parametrize(("text", "stored"), [
    (STORED, STORED),
    (STORED.upper(), STORED),
    (STORED.replace("-", ""), STORED),
    ("1B4E28BA2FA1-11d2-883f-0016d3cca427", STORED),   # each dash optional
    ("{" + STORED + "}", None),                        # uuid.UUID accepts these; we do not
    ("urn:uuid:" + STORED, None),
    (" " + STORED, None),                              # callers strip
    ("1b4e28ba-2fa111d2-883f-0016d3cca42", None),      # 31 digits
    ("1b4e28b-a2fa1-11d2-883f-0016d3cca427", None),    # a dash out of place
    ("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", None),    # 36 characters and 4 dashes is not enough
    ("host-1", None),
    ("", None),
])
def test_parse_uuid(text: str, stored: str | None) -> None:
    assert ids.parse_uuid(text) == stored
    assert ids.is_uuid(text) == (stored is not None)


@given(st.uuids(), st.booleans(), st.booleans())
def test_every_uuid_in_either_spelling_is_stored_the_same(value: uuidlib.UUID, dashes: bool,
                                                          upper: bool) -> None:
    text = str(value) if dashes else value.hex
    assert ids.parse_uuid(text.upper() if upper else text) == str(value)


def test_parse_id_or_uuid() -> None:
    assert ids.parse_id_or_uuid(" 7 ", "service") == 7
    assert ids.parse_id_or_uuid(STORED.upper(), "service") == STORED
    with pytest.raises(NotFound, match="recovery 2147483648 not found"):
        ids.parse_id_or_uuid(str(ids.MAX_ID + 1), "recovery")
    assert ids.parse_id_or_uuid(str(ids.MAX_ID), "recovery") == ids.MAX_ID
    for bad in ("x!", "-1", "٣", "{" + STORED + "}"):
        with pytest.raises(InvalidInput, match="neither a recovery id nor a UUID"):
            ids.parse_id_or_uuid(bad, "recovery")
