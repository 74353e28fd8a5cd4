"""Bare-metal ownership under churn, with real processes over RabbitMQ.

A conductor and five ``vigil compute`` agents with the ``baremetal`` driver, each its own
process group, share 500 nodes through the hash ring; some nodes hold instances. For about
three minutes (``VIGIL_CHURN_SECONDS``) agents are killed (``killpg`` SIGKILL) and restarted
at random (seeded: ``VIGIL_CHURN_SEED``, printed). A checker samples the database all the
while, each sample one read transaction, and holds it to the invariants:

* never a node with two live compute-node records (two owners);
* never a node without a live owner for longer than ``Settings.bound`` = service_down_time
  + one tick + the membership debounce + ``SLACK``. "Live owner" is the checker's own truth:
  the owner's process is running (the database's liveness lags a kill by
  service_down_time). Two things are not counted against the bound, both by design: the
  time during which the report path could not prove a death (a stale service is then
  UNKNOWN, never DOWN, and its nodes wait: measured from the report_paths table, the same
  rule the readers apply), and what happened before the node's current owner got it (a node
  taken by a service that is killed right after starts a new episode: a second failure);
* capacity (what os-hypervisors statistics adds up: every live bare-metal record) always
  equals the inventory of the owned nodes, and never exceeds the inventory;
* an instance is always on a host that owns its node (it moves with the node).

``SLACK`` (2 s) covers what the bound's terms do not: report jitter (10 % of
report_interval), the agent loop's wake-up phase, one tick's own duration and RPC latency on
two shared CPUs, and the checker's sampling period. The debounce term is there for releases
to a newcomer: owner and newcomer adopt the ring a tick apart, and while their rings differ
(a departed member not yet dropped by one of them) a released node can wait for the later one.

The checker also measures what the benchmark reports: nodes moved per membership change
against the ideal (a kill: the nodes the dead agent owned; a restart: its fair share), and
the time from a kill until every node has a live owner again. bench/ring_churn_bench.py
runs the same harness with other sizes.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vigil.db.baremetal import inventory as inventory_db
from vigil.db.baremetal import provisioning as provisioning_db
from vigil.db.baremetal_models import BareMetalNodeRecord
from vigil.db.compute import claims as claims_db
from vigil.db.compute import flavors as flavors_db
from vigil.db.compute import instances as instances_db
from vigil.db.compute import nodes as nodes_db
from vigil.db.compute_models import ComputeNode, Instance
from vigil.db.engine import make_engine
from vigil.db.models import ReportPath, Service
from vigil.db.types import utcnow
from vigil.objects import liveness
from vigil.objects.baremetal import HYPERVISOR_TYPE, Node, Provisioning
from vigil.objects.compute import PowerState, TaskState, VmState
from vigil.ring import HashRing

from .procs import Proc, db_sync, poll

pytestmark = pytest.mark.slow

# What the bound's terms leave out: the coalescing tick before DOWN is written, a tick's own
# work and RPC round trip, report jitter, the checker's 0.2 s sampling. Measured at load 1.5:
# longest without a live owner 3.5 s = service_down_time + tick + 0.5 s (docs/baremetal.md);
# 2 s keeps the check about real orphaning, not the scheduling noise of two shared CPUs.
SLACK = 2.0


@dataclass
class Settings:
    seconds: float = float(os.environ.get("VIGIL_CHURN_SECONDS", "180"))
    seed: int = int(os.environ.get("VIGIL_CHURN_SEED", str(random.SystemRandom().randrange(
        1, 1 << 31))))
    nodes: int = 500
    computes: int = 5
    instances: int = 20
    report_interval: float = 0.5
    service_down_time: float = 2.0
    tick: float = 1.0
    debounce: float = 1.0

    @property
    def bound(self) -> float:
        return self.service_down_time + self.tick + self.debounce + SLACK

    def sections(self, rabbit_url: str, exchange: str, db_url: str) -> dict[str, Any]:
        return {
            "DEFAULT": {"transport_url": rabbit_url, "control_exchange": exchange,
                        "report_interval": self.report_interval,
                        "service_down_time": self.service_down_time,
                        "rpc_response_timeout": 5, "host": "ctl"},
            "database": {"connection": db_url},
            # Beats of the report path every ~0.1 s: its continuity breaks after a gap of one
            # report_interval (0.5 s), and a break hides every death for service_down_time.
            "conductor": {"coalesce_interval": 0.05, "probe_interval": 0.05},
            "compute": {"compute_driver": "baremetal", "update_resources_interval": self.tick,
                        "instance_sync_interval": self.tick * 2},
            "baremetal": {"membership_debounce": self.debounce},
        }


@dataclass
class Sample:
    at: float
    degraded: bool  # the report path could not prove a death now: stale services are UNKNOWN
    down: frozenset[str]  # compute hosts DOWN now, by the readers' rules
    owners: dict[str, str | None]  # node uuid -> live record's host ("" released, None none)
    double: list[str]  # nodes with more than one live record
    capacity: tuple[int, int, int]  # sum over every live bare-metal record
    owned_inventory: tuple[int, int, int]
    misplaced: list[str]  # instances whose host does not own their node


def read_sample(engine: Engine, inventory: dict[str, Node],
                settings: Settings | None = None) -> Sample:
    cn = ComputeNode
    with engine.connect() as conn:
        # One read transaction, one snapshot. pysqlite sends no BEGIN before a SELECT (each
        # would read its own snapshot and a hand-over committed between two of them would
        # look like an instance away from its node's owner): begin it by hand.
        conn.exec_driver_sql("BEGIN")
        at = time.monotonic()
        now = conn.execute(sa.select(utcnow())).scalar_one()
        beats = conn.execute(sa.select(ReportPath.last_beat, ReportPath.healthy_since)).all()
        records = conn.execute(sa.select(cn.id, cn.hypervisor_hostname, cn.host, cn.vcpus,
                                         cn.memory_mb, cn.local_gb).where(
            cn.deleted == 0, cn.hypervisor_type == HYPERVISOR_TYPE)).all()
        links = dict(conn.execute(sa.select(BareMetalNodeRecord.node_uuid,
                                            BareMetalNodeRecord.compute_node_id)).all())
        placed = conn.execute(sa.select(Instance.uuid, Instance.host, Instance.compute_node_id)
                              .where(Instance.deleted == 0)).all()
        services = conn.execute(sa.select(Service.host, Service.last_seen_up,
                                          Service.created_at, Service.left_at,
                                          Service.forced_down).where(
            Service.deleted == 0, Service.topic == "compute")).all()
        conn.rollback()
    per_node: dict[str, list[Any]] = {}
    for r in records:
        per_node.setdefault(r.hypervisor_hostname, []).append(r)
    by_id = {r.id: r for r in records}
    owners: dict[str, str | None] = {}
    for node_uuid in inventory:
        rec = by_id.get(links.get(node_uuid, -1))
        owners[node_uuid] = rec.host if rec is not None else None
    owned = [inventory[u] for u, o in owners.items() if o]
    degraded = False
    down: set[str] = set()
    if settings is not None:
        since = liveness.reports_healthy_since(
            [liveness.PathBeat(b[0], b[1]) for b in beats], now,
            dt.timedelta(seconds=settings.report_interval))
        degraded = since is None or since > now - dt.timedelta(
            seconds=settings.service_down_time)
        for host, last, created, left, forced in services:
            state = liveness.heartbeat_state(
                liveness.Heartbeat(last, created, left, bool(forced)), now,
                dt.timedelta(seconds=settings.service_down_time), since)
            if forced or state is liveness.State.DOWN:
                down.add(host)
    return Sample(
        at=at, degraded=degraded, down=frozenset(down), owners=owners,
        double=[u for u, rs in per_node.items() if len(rs) > 1],
        capacity=(sum(r.vcpus for r in records), sum(r.memory_mb for r in records),
                  sum(r.local_gb for r in records)),
        owned_inventory=(sum(n.cpus for n in owned), sum(n.memory_mb for n in owned),
                         sum(n.local_gb for n in owned)),
        misplaced=[i.uuid for i in placed if i.compute_node_id in by_id
                   and by_id[i.compute_node_id].host != i.host])


@dataclass
class Kill:
    host: str
    at: float
    owned: int
    recovered_after: float | None = None  # wall clock, from the kill
    down_after: float | None = None  # from the kill until liveness said DOWN


@dataclass
class Report:
    samples: int = 0
    violations: list[str] = field(default_factory=list)
    max_unmanaged: float = 0.0  # raw, wall clock
    max_counted: float = 0.0  # minus the time liveness could not prove deaths (the bound's)
    degraded: float = 0.0  # seconds during which the report path could not prove a death
    moves_kill: int = 0  # take-overs: from an owner that was not running
    moves_join: int = 0  # rebalances: from a running owner that released the node
    ideal_kill: float = 0.0  # the nodes each killed agent owned
    ideal_join: float = 0.0  # each restarted agent's fair share
    kills: list[Kill] = field(default_factory=list)
    restarts: int = 0
    events: list[str] = field(default_factory=list)  # wall-clock times, to read with the logs

    def event(self, what: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}"
                           f" {what}")


class Checker(threading.Thread):
    """Samples the database until stopped; every sample is checked at once."""

    def __init__(self, engine: Engine, inventory: dict[str, Node],
                 alive: Callable[[], set[str]], settings: Settings, report: Report) -> None:
        super().__init__(name="churn-checker", daemon=True)
        self.engine = engine
        self.inventory = inventory
        self.alive = alive
        self.settings = settings
        self.bound = settings.bound
        self.report = report
        self._previous_at: float | None = None
        self._degraded_at_start: dict[str, float] = {}
        self._episode_owner: dict[str, str | None] = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.last: Sample | None = None
        self._unmanaged_since: dict[str, float] = {}
        self._manager: dict[str, str] = {}  # last owner seen for each node

    def check(self, s: Sample) -> None:
        r = self.report
        r.samples += 1
        inv_total = tuple(sum(getattr(n, f) for n in self.inventory.values())
                          for f in ("cpus", "memory_mb", "local_gb"))
        if s.double:
            r.violations.append(f"two owners of {s.double[:3]} at {s.at:.1f}")
        if s.capacity != s.owned_inventory:
            r.violations.append(f"capacity {s.capacity} != inventory of owned nodes "
                                f"{s.owned_inventory} at {s.at:.1f}")
        if any(c > i for c, i in zip(s.capacity, inv_total, strict=True)):
            r.violations.append(f"capacity {s.capacity} over the inventory {inv_total}")
        if s.misplaced:
            r.violations.append(f"instances not on their node's owner: {s.misplaced[:3]}")
        alive = self.alive()
        if s.degraded and self._previous_at is not None:
            r.degraded += s.at - self._previous_at
        self._previous_at = s.at
        for node_uuid, owner in s.owners.items():
            if owner and owner in alive:
                self._unmanaged_since.pop(node_uuid, None)
                self._degraded_at_start.pop(node_uuid, None)
            else:
                if self._episode_owner.get(node_uuid, owner) != owner:
                    # It moved, to an owner that is not running either (it took the node and
                    # was killed right after): a second failure, a new episode.
                    self._unmanaged_since.pop(node_uuid, None)
                    self._degraded_at_start.pop(node_uuid, None)
                self._episode_owner[node_uuid] = owner
                since = self._unmanaged_since.setdefault(node_uuid, s.at)
                age = s.at - since
                # While the report path cannot prove a death, a dead owner is UNKNOWN, never
                # DOWN, and its nodes wait by design: that time does not count.
                counted = age - (r.degraded - self._degraded_at_start.setdefault(
                    node_uuid, r.degraded))
                r.max_unmanaged = max(r.max_unmanaged, age)
                r.max_counted = max(r.max_counted, counted)
                if counted > self.bound:
                    began = time.strftime("%H:%M:%S", time.localtime(time.time() - age))
                    r.violations.append(f"node {node_uuid} without a live owner for "
                                        f"{age:.1f} s ({counted:.1f} s counted; owner "
                                        f"{owner!r}) since {began}")
                    self._unmanaged_since[node_uuid] = s.at  # report each episode once
                    self._degraded_at_start[node_uuid] = r.degraded
            previous = self._manager.get(node_uuid)
            if owner and previous != owner:
                if previous is not None:
                    # From a dead owner: a take-over (a kill's cost); from a live one (it
                    # released the node): a rebalance (a restart's cost, or the ring settling).
                    if previous in alive:
                        r.moves_join += 1
                    else:
                        r.moves_kill += 1
                self._manager[node_uuid] = owner
        for k in r.kills:
            if k.down_after is None and k.host in s.down:
                k.down_after = s.at - k.at
            # Re-covered: every node the killed agent owned has a new owner (they go to their
            # takers directly, never through a release). Not once it is running again.
            if k.recovered_after is None and k.host not in alive \
                    and k.host not in s.owners.values():
                k.recovered_after = s.at - k.at

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                sample = read_sample(self.engine, self.inventory, self.settings)
            except Exception as exc:  # a busy database: try again at the next sample
                self.report.violations.append(f"checker could not read: {exc}")
                continue
            with self.lock:
                self.last = sample
            self.check(sample)


class Cluster:
    def __init__(self, settings: Settings, config: Path, logs: Path) -> None:
        self.settings = settings
        self.config = config
        self.logs = logs
        self.procs: dict[str, Proc] = {}
        self.generation: dict[str, int] = {}
        self.all: list[Proc] = []
        self._lock = threading.Lock()

    def start(self, name: str, *args: str) -> Proc:
        gen = self.generation.get(name, 0) + 1
        self.generation[name] = gen
        proc = Proc(f"{name}.{gen}", ["--config-file", str(self.config), *args], self.logs)
        with self._lock:
            self.procs[name] = proc
            self.all.append(proc)
        return proc

    def compute(self, host: str) -> Proc:
        return self.start(host, "compute", "--host", host)

    def kill(self, host: str) -> None:
        with self._lock:
            proc = self.procs.pop(host)
        proc.kill9()

    def alive(self) -> set[str]:
        """The compute hosts whose agent process runs (the checker's truth)."""
        with self._lock:
            return {h for h, p in self.procs.items()
                    if h != "conductor" and p.popen.poll() is None}

    def close(self) -> None:
        for proc in self.all:
            proc.close()

    def dump(self) -> str:
        return "\n".join(f"==== {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.logs.glob("*.log")))


def hosts(n: int) -> list[str]:
    return [f"bm{i}" for i in range(1, n + 1)]


def settled(engine: Engine, inventory: dict[str, Node], members: list[str]) -> bool:
    """Every node owned by a member; every free one by its ring target."""
    s = read_sample(engine, inventory)
    ring = HashRing(members)
    busy = {r.hypervisor_hostname for r in nodes_db.compute_nodes(engine) if r.running_vms}
    return all(o in members and (u in busy or o == ring.get_node(u))
               for u, o in s.owners.items())


def steady(engine: Engine, inventory: dict[str, Node], members: list[str],
           hold: float) -> Callable[[], bool]:
    """A poll condition: :func:`settled`, and still so ``hold`` seconds later."""
    since: list[float] = []

    def check() -> bool:
        if not settled(engine, inventory, members):
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= hold

    return check


def boot_instances(engine: Engine, count: int, rnd: random.Random) -> list[str]:
    """Instances on whole nodes, as the scheduler and an agent's spawn would put them."""
    flavor = flavors_db.flavor_get(engine, "m1.tiny")
    records = rnd.sample([r for r in nodes_db.compute_nodes(engine)
                          if r.hypervisor_type == HYPERVISOR_TYPE], count)
    out = []
    for i, rec in enumerate(records):
        inst = instances_db.instance_create(engine, name=f"churn-{i}", flavor=flavor)
        claimed = claims_db.claim(engine, inst, rec, expected_task_state=TaskState.SCHEDULING,
                                  new_task_state=TaskState.SPAWNING).instance
        assert claimed is not None
        outcome = provisioning_db.provision(engine, rec.host, inst.uuid)
        assert outcome == Provisioning.PROVISIONED, (outcome, rec)
        assert instances_db.instance_update(engine, inst.uuid, {
            "vm_state": VmState.ACTIVE, "task_state": None, "power_state": PowerState.RUNNING},
            host=rec.host, task_states=[TaskState.SPAWNING]) is not None
        out.append(inst.uuid)
    return out


def run_churn(settings: Settings, config: Path, db_url: str, logs: Path,
              out: Callable[[str], None] = print) -> Report:
    """The whole scenario; returns the checker's report (the caller asserts on it)."""
    rnd = random.Random(settings.seed)
    out(f"ring churn: seed {settings.seed}, {settings.nodes} nodes, {settings.computes} "
        f"computes, {settings.seconds:g} s, tick {settings.tick:g} s, service_down_time "
        f"{settings.service_down_time:g} s, debounce {settings.debounce:g} s, bound "
        f"{settings.bound:g} s")
    cluster = Cluster(settings, config, logs)
    report = Report()
    checker: Checker | None = None
    try:
        db_sync(cluster.config)  # only `vigil db sync` migrates
        conductor = cluster.start("conductor", "conductor")
        poll(lambda: "listening on topic" in conductor.log(), 60, what="the conductor")
        engine = make_engine(db_url)
        inventory = {}
        for i in range(settings.nodes):
            n = inventory_db.node_create(engine, name=f"node-{i}", cpus=rnd.choice((8, 16, 32)),
                                         memory_mb=rnd.choice((32768, 65536)), local_gb=500)
            inventory[n.uuid] = n
        members = hosts(settings.computes)
        for host in members:
            cluster.compute(host)
        poll(steady(engine, inventory, members, 3 * settings.tick), 90, interval=0.5,
             what="the first ring to settle")
        boot_instances(engine, settings.instances, rnd)

        checker = Checker(engine, inventory, cluster.alive, settings, report)
        checker.start()
        dead: dict[str, float] = {}
        deadline = time.monotonic() + settings.seconds
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(2.0, 6.0))
            now = time.monotonic()
            alive = sorted(cluster.alive())
            revivable = [h for h, at in dead.items() if now - at > 3 * settings.bound / 2]
            if revivable and (len(alive) <= 2 or rnd.random() < 0.5):
                host = rnd.choice(revivable)
                del dead[host]
                report.restarts += 1
                report.ideal_join += settings.nodes / (len(alive) + 1)
                report.event(f"restart {host}")
                cluster.compute(host)
            elif len(alive) > 2:
                host = rnd.choice(alive)
                with checker.lock:
                    last = checker.last
                owned = sum(1 for o in last.owners.values() if o == host) if last else 0
                cluster.kill(host)
                report.event(f"kill {host} (owned {owned})")
                dead[host] = time.monotonic()
                report.kills.append(Kill(host, dead[host], owned))
                report.ideal_kill += owned
        # The last kills' nodes must be re-covered before their agents come back (a restart
        # would hide whether they were).
        poll(lambda: all(k.recovered_after is not None for k in report.kills),
             3 * settings.bound, interval=0.2, what="the last kills to be re-covered")
        for host in list(dead):
            report.restarts += 1
            report.ideal_join += settings.nodes / len(members)
            cluster.compute(host)
        poll(steady(engine, inventory, members, 3 * settings.tick), 60, interval=0.5,
             what="the ring to settle after the churn")
        time.sleep(1.0)  # a few more samples of the settled state
    except BaseException:
        out(cluster.dump())
        raise
    finally:
        if checker is not None:
            checker.stop.set()
            checker.join(10)
        cluster.close()
    summarize(settings, report, out)
    return report


def summarize(settings: Settings, r: Report, out: Callable[[str], None]) -> None:
    recovered = [k.recovered_after for k in r.kills if k.recovered_after is not None]
    actual = r.moves_kill + r.moves_join
    ideal = r.ideal_kill + r.ideal_join
    out(f"  {len(r.kills)} kills, {r.restarts} restarts, {r.samples} samples; "
        f"{len(r.violations)} invariant violations; longest without a live owner "
        f"{r.max_counted:.1f} s counted, bound {settings.bound:g} s ({r.max_unmanaged:.1f} s "
        f"wall clock; the report path could not prove deaths for {r.degraded:.1f} s in all)")
    if ideal:
        out(f"  nodes moved: {actual} / ideal {ideal:.0f} = {actual / ideal:.2f}x; take-overs "
            f"{r.moves_kill} / {r.ideal_kill:.0f} owned by the killed agents = "
            f"{r.moves_kill / max(r.ideal_kill, 1):.2f}x, rebalances {r.moves_join} / "
            f"{r.ideal_join:.0f} fair shares of the restarted agents = "
            f"{r.moves_join / max(r.ideal_join, 1):.2f}x")
    detected = [k.down_after for k in r.kills if k.down_after is not None]
    handed = [k.recovered_after - k.down_after for k in r.kills
              if k.recovered_after is not None and k.down_after is not None]
    if recovered:
        out(f"  re-coverage after a kill: median {statistics.median(recovered):.1f} s, "
            f"max {max(recovered):.1f} s over {len(recovered)} kills "
            f"(service_down_time {settings.service_down_time:g} s + tick {settings.tick:g} s "
            f"= {settings.service_down_time + settings.tick:g} s)")
    if handed:
        out(f"    = liveness saying DOWN: median {statistics.median(detected):.1f} s, max "
            f"{max(detected):.1f} s; then the hand-over: median "
            f"{statistics.median(handed):.1f} s, max {max(handed):.1f} s "
            f"(tick {settings.tick:g} s)")
    out(f"  reproduce: VIGIL_CHURN_SEED={settings.seed} VIGIL_CHURN_SECONDS={settings.seconds:g}"
        f" .venv/bin/pytest -s -p no:cacheprovider {Path(__file__).relative_to(ROOT)}")
    for v in r.violations[:20]:
        out(f"  VIOLATION {v}")
    if r.violations:
        out("  events: " + "; ".join(r.events))


ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def churn_env(tmp_path: Path, make_conf: Any, rabbit_vhost_url: str,
              exchange: str) -> tuple[Settings, Path, str, Path]:
    settings = Settings()
    db_url = f"sqlite:///{tmp_path}/churn.sqlite"
    _conf, path = make_conf(settings.sections(rabbit_vhost_url, exchange, db_url))
    logs = tmp_path / "logs"
    logs.mkdir()
    return settings, path, db_url, logs


def test_ring_churn_keeps_single_ownership_and_coverage(
        churn_env: tuple[Settings, Path, str, Path]) -> None:
    settings, path, db_url, logs = churn_env
    lines: list[str] = []

    def out(line: str) -> None:
        lines.append(line)
        print(line, file=sys.stderr if line.startswith("====") else sys.stdout, flush=True)

    report = run_churn(settings, path, db_url, logs, out)
    assert report.kills, "the churn killed nothing"
    assert not report.violations, "\n".join(lines)
    assert all(k.recovered_after is not None for k in report.kills), "\n".join(lines)
