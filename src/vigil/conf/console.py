"""Options of the serial console (``vigil serialproxy`` and the remote-consoles API).

Nova's names: ``[serial_console] enabled``/``base_url``/``serialproxy_host``/
``serialproxy_port``, ``[consoleauth] token_ttl`` and ``[console] allowed_origins``. The proxy
listens on loopback by default (Nova: 0.0.0.0), and the console is enabled by default: the
process driver's console is the instance's own standard input and output, there is no device
to configure.
"""

from __future__ import annotations

from oslo_config import cfg

SERIAL_OPTS: list[cfg.Opt] = [
    cfg.BoolOpt(
        "enabled",
        default=True,
        help="Whether the remote-consoles API hands out serial consoles (Nova's default is "
        "false; off, the API answers Nova's 400 'Unavailable console type serial.').",
    ),
    cfg.URIOpt(
        "base_url",
        default="ws://127.0.0.1:6083/",
        schemes=["ws", "wss"],
        help="URL the API gives clients for a console, with ?token=... appended: where "
        "'vigil serialproxy' is reached from the clients' side.",
    ),
    cfg.StrOpt(
        "serialproxy_host",
        default="127.0.0.1",
        help="Address 'vigil serialproxy' binds to (Nova: 0.0.0.0).",
    ),
    cfg.PortOpt(
        "serialproxy_port",
        default=6083,
        help="TCP port of 'vigil serialproxy' (Nova's 6083).",
    ),
]

CONSOLEAUTH_OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "token_ttl",
        default=600,
        min=1,
        help="Seconds a console token stays valid (Nova's default). A token is also used at "
        "most once, and only for the instance, host and ownership generation it was made for.",
    ),
]

CONSOLE_OPTS: list[cfg.Opt] = [
    cfg.ListOpt(
        "allowed_origins",
        default=[],
        help="Host names of the pages a browser may open a console from, besides the host the "
        "browser reached the proxy by (Nova's rule). A WebSocket whose Origin names another "
        "host, or whose scheme does not match base_url's, is refused (cross-site WebSocket "
        "hijacking); a client sending no Origin (not a browser) still needs its token.",
    ),
]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [("serial_console", SERIAL_OPTS), ("consoleauth", CONSOLEAUTH_OPTS),
            ("console", CONSOLE_OPTS)]
