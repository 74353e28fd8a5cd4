"""The recovery's transitions, as data.

:func:`vigil.ha.policy.next_step` says *which* step comes next; this table says what each step
may *write*: from which recorded phases, to which phase and status, under which timeline event
and dedup key. :class:`vigil.ha.store.RecoveryStore` looks every write up here, and
:func:`vigil.db.ha.recoveries.apply_transition` checks it inside the same transaction as the
fencing-token guard, so a step asked out of order, or from a phase another leader already
left, writes nothing. (Its own module: the table is one concept, the decisions in
:mod:`vigil.ha.policy` another.)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from vigil.errors import IllegalTransition
from vigil.objects.ha import Phase, RecoveryStatus


class Transition(enum.Enum):
    """A named change of a recovery's record. The value is the timeline event it writes (None:
    it writes no event)."""

    DISABLE = "disabled"
    CANCEL = "cancelled"
    FENCE_STARTED = "fence_started"
    FENCE_FAILED = "fence_failed"
    FENCED = "fenced"
    FORCE_DOWN = "forced_down"
    HOLD = None                    # record (or clear) why the recovery waits
    NOT_EVACUATED = "not_evacuated"
    EVACUATED = "evacuated"
    RE_ENABLE = "re_enabled"


@dataclass(frozen=True)
class Rule:
    """What one :class:`Transition` may do.

    ``sources``: the phases it may start from (the recovery must also be open). ``target``:
    the phase it moves to (None: the phase stays). ``status``: the status it sets (None: kept).
    ``closes``: the recovery ends (its host may have a new one). ``key``: the dedup key of its
    event, a template over ``id`` (the recovery's), ``attempt`` and ``instance``; a step
    recorded once raises :class:`~vigil.errors.AlreadyRecorded` the second time.
    """

    sources: frozenset[Phase]
    target: Phase | None = None
    status: RecoveryStatus | None = None
    closes: bool = False
    key: str | None = None

    def allows(self, phase: Phase, *, open: bool = True) -> bool:
        return open and phase in self.sources

    def dedup_key(self, recovery_id: int, *, attempt: int | None = None,
                  instance: str | None = None) -> str | None:
        if self.key is None:
            return None
        return self.key.format(id=recovery_id, attempt=attempt, instance=instance)


def _from(*phases: Phase) -> frozenset[Phase]:
    return frozenset(phases)


TRANSITIONS: Mapping[Transition, Rule] = {
    Transition.DISABLE: Rule(_from(Phase.DETECTED), Phase.DISABLED, key="{id}:disabled"),
    # Only before the fence: after it, the only way back is the host returning (RE_ENABLE).
    Transition.CANCEL: Rule(_from(Phase.DETECTED, Phase.DISABLED),
                            status=RecoveryStatus.CANCELLED, closes=True, key="{id}:cancelled"),
    Transition.FENCE_STARTED: Rule(_from(Phase.DISABLED), key="{id}:fence_started:{attempt}"),
    Transition.FENCE_FAILED: Rule(_from(Phase.DISABLED), key="{id}:fence_failed:{attempt}"),
    Transition.FENCED: Rule(_from(Phase.DISABLED), Phase.FENCED, key="{id}:fenced"),
    Transition.FORCE_DOWN: Rule(_from(Phase.FENCED), Phase.FORCED_DOWN, key="{id}:forced_down"),
    Transition.HOLD: Rule(_from(Phase.DISABLED, Phase.FORCED_DOWN)),
    Transition.NOT_EVACUATED: Rule(_from(Phase.FORCED_DOWN), key="{id}:stay:{instance}"),
    Transition.EVACUATED: Rule(_from(Phase.FORCED_DOWN), Phase.EVACUATED,
                               status=RecoveryStatus.WAITING, key="{id}:evacuated"),
    Transition.RE_ENABLE: Rule(_from(Phase.EVACUATED), Phase.COMPLETED,
                               status=RecoveryStatus.DONE, closes=True, key="{id}:re_enabled"),
}


def allowed(phase: Phase, *, open: bool = True) -> frozenset[Transition]:
    """Every transition a recovery in ``phase`` (open or not) may take."""
    return frozenset(t for t, rule in TRANSITIONS.items() if rule.allows(phase, open=open))


def transition(phase: Phase, step: Transition, *, open: bool = True) -> Rule:
    """The rule of ``step`` from ``phase``; IllegalTransition if the table does not allow it."""
    rule = TRANSITIONS[step]
    if not rule.allows(phase, open=open):
        raise IllegalTransition(f"{step.name.lower()} is not allowed from phase {phase.value}"
                                + ("" if open else " (closed)"))
    return rule
