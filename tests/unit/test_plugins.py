"""The one plugin loader: every table entry loads, and every mistake is one clear line."""

from __future__ import annotations

import abc

import pytest

from vigil import plugins
from vigil.compute.virt.driver import VirtDriver
from vigil.conf import opts
from vigil.errors import ConfigError
from vigil.ha.fence.base import FenceAgent
from vigil.servicegroup.drivers.base import Driver

KINDS = [(plugins.SERVICEGROUP_DRIVERS, Driver), (plugins.COMPUTE_DRIVERS, VirtDriver),
         (plugins.FENCE_AGENTS, FenceAgent)]


@pytest.mark.parametrize(("kind", "base"), KINDS, ids=lambda k: getattr(k, "option", ""))
def test_every_entry_loads_a_class_of_its_kind(kind: plugins.Kind, base: type) -> None:
    for name in kind.names:
        cls = plugins.load(kind, name, base)
        assert issubclass(cls, base) and not getattr(cls, "__abstractmethods__", None), name
        assert getattr(cls, "name", name) == name  # a plugin answers to its table's name


@pytest.mark.parametrize(("kind", "base"), KINDS, ids=lambda k: getattr(k, "option", ""))
def test_unknown_name_names_the_option_and_the_valid_ones(kind: plugins.Kind,
                                                          base: type) -> None:
    with pytest.raises(ConfigError) as info:
        plugins.load(kind, "telepathy", base)
    message = str(info.value)
    assert message == (f"unknown {kind.option} 'telepathy'; choose one of "
                       f"{', '.join(kind.names)}")
    assert info.value.__cause__ is None


def test_missing_library_names_the_extra_to_install() -> None:
    kind = plugins.Kind("[x] thing", {"ghost": plugins.Plugin("vigil_no_such_lib.mod:C",
                                                                extra="ghost")})
    with pytest.raises(ConfigError, match=r"^\[x\] thing 'ghost' is not available: .*"
                                          r"\(install vigil\[ghost\]\)$") as info:
        plugins.load(kind, "ghost", object)
    assert isinstance(info.value.__cause__, ImportError)


def test_an_entry_of_the_wrong_kind_is_refused() -> None:
    class Base(abc.ABC):
        @abc.abstractmethod
        def run(self) -> None: ...

    kind = plugins.Kind("[x] thing", {"wrong": plugins.Plugin("vigil.errors:ConfigError")})
    with pytest.raises(ConfigError, match=r"vigil\.errors:ConfigError is not a Base$"):
        plugins.load(kind, "wrong", Base)


def test_the_options_offer_exactly_the_loaders_names() -> None:
    """One list of names: an option's choices are its loader's table."""
    choices = {opt.dest: tuple(opt.type.choices) for _, group in opts.list_opts()
               for opt in group if getattr(opt.type, "choices", None)}
    assert choices["servicegroup_driver"] == plugins.SERVICEGROUP_DRIVERS.names
    assert choices["compute_driver"] == plugins.COMPUTE_DRIVERS.names
    assert choices["fence_agent"] == plugins.FENCE_AGENTS.names
