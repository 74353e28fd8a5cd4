"""oslo.messaging's options, known without importing oslo.messaging.

Every Vigil process registers oslo.messaging's options (``[DEFAULT] transport_url``,
``rpc_response_timeout``, ``[oslo_messaging_rabbit]``...) so that its files are validated
before anything starts (:mod:`vigil.conf.checker`). Asking oslo.messaging for them
(``oslo_messaging.opts.list_opts()``) imports the whole library first: its server, oslo.service,
eventlet and kombu, about 0.3 s, which every command paid, ``vigil service list`` included,
though it sends no message.

So the definitions are copied, generated from the installed library by::

    .venv/bin/python -m vigil.conf.messaging > src/vigil/conf/messaging_opts.py

The copy must stay *equal* to the library's own options, not merely similar: when a process
builds a transport, oslo.messaging registers its options again on the same ConfigOpts, and
oslo.config refuses an option registered twice unless both are equal (``DuplicateOptError``).
Three things keep that true:

* the generator builds each option again from what it wrote and refuses to write a copy that
  differs (``_check``), and tests/unit/conf/test_messaging.py compares the copy with the
  library on every run;
* the copy is used only when the installed oslo.messaging is the version it was made from
  (:func:`copy_matches`, a look at the package's metadata directory, no import); any other
  version, or a layout without that directory, gets the library's own lists, as before;
* a process that has already imported oslo.messaging (every daemon) gets the library's own
  lists too: they are free there.

Vigil's default ``control_exchange`` (``vigil``) is set on its ConfigOpts
(:func:`vigil.conf.make`), not with ``oslo_messaging.set_transport_defaults``, which rewrites
the library's module-level option and would make the two definitions differ.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any

from oslo_config import cfg

__all__ = ["copy_matches", "list_opts"]

DIST = "oslo_messaging"

OptGroups = list[tuple[str | None, list[cfg.Opt]]]


def copy_matches(version: str) -> bool:
    """Whether the installed oslo.messaging is ``version``, read from the metadata directory
    beside the package (``oslo_messaging-18.3.1.dist-info``); False when it cannot be told."""
    spec = importlib.util.find_spec(DIST)
    if spec is None or not spec.submodule_search_locations:
        return False
    site = os.path.dirname(next(iter(spec.submodule_search_locations)))
    return os.path.isdir(os.path.join(site, f"{DIST}-{version}.dist-info"))


def list_opts() -> OptGroups:
    """oslo.messaging's groups and options, as :func:`library_opts` lists them: the copy when it
    is known equal, otherwise the library's own."""
    if DIST not in sys.modules:
        from vigil.conf import messaging_opts

        if copy_matches(messaging_opts.VERSION):
            return messaging_opts.list_opts()
    return library_opts()


def library_opts() -> OptGroups:
    """The library's own lists: its ``oslo.config.opts`` lister, plus the two groups its RPC
    client reads but registers only on the global ``cfg.CONF``, which Vigil does not use
    (``[oslo_messaging_tracing]``, ``[oslo_messaging_metrics]``)."""
    import oslo_messaging.opts
    from oslo_messaging._metrics import client as metrics
    from oslo_messaging._tracing import client as tracing

    groups: OptGroups = [(None if g == "DEFAULT" else g, list(o))
                         for g, o in oslo_messaging.opts.list_opts()]
    groups.append(("oslo_messaging_tracing", list(tracing.oslo_messaging_tracing)))
    groups.append(("oslo_messaging_metrics", list(metrics.oslo_messaging_metrics)))
    return groups


