"""``vigil config sample``: the sample configuration, as oslo-config-generator writes it.

The options reach the generator through the package's ``oslo.config.opts`` entry point
(``vigil = vigil.conf.opts:list_opts``, pyproject.toml), the same one an operator's
``oslo-config-generator --namespace vigil`` uses, so the two outputs cannot differ. The sample
adds the namespaces of the libraries whose groups Vigil's processes read (the groups start-up
validation accepts: :mod:`vigil.conf.libraries`); keystonemiddleware's only when installed.
"""

from __future__ import annotations

import importlib.metadata
from typing import IO

from oslo_config import cfg, generator

from vigil.errors import ConfigError

ENTRY_POINTS = "oslo.config.opts"
NAMESPACES = ("vigil", "oslo.messaging", "oslo.policy", "keystonemiddleware.auth_token")
WRAP_WIDTH = 79


def namespaces() -> list[str]:
    """The namespaces of :data:`NAMESPACES` that are installed; Vigil's own must be."""
    installed = {e.name for e in importlib.metadata.entry_points(group=ENTRY_POINTS)}
    if "vigil" not in installed:
        raise ConfigError(
            "the 'vigil' oslo.config.opts entry point is not installed (the package's metadata "
            "is older than its source): reinstall it, e.g. pip install -e .")
    return [name for name in NAMESPACES if name in installed]


def render(output: IO[str]) -> None:
    """Write the sample to ``output`` with oslo.config's generator."""
    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    args = ["--wrap-width", str(WRAP_WIDTH)]
    for name in namespaces():
        args += ["--namespace", name]
    conf(args, project="vigil", default_config_files=[], default_config_dirs=[])
    generator.generate(conf, output)
