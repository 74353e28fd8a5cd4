"""Where ``vigil service`` sends its calls: flags, then environment, then configuration."""

from __future__ import annotations

import argparse
import os
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


def test_direct_wins_and_a_running_up_comes_after_every_explicit_endpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil import upstate
    from vigil.cli.target import resolve

    monkeypatch.delenv("OS_ENDPOINT", raising=False)
    monkeypatch.delenv("OS_TOKEN", raising=False)
    conf, _ = make_conf(tmp_path, {})
    held = upstate.lock(conf.state_path)  # this process plays the running vigil up
    try:
        upstate.record(upstate.UpRun(pid=os.getpid(), endpoint="http://up:4", token="t-up",
                                     database="sqlite://", state_path=conf.state_path,
                                     mode="fake"))
        found = resolve(argparse.Namespace(), conf)
        assert found.api == ("http://up:4", "t-up")
        assert found.why == f"vigil up, pid {os.getpid()}, recorded in {conf.state_path}"
        assert resolve(argparse.Namespace(direct=True), conf).api is None
        assert api_target(ns("http://flag:3", "t-flag"), conf) == ("http://flag:3", "t-flag")
        monkeypatch.setenv("OS_ENDPOINT", "http://env:2")
        monkeypatch.setenv("OS_TOKEN", "t-env")
        assert api_target(ns(), conf) == ("http://env:2", "t-env")
    finally:
        held.release()
    monkeypatch.delenv("OS_ENDPOINT")
    assert api_target(ns(), conf) is None  # its lock is gone: the record is not trusted
