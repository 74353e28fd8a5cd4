"""Shared fixtures: real databases (SQLite, PostgreSQL, MariaDB) and RabbitMQ, isolated per run.

Every run creates its own PostgreSQL and MariaDB databases and each real-process test its own
RabbitMQ virtual host, so several test runs on one machine never see each other's rows or
messages. A server that is not
reachable fails the tests that need it: nothing here skips.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy.engine import Engine

from vigil import conf as vconf
from vigil.db import migration
from vigil.db.engine import make_engine

PG_ADMIN = os.environ.get("VIGIL_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN = os.environ.get("VIGIL_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/")
RABBIT_URL = os.environ.get("VIGIL_TEST_RABBIT", "rabbit://guest:guest@127.0.0.1:5672/")

RUN_ID = uuid.uuid4().hex[:8]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _create_database(admin_url: str, name: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = sa.engine.make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if admin.dialect.name == "postgresql":
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"vigil_test_{RUN_ID}"
    url = _create_database(PG_ADMIN, name)
    yield url
    _drop_database(PG_ADMIN, name)


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    name = f"vigil_test_{RUN_ID}"
    url = _create_database(MYSQL_ADMIN, name)
    yield url
    _drop_database(MYSQL_ADMIN, name)


def reset_schema(engine: Engine) -> None:
    """Drop every table (including Alembic's) and migrate from scratch."""
    meta = sa.MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)
    migration.sync(engine)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on each of the three supported engines."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/vigil.sqlite"
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("mysql_url")
    engine = make_engine(url)
    reset_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/vigil.sqlite")
    migration.sync(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def rabbit_url() -> str:
    assert port_open("127.0.0.1", 5672), "RabbitMQ is not listening on 127.0.0.1:5672"
    return RABBIT_URL


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write an INI file from {section: {option: value}}."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def make_conf(tmp_path: Path) -> Any:
    """Build a validated ConfigOpts from sections; also returns the file for subprocesses."""

    def _make(sections: dict[str, dict[str, Any]] | None = None) -> tuple[cfg.ConfigOpts, Path]:
        sections = {k: dict(v) for k, v in (sections or {}).items()}
        sections.setdefault("DEFAULT", {}).setdefault("state_path", str(tmp_path / "state"))
        path = write_config(tmp_path / f"vigil-{uuid.uuid4().hex[:6]}.conf", sections)
        return vconf.load(["--config-file", str(path)], default_files=[]), path

    return _make


@contextlib.contextmanager
def private_vhost(rabbit_url: str, prefix: str = "vigil-test") -> Iterator[str]:
    """A transport URL on a RabbitMQ virtual host of this run alone, deleted afterwards.

    A private ``control_exchange`` is not enough: oslo.messaging names its queues after topic
    and server only (``vigil-conductor``, ``compute.h1``), so one queue bound to two runs'
    exchanges feeds both runs' consumers and an agent of one run gets answers from another
    run's conductor. A vhost separates queues too. (Found by the compute functional test.)
    Benchmarks that run outside pytest use it directly.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    for cmd in (["add_vhost", name], ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *cmd], check=True, capture_output=True, timeout=120)
    try:
        yield rabbit_url.rstrip("/") + "/" + name
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True,
                       timeout=120)


@pytest.fixture
def rabbit_vhost_url(rabbit_url: str) -> Iterator[str]:
    """A transport URL on a RabbitMQ virtual host of this test alone (:func:`private_vhost`)."""
    with private_vhost(rabbit_url) as url:
        yield url


@pytest.fixture
def exchange() -> str:
    """A RabbitMQ exchange name of this test alone (set as [DEFAULT] control_exchange)."""
    return f"vigil-test-{uuid.uuid4().hex[:10]}"
