"""A real browser for the dashboard's tests: Debian's chromium, headless, driven by Playwright.

Never a downloaded browser: ``executable_path`` is the distribution's chromium
(``tests/servers/ensure-system.sh`` installs it), each test gets a fresh profile, and nothing
reaches out (background networking, component updates, sync and QUIC are off). Without
chromium the tests fail with the one line that says how to install it: nothing here skips.

Every page a test opens is watched: a console error or an uncaught exception fails the test
(unless the test declared it expected, e.g. the 403 of a call a reader is refused).

Screenshots go to ``$VIGIL_SCREENSHOTS`` (tests/run.sh sets it, so CI keeps them), else to the
test's tmp dir; with ``VIGIL_DOCS_SCREENSHOTS=1`` they are also written to docs/dashboard/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "dashboard"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium "
                    "(tests/servers/ensure-system.sh does it)", pytrace=False)
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    yield pw
    pw.stop()


@dataclass
class Watched:
    """A page whose console errors and uncaught exceptions are collected."""

    page: Any
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


class Browser:
    def __init__(self, playwright: Any, tmp_path: Path) -> None:
        self.context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=ARGS,
            headless=True, viewport=VIEWPORT)
        self.context.set_default_timeout(15_000)
        self.watched: list[Watched] = []
        for stale in self.context.pages:  # the empty first tab of a persistent context
            stale.close()

    def new_page(self) -> Watched:
        page = self.context.new_page()
        w = Watched(page)
        page.on("console", lambda m: w.errors.append(f"console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda exc: w.errors.append(f"uncaught: {exc}"))
        self.watched.append(w)
        return w

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browser(playwright: Any, tmp_path: Path) -> Iterator[Browser]:
    b = Browser(playwright, tmp_path)
    yield b
    errors = [e for w in b.watched for e in w.unexpected()]
    b.close()
    assert not errors, f"errors in the browser: {errors}"


class Screenshots:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.docs = os.environ.get("VIGIL_DOCS_SCREENSHOTS") == "1"
        self.taken: list[Path] = []

    def take(self, page: Any, name: str, *, full_page: bool = False) -> Path:
        path = self.dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        if self.docs:
            DOCS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Screenshots:
    where = os.environ.get("VIGIL_SCREENSHOTS")
    return Screenshots(Path(where) if where else tmp_path / "screenshots")


def sign_in(w: Watched, url: str, token: str, page: str = "fleet") -> None:
    """Open the dashboard, type the token, wait for the first full render."""
    w.page.goto(f"{url}/dashboard/#/{page}")
    w.page.fill("#token", token)
    w.page.click("#login-form button[type=submit]")
    w.page.wait_for_selector("body[data-rendered=true]")


# ---- a real `vigil up` -----------------------------------------------------------------------
@dataclass
class Up:
    proc: subprocess.Popen[str]
    conf_path: Path
    url: str
    token: str
    lines: Any

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


# The demo intervals of docs/ha.md, a little quicker (as tests/api/test_up.py runs it).
DEMO = {
    "DEFAULT": {"report_interval": "0.5", "service_down_time": "2.5"},
    "conductor": {"coalesce_interval": "0.1", "probe_interval": "0.2"},
    "compute": {"instance_sync_interval": "1", "update_resources_interval": "1"},
    "scheduler": {"pending_poll_interval": "0.5"},
    "ha": {"detection_grace": "0.5", "poll_interval": "0.2"},
}


def start_up(tmp_path: Path, *args: str, sections: dict[str, dict[str, str]] | None = None
             ) -> Up:
    from tests.api.conftest import make_conf
    from tests.api.test_real_clients import START_TIMEOUT, free_port
    from tests.api.test_up import Lines

    conf = {k: dict(v) for k, v in DEMO.items()}
    for k, v in (sections or {}).items():
        conf.setdefault(k, {}).update(v)
    conf.setdefault("api", {})["port"] = str(free_port())
    _, path = make_conf(tmp_path, conf)
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli.main", "--config-file",
                             str(path), "up", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = Lines(proc)
    url = lines.wait_for(r"Vigil API: (\S+)", START_TIMEOUT).group(1)
    assert lines.wait_for(r"Dashboard: (\S+)", 10).group(1) == f"{url}/dashboard/"
    token = lines.wait_for(r"Admin token \(in \S+\): (\S+)", 30).group(1)
    return Up(proc, path, url, token, lines)


def wait_until(fn: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)
