"""``vigil service list|set|delete``.

Through a Vigil API or against the database directly: :mod:`vigil.cli.target` says which (an
explicit endpoint, a Keystone login, the running ``vigil up``'s API, else the database).
:class:`vigil.api.client.RegistryClient` has the Registry methods used here, so the output is
the same either way.
"""

from __future__ import annotations

import argparse
from typing import Any

from oslo_config import cfg

from vigil import formats
from vigil.cli import output, target
from vigil.cli.output import add_format_options
from vigil.cli.target import add_api_options
from vigil.errors import InvalidInput
from vigil.objects.liveness import State
from vigil.registry import Registry, ServiceView, parse_ident

COLUMNS = ("ID", "Binary", "Host", "Zone", "Status", "State", "Updated At",
           "Disabled Reason", "Forced Down", "Host State", "Host Liveness")
# --long adds what an operator debugging liveness wants beside the summary.
LONG_COLUMNS = ("UUID", "Topic", "Last Seen", "Report Count")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    svc = sub.add_parser("service", help="list and manage services")
    ssub = svc.add_subparsers(dest="service_cmd", required=True, metavar="COMMAND")

    ls = ssub.add_parser("list", help="list services with their state")
    ls.add_argument("--host", help="only this host (exact match)")
    ls.add_argument("--binary", help="only this binary (exact match)")
    ls.add_argument("--long", action="store_true",
                    help="also the UUID, topic, last heartbeat and report count")
    add_format_options(ls)

    st = ssub.add_parser("set", help="enable/disable a service, force it down or up")
    st.add_argument("host")
    st.add_argument("binary")
    en = st.add_mutually_exclusive_group()
    en.add_argument("--enable", action="store_true", help="enable the service")
    en.add_argument("--disable", action="store_true", help="disable the service")
    st.add_argument("--reason", help="why it is disabled (with --disable)")
    down = st.add_mutually_exclusive_group()
    down.add_argument("--down", action="store_true", help="force the service down")
    down.add_argument("--up", action="store_true", help="clear a forced down")
    add_format_options(st)

    rm = ssub.add_parser("delete", help="delete a service by id or UUID")
    rm.add_argument("ident", metavar="ID_OR_UUID")
    for p in (ls, st, rm):
        add_api_options(p)
    svc.set_defaults(func=run)


def rows(views: list[ServiceView], *, long: bool = False) -> list[list[object]]:
    """The table's rows. Each distinct ``updated_at`` is spelt once, as the API's list does
    (a batch of heartbeats shares one database clock reading, vigil.api.routes.services)."""
    out: list[list[object]] = []
    stamp = formats.timestamp
    spelt: dict[Any, str | None] = {}
    value = {s: s.value for s in State}  # Enum.value is a property: once per state, not row
    down = State.DOWN
    for v in views:
        r = v.record
        # state_reason is only ever set on a DOWN service: asked only then.
        state = value[v.state] + (" (left)" if v.state is down and v.state_reason == "left"
                                  else "")
        at = r.updated_at
        if at in spelt:
            text = spelt[at]
        else:
            text = spelt[at] = stamp(at)
        row: list[object] = [r.id, r.binary, r.host, v.zone, v.status, state,
                             text, r.disabled_reason, r.forced_down,
                             v.host_state, value[v.host_liveness] if v.host_liveness else ""]
        if long:
            row += [r.uuid, r.topic, formats.timestamp(r.last_seen_up), r.report_count]
        out.append(row)
    return out


def records(views: list[ServiceView], *, long: bool = False) -> list[dict[str, Any]]:
    """The json/yaml records: ServiceView.to_dict, plus the --long fields."""
    if not long:
        return [v.to_dict() for v in views]
    return [{**v.to_dict(), "topic": v.record.topic,
             "last_seen": formats.timestamp(v.record.last_seen_up),
             "report_count": v.record.report_count} for v in views]


def render(views: list[ServiceView], fmt: str, columns: list[str] | None = None, *,
           long: bool = False) -> str:
    headers = COLUMNS + LONG_COLUMNS if long else COLUMNS
    # Only what the format prints: each costs about 20 ms at 10,000 services (issue 12).
    records_fmt = fmt in ("json", "yaml")
    # The records hold str, int, bool and None only (ServiceView.to_dict): plain JSON.
    return output.render(fmt, headers, [] if records_fmt else rows(views, long=long),
                         records(views, long=long) if records_fmt else [], columns or (),
                         plain=True)


def show(views: list[ServiceView], args: argparse.Namespace) -> str:
    return render(views, args.format, args.columns, long=bool(getattr(args, "long", False)))


def api_target(args: argparse.Namespace, conf: cfg.ConfigOpts) -> tuple[str, str] | None:
    """(endpoint, token) when the command should go through the API, else None
    (:func:`vigil.cli.target.resolve`)."""
    return target.resolve(args, conf).api


def run(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    from vigil import launch

    api = api_target(args, conf)
    if api is None:
        return run_with(args, launch.registry_from(conf))
    from vigil.api.client import RegistryClient

    with RegistryClient(*api) as client:
        return run_with(args, client)


def run_with(args: argparse.Namespace, registry: Registry | Any) -> int:
    if args.service_cmd == "list":
        print(show(registry.list(host=args.host, binary=args.binary), args))
        return 0
    if args.service_cmd == "set":
        if args.reason is not None and not args.disable:
            raise InvalidInput("--reason is only allowed with --disable")
        enabled = True if args.enable else False if args.disable else None
        forced = True if args.down else False if args.up else None
        if enabled is None and forced is None:
            raise InvalidInput("nothing to change: give --enable/--disable and/or --down/--up")
        record = registry.find(args.host, args.binary)
        view = registry.update(record, enabled=enabled, disabled_reason=args.reason,
                               forced_down=forced)
        print(show([view], args))
        return 0
    if args.service_cmd == "delete":
        record = registry.delete(parse_ident(args.ident))
        print(f"deleted service {record.id} ({record.binary} on {record.host})")
        return 0
    raise AssertionError(args.service_cmd)
