"""The dashboard's change feed: what one poll reads, what a change sends, and the stream
itself over a real uvicorn (sections by policy, heartbeats, disconnects, shutdown)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ADMIN, READER, Api
from tests.api.test_dashboard_api import reader_policy
from tests.api.test_real_clients import free_port
from vigil.api import feed as feedmod
from vigil.api.feed import Feed, FleetReader, diff
from vigil.api.server import ApiServer
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.ha.store import RecoveryStore
from vigil.launch.api import create_app_from_conf

# ---- diff ------------------------------------------------------------------------------------


def test_diff_sends_only_what_changed() -> None:
    old = {"services": {1: (1, "a", "up"), 2: (2, "b", "up"), 3: (3, "c", "up")},
           "ha": {"alerts": [], "leader": None}, "ring": {"members": []}}
    new = {"services": {1: (1, "a", "up"), 2: (2, "b", "down"), 4: (4, "d", "up")},
           "ha": {"alerts": [], "leader": None}, "ring": {"members": ["x"]}}
    assert diff(old, new) == {"services": {"set": [(2, "b", "down"), (4, "d", "up")],
                                           "del": [3]},
                              "ring": {"members": ["x"]}}
    assert diff(new, new) == {}
    assert diff(None, new)["services"]["set"] == list(new["services"].values())


# ---- one poll --------------------------------------------------------------------------------


def test_reader_sees_services_hosts_and_recoveries_change(api: Api) -> None:
    reader = FleetReader(api.registry)
    first = reader.read()
    assert set(first) == set(feedmod.SECTIONS)
    rows = first["services"]
    assert len(rows) == 4 and rows[api.computes[0].id][2] == "host1"
    assert dict(zip(feedmod.SERVICE_COLUMNS, rows[api.computes[0].id], strict=True))[
        "status"] == "enabled"
    assert first["hosts"] == {} and first["recoveries"] == {} and first["nodes"] == {}
    # Nothing happened: nothing to send (heartbeat times are not in the feed).
    assert diff(first, reader.read()) == {}

    api.registry.update(api.computes[1], enabled=False, disabled_reason="rack move")
    api.client.put("/v2.1/vigil/hosts/host3", headers=ADMIN,
                   json={"host": {"maintenance": True, "maintenance_reason": "BIOS"}})
    second = reader.read()
    change = diff(first, second)
    assert set(change) == {"services", "hosts"}
    changed = {row[0]: dict(zip(feedmod.SERVICE_COLUMNS, row, strict=True))
               for row in change["services"]["set"]}
    assert set(changed) == {api.computes[1].id, api.computes[2].id}
    assert changed[api.computes[1].id]["disabled_reason"] == "rack move"
    assert changed[api.computes[2].id]["maintenance"] is True
    assert [h["host"] for h in change["hosts"]["set"]] == ["host3"]
    assert change["hosts"]["set"][0]["maintenance_by"] == "admin (project p1)"

    token = lease_db.lease_acquire(api.engine, "ha-monitor", "m1", ttl=60)
    assert token is not None
    rec = recoveries_db.recovery_open(
        api.engine, token, host="host1", service_id=api.computes[0].id, trigger="monitor",
        was_disabled=False, was_forced_down=False, detail="down for 1 s")
    assert rec is not None
    third = reader.read()
    change = diff(second, third)
    assert {"recoveries", "timelines", "ha"} <= set(change)
    assert change["ha"]["leader"] == {"holder": "m1", "epoch": 1}
    timeline = change["timelines"]["set"][0]
    assert timeline["recovery_id"] == rec.id
    assert [e["kind"] for e in timeline["events"]] == ["detected"]
    RecoveryStore(api.engine, lambda: token).disable(rec, "down")
    change = diff(third, reader.read())
    assert [e["kind"] for e in change["timelines"]["set"][0]["events"]] == ["detected",
                                                                             "disabled"]
    assert change["recoveries"]["set"][0]["phase"] == "disabled"


def test_reader_records_node_handovers() -> None:
    reader = FleetReader(None)  # type: ignore[arg-type]  # only the hand-over bookkeeping
    reader._note_handovers({"u1": ("u1", "bm-1", "c1"), "u2": ("u2", "bm-2", "c2")})
    assert list(reader._handovers) == []  # the first look is no hand-over
    reader._note_handovers({"u1": ("u1", "bm-1", "c2"), "u2": ("u2", "bm-2", "c2"),
                            "u3": ("u3", "bm-3", "c1")})
    (h,) = reader._handovers
    assert (h["node"], h["name"], h["from"], h["to"]) == ("u1", "bm-1", "c1", "c2")


# ---- the Feed on a loop ----------------------------------------------------------------------


class FakeFleet:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {"services": {1: (1, "up")}, "ha": {"alerts": []}}
        self.reads = 0
        self.fail: Exception | None = None

    def read(self) -> dict[str, Any]:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return {k: dict(v) for k, v in self.state.items()}


def events_of(chunks: list[bytes]) -> list[tuple[str, Any]]:
    out = []
    for chunk in chunks:
        head, data = chunk.decode().split("data: ", 1)
        out.append((head.split("\n")[0].removeprefix("event: "), json.loads(data)))
    return out


def test_feed_snapshot_changes_heartbeats_and_close() -> None:
    fleet = FakeFleet()

    async def scenario() -> list[tuple[str, Any]]:
        feed = Feed(fleet.read, interval=0.05, heartbeat=0.2)
        sub = feed.subscribe(frozenset({"services", "ha"}))
        got: list[bytes] = []

        async def consume() -> None:
            async for chunk in feed.events(sub):
                got.append(chunk)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.15)
        fleet.state["services"][1] = (1, "down")
        await asyncio.sleep(0.15)
        fleet.state["services"][2] = (2, "up")    # a change nobody may see... for 'ha' only
        await asyncio.sleep(0.5)                   # quiet: heartbeats
        # A second stream, while the poller runs: its snapshot comes at once, from memory.
        reads = fleet.reads
        late = feed.subscribe(frozenset({"ha"}))
        first = await asyncio.wait_for(late.queue.get(), 0.01)
        assert isinstance(first, feedmod.Published) and fleet.reads == reads
        feed.unsubscribe(late)
        feed.close()
        await asyncio.wait_for(task, 1)
        assert feed.subscribers == 1  # events() leaves unsubscribing to its caller
        feed.unsubscribe(sub)
        await asyncio.sleep(0.1)
        assert feed._task is None     # nobody left: the poller stopped
        return events_of(got)

    events = asyncio.run(scenario())
    kinds = [k for k, _ in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "bye" and "heartbeat" in kinds
    snap = events[0][1]
    assert snap["sections"]["services"]["rows"] == [[1, "up"]]
    changes = [data["changes"] for kind, data in events if kind == "change"]
    assert changes[0] == {"services": {"set": [[1, "down"]], "del": []}}
    assert changes[1] == {"services": {"set": [[2, "up"]], "del": []}}
    assert events[-1][1] == {"reason": "shutdown", "reconnect": True}


def test_feed_reports_a_failing_poll_and_keeps_the_last_state() -> None:
    from vigil.errors import DatabaseUnavailable

    fleet = FakeFleet()

    async def scenario() -> list[tuple[str, Any]]:
        feed = Feed(fleet.read, interval=0.05, heartbeat=0.1)
        sub = feed.subscribe(frozenset({"services"}))
        got: list[bytes] = []

        async def consume() -> None:
            async for chunk in feed.events(sub):
                got.append(chunk)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        fleet.fail = DatabaseUnavailable("database unavailable: gone")
        await asyncio.sleep(0.4)
        feed.close()
        await asyncio.wait_for(task, 1)
        return events_of(got)

    events = asyncio.run(scenario())
    beats = [data for kind, data in events if kind == "heartbeat"]
    assert beats and beats[-1]["error"] == "database unavailable: gone"
    assert beats[-1]["age"] >= 0.2   # the last good poll is getting old, and says so
    assert [k for k, _ in events].count("snapshot") == 1


def test_a_reader_too_far_behind_gets_a_fresh_snapshot_not_the_backlog() -> None:
    fleet = FakeFleet()

    async def scenario() -> list[tuple[str, Any]]:
        feed = Feed(fleet.read, interval=0.01, heartbeat=5, queue_size=3)
        sub = feed.subscribe(frozenset({"services"}))
        for i in range(20):          # nobody reads while the fleet changes 20 times
            fleet.state["services"][1] = (1, f"v{i}")
            await asyncio.sleep(0.02)
        got: list[bytes] = []
        it = feed.events(sub).__aiter__()
        got.append(await it.__anext__())
        feed.close()
        async for chunk in it:
            got.append(chunk)
        feed.unsubscribe(sub)
        return events_of(got)

    events = asyncio.run(scenario())
    assert events[0][0] == "snapshot"
    assert events[0][1]["sections"]["services"]["rows"][0][1].startswith("v1")
    assert events[-1][0] == "bye"


# ---- the stream over HTTP --------------------------------------------------------------------


@pytest.fixture
def served(api_factory: Any, tmp_path: Path) -> Iterator[Any]:
    servers: list[ApiServer] = []

    def serve(api_section: dict[str, Any] | None = None) -> tuple[Api, ApiServer]:
        api: Api = api_factory({"feed_poll_interval": "0.2", **(api_section or {})})
        server = ApiServer(create_app_from_conf(api.conf, api.registry), "127.0.0.1",
                           free_port())
        server.start()
        servers.append(server)
        return api, server

    yield serve
    for s in servers:
        s.stop()


class Stream:
    """A feed stream read by a thread, as (event, data) pairs."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: list[tuple[str, Any]] = []
        self.status: int | None = None
        self.done = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with httpx.stream("GET", f"{url}/v2.1/vigil/feed", headers=headers,
                              timeout=30) as r:
                self.status = r.status_code
                self.headers = r.headers
                event = None
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        self.events.append((event, json.loads(line[6:])))
                    if self._stop:
                        return
        except httpx.HTTPError:
            pass
        finally:
            self.done.set()

    def wait_for(self, pred: Any, timeout: float = 10) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in list(self.events):
                if pred(ev):
                    return ev
            time.sleep(0.02)
        raise AssertionError(f"no such event in {self.events}")

    def close(self) -> None:
        self._stop = True


