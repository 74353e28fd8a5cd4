"""A database URL whose driver is not installed: one line naming the extra that installs it,
and nothing changed. Run as real ``vigil`` processes, with the driver made unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from vigil.db.engine import missing_driver

# The driver's import fails as it does when the extra is not installed.
WITHOUT = """
import sys
sys.modules[{module!r}] = None
from vigil.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("url", "module", "line"), [
    ("postgresql+psycopg2://vigil:secret@db/vigil", "psycopg2",
     "database postgresql+psycopg2://vigil:***@db/vigil needs the psycopg2 driver: "
     "pip install 'vigil[pg]'"),
    ("mysql+pymysql://vigil@db/vigil", "pymysql",
     "database mysql+pymysql://vigil@db/vigil needs the pymysql driver: "
     "pip install 'vigil[mysql]'"),
    ("postgresql://vigil@db/vigil", "psycopg",
     "database postgresql://vigil@db/vigil asks for the psycopg driver, which Vigil does not "
     "install: write the URL as postgresql+psycopg2://... and pip install 'vigil[pg]'"),
    ("mysql://vigil@db/vigil", "MySQLdb",
     "database mysql://vigil@db/vigil asks for the MySQLdb driver, which Vigil does not "
     "install: write the URL as mysql+pymysql://... and pip install 'vigil[mysql]'"),
    ("postgresql+pg8000://db/vigil", "pg8000",
     "database postgresql+pg8000://db/vigil needs the Python module pg8000, which is not "
     "installed"),
])
def test_the_line(url: str, module: str, line: str) -> None:
    assert missing_driver(make_url(url), module) == line


@pytest.mark.parametrize(("url", "module", "extra"), [
    ("postgresql+psycopg2://vigil@127.0.0.1:1/vigil", "psycopg2", "pg"),
    ("mysql+pymysql://vigil@127.0.0.1:1/vigil", "pymysql", "mysql"),
])
def test_a_command_says_which_extra_to_install(tmp_path: Path, url: str, module: str,
                                               extra: str) -> None:
    conf = tmp_path / "vigil.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n"
                    f"[database]\nconnection = {url}\n")
    for args in (["db", "sync"], ["service", "list", "--direct"]):
        done = subprocess.run([sys.executable, "-c", WITHOUT.format(module=module),
                               "--config-file", str(conf), *args],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr == (f"vigil: error: database {url} needs the {module} driver: "
                               f"pip install 'vigil[{extra}]'\n")
    assert not (tmp_path / "state").exists()
