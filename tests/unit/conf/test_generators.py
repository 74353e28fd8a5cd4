"""The standard OpenStack generators find Vigil through its entry points (pyproject.toml):
``oslo-config-generator --namespace vigil``, ``oslopolicy-sample-generator --namespace vigil``,
and ``vigil config sample`` is the config generator's output. Each runs as a real process.

CI installs the package (``pip install -e .``), so its metadata holds the entry points. A
development tree whose editable install predates them gets the same entry points, read from
pyproject.toml, in a throw-away distribution on PYTHONPATH: either way what is tested is what
pyproject.toml declares.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vigil.conf import sample

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ)
    installed = {(e.group, e.name, e.value) for group in DECLARED
                 for e in importlib.metadata.entry_points(group=group)}
    wanted = {(g, n, v) for g, eps in DECLARED.items() for n, v in eps.items()}
    if wanted <= installed:
        return env
    site = tmp_path_factory.mktemp("site")
    info = site / "vigil_entry_points-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vigil-entry-points\n"
                                   "Version: 0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{n} = {v}\n" for n, v in eps.items()) + "\n"
        for group, eps in DECLARED.items()))
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(site), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run(cmd: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_oslo_config_generator_lists_vigil_options(env: dict[str, str]) -> None:
    out = run([str(BIN / "oslo-config-generator"), "--namespace", "vigil"], env)
    lines = out.splitlines()
    for line in ("[database]", "#connection = sqlite:///$state_path/vigil.sqlite",
                 "#service_down_time = 60.0", "[scheduler]", "#host_subset_size = 1"):
        assert line in lines, line
    # The moved options say where Nova had them.
    assert "# Deprecated group/name - [filter_scheduler]/host_subset_size" in lines


def test_oslopolicy_sample_generator_lists_vigil_rules(env: dict[str, str]) -> None:
    out = run([str(BIN / "oslopolicy-sample-generator"), "--namespace", "vigil"], env)
    lines = out.splitlines()
    assert '#"admin_api": "role:admin"' in lines
    assert '#"os_compute_api:os-services:list": "role:admin"' in lines


def test_vigil_config_sample_is_the_generators_output(env: dict[str, str]) -> None:
    namespaces = [n for n in sample.NAMESPACES
                  if importlib.metadata.entry_points(group="oslo.config.opts", name=n)
                  or n == "vigil"]
    args = [str(BIN / "oslo-config-generator"), "--wrap-width", str(sample.WRAP_WIDTH)]
    for name in namespaces:
        args += ["--namespace", name]
    generated = run(args, env)
    ours = run([sys.executable, "-m", "vigil.cli.main", "config", "sample"], env)
    assert ours == generated
    assert "[oslo_messaging_rabbit]" in ours and "[oslo_policy]" in ours
