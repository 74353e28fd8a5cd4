"""ServiceGroup: which services are alive.

``ServiceGroup`` is the facade; ``liveness`` holds the pure rules; ``drivers`` the backends.
"""

from vigil.objects.liveness import State
from vigil.servicegroup.api import ServiceGroup

__all__ = ["ServiceGroup", "State"]