# ---- the generator ---------------------------------------------------------------------------
# Defaults oslo.messaging computes when it is imported ([oslo_messaging_rabbit]): written as the
# same expressions, by option name. The generator checks that the library's value is the
# expression's, so a library that computes one differently is noticed.
_DYNAMIC: dict[str, tuple[str, Any]] = {
    "hostname": ("socket.gethostname()", lambda: __import__("socket").gethostname()),
    "processname": ("os.path.basename(sys.argv[0])", lambda: os.path.basename(sys.argv[0])),
}
_COMMON = ("default", "help", "secret", "sample_default", "deprecated_for_removal",
           "deprecated_reason", "deprecated_since", "mutable", "advanced", "required", "short",
           "metavar", "positional")


def _kwargs(opt: cfg.Opt) -> dict[str, Any]:
    """The constructor arguments that rebuild ``opt`` (those that differ from a bare one)."""
    bare = type(opt)(opt.name)
    out = {k: getattr(opt, k) for k in _COMMON if getattr(opt, k) != getattr(bare, k)}
    if opt.dest != bare.dest:
        out["dest"] = opt.dest
    if opt.deprecated_opts:
        out["deprecated_opts"] = opt.deprecated_opts
    kind = opt.type
    for attr in ("min", "max"):
        if getattr(kind, attr, None) is not None:
            out[attr] = getattr(kind, attr)
    choices = getattr(kind, "choices", None)
    if choices:
        described = any(v is not None for v in choices.values())
        out["choices"] = list(choices.items()) if described else list(choices)
    return out


def _literal(opt: cfg.Opt, name: str, value: Any) -> str:
    if name == "default" and opt.name in _DYNAMIC:
        expr, compute = _DYNAMIC[opt.name]
        if value != compute():
            raise SystemExit(f"oslo.messaging's default of {opt.name} is no longer {expr}")
        return str(expr)
    if name == "deprecated_opts":
        return "[" + ", ".join(f"cfg.DeprecatedOpt({d.name!r}, group={d.group!r})"
                               for d in value) + "]"
    return repr(value)


def _check(generated: OptGroups, library: OptGroups) -> None:
    if len(generated) != len(library):
        raise SystemExit("the copy has another number of groups than oslo.messaging")
    for (group, opts), (lgroup, lopts) in zip(generated, library, strict=True):
        if group != lgroup or opts != lopts:
            raise SystemExit(f"the copy of [{lgroup or 'DEFAULT'}] differs from oslo.messaging's"
                             " (an argument the generator does not know): extend _kwargs")


def render(groups: OptGroups, version: str) -> str:
    """The source of :mod:`vigil.conf.messaging_opts` for ``groups``."""
    lines = [
        '"""oslo.messaging\'s options, copied (generated by ``python -m vigil.conf.messaging``;',
        'do not edit: :mod:`vigil.conf.messaging` says why and how it stays equal)."""',
        "",
        "# ruff: noqa: E501",
        "from __future__ import annotations",
        "",
        "import os",
        "import socket",
        "import sys",
        "",
        "from oslo_config import cfg",
        "",
        f"VERSION = {version!r}",
        "",
        "",
        "def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:",
        '    """Fresh options each call, like oslo.messaging\'s lister (callers may register them',
        '    on several ConfigOpts)."""',
        "    return [",
    ]
    for group, opts in groups:
        lines.append(f"        ({group!r}, [")
        for opt in opts:
            args = ", ".join(f"{k}={_literal(opt, k, v)}" for k, v in _kwargs(opt).items())
            lines.append(f"            cfg.{type(opt).__name__}({opt.name!r}, {args}),")
        lines.append("        ]),")
    lines += ["    ]", ""]
    # The expressions the module imports are used only by some versions' defaults.
    source = "\n".join(lines)
    for module in ("os", "socket", "sys"):
        if f"{module}." not in source.split("VERSION =", 1)[1]:
            source = source.replace(f"import {module}\n", "")
    return source


def main() -> int:
    from importlib.metadata import version

    library = library_opts()
    source = render(library, version("oslo.messaging"))
    namespace: dict[str, Any] = {}
    exec(compile(source, "messaging_opts.py", "exec"), namespace)
    _check(namespace["list_opts"](), library)
    sys.stdout.write(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
