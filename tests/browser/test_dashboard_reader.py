"""A reader's dashboard: the pages and no action control; the API refuses its direct calls.

Nova's defaults let only admins read the fleet, so a reader sees nothing until the policy says
otherwise; docs/dashboard.md gives the policy file for read-only operators, used here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, api_factory  # noqa: F401  (the fixture)
from tests.api.test_dashboard_api import reader_policy
from tests.api.test_real_clients import free_port
from tests.browser.conftest import Browser, Screenshots, sign_in, wait_until
from vigil.api.server import ApiServer
from vigil.launch.api import create_app_from_conf

ATTEMPTS = """async ([uuid]) => {
  const token = sessionStorage.getItem("vigil.token");
  const send = async (method, path, body, version) => {
    const headers = {"X-Auth-Token": token, "Content-Type": "application/json"};
    if (version) headers["OpenStack-API-Version"] = `compute ${version}`;
    const r = await fetch(path, {method, headers, body: JSON.stringify(body)});
    return [method + " " + path, r.status];
  };
  return [
    await send("PUT", `/v2.1/os-services/${uuid}`, {status: "disabled"}, "2.53"),
    await send("PUT", "/v2.1/os-services/disable", {host: "host1", binary: "nova-compute"}),
    await send("PUT", `/v2.1/os-services/${uuid}`, {forced_down: true}, "2.53"),
    await send("PUT", "/v2.1/vigil/hosts/host1", {host: {maintenance: true}}),
    await send("POST", "/v2.1/vigil/hosts/host1/action", {evacuate: {}}),
    await send("POST", "/v2.1/vigil/hosts/host1/action", {release: {reason: "x"}}),
  ];
}"""


@pytest.fixture
def serve(api_factory: Any) -> Iterator[Any]:  # noqa: F811
    servers: list[ApiServer] = []

    def _serve(api_section: dict[str, Any] | None = None) -> tuple[Api, str]:
        api: Api = api_factory(api_section)
        server = ApiServer(create_app_from_conf(api.conf, api.registry), "127.0.0.1",
                           free_port())
        server.start()
        servers.append(server)
        return api, server.url

    yield _serve
    for s in servers:
        s.stop()


def test_reader_sees_the_pages_without_actions_and_is_refused(
        serve: Any, browser: Browser, shots: Screenshots, tmp_path: Path) -> None:
    api, url = serve({"policy_file": str(reader_policy(tmp_path))})
    before = api.snapshot()
    w = browser.new_page()
    sign_in(w, url, "reader-token")
    page = w.page
    assert page.get_attribute("body", "data-readonly") == "true"
    assert "read only" in page.inner_text("#who")
    assert page.locator(".tile[data-host]").count() == 3
    page.click('.tile[data-host="host1"]')
    page.wait_for_selector("#drawer table.services")
    page.wait_for_selector("#drawer h2:text('Capacity')")
    for name in ("fleet", "services", "recoveries", "baremetal"):
        page.goto(f"{url}/dashboard/#/{name}")
        page.wait_for_selector(f"#page-{name}:not([hidden])")
        assert page.locator(f"#page-{name} .denied:not([hidden])").count() == 0, name
        assert page.locator("[data-action]:visible").count() == 0, name
        assert page.locator("button.action").count() == 0, name
    page.goto(f"{url}/dashboard/#/services")
    wait_until(lambda: page.locator("#svc-rows .vrow").count() == 4, 5, "four services")
    page.click('#svc-rows .vrow[data-host="host2"]')
    page.wait_for_selector('#drawer[data-host="host2"] table.services')
    assert page.locator("#drawer [data-action]").count() == 0
    shots.take(page, "reader")

    # Its own calls to the mutating routes, straight from the page: every one refused.
    w.allow(r"status of 403")
    results = page.evaluate(ATTEMPTS, [api.computes[0].uuid])
    assert [status for _, status in results] == [403] * len(results), results
    assert api.snapshot() == before


def test_nova_defaults_show_a_reader_nothing_and_say_why(
        serve: Any, browser: Browser) -> None:
    _, url = serve()
    w = browser.new_page()
    sign_in(w, url, "reader-token")
    page = w.page
    assert page.get_attribute("body", "data-feed") == "denied"
    assert "vigil:services:list" in page.inner_text("#fleet-denied")
    assert page.locator(".tile").count() == 0
    assert page.locator("[data-action]").count() == 0


def test_a_refused_token_stays_at_the_door(serve: Any, browser: Browser) -> None:
    _, url = serve()
    w = browser.new_page()
    w.allow(r"status of 401")
    w.page.goto(f"{url}/dashboard/")
    w.page.fill("#token", "not-a-token")
    w.page.click("#login-form button[type=submit]")
    w.page.wait_for_selector("#login-error:not([hidden])")
    assert "refused" in w.page.inner_text("#login-error")
    assert w.page.locator("#nav[hidden]").count() == 1
    assert w.page.evaluate("sessionStorage.getItem('vigil.token')") is None


def test_the_page_says_when_its_feed_is_stale_and_reconnects(
        api_factory: Any, browser: Browser) -> None:  # noqa: F811
    """The API goes away: the page marks its feed stale and keeps the last data; the API comes
    back on the same address: the page reconnects by itself and shows the changes made
    meanwhile, without a reload."""
    api: Api = api_factory()
    port = free_port()
    server = ApiServer(create_app_from_conf(api.conf, api.registry), "127.0.0.1", port)
    server.start()
    w = browser.new_page()
    w.allow(r"ERR_CONNECTION_REFUSED|net::ERR_")   # the reconnection attempts while it is away
    try:
        sign_in(w, server.url, "admin-token")
        page = w.page
        assert page.get_attribute("body", "data-feed") == "live"
        server.stop()
        page.wait_for_selector("body[data-feed=stale]", timeout=10_000)
        assert "data as of" in page.inner_text("#feed-status")
        assert page.locator(".tile[data-host]").count() == 3   # the last data stays
        api.registry.update(api.computes[0], enabled=False, disabled_reason="while away")
        server = ApiServer(create_app_from_conf(api.conf, api.registry), "127.0.0.1", port)
        server.start()
        page.wait_for_selector("body[data-feed=live]", timeout=20_000)
        page.wait_for_selector('.tile[data-host="host1"][data-state="disabled"]',
                               timeout=5_000)
    finally:
        server.stop()
