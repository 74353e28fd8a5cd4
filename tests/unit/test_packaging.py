"""The package's declarations: every library Vigil imports is declared, runtime dependencies are
ranges (installable beside other OpenStack packages), constraints.txt pins a version inside each
range (what CI installs), and the LICENSE the metadata names is shipped."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in PROJECT["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != "vigil"]


def pins() -> dict[str, str]:
    result = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            result[canonicalize_name(name)] = version
    return result


def imported_libraries() -> dict[str, list[str]]:
    """Top-level names of the third-party modules src/vigil imports -> the files importing."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "src" / "vigil").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "vigil" and top not in sys.stdlib_module_names:
                    found.setdefault(top, []).append(path.name)
    return found


def test_every_imported_library_is_declared() -> None:
    declared = {canonicalize_name(r.name) for r in requirements()}
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        module: files for module, files in imported_libraries().items()
        if not {canonicalize_name(d) for d in providers.get(module, [])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_runtime_dependencies_are_ranges_not_pins() -> None:
    for req in requirements():
        operators = {spec.operator for spec in req.specifier}
        assert "==" not in operators, f"{req}: pin it in constraints.txt, declare a range"
        assert operators & {"<", "~="}, f"{req}: give an upper bound (the next major)"


def test_constraints_pin_a_version_inside_every_range() -> None:
    pinned = pins()
    for req in requirements():
        version = pinned.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(version), f"constraints.txt {version} outside {req}"


def test_license_file_is_the_apache_license_the_metadata_declares() -> None:
    assert PROJECT["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
