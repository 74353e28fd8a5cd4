"""Liveness at 10,000 and 100,000 members: one batch read, one heartbeat round, per driver.

For each driver and size N it reports:
  * batch read: wall time of one ``get_states`` over all N records (median of --reads), the
    backend round trips it took (the driver's own request counter; for ``db`` the snapshot's
    statements) and whether every member read UP;
  * heartbeat round: what one report_interval costs the fleet's backend -- the time to send N
    heartbeats one after another from one client (per member: the cost of one beat). For zk and
    etcd the beats of a --hb-sample of members are timed and scaled to N (marked "~");
  * populate: how the N members were put in place (driver joins, or a bulk load for zk/etcd
    where N sequential joins would dominate the run; the bulk-loaded members are real
    ephemeral znodes / leased keys, read by the same get_states).

``db`` is the services table in SQLite (file, WAL): its heartbeat round is the conductor's
coalesced write (``record_reports``: one UPDATE per 500 ids), its read the snapshot (two
statements) plus the pure per-row rule.

Run the servers first (tests/servers/start.sh), then:
    .venv/bin/python bench/liveness_scale.py                       # 10,000 and 100,000
    .venv/bin/python bench/liveness_scale.py --sizes 10000 --drivers redis,mc
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import math
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import vigil.conf  # noqa: E402
from vigil.db import migration  # noqa: E402
from vigil.db import services as services_db  # noqa: E402
from vigil.db.engine import make_engine  # noqa: E402
from vigil.objects.liveness import LivenessView, State  # noqa: E402
from vigil.objects.services import ServiceRecord  # noqa: E402
from vigil.servicegroup import drivers  # noqa: E402
from vigil.servicegroup.drivers.base import Driver  # noqa: E402
from vigil.servicegroup.drivers.db import DbDriver  # noqa: E402

DOWN_TIME = 300.0  # long enough that nothing expires while 100,000 members are put in place


def make_conf(name: str) -> Any:
    conf = vigil.conf.make()
    conf([])
    conf.set_override("servicegroup_driver", name)
    conf.set_override("report_interval", 10.0)
    conf.set_override("service_down_time", DOWN_TIME)
    conf.set_override("memcached_servers", ["127.0.0.1:11211"])
    conf.set_override("socket_timeout", 30.0, group="memcache")
    conf.set_override("recv_timeout", 10000, group="zookeeper")
    conf.set_override("timeout", 30.0, group="etcd")
    conf.set_override("socket_timeout", 30.0, group="redis")
    return conf


def records(n: int, topic: str) -> list[ServiceRecord]:
    now = dt.datetime(2024, 1, 1)
    return [ServiceRecord(id=i, uuid=str(i), host=f"host-{i:06d}", binary="vigil-compute",
                          topic=topic, report_count=0, disabled=False, disabled_reason=None,
                          forced_down=False, version=1, last_seen_up=now, left_at=None,
                          created_at=now, updated_at=None) for i in range(n)]


VIEW = LivenessView(now=dt.datetime(2024, 1, 1), down_after=dt.timedelta(seconds=DOWN_TIME),
                    reports_healthy_since=None)


def timed_reads(driver: Driver, recs: list[ServiceRecord], reads: int) -> tuple[float, int,
                                                                                bool]:
    times: list[float] = []
    trips = 0
    all_up = True
    for _ in range(reads):
        before = getattr(driver, "round_trips", 0)
        t0 = time.perf_counter()
        states = driver.get_states(recs, VIEW)
        times.append(time.perf_counter() - t0)
        trips = getattr(driver, "round_trips", 0) - before
        all_up = all_up and all(s is State.UP for s in states.values()) and len(states) == len(
            recs)
    return statistics.median(times), trips, all_up


def beat_round(driver: Driver, recs: list[ServiceRecord], sample: int) -> tuple[float, bool]:
    """Seconds for one heartbeat of every member, measured on ``sample`` of them if fewer."""
    chosen = recs if sample >= len(recs) else recs[:: max(1, len(recs) // sample)][:sample]
    t0 = time.perf_counter()
    for rec in chosen:
        driver.heartbeat(rec.host, rec.topic)
    took = time.perf_counter() - t0
    return took * len(recs) / len(chosen), len(chosen) < len(recs)


def bench_kv(name: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """mc and redis: joins are heartbeats (one SET each), so populating is a heartbeat round."""
    topic = f"bench-scale-{uuid.uuid4().hex[:6]}"
    recs = records(n, topic)
    agent = drivers.load(make_conf(name))
    reader = drivers.load(make_conf(name))
    t0 = time.perf_counter()
    for rec in recs:
        agent.join(rec.host, rec.topic)
    populate = time.perf_counter() - t0
    read, trips, all_up = timed_reads(reader, recs, args.reads)
    hb, sampled = beat_round(agent, recs, args.hb_sample)
    for driver in (agent, reader):
        driver.close()
    return {"populate": f"{populate:.1f}s joins", "read": read, "trips": trips,
            "all_up": all_up, "hb": hb, "hb_sampled": sampled}


def bench_zk(n: int, args: argparse.Namespace) -> dict[str, Any]:
    topic = f"bench-scale-{uuid.uuid4().hex[:6]}"
    recs = records(n, topic)
    agent: Any = drivers.load(make_conf("zk"))
    reader = drivers.load(make_conf("zk"))
    sample = recs[:: max(1, n // args.hb_sample)][: args.hb_sample]
    t0 = time.perf_counter()
    agent.join(sample[0].host, topic)  # creates the group znode
    pending = []
    for rec in recs[1:]:
        pending.append(agent.client.create_async(f"{agent.prefix}/{topic}/{rec.host}",
                                                 b"bulk", ephemeral=True))
        if len(pending) >= 2000:
            for result in pending:
                result.get(timeout=60)
            pending.clear()
    for result in pending:
        result.get(timeout=60)
    populate = time.perf_counter() - t0
    read, trips, all_up = timed_reads(reader, recs, args.reads)
    hb, sampled = beat_round(agent, recs, args.hb_sample)  # exists() per member
    for driver in (agent, reader):
        driver.close()  # ends the session: ZooKeeper deletes the ephemeral znodes
    return {"populate": f"{populate:.1f}s bulk (pipelined creates)", "read": read,
            "trips": trips, "all_up": all_up, "hb": hb, "hb_sampled": sampled}


def bench_etcd(n: int, args: argparse.Namespace) -> dict[str, Any]:
    topic = f"bench-scale-{uuid.uuid4().hex[:6]}"
    recs = records(n, topic)
    agent: Any = drivers.load(make_conf("etcd"))
    reader = drivers.load(make_conf("etcd"))
    size = min(args.hb_sample, args.etcd_joins)
    sample = recs[:: max(1, n // size)][:size]
    sampled_hosts = {r.host for r in sample}
    t0 = time.perf_counter()
    for rec in sample:  # real joins: a lease each
        agent.join(rec.host, rec.topic)
    joins = time.perf_counter() - t0
    # The rest in bulk: a lease per 1,000 keys, 128 puts per transaction.
    t0 = time.perf_counter()
    leases = []
    rest = [r for r in recs if r.host not in sampled_hosts]
    for start in range(0, len(rest), 1000):
        lease = agent.clients[0].lease(ttl=int(DOWN_TIME))
        leases.append(lease)
        chunk = rest[start:start + 1000]
        for i in range(0, len(chunk), 128):
            ops = [{"request_put": {
                "key": base64.b64encode(agent._key(r.topic, r.host).encode()).decode(),
                "value": base64.b64encode(b"bulk").decode(), "lease": lease.id}}
                for r in chunk[i:i + 128]]
            agent.clients[0].transaction({"compare": [], "success": ops, "failure": []})
    bulk = time.perf_counter() - t0
    read, trips, all_up = timed_reads(reader, recs, args.reads)
    hb, _ = beat_round(agent, sample, len(sample))
    hb = hb * n / len(sample)
    for lease in leases:
        lease.revoke()
    for rec in sample:
        agent.leave(rec.host, rec.topic)
    for driver in (agent, reader):
        driver.close()
    return {"populate": f"{joins:.1f}s for {len(sample)} joins + {bulk:.1f}s bulk",
            "read": read, "trips": trips, "all_up": all_up, "hb": hb,
            "hb_sampled": len(sample) < n}


def bench_db(n: int, args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import insert

    from vigil.db.models import Service

    path = Path(tempfile.mkdtemp(prefix="vigil-scale-")) / "vigil.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    migration.sync(engine)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(Service), [
            {"uuid": str(uuid.uuid4()), "host": f"host-{i:06d}", "binary": "vigil-compute",
             "topic": "compute", "report_count": 0, "disabled": False, "forced_down": False,
             "version": 1, "created_at": now, "deleted": 0} for i in range(n)])
    populate = time.perf_counter() - t0
    ids = [r.id for r in services_db.snapshot(engine).services]
    t0 = time.perf_counter()
    services_db.record_reports(engine, ids, 500)
    hb = time.perf_counter() - t0
    services_db.beat_report_path(engine, "c1", dt.timedelta(seconds=10))
    driver = DbDriver()
    times: list[float] = []
    all_up = True
    for _ in range(args.reads):
        t0 = time.perf_counter()
        snap = services_db.snapshot(engine, topic="compute")
        view = LivenessView(now=snap.now, down_after=dt.timedelta(seconds=60),
                            reports_healthy_since=None)
        states = driver.get_states(snap.services, view)
        times.append(time.perf_counter() - t0)
        all_up = all_up and all(s is State.UP for s in states.values()) and len(states) == n
    engine.dispose()
    return {"populate": f"{populate:.1f}s bulk INSERT", "read": statistics.median(times),
            "trips": 2, "all_up": all_up, "hb": hb, "hb_sampled": False,
            "hb_note": f"{math.ceil(n / 500)} UPDATEs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--drivers", default="db,mc,redis,zk,etcd")
    parser.add_argument("--reads", type=int, default=3)
    parser.add_argument("--hb-sample", type=int, default=10000,
                        help="members whose heartbeats are timed (then scaled to N)")
    parser.add_argument("--etcd-joins", type=int, default=1000,
                        help="etcd members put in place by real joins (a lease each) and "
                        "timed for the heartbeat round; the rest are bulk-loaded")
    args = parser.parse_args()
    print(f"# {' '.join(sys.argv)}")
    print(f"{'driver':6} {'N':>7} {'read':>9} {'trips':>5} {'all UP':>6} "
          f"{'hb round':>10} {'per beat':>9}  populate")
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.drivers.split(","):
            if name == "db":
                r = bench_db(size, args)
            elif name == "zk":
                r = bench_zk(size, args)
            elif name == "etcd":
                r = bench_etcd(size, args)
            else:
                r = bench_kv(name, size, args)
            mark = "~" if r["hb_sampled"] else " "
            note = f" ({r['hb_note']})" if "hb_note" in r else ""
            print(f"{name:6} {size:>7} {r['read']:>8.3f}s {r['trips']:>5} "
                  f"{'yes' if r['all_up'] else 'NO':>6} {mark}{r['hb']:>8.2f}s "
                  f"{r['hb'] / size * 1e6:>7.0f}us  {r['populate']}{note}", flush=True)


if __name__ == "__main__":
    main()
