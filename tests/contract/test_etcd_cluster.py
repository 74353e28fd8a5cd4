"""The etcd driver against a real three-member cluster (the layout of docs/deployment.md).

Two things a single member cannot show:

* behind a load balancer that sends successive requests to different members (HAProxy in
  ``mode http`` without ``stick on src``), answers come from other member ids; that is not a
  new store, so absent members must keep reading DOWN, not UNKNOWN (issue 14 found every
  service UNKNOWN forever);
* with every member listed in ``[etcd] endpoint``, the loss of the member in use is survived
  by the driver itself: the next endpoint answers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.tools.tcpproxy import TcpProxy
from vigil.errors import BackendUnavailable
from vigil.objects.liveness import LivenessTiming, LivenessView, SessionState, State
from vigil.objects.services import ServiceRecord
from vigil.servicegroup import drivers
from vigil.servicegroup.drivers.etcd import EtcdDriver
from vigil.servicegroup.drivers.options import EtcdEndpoint, EtcdOptions

from .conftest import EtcdMember

TIMING = LivenessTiming(report_interval=1.0, service_down_time=5.0, coalesce_interval=0.1)
NOW = dt.datetime(2026, 1, 1)
VIEW = LivenessView(now=NOW, down_after=TIMING.down_after, reports_healthy_since=NOW)


def record(i: int, host: str, topic: str) -> ServiceRecord:
    return ServiceRecord(id=i, uuid=str(uuid.uuid4()), host=host, binary="vigil-compute",
                         topic=topic, report_count=0, disabled=False, disabled_reason=None,
                         forced_down=False, version=1, last_seen_up=NOW, left_at=None,
                         created_at=NOW, updated_at=None)


def driver(ports: list[int], prefix: str) -> EtcdDriver:
    options = EtcdOptions(endpoints=tuple(EtcdEndpoint("http", "127.0.0.1", p) for p in ports),
                          prefix=prefix, timeout=2.0, api_path="/v3/")
    built = drivers.build("etcd", options, TIMING)
    assert isinstance(built, EtcdDriver)
    return built


@pytest.fixture
def fleet(etcd_cluster: list[EtcdMember]) -> Iterator[tuple[EtcdDriver, list[ServiceRecord]]]:
    """An agent over every member with three live members and one that left."""
    for member in etcd_cluster:
        member.ensure()
    prefix = f"/vigil-cluster-{uuid.uuid4().hex[:8]}"
    agent = driver([m.port for m in etcd_cluster], prefix)
    recs = [record(i, f"host-{i}", "compute") for i in range(4)]
    for rec in recs:
        agent.join(rec.host, rec.topic)
    agent.leave(recs[3].host, recs[3].topic)
    agent.prefix_for_tests = prefix  # type: ignore[attr-defined]
    yield agent, recs
    agent.close()


EXPECTED = [State.UP, State.UP, State.UP, State.DOWN]


def test_a_balancer_spreading_requests_over_members_is_not_a_new_store(
        etcd_cluster: list[EtcdMember],
        fleet: tuple[EtcdDriver, list[ServiceRecord]]) -> None:
    agent, recs = fleet
    with TcpProxy(("127.0.0.1", etcd_cluster[0].port)) as proxy:
        reader = driver([proxy.port], agent.prefix_for_tests)  # type: ignore[attr-defined]
        # What HAProxy in mode http does: each request may go to another member. Here every
        # request closes its connection, and the next one goes where the proxy points now.
        reader.clients[0].session.headers["Connection"] = "close"
        members_seen: set[str] = set()
        try:
            for i in range(30):
                proxy.target = ("127.0.0.1", etcd_cluster[i % 3].port)
                for rec in recs[:3]:  # writes between reads: the revision moves on
                    agent.heartbeat(rec.host, rec.topic)
                verdict = reader.get_states(recs, VIEW)
                assert [verdict[r.id] for r in recs] == EXPECTED, (i, verdict)
                assert reader._mark is not None
                members_seen.add(reader._mark.member_id)
        finally:
            reader.close()
    # The positive control: the answers really came from three members (the rule before
    # issue 14's fix called each change of member a new store, and absent members UNKNOWN).
    assert len(members_seen) == 3
    assert reader.new_stores == 0


def test_every_member_listed_survives_the_loss_of_the_one_in_use(
        etcd_cluster: list[EtcdMember],
        fleet: tuple[EtcdDriver, list[ServiceRecord]]) -> None:
    agent, recs = fleet
    reader = driver([m.port for m in etcd_cluster], agent.prefix_for_tests)  # type: ignore[attr-defined]
    victim: EtcdMember | None = None
    try:
        verdict = reader.get_states(recs, VIEW)
        assert [verdict[r.id] for r in recs] == EXPECTED
        first = reader.endpoint
        victim = next(m for m in etcd_cluster if m.endpoint == first)
        victim.kill()
        answered: dict[int, State] | None = None
        deadline = time.monotonic() + 15
        while answered is None:
            # The agent keeps its members alive through the other members meanwhile.
            for rec in recs[:3]:
                # An election after the leader's death may refuse it: retried next round.
                with contextlib.suppress(BackendUnavailable):
                    agent.heartbeat(rec.host, rec.topic)
            try:
                answered = reader.get_states(recs, VIEW)
            except BackendUnavailable:
                assert time.monotonic() < deadline, "no member answered after the loss of one"
                time.sleep(0.1)
        assert [answered[r.id] for r in recs] == EXPECTED
        assert reader.endpoint != first
        assert reader.session() is SessionState.CONNECTED
        assert reader.new_stores == 0
    finally:
        reader.close()
        if victim is not None:
            victim.start()  # it rejoins with its data directory


def test_a_read_the_cluster_cannot_answer_for_a_moment_is_asked_again(
        etcd_cluster: list[EtcdMember],
        fleet: tuple[EtcdDriver, list[ServiceRecord]]) -> None:
    """One endpoint (a load balancer) that refuses for a moment, as an etcd election does
    ("leader changed"): the read waits it out within its budget and answers, instead of
    failing (every service UNKNOWN, shown ``down`` by os-services; issue 14's partition
    scenario at the heal). A refusal longer than the budget still fails, and promptly."""
    agent, recs = fleet
    with TcpProxy(("127.0.0.1", etcd_cluster[0].port)) as proxy:
        reader = driver([proxy.port], agent.prefix_for_tests)  # type: ignore[attr-defined]
        try:
            assert [reader.get_states(recs, VIEW)[r.id] for r in recs] == EXPECTED
            proxy.refuse = True
            proxy.cut()  # the open keep-alive connection too
            answer: list[dict[int, State] | BaseException] = []

            def read() -> None:
                try:
                    answer.append(reader.get_states(recs, VIEW))
                except BaseException as exc:
                    answer.append(exc)

            thread = threading.Thread(target=read)
            thread.start()
            deadline = time.monotonic() + 5
            while proxy.refused < 1:  # the read met the refusal
                assert time.monotonic() < deadline and not answer, answer
                time.sleep(0.01)
            proxy.refuse = False
            thread.join(10)
            assert len(answer) == 1 and isinstance(answer[0], dict), answer
            assert [answer[0][r.id] for r in recs] == EXPECTED
            assert reader.read_retries >= 1

            proxy.refuse = True
            proxy.cut()
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                reader.get_states(recs, VIEW)
            took = time.monotonic() - started
            assert reader.read_retry_budget - 0.5 <= took <= reader.read_retry_budget + 2, took
        finally:
            reader.close()
