"""``vigil supervisor``: one per host, it runs the host's Vigil services and vouches for the host.

Pacemaker's ``pacemaker_remoted`` in Vigil's words. It starts the services of its host in
their declared order (:mod:`vigil.conf.supervisor`), health-checks them, restarts a failed one
with backoff, keeps a service's dependents stopped while the service is down, and stops them on
request, reporting a failure to stop instead of pretending. It is itself a member of the
``host`` group through the configured ServiceGroup driver: the monitor reads "the host is
reachable" from it, apart from "its compute agent is alive", and so tells a crashed agent (ask
the supervisor to restart it) from a dead host (fence and evacuate).

- :mod:`.units`: a supervised service as the supervisor sees it (a child process, or an
  in-process agent for ``vigil up``);
- :mod:`.core`: the state machine of the supervised services, one pass at a time;
- :mod:`.rpcapi`: the monitor's client (``restart_service``);
- :mod:`.daemon`: the process (membership, RPC server, signals).
"""
