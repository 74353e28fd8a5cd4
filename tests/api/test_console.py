"""The serial console over a real database, a real proxy (uvicorn, WebSockets) and a real
instance process (the ``process`` driver's built-in workload, whose console echoes lines).

The instance is spawned by the driver in this process and placed on ``host1`` in the database
by hand (no scheduler): what is tested is the remote-consoles API, the tokens and the proxy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.api.conftest import ADMIN, Api, at
from vigil.compute.virt.process import ProcessDriver
from vigil.console.daemon import proxy_app
from vigil.db.compute import instances as instances_db
from vigil.launch.settings import virt_settings
from vigil.metadata.httpd import HttpServer

CONSOLE = {"remote_console": {"protocol": "serial", "type": "serial"}}


@dataclass
class Rig:
    api: Api
    proxy: HttpServer
    driver: ProcessDriver

    def boot(self, name: str = "vm", *, spawn: bool = True) -> str:
        r = self.api.client.post("/v2.1/servers", headers=ADMIN,
                                 json={"server": {"name": name, "flavorRef": "1"}})
        assert r.status_code == 202, r.text
        uuid: str = r.json()["server"]["id"]
        with self.api.engine.begin() as conn:
            conn.execute(sa.text("UPDATE instances SET host = 'host1', node = 'host1', "
                                 "vm_state = 'active', task_state = NULL, generation = 1 "
                                 "WHERE uuid = :u"), {"u": uuid})
        if spawn:
            self.driver.spawn(instances_db.instance_get(self.api.engine, uuid))
        return uuid

    def url(self, uuid: str, version: str = "2.6") -> str:
        r = self.api.client.post(f"/v2.1/servers/{uuid}/remote-consoles", json=CONSOLE,
                                 headers=at(version))
        assert r.status_code == 200, r.text
        body = r.json()["remote_console"]
        assert body["protocol"] == "serial" and body["type"] == "serial"
        url: str = body["url"]
        return url


@pytest.fixture
def rig(api_factory: Any, tmp_path: Any) -> Iterator[Rig]:
    api: Api = api_factory(
        compute={"instances_path": str(tmp_path / "instances"), "compute_driver": "process"},
        serial_console={"base_url": "ws://127.0.0.1:1/"})
    proxy = HttpServer(proxy_app(api.conf, api.engine), "127.0.0.1", 0, name="proxy",
                       ws="websockets-sansio")
    proxy.start()
    # The API's URLs name the proxy's real (ephemeral) port.
    api.conf.set_override("base_url", f"ws://127.0.0.1:{proxy.port}/", group="serial_console")
    api.client.app.state.vigil_consoles.base_url = f"ws://127.0.0.1:{proxy.port}/"  # type: ignore[attr-defined]
    driver = ProcessDriver(virt_settings(api.conf), "host1")
    driver.init_host()
    try:
        yield Rig(api, proxy, driver)
    finally:
        for uuid in driver.list_instances():
            driver.destroy(uuid, keep_disk=False)
        proxy.stop()


def read_until(ws: ClientConnection, needle: bytes, timeout: float = 10.0) -> bytes:
    """What the console printed, until ``needle`` appears (or fail at the deadline)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} on the console; saw {seen!r}"
        with contextlib.suppress(TimeoutError):
            message = ws.recv(timeout=left)
            seen += message if isinstance(message, bytes) else message.encode()
    return seen


def refused(url: str, **kw: Any) -> int:
    """The HTTP status of a refused WebSocket handshake (fails if it was accepted)."""
    with pytest.raises(InvalidStatus) as info, connect(url, open_timeout=10, **kw):
        pass
    return info.value.response.status_code


def test_typing_into_the_console_reads_the_echo(rig: Rig) -> None:
    uuid = rig.boot()
    url = rig.url(uuid)
    assert url.startswith(f"ws://127.0.0.1:{rig.proxy.port}/?token=")
    with connect(url, open_timeout=10) as ws:
        ws.send(b"hello console\n")
        read_until(ws, b"echo: hello console")
        ws.send("second line, as text\n")
        read_until(ws, b"echo: second line, as text")
    # The same token again: used up.
    assert refused(url) == 403


def test_a_token_is_refused_for_another_instance_and_after_expiry(rig: Rig) -> None:
    a, b = rig.boot("a"), rig.boot("b")
    assert refused(rig.url(a) + f"&instance={b}") == 403
    # The refusal used the token up: the right instance cannot use it either.
    url = rig.url(a)
    with connect(url + f"&instance={a}", open_timeout=10) as ws:
        ws.send(b"ok\n")
        read_until(ws, b"echo: ok")
    # Expired on the database's clock (made to expire now, rather than waiting for it).
    url = rig.url(a)
    with rig.api.engine.begin() as conn:
        conn.execute(sa.text("UPDATE console_auth_tokens SET expires = created_at"))
    assert refused(url) == 403
    assert refused(url.split("?")[0] + "?token=not-a-token") == 403
    assert refused(url.split("?")[0]) == 403
    # Only hashes are stored.
    with rig.api.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(sa.text("SELECT token_hash FROM "
                                                     "console_auth_tokens"))]
    assert all(len(h) == 64 for h in stored) and url.split("token=")[1] not in stored


