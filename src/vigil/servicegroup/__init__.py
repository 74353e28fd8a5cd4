"""ServiceGroup: which services are alive.

``ServiceGroup`` is the facade (the policy); ``drivers`` the backends (the mechanism). The pure
rules both apply live below them, with the domain's other words, in :mod:`vigil.objects.liveness`.
"""

from vigil.objects.liveness import SessionState, State
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.membership import Member, Membership

__all__ = ["Member", "Membership", "ServiceGroup", "SessionState", "State"]
