"""Configuration: every option in one place, typed and validated at start-up.

Options keep nova.conf's names where Nova has them so an operator's knowledge carries over.
Unlike Nova, inconsistent values are refused with one clear line instead of being rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg

from vigil.conf import checker, libraries, messaging, opts
from vigil.errors import ConfigError
from vigil.objects.liveness import REPORT_JITTER, path_max_gap

__all__ = ["load", "make", "reread", "validate"]


def make() -> cfg.ConfigOpts:
    """A fresh ConfigOpts with every Vigil option registered (no module-level global)."""
    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(options, group=group)
    # oslo.messaging owns [DEFAULT] transport_url and its driver groups; register them here so
    # configuration files are validated before any transport is built. Its definitions come
    # without importing it (vigil.conf.messaging): a command that sends nothing does not pay.
    for group, options in messaging.list_opts():
        conf.register_opts(options, group=group)
    # On the ConfigOpts, not with oslo_messaging.set_transport_defaults(): that rewrites the
    # library's own option, which would then differ from the copy registered above.
    conf.set_default("control_exchange", "vigil")
    conf.set_default("transport_url", "fake://")
    # Nova's 60 s is long for an agent whose report is due every report_interval.
    conf.set_default("rpc_response_timeout", 10)
    return conf


def schema(conf: cfg.ConfigOpts) -> checker.Schema:
    """What a file given to ``conf`` may contain: every option registered on it (Vigil's and
    oslo.messaging's, :func:`make`) and the groups libraries register later (:mod:`.libraries`).

    The libraries' groups are looked up only when the files name something the registered
    options do not cover: importing oslo.policy and keystonemiddleware to list them costs more
    than the rest of most commands, and a file without their sections needs none of them.
    """
    result = checker.Schema()
    for group, options in opts.list_opts():
        result.add(group, options)
    for group, options in messaging.list_opts():
        result.add(group, options)
    found = list(checker.entries(checker.files_of(conf)))
    if all(result.knows(e) for e in found):
        return result
    auth_type = next((e.values[-1] for e in reversed(found) if e.name == "auth_type"
                      and e.section.lower() == libraries.KEYSTONE and e.values), None)
    groups, open_sections = libraries.list_opts(auth_type)
    for group, options in groups:
        result.add(group, options)
    result.open_sections |= open_sections
    return result


def load(args: Sequence[str] = (), *, default_files: Sequence[str] | None = None) -> cfg.ConfigOpts:
    """Parse ``--config-file``/``--config-dir`` style ``args`` and validate the result: unknown
    sections and options and bad values first (:mod:`vigil.conf.checker`), then the rules
    between values (:func:`validate`)."""
    conf = make()
    try:
        conf(
            list(args),
            project="vigil",
            default_config_files=list(default_files) if default_files is not None else None,
        )
    except cfg.Error as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc
    checker.check(conf, schema(conf))
    validate(conf)
    return conf


def reread(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """A fresh ConfigOpts from the files ``conf`` was loaded from, validated, every value read.

    What a SIGHUP checks before it lets ``conf.mutate_config_files()`` touch the running
    configuration: oslo.config converts values lazily, so a file that became invalid would
    otherwise be found out only when the daemon next reads the bad option. Raises ConfigError.
    """
    args: list[str] = []
    for path in conf.config_file or ():
        args += ["--config-file", path]
    for path in conf.config_dir or ():
        args += ["--config-dir", path]
    fresh = load(args, default_files=[])
    try:
        for name in fresh:
            value = fresh[name]
            if isinstance(value, cfg.ConfigOpts.GroupAttr):
                for opt in value:
                    value[opt]
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    return fresh


def validate(conf: cfg.ConfigOpts) -> None:
    """Refuse values that cannot work together."""
    try:
        report_interval = conf.report_interval
        down_time = conf.service_down_time
        driver = conf.servicegroup_driver
    except (cfg.Error, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    if down_time <= report_interval:
        raise ConfigError(
            f"service_down_time ({down_time:g}) must be greater than report_interval "
            f"({report_interval:g}): a service that reports on time would be declared down"
        )
    _validate_report_path(conf, report_interval, down_time)
    if driver not in opts.SERVICEGROUP_DRIVERS:
        raise ConfigError(
            f"unknown servicegroup_driver {driver!r}; choose one of "
            + ", ".join(opts.SERVICEGROUP_DRIVERS)
        )


def _validate_report_path(conf: cfg.ConfigOpts, report_interval: float, down_time: float) -> None:
    """Refuse intervals that leave the report path no room to prove a death.

    A stale heartbeat reads ``down`` only while the conductors' report path has not paused
    longer than :func:`~vigil.objects.liveness.path_max_gap`. The path is beaten about
    every ``probe_interval + coalesce_interval``; if that alone exceeds the tolerance, no
    service could ever be shown down (and the HA monitor would never act).
    """
    coalesce = conf.conductor.coalesce_interval
    beat = conf.conductor.probe_interval + coalesce
    gap = path_max_gap(down_time, report_interval, coalesce).total_seconds()
    if gap < beat:
        needed = 2 * (1 + REPORT_JITTER) * report_interval + 2 * coalesce + beat
        raise ConfigError(
            f"service_down_time ({down_time:g}) is too short: it must be at least "
            f"2.2 x report_interval + 2 x [conductor] coalesce_interval + one report-path "
            f"beat (probe_interval + coalesce_interval) = {needed:.3g} s, or no stale service "
            "could ever be proven down"
        )
