"""Options of ``vigil supervisor`` ([supervisor]) and the monitor's side of it ([ha]
``service_restart_timeout``).

A host's supervisor runs the Vigil services listed in ``services``, in that order, each after
the services it ``requires``. The list is checked at start-up by :func:`validate` (an unknown
service, a requirement on a service not run on this host, or a cycle is refused with one line):
a supervisor that guessed an order could start the compute agent before the network agent it
needs, which is exactly what it exists to prevent.

``service_restart_timeout`` lives in [ha] because the monitor reads it (the supervisor never
does): it is how long a live host's supervisor gets to bring its compute agent back before the
monitor stops trusting it and fences the host.
"""

from __future__ import annotations

from oslo_config import cfg

from vigil.errors import ConfigError

# The services a supervisor knows how to run, with the ``vigil`` sub-command of each. The
# compute agent gets ``--host`` (the supervisor's host); the others read [DEFAULT] host.
KNOWN_SERVICES: dict[str, tuple[str, ...]] = {
    "compute": ("compute",),
    "conductor": ("conductor",),
    "scheduler": ("scheduler",),
    "api": ("api",),
}

SUPERVISOR_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "services",
        default=["compute"],
        help="The Vigil services this host's supervisor runs, in start order (stopped in the "
        "reverse order). Known: " + ", ".join(KNOWN_SERVICES) + ".",
    ),
    cfg.DictOpt(
        "requires",
        default={},
        help="Dependencies, as service:dep1+dep2 pairs, e.g. 'compute:conductor+scheduler'. "
        "A service starts only once all it requires run and pass their health check, and is "
        "stopped (and kept stopped) while any of them is down. Every name must be in "
        "'services'; a cycle is refused at start-up.",
    ),
    cfg.FloatOpt(
        "check_interval",
        default=0.5,
        min=0.05,
        help="Seconds between two health checks of the supervised services.",
    ),
    cfg.FloatOpt(
        "report_timeout",
        min=0.1,
        help="A running service whose own state reports have not got out for this many "
        "seconds fails its health check and is restarted (only while the supervisor's own "
        "reports do get out: when nobody can report, restarting agents would not help). "
        "Default: [DEFAULT] service_down_time.",
    ),
    cfg.FloatOpt(
        "start_timeout",
        default=30.0,
        min=0.1,
        help="Seconds a freshly started service has to send its first report before its health "
        "check can fail.",
    ),
    cfg.FloatOpt(
        "stop_timeout",
        default=10.0,
        min=0.1,
        help="Seconds a service has to exit after SIGTERM. One that does not is reported as "
        "'failed to stop' (never SIGKILLed and assumed gone: a process that ignores SIGTERM "
        "may be stuck in the kernel and still hold its instances' resources); the monitor then "
        "fences the host.",
    ),
    cfg.FloatOpt(
        "restart_backoff_base",
        default=0.5,
        min=0.01,
        help="Wait before restarting a failed service: base * 2^(failures-1) seconds, capped "
        "by restart_backoff_max; the count resets once it has run healthy for "
        "restart_backoff_max.",
    ),
    cfg.FloatOpt(
        "restart_backoff_max",
        default=30.0,
        min=0.01,
        help="Longest wait between two restarts of one service.",
    ),
]

HA_SUPERVISOR_OPTS: list[cfg.Opt] = [
    cfg.FloatOpt(
        "service_restart_timeout",
        default=30.0,
        min=0.1,
        help="Seconds the HA monitor gives a live host's supervisor to bring a DOWN compute "
        "agent back (host UP, compute DOWN) before it escalates to fence + evacuate. The "
        "supervisor reporting that it failed to stop the agent escalates at once. Hosts "
        "without a supervisor are recovered as before (detection_grace).",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [("supervisor", SUPERVISOR_OPTS), ("ha", HA_SUPERVISOR_OPTS)]


def parse_requires(services: list[str], requires: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Each listed service's requirements, validated (ConfigError, one line): known services,
    no duplicate, requirements among the listed services, no cycle."""
    seen: set[str] = set()
    for name in services:
        if name not in KNOWN_SERVICES:
            raise ConfigError(f"[supervisor] services: unknown service {name!r} (known: "
                              f"{', '.join(KNOWN_SERVICES)})")
        if name in seen:
            raise ConfigError(f"[supervisor] services: {name!r} is listed twice")
        seen.add(name)
    out: dict[str, tuple[str, ...]] = {name: () for name in services}
    for name, deps_text in requires.items():
        if name not in seen:
            raise ConfigError(f"[supervisor] requires: {name!r} is not in [supervisor] services")
        deps = tuple(d.strip() for d in deps_text.split("+") if d.strip())
        for dep in deps:
            if dep not in seen:
                raise ConfigError(f"[supervisor] requires: {name} needs {dep!r}, which is not "
                                  "in [supervisor] services")
        out[name] = deps
    cycle = find_cycle(out)
    if cycle:
        raise ConfigError("[supervisor] requires: dependency cycle " + " -> ".join(cycle))
    return out


def find_cycle(graph: dict[str, tuple[str, ...]]) -> list[str]:
    """One cycle of ``graph`` (service -> requirements) as a path that ends where it starts,
    or [] if there is none."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        colour[node] = grey
        stack.append(node)
        for dep in graph.get(node, ()):
            if colour.get(dep, black) == grey:
                return [*stack[stack.index(dep):], dep]
            if colour.get(dep) == white:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return []

    for node in graph:
        if colour[node] == white:
            found = visit(node)
            if found:
                return found
    return []


def validate(conf: cfg.ConfigOpts) -> dict[str, tuple[str, ...]]:
    """The [supervisor] service graph, or ConfigError (one line) when it cannot be run."""
    sup = conf.supervisor
    try:
        services, requires = list(sup.services), dict(sup.requires)
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(f"[supervisor] {str(exc).splitlines()[0]}") from exc
    if not services:
        raise ConfigError("[supervisor] services: empty (nothing to supervise)")
    return parse_requires(services, requires)
