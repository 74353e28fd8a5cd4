"""The API deployed as an operator deploys it: a real gunicorn with two uvicorn workers serving
``vigil.api.wsgi:application``, and ``vigil api --workers 2``. Through each, the os-services
list and update, answers from both workers, the request id on every answer and in the access
log with the user, ``/healthcheck`` (drain file included) and ``/metrics``."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from vigil import conf as vconf
from vigil import launch
from vigil.db import services as services_db

from .conftest import TOKENS, write_tokens

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ADMIN = {"X-Auth-Token": "admin-token"}
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    log: Path
    drain: Path
    proc: subprocess.Popen[bytes]

    def access_lines(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines()
                if "vigil.api.access" in line]


def wait_healthy(served: Served, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert served.proc.poll() is None, served.log.read_text()
        try:
            if httpx.get(f"{served.url}/healthcheck", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not healthy in {timeout}s:\n{served.log.read_text()}")


@pytest.fixture(scope="module", params=["gunicorn", "vigil-api-workers"])
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server per launcher for the module (each start costs seconds of CPU)."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param == "gunicorn" and not (BIN / "gunicorn").exists():
        pytest.fail("gunicorn is not installed (the 'gunicorn' extra, part of 'test')")
    port = free_port()
    drain = tmp_path / "drain"
    conf_path = tmp_path / "vigil.conf"
    conf_path.write_text(
        f"[DEFAULT]\nstate_path = {tmp_path}\nreport_interval = 1\nservice_down_time = 5\n"
        f"[database]\nconnection = sqlite:///{tmp_path}/vigil.sqlite\n"
        f"[api]\nlisten = 127.0.0.1\nport = {port}\n"
        f"token_file = {write_tokens(tmp_path / 'tokens.json', TOKENS)}\n"
        f"[healthcheck]\ndisable_by_file_path = {drain}\n")
    conf = vconf.load(["--config-file", str(conf_path)], default_files=[])
    engine = launch.engine_from(conf, sync=True)
    for host in ("host1", "host2"):
        services_db.service_get_or_create(engine, host, "vigil-compute", "compute")
    engine.dispose()
    env = {**os.environ, "VIGIL_CONFIG_FILE": str(conf_path),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    if request.param == "gunicorn":
        cmd = [str(BIN / "gunicorn"), "-k", "uvicorn_worker.UvicornWorker", "-w", "2",
               "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5",
               "vigil.api.wsgi:application"]
    else:
        cmd = [sys.executable, "-m", "vigil.cli.main", "--config-file", str(conf_path),
               "api", "--workers", "2"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    served = Served(f"http://127.0.0.1:{port}", log, drain, proc)
    try:
        wait_healthy(served)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)
    shutil.rmtree(tmp_path / "metrics", ignore_errors=True)


def test_list_and_update_through_two_workers(served: Served) -> None:
    r = httpx.get(f"{served.url}/v2.1/os-services", headers=ADMIN)
    assert r.status_code == 200, r.text
    computes = [s for s in r.json()["services"] if s["binary"] == "nova-compute"]
    assert sorted(s["host"] for s in computes) == ["host1", "host2"]
    listed_id = r.headers["x-openstack-request-id"]
    assert REQUEST_ID.match(listed_id)

    uid = httpx.get(f"{served.url}/v2.1/os-services", headers={
        **ADMIN, "OpenStack-API-Version": "compute 2.53"}).json()["services"][0]["id"]
    r = httpx.put(f"{served.url}/v2.1/os-services/{uid}", headers={
        **ADMIN, "OpenStack-API-Version": "compute 2.53"},
        json={"status": "disabled", "disabled_reason": "maintenance"})
    assert r.status_code == 200, r.text
    assert r.json()["service"]["status"] == "disabled"

    # Fresh connections until both workers have answered (the kernel spreads the accepts):
    # each sees the update, since they share only the database.
    pids: set[str] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:
        r = httpx.get(f"{served.url}/v2.1/os-services?binary=nova-compute", headers={
            **ADMIN, "OpenStack-API-Version": "compute 2.53"})
        assert {s["id"]: s["status"] for s in r.json()["services"]}[uid] == "disabled"
        rid = r.headers["x-openstack-request-id"]
        for line in served.access_lines():
            if rid in line:
                pids.add(line.split()[2])  # "<date> <time+0000> <pid> INFO ..."
    assert len(pids) == 2, f"one worker answered everything: {pids}"

    # The access line names the request id and the user, and what was answered.
    line = next(x for x in served.access_lines() if listed_id in x)
    assert " admin p1" in line or "admin p1" in line, line
    assert '"GET /v2.1/os-services HTTP/1.1" status: 200' in line


def test_request_id_on_errors_and_public_paths(served: Served) -> None:
    for path, headers, status in (("/v2.1/os-services", {}, 401),
                                  ("/healthz", {}, 200), ("/", {}, 200)):
        r = httpx.get(f"{served.url}{path}", headers=headers)
        assert r.status_code == status
        assert REQUEST_ID.match(r.headers["x-openstack-request-id"]), path
    a, b = (httpx.get(f"{served.url}/").headers["x-openstack-request-id"] for _ in range(2))
    assert a != b


def test_healthcheck_shape_and_drain_file(served: Served) -> None:
    r = httpx.get(f"{served.url}/healthcheck")
    assert (r.status_code, r.text, r.headers["content-type"].split(";")[0]) == (
        200, "OK", "text/plain")
    r = httpx.get(f"{served.url}/healthcheck", headers={"Accept": "application/json"})
    assert r.json() == {"reasons": ["OK"], "detailed": False}
    assert httpx.head(f"{served.url}/healthcheck").status_code == 204
    served.drain.touch()
    r = httpx.get(f"{served.url}/healthcheck")
    assert (r.status_code, r.text) == (503, "DISABLED BY FILE")
    assert httpx.head(f"{served.url}/healthcheck").status_code == 503
    # Drained, not down: the API still serves.
    assert httpx.get(f"{served.url}/v2.1/os-services", headers=ADMIN).status_code == 200
    served.drain.unlink()
    assert httpx.get(f"{served.url}/healthcheck").status_code == 200


def test_bad_configuration_stops_gunicorn(tmp_path: Path) -> None:
    conf_path = tmp_path / "vigil.conf"
    conf_path.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[database]\nconection = x\n")
    env = {**os.environ, "VIGIL_CONFIG_FILE": str(conf_path)}
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-k", "uvicorn_worker.UvicornWorker", "-w", "2",
         "-b", f"127.0.0.1:{free_port()}", "vigil.api.wsgi:application"],
        capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "[database] conection: unknown option (did you mean 'connection'?)" in (
        result.stderr + result.stdout)




def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing (Debian's prometheus; tests/servers/ensure-system.sh)"
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric's samples in an exposition text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line[len(name):].rpartition(" ")
            found[labels] = float(value)
    return found


def test_metrics_add_up_every_worker_and_pass_promtool(served: Served) -> None:
    # Requests only this test makes, on fresh connections (so both workers take some).
    for _ in range(12):
        assert httpx.get(f"{served.url}/v2.1/os-hypervisors", headers=ADMIN).status_code == 200
    key = '{method="GET",route="/v2.1/os-hypervisors",status="200"}'
    # Whichever worker answers a scrape, it reports all twelve, observed by both workers.
    for _ in range(6):
        r = httpx.get(f"{served.url}/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=")
        counts = samples(r.text, "vigil_api_request_duration_seconds_count")
        assert counts[key] == 12, counts
        assert REQUEST_ID.match(r.headers["x-openstack-request-id"])
    promtool_check(r.text)
    services = samples(r.text, "vigil_services")
    compute = {k: v for k, v in services.items() if 'binary="vigil-compute"' in k}
    assert sum(compute.values()) == 2 and len(compute) == 3  # up, down, unknown
    assert samples(r.text, "vigil_database_up") == {"": 1.0}
