"""One contract, every liveness driver, real servers (see drivers/base.py for the contract).

Each test runs once per driver kind: ``db`` (SQLite), ``mc-local`` (the in-process cache),
``mc`` (a real memcached), ``zk``, ``etcd`` and ``redis``. A test world holds a SQLite database
with the services rows, a conductor beating the report path, a reader (the ServiceGroup facade
over one reader driver) and agents: threads that join, then every report_interval heartbeat
their driver and report their rows, as a service process does.

Two views are checked: the driver's own verdict (``get_states``, which raises
BackendUnavailable when the backend cannot answer) and the facade's combined state (forced_down,
row heartbeat and driver verdict; UNKNOWN when the backend is unavailable).

For ``db`` the backend *is* the report path and the database: its "outage" is a report-path
outage (no conductor beats, no reports), its "hang" a database that cannot be read, its "slow
backend" reports that arrive late. For ``mc-local`` the backend is this process's memory: it
cannot be unreachable, and its "restart" is a fresh cache.

Timing: report_interval 0.5 s, service_down_time 2 s, client timeouts 1.5 s. Waits poll a
condition with a deadline; nothing sleeps in place of a synchronisation.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy.engine import Engine

import vigil.conf
from tests.tools.tcpproxy import TcpProxy
from vigil.db import migration
from vigil.db import services as services_db
from vigil.db.engine import make_engine
from vigil.errors import BackendUnavailable, ConfigError, DatabaseUnavailable
from vigil.objects.liveness import LivenessTiming, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup import drivers
from vigil.servicegroup.api import ServiceGroup
from vigil.servicegroup.drivers.base import Driver
from vigil.servicegroup.drivers.mc import InProcessCache, MemcachedDriver
from vigil.servicegroup.drivers.options import options_from, timing_from

from .conftest import Etcd, Server, ZooKeeper

REPORT_INTERVAL = 0.5
BEAT = 0.1  # the test's stand-in conductor beats its report path this often
DOWN_TIME = 2.0
CLIENT_TIMEOUT = 1.5
KINDS = ["db", "mc-local", "mc", "zk", "etcd", "redis"]
SERVER_FIXTURE = {"mc": "memcached_server", "zk": "zookeeper_server", "etcd": "etcd_server",
                  "redis": "redis_server"}
DRIVER_NAME = {"db": "db", "mc-local": "mc", "mc": "mc", "zk": "zk", "etcd": "etcd",
               "redis": "redis"}
# Backend requests of one get_states over a batch in two groups.
MAX_BATCH_ROUND_TRIPS = {"db": 0, "mc-local": 1, "mc": 2, "zk": 2, "etcd": 1, "redis": 1}


def wait_for(cond: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Poll ``cond`` until true; returns the seconds it took. Fails the test at the deadline."""
    start = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def connected(driver: Driver) -> bool:
    return driver.session() is SessionState.CONNECTED


