"""``vigil service`` as an OpenStack user expects it: ``-f table|json|value|csv|yaml``,
``-c COLUMN``, ``--long``, ``--version``; run as real processes."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.conftest import Api, make_conf
from tests.api.fake_keystone import FakeKeystone, service_entry
from vigil import launch, names
from vigil.api.server import ApiServer
from vigil.db import services as services_db

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def conf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    conf, path = make_conf(tmp, {})
    engine = launch.engine_from(conf, sync=True)
    for host in ("h1", "h2"):
        services_db.service_get_or_create(engine, host, names.COMPUTE_BINARY,
                                          names.COMPUTE_TOPIC)
    services_db.service_get_or_create(engine, "h1", names.CONDUCTOR_BINARY,
                                      names.CONDUCTOR_TOPIC)
    engine.dispose()
    return path


def vigil(*args: str, conf: Path | None = None, code: int = 0,
          env: dict[str, str] | None = None) -> str:
    argv = [sys.executable, "-m", "vigil.cli.main"]
    if conf is not None:
        argv += ["--config-file", str(conf)]
    done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path("src").resolve()),
                               **(env or {})})
    assert done.returncode == code, done.stderr
    return done.stdout if code == 0 else done.stderr


def test_version() -> None:
    assert vigil("--version").strip() == "vigil 0.1.0"


def test_value_and_columns(conf_path: Path) -> None:
    out = vigil("service", "list", "-f", "value", "-c", "Host", "-c", "Binary", "--binary",
                "vigil-compute", conf=conf_path)
    assert sorted(out.splitlines()) == ["h1 vigil-compute", "h2 vigil-compute"]


def test_csv_long(conf_path: Path) -> None:
    out = vigil("service", "list", "-f", "csv", "--long", "--host", "h1", conf=conf_path)
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][-4:] == ["UUID", "Topic", "Last Seen", "Report Count"]
    assert {r[1] for r in rows[1:]} == {"vigil-compute", "vigil-conductor"}
    assert {r[-3] for r in rows[1:]} == {"compute", "conductor"}


def test_json_and_yaml_keep_their_field_names(conf_path: Path) -> None:
    as_json = json.loads(vigil("service", "list", "-f", "json", "-c", "Host", "-c",
                               "disabled_reason", conf=conf_path))
    as_yaml = yaml.safe_load(vigil("service", "list", "-f", "yaml", "-c", "Host", "-c",
                                   "Disabled Reason", conf=conf_path))
    assert as_json == as_yaml
    assert {tuple(r) for r in as_json} == {("host", "disabled_reason")}
    assert len(as_json) == 3


def test_an_unknown_column_is_a_usage_error(conf_path: Path) -> None:
    err = vigil("service", "list", "-c", "Nope", conf=conf_path, code=2)
    assert "no column 'Nope'" in err and "Host" in err


# ---- Keystone logins: clouds.yaml, OS_* variables, password and token -------------------------
def test_keystone_logins(api_factory: Any, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    admin = ("ann", "ops", ["admin", "reader"])
    fake = FakeKeystone({"ks-admin": admin}, users={"ann": ("s3cret", "ops", admin[2])},
                        catalog=[service_entry("compute", f"http://127.0.0.1:{port}/v2.1")])
    with fake.running():
        api: Api = api_factory(
            {"auth_strategy": "keystone"},
            keystone_authtoken={
                "www_authenticate_uri": fake.base, "auth_url": fake.base,
                "auth_type": "password", "username": "vigil", "password": "secret",
                "project_name": "service", "user_domain_name": "Default",
                "project_domain_name": "Default", "interface": "internal",
                "http_request_max_retries": "0"})
        server = ApiServer(api.client.app, "127.0.0.1", port)
        server.start()
        try:
            common = {"auth_url": fake.base, "project_name": "ops",
                      "project_domain_name": "Default"}
            clouds = {"clouds": {
                "pw": {"auth": {**common, "username": "ann", "password": "s3cret",
                                "user_domain_name": "Default"},
                       "region_name": "RegionOne", "identity_api_version": 3},
                "tok": {"auth_type": "v3token", "auth": {**common, "token": "ks-admin"},
                        "region_name": "RegionOne", "identity_api_version": 3},
                "bad": {"auth": {**common, "username": "ann", "password": "wrong",
                                 "user_domain_name": "Default"},
                        "region_name": "RegionOne", "identity_api_version": 3},
            }}
            path = tmp_path / "clouds.yaml"
            path.write_text(yaml.safe_dump(clouds))
            env = {"HOME": str(tmp_path), "OS_CLIENT_CONFIG_FILE": str(path)}
            hosts = {"host1", "host2", "host3"}
            for name in ("pw", "tok"):
                out = vigil("service", "list", "-f", "value", "-c", "Host", "--binary",
                            "vigil-compute", "--os-cloud", name, conf=api.conf_path, env=env)
                assert set(out.split()) == hosts, name
            out = vigil("service", "list", "-f", "value", "-c", "Host", "--binary",
                        "vigil-compute", conf=api.conf_path,
                        env={"HOME": str(tmp_path), "OS_AUTH_URL": fake.base,
                             "OS_USERNAME": "ann", "OS_PASSWORD": "s3cret",
                             "OS_PROJECT_NAME": "ops", "OS_USER_DOMAIN_NAME": "Default",
                             "OS_PROJECT_DOMAIN_NAME": "Default",
                             "OS_IDENTITY_API_VERSION": "3", "OS_REGION_NAME": "RegionOne"})
            assert set(out.split()) == hosts
            err = vigil("service", "list", "--os-cloud", "bad", conf=api.conf_path, env=env,
                        code=1)
            assert "Keystone refused the login" in err and err.count("\n") == 1
            assert fake.logins >= 2
        finally:
            server.stop()
