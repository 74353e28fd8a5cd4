"""vigil.conf.messaging: the copy of oslo.messaging's options is the library's, option for
option (oslo.config refuses a second registration that differs), and a command that sends no
message does not import oslo.messaging to validate its configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import oslo_messaging
from oslo_messaging import rpc

from vigil import conf as vconf
from vigil.conf import messaging, messaging_opts

REGENERATE = ("regenerate the copy: .venv/bin/python -m vigil.conf.messaging "
              "> src/vigil/conf/messaging_opts.py")


def test_the_copy_equals_the_librarys_options() -> None:
    library = messaging.library_opts()
    copy = messaging_opts.list_opts()
    assert [g for g, _ in copy] == [g for g, _ in library], REGENERATE
    for (group, ours), (_, theirs) in zip(copy, library, strict=True):
        assert ours == theirs, f"[{group or 'DEFAULT'}] differs: {REGENERATE}"


def test_the_copy_is_of_the_installed_version() -> None:
    assert messaging.copy_matches(messaging_opts.VERSION), REGENERATE
    assert not messaging.copy_matches("0.0.0")


def test_the_generator_writes_the_copy() -> None:
    """The committed file is what the generator writes today (nobody edited it by hand)."""
    library = messaging.library_opts()
    source = messaging.render(library, messaging_opts.VERSION)
    assert source == Path(messaging_opts.__file__).read_text(), REGENERATE


def test_oslo_messaging_registers_its_options_again_on_a_vigil_conf() -> None:
    """What a daemon does when it builds a transport and an RPC client: no DuplicateOptError,
    and Vigil's defaults hold."""
    conf = vconf.load([], default_files=[])
    transport = oslo_messaging.get_rpc_transport(conf)
    notifications = oslo_messaging.get_notification_transport(conf)
    try:
        rpc.get_rpc_client(transport, oslo_messaging.Target(topic="t"))
        oslo_messaging.Notifier(notifications, publisher_id="test")
        # What the drivers (rabbit, kafka) and the RPC client's tracing and metrics register:
        for group, options in messaging.library_opts():
            conf.register_opts(options, group=group)
        assert conf.control_exchange == "vigil"
        assert conf.transport_url == "fake://"
    finally:
        transport.cleanup()
        notifications.cleanup()


def test_loading_the_configuration_imports_no_messaging_library(tmp_path: Path) -> None:
    path = tmp_path / "vigil.conf"
    path.write_text("[DEFAULT]\nrpc_response_timeout = 5\n[oslo_messaging_rabbit]\n"
                    "heartbeat_rate = 2\n")
    code = ("import sys; from vigil import conf; c = conf.load(['--config-file', sys.argv[1]], "
            "default_files=[]); assert c.oslo_messaging_rabbit.heartbeat_rate == 2; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('oslo_messaging', 'eventlet', 'kombu', 'oslo_policy', 'keystonemiddleware')))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True, env=dict(os.environ)).stdout
    assert out.strip() == "[]"