def test_stream_sends_hello_snapshot_then_changes(served: Any) -> None:
    api, server = served()
    stream = Stream(server.url, ADMIN)
    hello = stream.wait_for(lambda e: e[0] == "hello")[1]
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in stream.headers
    assert hello["sections"] == list(feedmod.SECTIONS)
    assert hello["columns"]["services"] == list(feedmod.SERVICE_COLUMNS)
    assert hello["interval"] == 0.2 and hello["caller"]["user_id"] == "admin"
    snap = stream.wait_for(lambda e: e[0] == "snapshot")[1]
    assert len(snap["sections"]["services"]["rows"]) == 4
    t0 = time.monotonic()
    r = api.client.put(f"/v2.1/os-services/{api.computes[0].uuid}",
                       headers={**ADMIN, "OpenStack-API-Version": "compute 2.53"},
                       json={"status": "disabled", "disabled_reason": "from a test"})
    assert r.status_code == 200
    change = stream.wait_for(lambda e: e[0] == "change", timeout=5)[1]
    assert time.monotonic() - t0 < 1.5   # one poll interval and a bit
    (row,) = change["changes"]["services"]["set"]
    assert row[0] == api.computes[0].id and "from a test" in row
    stream.wait_for(lambda e: e[0] == "heartbeat", timeout=5)
    feed = server.app.state.vigil_feed
    assert feed.subscribers == 1
    stream.close()
    deadline = time.monotonic() + 5     # a gone client is noticed (at its next write)
    while feed.subscribers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert feed.subscribers == 0


