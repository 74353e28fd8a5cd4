"""Start-up validation of configuration files (vigil.conf.checker), through ``vigil.conf.load``:
what is refused (one line naming the file, section and option, with the closest valid name), and
what must stay accepted (Nova's old names, the groups libraries own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil import conf as vconf
from vigil.errors import ConfigError


def load_text(tmp_path: Path, text: str) -> object:
    path = tmp_path / "vigil.conf"
    path.write_text(text)
    return vconf.load(["--config-file", str(path)], default_files=[])


REFUSED = [
    # (file text, words the one line must contain)
    ("[database]\nconection = sqlite://\n",
     ["[database] conection", "unknown option", "did you mean 'connection'"]),
    ("[DEFAULT]\nrpc_response_timeout = 3.0\n",
     ["[DEFAULT] rpc_response_timeout = '3.0'", "integer"]),
    ("[databse]\nconnection = sqlite://\n", ["[databse]", "unknown section", "[database]"]),
    ("[DEFAULT]\nreport_interval = often\n", ["[DEFAULT] report_interval = 'often'", "float"]),
    ("[compute]\ncompute_driver = libvirt\n", ["[compute] compute_driver = 'libvirt'"]),
    ("[api]\nport = 99999\n", ["[api] port = '99999'"]),
    ("[scheduler]\nhost_subset_size = 0\n", ["[scheduler] host_subset_size = '0'"]),
    ("[DEFAULT]\ndebug = perhaps\n", ["[DEFAULT] debug = 'perhaps'"]),
    ("[oslo_messaging_rabbit]\nheartbeat_timeout_treshold = 5\n",
     ["did you mean 'heartbeat_timeout_threshold'"]),
    ("[oslo_policy]\nenforce_new_defaults = maybe\n",
     ["[oslo_policy] enforce_new_defaults = 'maybe'"]),
    ("[keystone_authtoken]\nauth_type = password\nauth_ur = http://k\n",
     ["[keystone_authtoken] auth_ur", "did you mean 'auth_url'"]),
    ("[filter_scheduler]\nhost_subset_size = x\n", ["[filter_scheduler] host_subset_size = 'x'"]),
    ("[DEFAULT]\nstate_path = $nowhere/v\n", ["[DEFAULT] state_path", "$reference"]),
    ("[DEFAULT]\nsome_option = 1\n[database]\nconection = x\n", ["(and 1 more)"]),
    ("no section = 1\n", ["vigil.conf"]),
]


@pytest.mark.parametrize(("text", "words"), REFUSED)
def test_refused_in_one_line_naming_file_section_and_option(
        tmp_path: Path, text: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "vigil.conf") in message
    for word in words:
        assert word in message


ACCEPTED = [
    # Nova's old places of the options Vigil moved: deprecated aliases.
    ("[filter_scheduler]\nhost_subset_size = 3\nenabled_filters = ComputeFilter\n",
     lambda c: (c.scheduler.host_subset_size, c.scheduler.enabled_filters)
     == (3, ["ComputeFilter"])),
    ("[DEFAULT]\ncompute_driver = process\ncpu_allocation_ratio = 2.0\n",
     lambda c: (c.compute.compute_driver, c.compute.cpu_allocation_ratio) == ("process", 2.0)),
    # Library groups: oslo.messaging's, oslo.policy's, keystonemiddleware's and its plugin's.
    ("[oslo_messaging_rabbit]\nheartbeat_timeout_threshold = 30\n"
     "[oslo_messaging_notifications]\ndriver = noop\n[oslo_policy]\npolicy_file = p.yaml\n"
     "[keystone_authtoken]\nauth_type = password\nauth_url = http://k\nusername = vigil\n"
     "password = x\nproject_name = service\nwww_authenticate_uri = http://k\n",
     lambda c: c.oslo_messaging_rabbit.heartbeat_timeout_threshold == 30),
    # Section names are case-insensitive (but DEFAULT), as oslo.config reads them.
    ("[Database]\nconnection = sqlite:////tmp/v.db\n",
     lambda c: c.database.connection == "sqlite:////tmp/v.db"),
    # An interpolation of a known option.
    ("[DEFAULT]\nstate_path = /tmp/v\n[api]\ntoken_file = $state_path/t.json\n",
     lambda c: c.api.token_file == "/tmp/v/t.json"),
    ("[DEFAULT]\n[empty_is_ok_only_if_known]\n", None),
]


@pytest.mark.parametrize(("text", "check"), ACCEPTED)
def test_accepted(tmp_path: Path, text: str, check: object) -> None:
    if check is None:  # an unknown section refuses even when empty
        with pytest.raises(ConfigError, match="unknown section"):
            load_text(tmp_path, text)
        return
    conf = load_text(tmp_path, text)
    assert check(conf)  # type: ignore[operator]


def test_config_dir_files_are_checked_too(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "10-db.conf").write_text("[database]\nconection = x\n")
    with pytest.raises(ConfigError, match=r"10-db\.conf: \[database\] conection"):
        vconf.load(["--config-dir", str(tmp_path / "d")], default_files=[])
