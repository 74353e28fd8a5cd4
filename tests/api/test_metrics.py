"""/metrics in one process: the fleet's figures come from the database at scrape time (a change
shows at the next scrape, whichever process made it), the API's latency by route template, and
an exposition promtool accepts."""

from __future__ import annotations

import pytest

from vigil.db import services as services_db
from vigil.db.ha import hosts as hosts_db

from .conftest import ADMIN, Api
from .test_deploy import promtool_check, samples

pytestmark = pytest.mark.slow


def test_fleet_figures_follow_the_database(api: Api) -> None:
    text = api.client.get("/metrics").text
    assert samples(text, "vigil_hosts_maintenance") == {"": 0.0}
    assert samples(text, "vigil_services")['{binary="vigil-compute",state="unknown"}'] == 0
    # Another process (here: the database functions the CLI uses) changes the fleet.
    hosts_db.set_maintenance(api.engine, "host2", True, actor="operator", reason="disk")
    api.make_unknown(api.computes[0])
    text = api.client.get("/metrics").text
    assert samples(text, "vigil_hosts_maintenance") == {"": 1.0}
    assert samples(text, "vigil_services")['{binary="vigil-compute",state="unknown"}'] == 1
    assert samples(text, "vigil_fences_total") == {'{result="success"}': 0.0,
                                                   '{result="failure"}': 0.0}
    # No conductor beats here: reports cannot get through, which is why the stale one is
    # unknown and not down.
    assert samples(text, "vigil_report_path_up") == {"": 0.0}
    assert samples(text, "vigil_report_path_healthy_seconds") == {"": 0.0}
    # A conductor beats (what its probe writes): reports get through from now on.
    services_db.beat_report_path(api.engine, "conductor-1", api.registry.group.path_max_gap)
    text = api.client.get("/metrics").text
    assert samples(text, "vigil_report_path_up") == {"": 1.0}
    promtool_check(text)


def test_latency_is_by_route_template_not_by_object(api: Api) -> None:
    for record in api.computes:
        api.client.put(f"/v2.1/os-services/{record.uuid}", json={"status": "enabled"},
                       headers={**ADMIN, "OpenStack-API-Version": "compute 2.53"})
    counts = samples(api.client.get("/metrics").text, "vigil_api_request_duration_seconds_count")
    assert counts['{method="PUT",route="/v2.1/os-services/{service_id}",status="200"}'] == 3
    assert not any(r.uuid in k for k in counts for r in api.computes)


def test_metrics_need_no_token_and_reveal_no_host(api: Api) -> None:
    r = api.client.get("/metrics")
    assert r.status_code == 200
    assert "host1" not in r.text and "host2" not in r.text
