"""vigil.names: the one mapping between Vigil's binaries and Nova's, table-tested."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil import names
from vigil.names import NOVA_NAMES, VIGIL_NAMES


@pytest.mark.parametrize(("stored", "nova", "vigil"), [
    ("vigil-compute", "nova-compute", "vigil-compute"),
    ("vigil-conductor", "nova-conductor", "vigil-conductor"),
    ("vigil-scheduler", "nova-scheduler", "vigil-scheduler"),
    ("vigil-watcher", None, "vigil-watcher"),        # no Nova counterpart: hidden from Nova
    ("other-agent", "other-agent", "other-agent"),    # not Vigil's: passes through
    ("nova-compute", None, "nova-compute"),           # would collide with vigil-compute's
])
def test_outward(stored: str, nova: str | None, vigil: str) -> None:
    assert NOVA_NAMES.outward(stored) == nova
    assert VIGIL_NAMES.outward(stored) == vigil


@pytest.mark.parametrize(("asked", "nova", "vigil"), [
    ("nova-compute", "vigil-compute", "nova-compute"),
    ("nova-scheduler", "vigil-scheduler", "nova-scheduler"),
    ("vigil-compute", None, "vigil-compute"),  # Vigil's name while Nova's are spoken
    ("other-agent", "other-agent", "other-agent"),
])
def test_inward(asked: str, nova: str | None, vigil: str) -> None:
    assert NOVA_NAMES.inward(asked) == nova
    assert VIGIL_NAMES.inward(asked) == vigil


@given(st.sampled_from([*names.TO_NOVA, *names.FROM_NOVA, "vigil-x", "other"])
       | st.text(max_size=20),
       st.booleans())
def test_a_shown_name_given_back_names_the_same_service(stored: str, nova: bool) -> None:
    spoken = names.for_api(nova)
    shown = spoken.outward(stored)
    if shown is not None:
        assert spoken.inward(shown) == stored


def test_the_compute_name_in_messages() -> None:
    assert (NOVA_NAMES.compute, VIGIL_NAMES.compute) == ("nova-compute", "vigil-compute")
