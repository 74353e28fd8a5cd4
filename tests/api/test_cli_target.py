"""Where ``vigil service`` sends its calls: flags, then environment, then configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.api.conftest import make_conf
from vigil.cli.service_cmds import api_target
from vigil.errors import InvalidInput


def ns(endpoint: str | None = None, token: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(os_endpoint=endpoint, os_token=token)


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OS_ENDPOINT", raising=False)
    monkeypatch.delenv("OS_TOKEN", raising=False)
    bare, _ = make_conf(tmp_path, {})
    assert api_target(ns(), bare) is None  # no endpoint anywhere: the database
    conf, _ = make_conf(tmp_path, {"api": {"endpoint": "http://conf:1", "token": "t-conf"}})
    assert api_target(ns(), conf) == ("http://conf:1", "t-conf")
    monkeypatch.setenv("OS_ENDPOINT", "http://env:2")
    monkeypatch.setenv("OS_TOKEN", "t-env")
    assert api_target(ns(), conf) == ("http://env:2", "t-env")
    assert api_target(ns("http://flag:3", "t-flag"), conf) == ("http://flag:3", "t-flag")
    monkeypatch.delenv("OS_TOKEN")
    with pytest.raises(InvalidInput, match="needs a token"):
        api_target(ns("http://flag:3"), bare)
