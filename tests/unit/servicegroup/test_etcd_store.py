"""The etcd reader's "is this a new store?" rule, as a table (the driver applies it per reply)."""

from __future__ import annotations

import pytest

from vigil.servicegroup.drivers.etcd import StoreMark, is_new_store

BEFORE = StoreMark(cluster_id="c1", member_id="m1", revision=100)


@pytest.mark.parametrize(("after", "new", "why"), [
    (StoreMark("c1", "m1", 100), False, "same member, nothing written"),
    (StoreMark("c1", "m1", 150), False, "same member, written since"),
    (StoreMark("c1", "m2", 150), False, "another member of the cluster (a balancer, a failover)"),
    (StoreMark("c1", "m2", 100), False, "another member, nothing written"),
    (StoreMark("c1", "m1", 3), True, "same ids, revision back: rebuilt from empty directories"),
    (StoreMark("c1", "m2", 3), True, "revision back from another member: the data went away"),
    (StoreMark("c2", "m1", 500), True, "another cluster, whatever its revision"),
])
def test_new_store(after: StoreMark, new: bool, why: str) -> None:
    assert is_new_store(BEFORE, after) is new, why


def test_the_first_reply_is_no_change() -> None:
    assert not is_new_store(None, StoreMark("c1", "m1", 1))