class Agent:
    """The members of one service process: one driver, a heartbeat thread, row reports."""

    def __init__(self, world: World, records: Sequence[ServiceRecord],
                 proxy: TcpProxy | None = None, report_delay: float = 0.0) -> None:
        self.world = world
        self.records = list(records)
        self.proxy = proxy
        self.report_delay = report_delay
        self.driver = world.make_driver(proxy)
        self.errors = 0
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # a member stops beating before it leaves

    def start(self, loop: bool = True) -> Agent:
        for rec in self.records:
            self.driver.join(rec.host, rec.topic)
        self.world.report([r.id for r in self.records])
        if loop:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            due += REPORT_INTERVAL
            with self._lock:
                self._beat()
            self._stop.wait(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - REPORT_INTERVAL)

    def _beat(self) -> None:
        for rec in self.records:
            try:
                self.driver.heartbeat(rec.host, rec.topic)
            except BackendUnavailable:
                self.errors += 1
        if self.report_delay:
            self._stop.wait(self.report_delay)
        try:
            self.world.report([r.id for r in self.records])
            self.beats += 1
        except DatabaseUnavailable:
            self.errors += 1

    def crash(self) -> None:
        """Stop beating without leaving; cut the session off (ZooKeeper pings on its own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.proxy is not None:
            self.proxy.blackhole = True

    def leave(self, rec: ServiceRecord) -> None:
        with self._lock:
            self.records.remove(rec)
            self.driver.leave(rec.host, rec.topic)
            services_db.record_leave(self.world.engine, rec.id)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class World:
    """Database, conductor, reader and agents for one driver kind."""

    def __init__(self, kind: str, server: Server | None, tmp: Path,
                 cache: InProcessCache | None = None, **overrides: Any) -> None:
        self.kind = kind
        self.server = server
        self.overrides = overrides
        self.down_time = float(overrides.get("service_down_time", DOWN_TIME))
        # Reports are written at once here (no coalescing tick); the path is beaten every 0.1 s.
        self.timing = LivenessTiming(report_interval=REPORT_INTERVAL,
                                     service_down_time=self.down_time, coalesce_interval=BEAT)
        self.topic = f"compute-{uuid.uuid4().hex[:8]}"
        self.db_path = tmp / "vigil.sqlite"
        self.engine = make_engine(f"sqlite:///{self.db_path}")
        migration.sync(self.engine)
        # mc-local: one cache for the whole session, as one process (vigil up) has one.
        self.cache = cache if kind == "mc-local" else None
        self.proxies: list[TcpProxy] = []
        self.drivers: list[Driver] = []
        self.agents: list[Agent] = []
        self.path_ok = threading.Event()
        self.path_ok.set()
        self.path_max_gap = self.timing.path_max_gap
        self._stop = threading.Event()
        self._conductor = threading.Thread(target=self._beat_path, daemon=True)
        self._conductor.start()
        self.reader = self.make_driver()
        self.group = self.facade(self.reader)
        wait_for(lambda: self._path_beaten, 5, "the first report-path beat")

    _path_beaten = False

    # -- plumbing -------------------------------------------------------------------------------
    def _beat_path(self) -> None:
        while not self._stop.is_set():
            if self.path_ok.is_set():
                try:
                    services_db.beat_report_path(self.engine, "c1", self.path_max_gap)
                    self._path_beaten = True
                except DatabaseUnavailable:
                    pass
            self._stop.wait(BEAT)

    def target(self) -> tuple[str, int]:
        assert self.server is not None
        return ("127.0.0.1", self.server.port)

    def proxy(self) -> TcpProxy:
        proxy = TcpProxy(self.target())
        self.proxies.append(proxy)
        return proxy

    def conf(self, proxy: TcpProxy | None = None) -> Any:
        conf = vigil.conf.make()
        conf([])
        conf.set_override("servicegroup_driver", DRIVER_NAME[self.kind])
        conf.set_override("report_interval", REPORT_INTERVAL)
        conf.set_override("service_down_time", self.down_time)
        port = proxy.port if proxy is not None else self.server.port if self.server else 0
        if self.kind == "mc":
            conf.set_override("memcached_servers", [f"127.0.0.1:{port}"])
            conf.set_override("socket_timeout", CLIENT_TIMEOUT, group="memcache")
        elif self.kind == "zk":
            conf.set_override("address", f"127.0.0.1:{port}", group="zookeeper")
            recv_timeout = self.overrides.get("recv_timeout", int(self.down_time * 1000))
            conf.set_override("recv_timeout", recv_timeout, group="zookeeper")
            conf.set_override("sg_retry_interval", 1, group="zookeeper")
        elif self.kind == "etcd":
            conf.set_override("endpoint", f"http://127.0.0.1:{port}", group="etcd")
            conf.set_override("timeout", CLIENT_TIMEOUT, group="etcd")
            conf.set_override("prefix", f"/vigil-test-{self.topic}", group="etcd")
        elif self.kind == "redis":
            conf.set_override("url", f"redis://127.0.0.1:{port}/0", group="redis")
            conf.set_override("socket_timeout", CLIENT_TIMEOUT, group="redis")
        return conf

    def make_driver(self, proxy: TcpProxy | None = None) -> Driver:
        if self.kind == "mc-local":
            driver: Driver = MemcachedDriver(options_from(self.conf()), self.timing,
                                             cache=self.cache)
        else:
            driver = drivers.load(self.conf(proxy))
        self.drivers.append(driver)
        return driver

    def facade(self, driver: Driver, engine: Engine | None = None) -> ServiceGroup:
        return ServiceGroup(driver, self.timing, engine=engine or self.engine)

    def register(self, n: int, topic: str | None = None, prefix: str = "host") -> list[
            ServiceRecord]:
        topic = topic or self.topic
        return [services_db.service_get_or_create(self.engine, f"{prefix}-{i}", "vigil-compute",
                                                  topic)[0] for i in range(n)]

    def report(self, ids: Sequence[int]) -> None:
        if self.path_ok.is_set():  # a report-path outage loses the reports too
            services_db.record_reports(self.engine, ids, 500)

    def agent(self, records: Sequence[ServiceRecord], *, via_proxy: bool = False,
              report_delay: float = 0.0, loop: bool = True) -> Agent:
        proxy = self.proxy() if via_proxy and self.server is not None else None
        agent = Agent(self, records, proxy, report_delay).start(loop)
        self.agents.append(agent)
        return agent

    # -- reading --------------------------------------------------------------------------------
    def verdict(self, records: Sequence[ServiceRecord],
                reader: Driver | None = None) -> dict[int, State]:
        """The driver's own answer (raises BackendUnavailable)."""
        snap = services_db.snapshot(self.engine, ids=[r.id for r in records])
        return (reader or self.reader).get_states(snap.services, self.group.view(snap))

    def states(self, records: Sequence[ServiceRecord],
               group: ServiceGroup | None = None) -> dict[int, State]:
        """The facade's combined answer (never raises for a backend outage)."""
        members = (group or self.group).members(ids=[r.id for r in records])
        return {m.record.id: m.state for m in members}

    def wait_trusted(self) -> None:
        """Until the backend's absence of a member means DOWN (mc/redis distrust a young server).

        Probes a member that never joined: it must read DOWN, not UNKNOWN. (For db a row that
        never reported is simply young, so there is nothing to wait for.)
        """
        if self.kind == "db":
            return
        ghost = self.register(1, prefix=f"ghost-{uuid.uuid4().hex[:6]}")
        def probe() -> bool:
            try:
                return self.verdict(ghost)[ghost[0].id] is State.DOWN
            except BackendUnavailable:
                return False
        wait_for(probe, self.down_time + 8, "the backend to be trusted")
        services_db.service_soft_delete(self.engine, ghost[0].id)

    def close(self) -> None:
        self._stop.set()
        for agent in self.agents:
            agent.stop()
        for proxy in self.proxies:
            proxy.stop()
        for driver in self.drivers:
            driver.close()
        self._conductor.join(timeout=5)
        self.engine.dispose()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    param: str = request.param
    return param


