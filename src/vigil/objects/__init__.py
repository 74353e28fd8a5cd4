"""The domain's words: records, state vocabularies and the pure liveness rules.

Nova's ``nova/objects`` idea, without its remoting: plain dataclasses (with one JSON codec,
:mod:`.primitive`) and enums, shared by every floor above. This package imports nothing from
Vigil but :mod:`vigil.errors` and :mod:`vigil.clock`, and nothing that opens a database, so an
agent, a liveness driver or a pure policy can speak of instances, recoveries and services
without standing on the persistence layer (an import-linter contract in pyproject.toml checks
both).

* :mod:`.services`: ``ServiceRecord``, ``Snapshot``, ``ReportVerdict``;
* :mod:`.liveness`: ``State`` and the pure rules that decide it;
* :mod:`.compute`: instance states, node, flavor and instance records, start grants;
* :mod:`.ha`: recovery phases and statuses, evacuation status, the leader's token, HA records;
* :mod:`.baremetal`: nodes, records, the one shape of an ownership move, the ring's picture.

Every state vocabulary is an enum whose docstring says what the caller must do in each state
(kazoo's ``KazooState``); the values are the strings and numbers the database and the wire
always held.
"""