def test_origin_is_checked_before_the_token_is_used(rig: Rig) -> None:
    uuid = rig.boot()
    url = rig.url(uuid)
    assert refused(url, origin="http://evil.example") == 403  # type: ignore[arg-type]
    assert refused(url, origin="https://127.0.0.1") == 403  # type: ignore[arg-type]
    with connect(url, open_timeout=10,
                 origin=f"http://127.0.0.1:{rig.proxy.port}") as ws:  # type: ignore[arg-type]
        ws.send(b"from the page\n")
        read_until(ws, b"echo: from the page")


def test_an_evacuation_ends_old_tokens_and_the_console_follows(rig: Rig) -> None:
    uuid = rig.boot()
    before = rig.url(uuid)
    with connect(rig.url(uuid), open_timeout=10) as ws:
        ws.send(b"x\n")
        read_until(ws, b"echo: x")
        # The instance is taken away from host1 (what an evacuation's request does).
        assert instances_db.instance_update(rig.api.engine, uuid, {}, generation=1,
                                            new_owner=True) is not None
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    assert refused(before) == 403
    # The instance is rebuilt on host2 (its first copy gone, as a fence leaves it): the same
    # call now gives host2's console.
    rig.driver.destroy(uuid, keep_disk=True)
    with rig.api.engine.begin() as conn:
        conn.execute(sa.text("UPDATE instances SET host = 'host2', node = 'host2' "
                             "WHERE uuid = :u"), {"u": uuid})
    host2 = ProcessDriver(virt_settings(rig.api.conf), "host2")
    host2.init_host()
    try:
        host2.spawn(instances_db.instance_get(rig.api.engine, uuid), rebuild=True)
        with connect(rig.url(uuid), open_timeout=10) as ws:
            ws.send(b"on host2?\n")
            read_until(ws, b"echo: on host2?")
    finally:
        host2.destroy(uuid, keep_disk=False)


def test_a_stopped_instance_has_no_console(rig: Rig) -> None:
    uuid = rig.boot(spawn=False)
    with connect(rig.url(uuid), open_timeout=10) as ws, pytest.raises(ConnectionClosed) as c:
        ws.recv(timeout=10)
    assert c.value.rcvd is not None and c.value.rcvd.code == 1011


def test_the_page_and_xterm_are_served_from_the_package(rig: Rig) -> None:
    import httpx

    base = f"http://127.0.0.1:{rig.proxy.port}"
    page = httpx.get(f"{base}/console.html?token=x")
    assert page.status_code == 200 and "/static/xterm.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    xterm = httpx.get(f"{base}/static/xterm.js")
    assert xterm.status_code == 200 and len(xterm.content) > 100_000
    assert "MIT" in httpx.get(f"{base}/static/xterm-LICENSE").text
    assert httpx.get(f"{base}/static/../daemon.py").status_code == 404
    assert httpx.post(f"{base}/console.html").status_code == 405


BAD = [
    ("2.5", CONSOLE, 404, "could not be found"),
    ("2.6", {"remote_console": {"protocol": "vnc", "type": "novnc"}}, 400,
     "Unavailable console type novnc."),
    ("2.6", {"remote_console": {"protocol": "serial", "type": "novnc"}}, 400,
     "Invalid console type novnc"),
    ("2.6", {"remote_console": {"protocol": "mks", "type": "webmks"}}, 400,
     "is not one of"),
    ("2.8", {"remote_console": {"protocol": "mks", "type": "webmks"}}, 400,
     "Unavailable console type webmks."),
    ("2.6", {"remote_console": {"protocol": "serial"}}, 400, "'type' is a required property"),
    ("2.6", {"console": {}}, 400, "'remote_console' is a required property"),
    ("2.6", {**CONSOLE, "x": 1}, 400, "Additional properties are not allowed"),
]


@pytest.mark.parametrize(("version", "body", "code", "message"), BAD)
def test_remote_consoles_refuses_as_nova(rig: Rig, version: str, body: Any, code: int,
                                         message: str) -> None:
    uuid = rig.boot(spawn=False)
    r = rig.api.client.post(f"/v2.1/servers/{uuid}/remote-consoles", json=body,
                            headers=at(version))
    assert r.status_code == code, r.text
    fault = next(iter(r.json().values()))
    assert message in fault["message"], fault


def test_remote_consoles_not_ready_unknown_disabled(rig: Rig) -> None:
    r = rig.api.client.post("/v2.1/servers", headers=ADMIN,
                            json={"server": {"name": "building", "flavorRef": "1"}})
    building = r.json()["server"]["id"]
    r = rig.api.client.post(f"/v2.1/servers/{building}/remote-consoles", json=CONSOLE,
                            headers=at("2.6"))
    assert r.status_code == 409 and "is not ready" in r.text
    ghost = "6d1f2b1c-0000-4000-8000-000000000000"
    r = rig.api.client.post(f"/v2.1/servers/{ghost}/remote-consoles", json=CONSOLE,
                            headers=at("2.6"))
    assert r.status_code == 404 and f"Instance {ghost} could not be found." in r.text
    rig.api.client.app.state.vigil_consoles.enabled = False  # type: ignore[attr-defined]
    uuid = rig.boot(spawn=False)
    r = rig.api.client.post(f"/v2.1/servers/{uuid}/remote-consoles", json=CONSOLE,
                            headers=at("2.6"))
    assert r.status_code == 400 and "Unavailable console type serial." in r.text
