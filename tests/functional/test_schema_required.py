"""Only ``vigil db sync`` migrates: a daemon that finds the schema behind its code says so in
one line and exits non-zero, without touching the database; ``vigil up`` still creates its
own embedded database."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from vigil.db import migration
from vigil.db.engine import make_engine

from .procs import VIGIL, db_sync

pytestmark = pytest.mark.slow

DAEMONS = [["conductor"], ["scheduler"], ["api"]]


def config(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path}/vigil.sqlite"
    path = tmp_path / "vigil.conf"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[database]\nconnection = {url}\n"
                    "[api]\nport = 1\n")
    return path, url


def run(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VIGIL, "--config-file", str(conf), *args], capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("daemon", DAEMONS, ids=lambda d: d[0])
def test_daemon_refuses_an_empty_database_and_leaves_it_empty(
        tmp_path: Path, daemon: list[str]) -> None:
    conf, url = config(tmp_path)
    result = run(conf, *daemon)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "vigil: error: the database schema is behind this Vigil (at empty, needs "
        f"{migration.head()}): run 'vigil db sync' first"]
    assert migration.current(make_engine(url)) is None
    assert sa.inspect(make_engine(url)).get_table_names() == []


def test_daemon_refuses_a_schema_one_migration_behind(tmp_path: Path) -> None:
    conf, url = config(tmp_path)
    db_sync(conf)
    engine = make_engine(url)
    script = ScriptDirectory.from_config(migration._config(engine))
    head = sorted(script.get_heads())[0]
    parent = script.get_revision(head).down_revision
    assert isinstance(parent, str)
    with engine.begin() as conn:  # as if this head's migration had not run yet
        if len(script.get_revision(parent).nextrev) > 1:  # a branch point: another head has it
            conn.execute(sa.text("DELETE FROM alembic_version WHERE version_num = :h"),
                         {"h": head})
        else:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :p "
                                 "WHERE version_num = :h"), {"p": parent, "h": head})
    result = run(conf, "conductor")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "the database schema is behind this Vigil" in result.stderr
    assert "run 'vigil db sync' first" in result.stderr
