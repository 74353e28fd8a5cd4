"""ServiceGroup: which services are alive.

``ServiceGroup`` is the facade; ``liveness`` holds the pure rules; ``drivers`` the backends.
"""

from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.liveness import State

__all__ = ["ServiceGroup", "State"]
