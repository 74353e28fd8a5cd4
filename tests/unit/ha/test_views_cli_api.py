"""Recoveries through the REST API and the CLI: the same rows, the same words.

A recovery with a timeline, an evacuation and an open alert is written with the same guarded
functions the monitor uses; then ``GET /v2.1/vigil/recoveries[/{id}]`` and ``vigil recovery
list/show`` must show it, admin-only for the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.api.conftest import ADMIN, MEMBER, Api
from vigil.cli.main import main
from vigil.db.ha import alerts as alerts_db
from vigil.db.ha import lease as lease_db
from vigil.db.ha import recoveries as recoveries_db
from vigil.db.ha_models import Recovery
from vigil.errors import Conflict
from vigil.ha.store import RecoveryStore
from vigil.ha.views import RecoveriesAPI
from vigil.objects.ha import RecoveryRecord


@pytest.fixture
def seeded(api: Api) -> tuple[Api, RecoveryRecord]:
    token = lease_db.lease_acquire(api.engine, "ha-monitor", "m1", ttl=60)
    assert token is not None
    host1 = api.computes[0]
    rec = recoveries_db.recovery_open(api.engine, token, host="host1", service_id=host1.id,
                                      trigger="monitor", was_disabled=False, was_forced_down=False,
                                      detail="down for 10 s")
    assert rec is not None
    RecoveryStore(api.engine, lambda: token).disable(rec, "down")
    with api.engine.begin() as conn:  # a failed fence's error, without its timeline entry
        conn.execute(update(Recovery).where(Recovery.id == rec.id)
                     .values(last_error="fence failed"))
    alerts_db.alert_raise(api.engine, token, "mass_failure", "3 of 4 compute hosts are down")
    return api, recoveries_db.recovery_get(api.engine, rec.id)


def test_api_lists_and_shows_recoveries_with_alerts(seeded: tuple[Api, Any]) -> None:
    api, rec = seeded
    body = api.client.get("/v2.1/vigil/recoveries", headers=ADMIN).json()
    assert [r["id"] for r in body["recoveries"]] == [rec.id]
    assert body["recoveries"][0]["phase"] == "disabled"
    assert body["recoveries"][0]["last_error"] == "fence failed"
    assert body["alerts"][0]["kind"] == "mass_failure" and body["alerts"][0]["active"]
    assert body["leader"]["holder"] == "m1"
    for ident in (str(rec.id), rec.uuid):
        one = api.client.get(f"/v2.1/vigil/recoveries/{ident}", headers=ADMIN)
        assert one.status_code == 200
        assert [e["kind"] for e in one.json()["recovery"]["events"]] == ["detected", "disabled"]
    assert api.client.get("/v2.1/vigil/recoveries?host=nope", headers=ADMIN).json()[
        "recoveries"] == []
    assert api.client.get("/v2.1/vigil/recoveries/999", headers=ADMIN).status_code == 404
    assert api.client.get("/v2.1/vigil/recoveries/x!", headers=ADMIN).status_code == 400
    assert api.client.get("/v2.1/vigil/recoveries?bogus=1", headers=ADMIN).status_code == 400
    assert api.client.get("/v2.1/vigil/recoveries", headers=MEMBER).status_code == 403
    assert api.client.get("/v2.1/vigil/recoveries").status_code == 401


def test_cli_lists_and_shows(seeded: tuple[Api, Any], capsys: pytest.CaptureFixture[str]
                             ) -> None:
    api, rec = seeded
    conf = str(api.conf_path)
    assert main(["--config-file", conf, "recovery", "list"]) == 0
    out = capsys.readouterr().out
    assert "ALERT [mass_failure]" in out and "host1" in out and "fence failed" in out
    assert "monitor leader: m1 (epoch 1)" in out
    assert main(["--config-file", conf, "recovery", "show", str(rec.id)]) == 0
    out = capsys.readouterr().out
    assert "Timeline:" in out and "disabled" in out
    assert main(["--config-file", conf, "recovery", "show", "12345"]) == 1
    assert main(["--config-file", conf, "recovery", "show", "not-an-id"]) == 2


def test_manual_request_refuses_a_live_or_unknown_host(api: Api, tmp_path: Path) -> None:
    from vigil import launch
    from vigil.db import services as services_db

    views = RecoveriesAPI(api.engine, launch.group_from(api.conf, api.engine))
    services_db.record_reports(api.engine, [api.computes[0].id], 10)
    with pytest.raises(Conflict, match="still reports"):
        views.request_host_evacuation("host1")
    api.make_unknown(api.computes[1])
    with pytest.raises(Conflict, match="unknown"):
        views.request_host_evacuation("host2")
    services_db.record_leave(api.engine, api.computes[2].id)  # a clean leave: DOWN
    rec = views.request_host_evacuation("host3")
    assert rec.trigger == "manual" and rec.open
    assert views.request_host_evacuation("host3").id == rec.id  # joins the open one
