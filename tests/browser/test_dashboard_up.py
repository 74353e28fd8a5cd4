"""The dashboard of a running ``vigil up`` in a real browser: an operator signs in with the
token ``vigil up`` printed, sees every service, watches a crashed host go down on its tile and
its recovery's timeline draw each phase as it happens, sees it come back, and acts."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import Browser, Screenshots, sign_in, start_up, wait_until

pytestmark = pytest.mark.slow

TIMELINE_LAG = 2.5
PHASES = ("detected", "disabled", "quarantined", "fence_started", "fenced", "forced_down",
          "evacuation_requested", "instance_evacuated", "evacuated", "released", "re_enabled")

WATCH_TILE = """([host]) => {
  window.__tileLog = [];
  let last;
  const check = () => {
    const el = document.querySelector(`.tile[data-host="${host}"]`);
    const s = el ? el.dataset.state : null;
    if (s !== last) { last = s; window.__tileLog.push([s, Date.now()]); }
  };
  new MutationObserver(check).observe(document.getElementById("fleet-zones"),
    {attributes: true, childList: true, subtree: true});
  check();
}"""

WATCH_TIMELINE = """() => {
  window.__kinds = {};
  const check = () => {
    for (const g of document.querySelectorAll("#rec-detail svg g.ev[data-kind]")) {
      if (!(g.dataset.kind in window.__kinds)) window.__kinds[g.dataset.kind] = Date.now();
    }
  };
  new MutationObserver(check).observe(document.getElementById("rec-detail"),
    {childList: true, subtree: true});
}"""


def epoch(value: dt.datetime) -> float:
    return value.replace(tzinfo=dt.UTC).timestamp()


def test_an_operator_watches_a_crash_and_acts(
        tmp_path: Path, browser: Browser, shots: Screenshots,
        capsys: pytest.CaptureFixture[str]) -> None:
    from vigil import launch
    from vigil.cli.main import main
    from vigil.db import services as db
    from vigil.db.ha import recoveries as recoveries_db
    from vigil.objects.ha import Phase
    from vigil.objects.liveness import State

    up = start_up(tmp_path, "--computes", "3")
    admin = {"X-Auth-Token": up.token}

    def vigil(*args: str) -> str:
        code = main(["--config-file", str(up.conf_path), *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    try:
        from vigil import conf as vconf

        conf = vconf.load(["--config-file", str(up.conf_path)], default_files=[])
        engine = launch.engine_from(conf)
        group = launch.group_from(conf, engine)

        def states() -> dict[str, State]:
            snap = db.snapshot(engine, topic="compute")
            by_id = group.states(snap)
            return {s.host: by_id[s.id] for s in snap.services}

        wait_until(lambda: set(states().values()) == {State.UP} and len(states()) == 3, 60,
                   "three computes up")

        # -- sign in, see every service ------------------------------------------------------
        fleet = browser.new_page()
        fleet.page.goto(f"{up.url}/dashboard/")
        fleet.page.wait_for_selector("#login:not([hidden])")
        shots.take(fleet.page, "login")
        sign_in(fleet, up.url, up.token)
        assert fleet.page.inner_text("#feed-status") == "live"
        tiles = fleet.page.locator(".tile[data-host]")
        assert sorted(tiles.evaluate_all("ts => ts.map(t => t.dataset.host)")) == [
            "compute-1", "compute-2", "compute-3"]
        wait_until(lambda: fleet.page.locator('.tile[data-state="up"]').count() == 3, 10,
                   "three tiles up")
        listed = httpx.get(f"{up.url}/v2.1/vigil/services", headers=admin).json()["services"]
        fleet.page.goto(f"{up.url}/dashboard/#/services")
        fleet.page.wait_for_selector("#svc-rows .vrow")

        def shown() -> set[tuple[str, str]]:
            rows = fleet.page.locator("#svc-rows .vrow").evaluate_all(
                "rs => rs.map(r => [r.dataset.host, r.dataset.binary])")
            return {(h, b) for h, b in rows}

        every = {(s["host"], s["binary"]) for s in listed}
        assert len(every) >= 5  # conductor, scheduler, three computes
        wait_until(lambda: shown() == every, 10, "every service in the list")
        shots.take(fleet.page, "services")

        # -- a crash, watched on the Fleet page and on the Recoveries page --------------------
        for name in ("vm1", "vm2"):
            vigil("server", "create", "--flavor", "m1.tiny", "--name", name,
                  "--host", "compute-2", "--wait")
        fleet.page.goto(f"{up.url}/dashboard/#/fleet")
        fleet.page.wait_for_selector('#page-fleet:not([hidden]) .tile[data-host="compute-2"]')
        fleet.page.evaluate(WATCH_TILE, ["compute-2"])
        recoveries = browser.new_page()
        sign_in(recoveries, up.url, up.token, "recoveries")
        recoveries.page.evaluate(WATCH_TIMELINE)

        vigil("host", "crash", "compute-2")
        t_down = wait_until(lambda: states()["compute-2"] is State.DOWN and time.time(), 30,
                            "compute-2 down", every=0.02)
        wait_until(lambda: len(fleet.page.evaluate("window.__tileLog")) > 1, 5,
                   "the tile to change")
        log = fleet.page.evaluate("window.__tileLog")
        state, t_tile = log[1]
        latency = t_tile / 1000 - t_down
        with capsys.disabled():
            print(f"\ncrash -> tile: {state} {latency:.2f} s after the service went down")
        assert state != "up" and latency < 2.0, log

        rec = wait_until(lambda: next((r for r in recoveries_db.recoveries(engine)
                                       if r.host == "compute-2"), None), 30, "a recovery")
        wait_until(lambda: recoveries_db.recovery_get(engine, rec.id).phase == Phase.EVACUATED, 60,
                   "the evacuations")
        recoveries.page.wait_for_selector('#rec-detail g.ev[data-kind="evacuated"]',
                                          timeout=5000)
        # Quarantined while its instances moved (here less than a second: the tile, which
        # shows the state of each poll, may not catch it; the timeline has every event),
        # released with the last of them: forced down (and disabled) until it reports again.
        wait_until(lambda: fleet.page.get_attribute('.tile[data-host="compute-2"]',
                                                    "data-state") == "forced-down", 3,
                   "the tile forced down")
        shots.take(recoveries.page, "recoveries")
        shots.take(fleet.page, "fleet")
        fleet.page.click('.tile[data-host="compute-2"]')
        fleet.page.wait_for_selector('#drawer[data-host="compute-2"] table.instances, '
                                     '#drawer[data-host="compute-2"] .muted:text("No instance")')
        actions = fleet.page.locator("#drawer [data-action]").evaluate_all(
            "bs => bs.map(b => b.dataset.action)")
        assert {"enable", "unforce-down", "maintenance-on"} <= set(actions), actions
        shots.take(fleet.page, "host")
        fleet.page.click("#drawer-close")

        vigil("host", "revive", "compute-2")
        wait_until(lambda: recoveries_db.recovery_get(engine, rec.id).phase == Phase.COMPLETED, 60,
                   "the recovery to complete")
        fleet.page.wait_for_selector('.tile[data-host="compute-2"][data-state="up"]',
                                     timeout=5000)
        recoveries.page.wait_for_selector('#rec-detail g.ev[data-kind="re_enabled"]',
                                          timeout=5000)
        shots.take(recoveries.page, "recovery-completed")

        seen: dict[str, int] = recoveries.page.evaluate("window.__kinds")
        first: dict[str, float] = {}
        for e in recoveries_db.events(engine, rec.id):
            first.setdefault(e.kind, epoch(e.created_at))
        for kind in PHASES:
            assert kind in seen and kind in first, (kind, seen, first)
        lags = {kind: seen[kind] / 1000 - first[kind] for kind in PHASES}
        with capsys.disabled():
            print("timeline lag (s): " + ", ".join(f"{k} {v:.2f}" for k, v in lags.items()))
        # Each phase is drawn as it happens: within a poll interval (1 s) and a poll of it
        # (the API shares vigil up's process, and this machine, with everything else).
        for kind, lag in lags.items():
            assert -0.5 < lag < TIMELINE_LAG, f"{kind} drawn {lag:.2f} s after it happened"

        # -- an action from the dashboard shows in vigil service list -------------------------
        fleet.page.click('.tile[data-host="compute-1"]')
        fleet.page.click('#drawer [data-action="disable"]')
        fleet.page.fill("#confirm-reason", "rack 4 cabling (dashboard)")
        assert "PUT /v2.1/os-services/" in fleet.page.inner_text("#confirm-call")
        shots.take(fleet.page, "action-dialog")
        fleet.page.click("#confirm-ok")
        fleet.page.wait_for_selector("#confirm", state="hidden")
        fleet.page.wait_for_selector('.tile[data-host="compute-1"][data-state="disabled"]',
                                     timeout=5000)
        out = vigil("service", "list", "--host", "compute-1", "--binary", "vigil-compute")
        row = next(line for line in out.splitlines() if "compute-1" in line)
        assert "disabled" in row and "rack 4 cabling (dashboard)" in row, out
        fleet.page.click('#drawer [data-action="enable"]')
        fleet.page.click("#confirm-ok")
        fleet.page.wait_for_selector('.tile[data-host="compute-1"][data-state="up"]',
                                     timeout=5000)

        # -- an instance's console, from its host's drawer ---------------------------------
        # The button asks Nova's remote-consoles API for a one-time token and opens the serial
        # proxy's own page with it, in a new tab. (The fake driver's instances have no console
        # to bridge: what is checked here is the link, the token and the page.)
        from vigil.db.compute import instances as instances_db

        proxy = up.lines.wait_for(r"Serial console proxy: (\S+)", 30).group(1).rstrip("/")
        vm = instances_db.instances(engine, name="vm1")[0]
        fleet.page.click("#drawer-close")
        fleet.page.click(f'.tile[data-host="{vm.host}"]')
        fleet.page.wait_for_selector(f'#drawer button[data-console="{vm.uuid}"]', timeout=10000)
        with fleet.page.context.expect_page() as popup:
            fleet.page.click(f'#drawer button[data-console="{vm.uuid}"]')
        tab = popup.value
        # Playwright's sync API updates tab.url only while it is called into: wait with its own
        # wait (which pumps the browser's events), not by polling the property.
        tab.wait_for_url("**/console.html?**", timeout=15000)
        opened = httpx.URL(tab.url)
        assert f"{opened.scheme}://{opened.netloc.decode()}" == proxy, (tab.url, proxy)
        assert opened.params["instance"] == vm.uuid and len(opened.params["token"]) > 16
        tab.wait_for_selector("#status", timeout=10000)
        tab.close()
        engine.dispose()
    finally:
        code = up.stop()
    assert code == 0


def test_bare_metal_hand_overs_as_they_happen(
        tmp_path: Path, browser: Browser, shots: Screenshots,
        capsys: pytest.CaptureFixture[str]) -> None:
    from vigil import conf as vconf
    from vigil import launch
    from vigil.baremetal.nodes import NodesAPI
    from vigil.cli.main import main

    up = start_up(tmp_path, "--computes", "3", "--baremetal-nodes", "24")
    try:
        conf = vconf.load(["--config-file", str(up.conf_path)], default_files=[])
        nodes = NodesAPI(launch.engine_from(conf))

        def owners() -> dict[str, str | None]:
            return {v.node.uuid: v.owner for v in nodes.list()}

        wait_until(lambda: len(set(owners().values()) - {None}) == 3
                   and None not in owners().values(), 90, "24 nodes shared by 3 hosts")
        page = browser.new_page()
        sign_in(page, up.url, up.token, "baremetal")

        def owned_on_page() -> dict[str, int]:
            return dict(page.page.locator("#bm-owners .owner").evaluate_all(
                "os => os.map(o => [o.dataset.owner, o.querySelectorAll('.node').length])"))

        wait_until(lambda: sum(owned_on_page().values()) == 24
                   and len(owned_on_page()) == 3, 10, "the nodes per owner")
        lost = [u for u, o in owners().items() if o == "compute-1"]
        assert lost
        assert main(["--config-file", str(up.conf_path), "host", "crash", "compute-1"]) == 0
        capsys.readouterr()
        # The ring hands compute-1's nodes over once it is down (and the debounce passed):
        # each hand-over appears in the log, live.
        wait_until(lambda: all(owners()[u] not in (None, "compute-1") for u in lost), 90,
                   "compute-1's nodes taken by live hosts")
        wait_until(lambda: page.page.locator("#bm-handovers li[data-node]").count()
                   >= len(lost), 5, "the hand-overs on the page")
        text = page.page.inner_text("#bm-handovers")
        assert "compute-1 →" in text
        wait_until(lambda: "compute-1" not in owned_on_page(), 5, "compute-1 owning nothing")
        shots.take(page.page, "baremetal")
    finally:
        code = up.stop()
    assert code == 0

