"""The serial console page in a real browser (Debian's chromium): served by the proxy of a
real ``vigil up``, with the vendored xterm.js, typing into a real instance process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Browser, Screenshots
from tests.functional.test_console_procs import boot_active
from tests.functional.upproc import vigil_up

pytestmark = pytest.mark.slow


def test_typing_into_the_console_page(browser: Browser, shots: Screenshots,
                                      tmp_path: Path) -> None:
    with vigil_up(tmp_path) as up:
        uuid = boot_active(up, "vm-page")
        r = up.api("POST", f"/v2.1/servers/{uuid}/remote-consoles",
                   headers={"OpenStack-API-Version": "compute 2.6"},
                   json={"remote_console": {"protocol": "serial", "type": "serial"}})
        assert r.status_code == 200, r.text
        token = r.json()["remote_console"]["url"].split("token=")[1]
        page_url = f"{up.proxy_url}/console.html?token={token}&instance={uuid}"
        w = browser.new_page()
        page: Any = w.page
        page.goto(page_url)
        page.wait_for_selector("#status[data-state=open]")
        # Nothing was loaded from anywhere but the proxy (xterm.js is shipped with Vigil).
        assert page.evaluate("typeof Terminal") == "function"
        hosts = page.evaluate("performance.getEntriesByType('resource')"
                              ".map(e => new URL(e.name).host)")
        assert set(hosts) == {up.proxy_url.removeprefix("http://")}, hosts
        page.click("#terminal")
        page.keyboard.type("hello browser")
        page.keyboard.press("Enter")
        # Waited for in the DOM (xterm's rows): a polled predicate would be an eval, which the
        # page's Content-Security-Policy forbids.
        page.wait_for_selector("#terminal >> text=echo: hello browser")
        assert "echo: hello browser" in page.evaluate("window.vigilConsole.received")
        shots.take(page, "console-page")
        # The token was used: the same page again is refused, and says so.
        w.allow(r"WebSocket connection to .* failed")
        page.reload()
        page.wait_for_selector("#status[data-state=refused]")