@pytest.fixture(scope="session")
def process_cache() -> InProcessCache:
    return InProcessCache()


@pytest.fixture
def make_world(kind: str, request: pytest.FixtureRequest, tmp_path: Path,
               process_cache: InProcessCache) -> Iterator[Callable[..., World]]:
    worlds: list[World] = []
    server: Server | None = None
    if kind in SERVER_FIXTURE:
        server = request.getfixturevalue(SERVER_FIXTURE[kind])
        server.ensure()

    def make(**overrides: Any) -> World:
        world = World(kind, server, tmp_path / f"w{len(worlds)}", process_cache, **overrides)
        worlds.append(world)
        return world

    (tmp_path / "w0").mkdir()
    for i in range(1, 3):
        (tmp_path / f"w{i}").mkdir()
    yield make
    for world in worlds:
        world.close()


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


# -- the contract -----------------------------------------------------------------------------

def test_join_makes_members_up_and_listed(world: World) -> None:
    recs = world.register(3)
    world.agent(recs)
    assert set(world.verdict(recs).values()) == {State.UP}
    assert set(world.states(recs).values()) == {State.UP}
    assert sorted(world.group.get_all(world.topic)) == sorted(r.host for r in recs)
    assert world.group.is_up(recs[0].id)
    assert world.reader.session() is SessionState.CONNECTED


def test_leave_is_down_at_once(world: World) -> None:
    world.wait_trusted()
    recs = world.register(2)
    agent = world.agent(recs)
    gone, stays = recs
    agent.leave(gone)
    # No waiting: a clean leave is visible in the very next read.
    verdict = world.verdict(recs)
    assert verdict[gone.id] is State.DOWN
    assert verdict[stays.id] is State.UP
    assert world.states(recs) == {gone.id: State.DOWN, stays.id: State.UP}
    assert world.group.get_all(world.topic) == [stays.host]


def test_crashed_member_expires_after_down_time(world: World) -> None:
    world.wait_trusted()
    alive = world.register(1, prefix="alive")
    doomed = world.register(1, prefix="doomed")
    world.agent(alive)
    victim = world.agent(doomed, via_proxy=True)
    recs = alive + doomed
    assert set(world.verdict(recs).values()) == {State.UP}
    victim.crash()
    crashed_at = time.monotonic()

    def doomed_down() -> bool:
        verdict = world.verdict(recs)
        assert verdict[alive[0].id] is State.UP, "a live member went down"
        return verdict[doomed[0].id] is State.DOWN

    elapsed = wait_for(doomed_down, world.down_time + 3.0, "the crashed member to expire")
    # Not before its time: memcached's whole-second clock may take a second off the down time,
    # the last beat may be up to one report interval before the crash.
    assert time.monotonic() - crashed_at > world.down_time - 1.0 - REPORT_INTERVAL - 0.1, elapsed
    assert world.states(recs) == {alive[0].id: State.UP, doomed[0].id: State.DOWN}


