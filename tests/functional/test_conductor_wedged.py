"""Two ``vigil conductor`` processes on RabbitMQ and PostgreSQL; one's database link stalls.

The stalled conductor still takes reports off the shared queue unless it stops itself; were it
to keep consuming, a share of every service's reports would vanish while the other conductor
kept the report path beating, and stale heartbeats would read ``down``. What must hold
(vigil.conductor.consumption): it stops consuming (the queue has one consumer left, and every
service stays up through the other conductor), no live service ever reads ``down``, and once
its link flows again it takes reports again by itself.

The agents are threads of this test calling ``report_state`` over the real broker, one per
service, as ``vigil compute`` does; the conductors are real processes.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN, _create_database, _drop_database
from tests.tools.tcpproxy import TcpProxy
from vigil import launch, rpc
from vigil.db import services as services_db
from vigil.db.engine import make_engine
from vigil.errors import MessagingUnavailable
from vigil.objects.liveness import State

from .procs import Proc, db_sync, poll

REPORT = 0.5
DOWN = 3.0  # gap tolerance 3 - 1.1 - 0.2 = 1.7 s; stop_consuming_after defaults to 1.0 s
SERVICES = 12
STALL = 3 * DOWN

pytestmark = pytest.mark.slow


def consumers(vhost: str, queue: str) -> int:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "consumers"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1])
    return 0


class Agents:
    """One thread per service, reporting every REPORT seconds over RPC, as agents do."""

    def __init__(self, conf: Any, ids: list[int]) -> None:
        self._transport = rpc.get_transport(conf)
        self._api = rpc.ConductorAPI(self._transport, timeout=1.0)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in ids]
        for t in self._threads:
            t.start()

    def _run(self, service_id: int) -> None:
        while not self._stop.wait(REPORT):
            # As an agent does: a failed report is retried by the next one.
            with contextlib.suppress(MessagingUnavailable):
                self._api.report_state(service_id)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._transport.cleanup()


@pytest.fixture
def pg_db() -> Iterator[str]:
    name = f"vigil_wedge_{uuid.uuid4().hex[:8]}"
    url = _create_database(PG_ADMIN, name)
    yield url
    _drop_database(PG_ADMIN, name)


def test_wedged_conductor_stops_consuming_and_no_live_service_reads_down(
    make_conf: Any, rabbit_vhost_url: str, exchange: str, pg_db: str, tmp_path: Path,
) -> None:
    proxy = TcpProxy(("127.0.0.1", 5432))
    common = {"report_interval": REPORT, "service_down_time": DOWN,
              "transport_url": rabbit_vhost_url, "control_exchange": exchange,
              "rpc_response_timeout": 2}
    conductor_opts = {"coalesce_interval": 0.1, "probe_interval": 0.2}
    via_proxy = sa.engine.make_url(pg_db).set(port=proxy.port).render_as_string(
        hide_password=False)
    conf, path_b = make_conf({"DEFAULT": {**common, "host": "cond-b"},
                              "database": {"connection": pg_db}, "conductor": conductor_opts})
    _, path_a = make_conf({"DEFAULT": {**common, "host": "cond-a"},
                           "database": {"connection": via_proxy}, "conductor": conductor_opts})
    db_sync(path_b)
    engine = make_engine(pg_db)
    ids = [services_db.service_get_or_create(engine, f"c{i}", "vigil-compute", "compute")[0].id
           for i in range(SERVICES)]
    group = launch.group_from(conf, engine)
    vhost = rabbit_vhost_url.rsplit("/", 1)[1]
    procs = [Proc("cond-a", ["--config-file", str(path_a), "conductor"], tmp_path),
             Proc("cond-b", ["--config-file", str(path_b), "conductor"], tmp_path)]
    agents: Agents | None = None
    downs: list[tuple[float, str]] = []
    watching = threading.Event()

    def states() -> dict[int, State]:
        return {m.record.id: m.state for m in group.members(ids=ids)}

    def watch() -> None:  # every read, all along: no test service may ever read down
        while not watching.wait(0.05):
            for sid, state in states().items():
                if state is State.DOWN:
                    downs.append((time.monotonic(), f"service {sid}"))

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        poll(lambda: consumers(vhost, rpc.CONDUCTOR_TOPIC) == 2, 60, interval=0.5,
             what="both conductors consuming")
        agents = Agents(conf, ids)
        poll(lambda: set(states().values()) == {State.UP}, 30, what="all services up")
        watcher.start()

        proxy.stall()  # cond-a's database link stalls; it still reaches RabbitMQ
        stalled = time.monotonic()
        poll(lambda: consumers(vhost, rpc.CONDUCTOR_TOPIC) == 1, 20, interval=0.5,
             what="the stalled conductor to stop consuming")
        assert "not taking reports" in procs[0].log()
        poll(lambda: time.monotonic() - stalled > STALL, STALL + 5, interval=0.2,
             what="the stall to last")
        # Everything went through cond-b: every service reads up, not merely "not down".
        assert set(states().values()) == {State.UP}
        assert consumers(vhost, rpc.CONDUCTOR_TOPIC) == 1

        proxy.heal()
        poll(lambda: consumers(vhost, rpc.CONDUCTOR_TOPIC) == 2, 30, interval=0.5,
             what="the conductor to take reports again by itself")
        assert "joined again; taking reports again" in procs[0].log()
        # Its report path beats again: probes reach it through the broker, writes commit.
        with engine.connect() as conn:
            poll(lambda: conn.execute(sa.text(
                "SELECT now() at time zone 'utc' - last_beat < interval '1 second' "
                "FROM report_paths WHERE conductor = 'cond-a'")).scalar(), 10,
                what="cond-a's report path beating")
        poll(lambda: set(states().values()) == {State.UP}, 10, what="all services up after")
        assert downs == []
    finally:
        watching.set()
        if agents is not None:
            agents.close()
        proxy.heal()
        for p in procs:
            p.terminate()
            p.close()
        proxy.stop()
        engine.dispose()


def test_a_conductor_cut_off_from_the_broker_leaves_services_unknown_and_recovers(
    make_conf: Any, rabbit_vhost_url: str, exchange: str, pg_db: str, tmp_path: Path,
) -> None:
    """The other half of the lease: the database answers but the broker no longer delivers
    this conductor's probes. It stops and rejoins by itself, and a rejoin is not a beat: stale
    heartbeats stay ``unknown`` (nobody can hear the services), never ``down``."""
    host, _, rest = rabbit_vhost_url.partition("@")[2].partition(":")
    port = int(rest.split("/", 1)[0])
    proxy = TcpProxy((host, port))
    common = {"report_interval": REPORT, "service_down_time": DOWN, "control_exchange": exchange,
              "rpc_response_timeout": 2}
    conductor_opts = {"coalesce_interval": 0.1, "probe_interval": 0.2}
    conf, _ = make_conf({"DEFAULT": {**common, "host": "reader",
                                     "transport_url": rabbit_vhost_url},
                         "database": {"connection": pg_db}, "conductor": conductor_opts})
    via_proxy = rabbit_vhost_url.replace(f"{host}:{port}", proxy.address)
    _, path = make_conf({"DEFAULT": {**common, "host": "cond", "transport_url": via_proxy},
                         "database": {"connection": pg_db}, "conductor": conductor_opts})
    db_sync(path)
    engine = make_engine(pg_db)
    ids = [services_db.service_get_or_create(engine, f"c{i}", "vigil-compute", "compute")[0].id
           for i in range(4)]
    group = launch.group_from(conf, engine)
    proc = Proc("cond", ["--config-file", str(path), "conductor"], tmp_path)
    agents: Agents | None = None

    def states() -> set[State]:
        return {m.state for m in group.members(ids=ids)}

    try:
        agents = Agents(conf, ids)

        def reported() -> bool:  # fresh rows read up before any report: wait for reports
            with engine.connect() as conn:
                return bool(conn.execute(sa.text(
                    "SELECT min(report_count) >= 2 FROM services WHERE host LIKE 'c%' "
                    "AND \"binary\" = 'vigil-compute'")).scalar())

        poll(reported, 60, interval=0.2, what="reports written")
        poll(lambda: states() == {State.UP}, 10, what="all services up")
        proxy.stall()
        poll(lambda: "not taking reports" in proc.log(), 20, interval=0.2,
             what="the conductor to stop consuming")
        poll(lambda: states() == {State.UNKNOWN}, DOWN + 10, what="services unknown")
        seen: set[State] = set()
        until = time.monotonic() + 2 * DOWN  # well past the window: still not down
        while time.monotonic() < until:
            seen |= states()
            time.sleep(0.05)
        assert State.DOWN not in seen, seen
        proxy.heal()
        poll(lambda: states() == {State.UP}, 60, what="all services up after the broker heals")
        assert proc.popen.poll() is None  # it recovered by itself, without a restart
    finally:
        if agents is not None:
            agents.close()
        proxy.heal()
        proc.terminate()
        proc.close()
        proxy.stop()
        engine.dispose()