def test_stream_carries_only_what_the_policy_lets_the_caller_read(served: Any,
                                                                  tmp_path: Path) -> None:
    _, server = served()
    r = httpx.get(f"{server.url}/v2.1/vigil/feed", headers=READER)
    assert r.status_code == 403 and "vigil:services:list" in r.text
    assert httpx.get(f"{server.url}/v2.1/vigil/feed").status_code == 401
    policy = tmp_path / "services-only.yaml"
    policy.write_text('"vigil:services:list": "role:reader"\n')
    _, server = served({"policy_file": str(policy)})
    stream = Stream(server.url, READER)
    assert stream.wait_for(lambda e: e[0] == "hello")[1]["sections"] == ["services"]
    snap = stream.wait_for(lambda e: e[0] == "snapshot")[1]
    assert set(snap["sections"]) == {"services"}
    stream.close()
    _, server = served({"policy_file": str(reader_policy(tmp_path))})
    stream = Stream(server.url, READER)
    assert set(stream.wait_for(lambda e: e[0] == "hello")[1]["sections"]) == set(
        feedmod.SECTIONS)
    stream.close()


def test_a_write_through_the_api_is_sent_without_waiting_for_the_interval(served: Any
                                                                          ) -> None:
    api, server = served({"feed_poll_interval": "30"})
    stream = Stream(server.url, ADMIN)
    stream.wait_for(lambda e: e[0] == "snapshot")
    time.sleep(0.3)
    t0 = time.monotonic()
    r = api.client.put("/v2.1/os-services/disable", headers=ADMIN,  # the in-process client
                       json={"host": "host2", "binary": "nova-compute"})
    assert r.status_code == 200      # (its app is not the served one: nothing is poked)
    time.sleep(1)
    assert not [e for e in stream.events if e[0] == "change"]
    r = httpx.put(f"{server.url}/v2.1/os-services/disable-log-reason", headers=ADMIN,
                  json={"host": "host2", "binary": "nova-compute", "disabled_reason": "poke"})
    assert r.status_code == 200
    change = stream.wait_for(lambda e: e[0] == "change", timeout=5)[1]
    assert time.monotonic() - t0 < 3   # not 30 s
    assert [row[0] for row in change["changes"]["services"]["set"]] == [api.computes[1].id]
    stream.close()


def test_stopping_the_api_ends_open_streams_at_once(served: Any) -> None:
    _, server = served()
    stream = Stream(server.url, ADMIN)
    stream.wait_for(lambda e: e[0] == "snapshot")
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 3
    assert stream.done.wait(5)
    assert stream.events[-1] == ("bye", {"reason": "shutdown", "reconnect": True})