def test_batch_liveness_in_constant_round_trips(make_world: Callable[..., World]) -> None:
    world = make_world(service_down_time=5.0)  # joining 200 members must not outlast a TTL
    world.wait_trusted()
    compute = world.register(150)
    other = world.register(50, topic=f"{world.topic}-b", prefix="other")
    recs = compute + other
    agent = world.agent(recs, loop=False)
    leavers = recs[::10]
    for rec in leavers:
        agent.leave(rec)
    snap = services_db.snapshot(world.engine, ids=[r.id for r in recs])
    redis_before = _redis_mget_calls(world)
    before = getattr(world.reader, "round_trips", 0)
    verdict = world.reader.get_states(snap.services, world.group.view(snap))
    trips = getattr(world.reader, "round_trips", 0) - before
    assert trips <= MAX_BATCH_ROUND_TRIPS[world.kind], trips
    if world.kind == "redis":  # counted by the server too
        assert _redis_mget_calls(world) - redis_before == 1
    left = {r.id for r in leavers}
    assert verdict == {r.id: State.DOWN if r.id in left else State.UP for r in recs}
    states = world.group.states(snap)
    assert sum(s is State.UP for s in states.values()) == len(recs) - len(leavers)
    assert sorted(world.group.get_all(world.topic)) == sorted(
        r.host for r in compute if r.id not in left)


