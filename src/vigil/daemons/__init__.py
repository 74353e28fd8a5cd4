"""The long-running processes, each built from the composition root (:mod:`vigil.launch`) and
run until SIGTERM/SIGINT, one module per kind of process so that a process imports only what
it runs (``vigil supervisor`` neither the conductor nor oslo.service; ``vigil compute`` neither
FastAPI nor the fence agents): :mod:`.control` ``vigil conductor``, ``compute``, ``scheduler``
and the control plane ``vigil up`` runs in one process; :mod:`.http` ``vigil api``,
``metadata`` and ``serialproxy``; :mod:`.monitor` ``vigil monitor``; :mod:`.supervisor`
``vigil supervisor``.

The packages' ``daemon.py`` modules hold what their process is made of (the units a supervisor
runs, the metadata app, the console proxy); their ``run_*`` live here, so that no domain
package imports the composition root.
"""
