"""Host high availability: detect a dead compute host, fence it, move its instances.

policy.py    pure decisions (what to do given what is observed), table-tested
election.py  the leader lease (database row, epoch as fencing token)
workflow.py  the per-host recovery: disable, fence, force down, evacuate, re-enable
monitor.py   the daemon loop around them (``vigil monitor``)
fence/       one fence agent per module, loaded by name
"""