def _redis_mget_calls(world: World) -> int:
    if world.kind != "redis":
        return 0
    assert world.server is not None
    client = redis_lib.Redis(port=world.server.port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


def _outage(world: World) -> None:
    """Take the backend away: kill the server, or for db stop the report path."""
    if world.kind == "db":
        world.path_ok.clear()
    elif world.kind == "mc-local":
        pass  # this process's memory cannot be unreachable
    else:
        assert world.server is not None
        world.server.kill()


def _recover(world: World) -> None:
    if world.kind == "db":
        world.path_ok.set()
    elif world.kind == "mc-local":
        fresh = InProcessCache()  # what a restart of the one process would start from
        for driver in world.drivers:
            assert isinstance(driver, MemcachedDriver)
            driver.local = fresh
    else:
        assert world.server is not None
        world.server.start()


def test_backend_restart_unknown_then_members_recover(world: World) -> None:
    recs = world.register(5)
    agent = world.agent(recs)
    assert set(world.states(recs).values()) == {State.UP}
    seen: list[State] = []

    def observe() -> dict[int, State]:
        states = world.states(recs)
        seen.extend(states.values())
        assert State.DOWN not in states.values(), f"live members shown down: {states}"
        return states

    _outage(world)
    if world.kind in SERVER_FIXTURE:
        def unavailable() -> bool:
            try:
                world.verdict(recs)
            except BackendUnavailable:
                return True
            return False
        wait_for(unavailable, 10, "the reader to see the backend gone")
        assert world.reader.session() in (SessionState.SUSPENDED, SessionState.LOST)
        wait_for(lambda: set(observe().values()) == {State.UNKNOWN}, 5, "states UNKNOWN")
        hold = time.monotonic() + 1.0
        while time.monotonic() < hold:  # down for a while: still never DOWN
            assert set(observe().values()) == {State.UNKNOWN}
            time.sleep(0.1)
    elif world.kind == "db":
        # Reports cannot get through: stale rows are UNKNOWN, not DOWN, however long it lasts.
        wait_for(lambda: set(observe().values()) == {State.UNKNOWN}, world.down_time + 3,
                 "stale rows to read UNKNOWN")
        hold = time.monotonic() + 1.0
        while time.monotonic() < hold:
            assert set(observe().values()) == {State.UNKNOWN}
            time.sleep(0.1)
    _recover(world)
    wait_for(lambda: set(observe().values()) == {State.UP}, 20,
             "members to come back by themselves")
    wait_for(lambda: connected(world.reader), 5, "the reader's session to be healthy")
    wait_for(lambda: connected(agent.driver), 5, "the agent's session to be healthy")
    assert State.DOWN not in seen


@pytest.mark.parametrize("kind", ["zk", "etcd"], indirect=True)
def test_backend_data_loss_members_recover(world: World) -> None:
    """A ZooKeeper/etcd that comes back empty (no volume, a rebuilt cluster).

    Memcached and Redis restarts always lose their data, so the restart test covers them.
    Here the sessions/leases the agents hold no longer exist: the agents must notice and
    re-create their members, and the reader must not call anyone DOWN meanwhile.
    """
    import shutil

    assert world.server is not None
    recs = world.register(3)
    world.agent(recs)
    if world.kind == "etcd":  # history that the empty store will not have
        from etcd3gw.client import Etcd3Client
        client = Etcd3Client(port=world.server.port, api_path="/v3/")
        for i in range(20):
            client.put(f"/contract-history/{i}", "x")
    assert set(world.states(recs).values()) == {State.UP}
    world.server.kill()
    assert isinstance(world.server, Etcd | ZooKeeper)
    data = world.server.data
    shutil.rmtree(data)
    data.mkdir()
    world.server.start()
    seen: list[State] = []

    def all_up() -> bool:
        states = world.states(recs)
        seen.extend(states.values())
        assert State.DOWN not in states.values(), f"live members shown down: {states}"
        return set(states.values()) == {State.UP}

    wait_for(all_up, 30, "members to come back in the empty store")


def test_unknown_while_backend_hangs(world: World) -> None:
    recs = world.register(3)
    world.agent(recs)
    if world.kind == "mc-local":
        # No server to hang: the in-process cache always answers.
        assert set(world.verdict(recs).values()) == {State.UP}
        assert world.reader.session() is SessionState.CONNECTED
        return
    if world.kind == "db":
        # The database cannot be opened by this reader: UNKNOWN, never DOWN. The reader reaches
        # the database file through a symlinked directory that the test takes away.
        link = world.db_path.parent.parent / f"{world.db_path.parent.name}-link"
        link.symlink_to(world.db_path.parent, target_is_directory=True)
        reader_engine = make_engine(f"sqlite:///{link / world.db_path.name}")
        group = world.facade(world.reader, reader_engine)
        try:
            assert group.state(recs[0].id) is State.UP
            reader_engine.dispose()
            link.unlink()
            assert group.state(recs[0].id) is State.UNKNOWN
            link.symlink_to(world.db_path.parent, target_is_directory=True)
            assert group.state(recs[0].id) is State.UP
        finally:
            reader_engine.dispose()
        return
    proxy = world.proxy()
    reader = world.make_driver(proxy)
    group = world.facade(reader)
    assert set(world.verdict(recs, reader).values()) == {State.UP}
    proxy.blackhole = True  # the server stops answering; connections stay open

    def unavailable() -> bool:
        try:
            verdict = world.verdict(recs, reader)
        except BackendUnavailable:
            return True
        assert State.DOWN not in verdict.values(), verdict
        return False

    took = wait_for(unavailable, 10, "the hung backend to be reported unavailable")
    assert took < CLIENT_TIMEOUT + world.down_time + 2
    assert set(world.states(recs, group).values()) == {State.UNKNOWN}
    assert reader.session() in (SessionState.SUSPENDED, SessionState.LOST)
    proxy.heal()
    proxy.cut()
    wait_for(lambda: set(world.states(recs, group).values()) == {State.UP}, 15,
             "the reader to recover")
    wait_for(lambda: connected(reader), 5, "the reader's session to be healthy")


def test_slow_backend_does_not_make_live_members_down(make_world: Callable[..., World]) -> None:
    """0.4 s each way (0.8 s per request), below service_down_time: everybody stays UP.

    ZooKeeper's tolerance is not service_down_time but the session: kazoo drops a connection
    whose ping is not answered within about recv_timeout/3 (minus up to 0.4 s of jitter), so
    the zk world runs with a 6 s session here (docs/drivers.md says so to operators).
    """
    world = make_world(recv_timeout=6000)
    delay = 0.4
    recs = world.register(4)
    if world.kind == "db":
        world.agent(recs, report_delay=2 * delay)
        reader_group = world.group
    else:
        agent_proxy = world.proxy() if world.server is not None else None
        reader_proxy = world.proxy() if world.server is not None else None
        for rec in recs:  # one process per service: each beats on its own clock
            agent = Agent(world, [rec], agent_proxy)
            world.agents.append(agent)
            agent.start()
        reader_group = world.facade(world.make_driver(reader_proxy)) if reader_proxy \
            else world.group
        world.states(recs, reader_group)  # a long-lived reader: connected before it slows down
        for proxy in (agent_proxy, reader_proxy):
            if proxy is not None:
                proxy.delay = delay
    end = time.monotonic() + 2 * world.down_time + 1
    reads = 0
    while time.monotonic() < end:
        states = world.states(recs, reader_group)
        assert State.DOWN not in states.values(), states
        assert State.UNKNOWN not in states.values(), states
        reads += 1
    assert reads >= 3
    assert set(world.states(recs, reader_group).values()) == {State.UP}


# -- configuration and start-up errors ---------------------------------------------------------

BAD_ADDRESSES = {
    "mc": ("memcached_servers", None, ["127.0.0.1"]),
    "zk": ("address", "zookeeper", "127.0.0.1:port"),
    "etcd": ("endpoint", "etcd", "127.0.0.1:2379"),
    "redis": ("url", "redis", "http://127.0.0.1:6379"),
}


@pytest.mark.parametrize("name", sorted(BAD_ADDRESSES))
def test_bad_address_is_one_line_config_error(name: str) -> None:
    opt, group, value = BAD_ADDRESSES[name]
    conf = vigil.conf.make()
    conf([])
    conf.set_override("servicegroup_driver", name)
    conf.set_override(opt, value, group=group)
    with pytest.raises(ConfigError) as info:
        drivers.load(conf)
    assert "\n" not in str(info.value)


def _closed_port() -> int:
    from .conftest import free_port
    return free_port()  # nothing listens there


@pytest.mark.parametrize("name", ["mc", "zk", "etcd", "redis"])
def test_unreachable_backend_fails_join_with_one_line(name: str) -> None:
    port = _closed_port()
    conf = vigil.conf.make()
    conf([])
    conf.set_override("servicegroup_driver", name)
    conf.set_override("service_down_time", 2.0)
    conf.set_override("report_interval", 0.5)
    conf.set_override("memcached_servers", [f"127.0.0.1:{port}"])
    conf.set_override("address", f"127.0.0.1:{port}", group="zookeeper")
    conf.set_override("recv_timeout", 1000, group="zookeeper")
    conf.set_override("endpoint", f"http://127.0.0.1:{port}", group="etcd")
    conf.set_override("url", f"redis://127.0.0.1:{port}/0", group="redis")
    driver = drivers.load(conf)
    try:
        start = time.monotonic()
        with pytest.raises(BackendUnavailable) as info:
            driver.join("h", "compute")
        assert time.monotonic() - start < 5
        assert "\n" not in str(info.value)
        assert info.value.__cause__ is not None or name == "zk"
        # Never connected: no ZooKeeper session ever existed; the others' last request failed.
        assert driver.session() is (SessionState.LOST if name == "zk" else
                                    SessionState.SUSPENDED)
    finally:
        driver.close()


# -- the in-process cache on an injected clock -------------------------------------------------

def test_in_process_cache_expires_on_its_clock_and_distrusts_its_youth() -> None:
    from vigil.clock import FakeClock
    from vigil.objects.liveness import LivenessView

    clock = FakeClock()
    conf = vigil.conf.make()
    conf([])
    conf.set_override("servicegroup_driver", "mc")
    conf.set_override("service_down_time", 2.0)
    conf.set_override("report_interval", 0.5)
    driver = MemcachedDriver(options_from(conf), timing_from(conf), cache=InProcessCache(clock))
    now = dt.datetime(2024, 1, 1)
    rec = {name: ServiceRecord(
        id=i, uuid=name, host=name, binary="vigil-compute", topic="compute", report_count=0,
        disabled=False, disabled_reason=None, forced_down=False, version=1, last_seen_up=now,
        left_at=None, created_at=now, updated_at=None) for i, name in enumerate(["a", "b"])}
    view = LivenessView(now=now, down_after=dt.timedelta(seconds=2), reports_healthy_since=now)
    driver.join("a", "compute")
    # A young cache cannot tell a dead member from one that has not beaten into it yet.
    assert driver.get_states(list(rec.values()), view) == {0: State.UP, 1: State.UNKNOWN}
    clock.advance(1.9)
    driver.heartbeat("a", "compute")
    clock.advance(1.9)
    assert driver.get_states(list(rec.values()), view) == {0: State.UP, 1: State.DOWN}
    clock.advance(0.2)
    assert driver.get_states([rec["a"]], view) == {0: State.DOWN}
    assert len(driver.local or []) == 0
