"""Refuse configuration files that name an unknown section or option, or give a bad value.

oslo.config itself ignores what it does not know: ``[database] conection = postgresql://...``
(one letter missing) was silently skipped and the command ran on a local SQLite file. And it
converts values lazily, when an option is first read: ``rpc_response_timeout = 3.0`` for an
integer option let three daemons start and crashed two others with a traceback the first time
they used it. So every command checks, before anything starts:

1. every section of every file read is a known group (Vigil's, or a library's that Vigil uses);
2. every option in it is a known option of that group (or one of its deprecated names);
3. every value converts to the option's type and lies within its bounds or choices;
4. every registered option (defaults included) can be read, so an interpolation such as
   ``$state_path`` that cannot be resolved also fails at start-up.

The first problem is reported in one line naming the file, section and option, with the
closest valid name (:mod:`difflib`), and how many more problems there are.

What is "known" comes from one registry: :func:`vigil.conf.opts.list_opts` (Vigil's own options;
a new option module adds one line there) and :func:`vigil.conf.libraries.list_opts` (the groups
of oslo.messaging, oslo.policy and keystonemiddleware). Groups whose options a library decides at
run time (keystoneauth's plugin options under ``[keystone_authtoken]``) are resolved the way the
library will resolve them, from the ``auth_type`` the files give.
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from oslo_config import cfg

from vigil.errors import ConfigError

DEFAULT = "DEFAULT"


def _section_key(section: str) -> str:
    """oslo.config's rule: group names are case-insensitive, except DEFAULT."""
    return section if section == DEFAULT else section.lower()


@dataclass
class Schema:
    """The options a process may read, by section: ``{section: {name: opt}}``.

    Deprecated names map to the option they alias (oslo.config reads them in its place and logs
    a deprecation warning); ``open_sections`` are accepted with any option (a library owns them
    and Vigil cannot know their options in advance).
    """

    sections: dict[str, dict[str, cfg.Opt]] = field(default_factory=dict)
    open_sections: set[str] = field(default_factory=set)

    def add(self, group: str | None, options: Iterable[cfg.Opt]) -> None:
        section = _section_key(group or DEFAULT)
        names = self.sections.setdefault(section, {})
        for opt in options:
            for name in {opt.name, opt.dest}:
                names[name] = opt
            for old in opt.deprecated_opts:
                old_section = _section_key(old.group or group or DEFAULT)
                old_name = old.name or opt.name
                target = self.sections.setdefault(old_section, {})
                for name in {old_name, old_name.replace("-", "_")}:
                    target.setdefault(name, opt)

    def knows(self, entry: Entry) -> bool:
        """Whether ``entry``'s section (and option, if it names one) is in the schema."""
        section = _section_key(entry.section)
        if section in self.open_sections:
            return True
        names = self.sections.get(section) or {}
        return bool(names) and (not entry.name or entry.name in names)


@dataclass(frozen=True)
class Entry:
    """One ``name = value`` line (or the last of a repeated one) of one file."""

    path: str
    section: str
    name: str
    values: tuple[str, ...]


def files_of(conf: cfg.ConfigOpts) -> list[str]:
    """The files ``conf`` was parsed from, in oslo.config's order: files, then each directory's
    ``*.conf`` sorted (the defaults' when no ``--config-file``/``--config-dir`` was given)."""
    paths = [os.path.expanduser(p) for p in conf.config_file or ()]
    for directory in conf.config_dir or ():
        paths += sorted(glob.glob(os.path.join(os.path.expanduser(directory), "*.conf")))
    return [p for p in paths if os.path.isfile(p)]


def entries(paths: Iterable[str]) -> Iterator[Entry]:
    for path in paths:
        sections: dict[str, dict[str, list[str]]] = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (cfg.ParseError, OSError) as exc:
            raise ConfigError(f"{path}: cannot be read: {exc}") from exc
        for section, values in sections.items():
            if not values:
                yield Entry(path, section, "", ())
            for name, vals in values.items():
                yield Entry(path, section, name, tuple(vals))


def problems(conf: cfg.ConfigOpts, schema: Schema, found: list[Entry]) -> Iterator[str]:
    """Each problem as one line, files' first, in file order."""
    known_sections = sorted(s for s in schema.sections if schema.sections[s])
    reported: set[tuple[str, str]] = set()
    for entry in found:
        where = f"{entry.path}: [{entry.section}]"
        section = _section_key(entry.section)
        if section in schema.open_sections:
            continue
        if section not in schema.sections or not schema.sections[section]:
            yield f"{where}: unknown section{_closest(entry.section, known_sections, '[{}]')}"
            continue
        if not entry.name:
            continue
        options = schema.sections[section]
        opt = options.get(entry.name)
        if opt is None:
            yield (f"{where} {entry.name}: unknown option"
                   f"{_closest(entry.name, sorted(options), '{!r}')}")
            continue
        for line in _bad_values(where, entry, opt):
            reported.add((section, entry.name))
            yield line
    # Values are converted lazily: read every registered option now (interpolations included),
    # so no daemon meets a bad value later, at its first use.
    for group, name in _registered(conf):
        section = _section_key(group or DEFAULT)
        if (section, name) in reported:
            continue
        try:
            (conf if group is None else conf[group])[name]
        except (cfg.Error, ValueError, TypeError) as exc:
            yield _unreadable(found, section, name, exc)


def _unreadable(found: list[Entry], section: str, name: str, exc: Exception) -> str:
    """One line for an option whose value cannot be read (after ``$name`` substitution)."""
    for entry in reversed(found):
        if _section_key(entry.section) == section and entry.name == name:
            where = f"{entry.path}: [{entry.section}] {name} = {entry.values[-1]!r}"
            if "$" in entry.values[-1]:
                return (f"{where}: a $reference in it is not an option or cannot be "
                        "substituted (write $$ for a literal $)")
            return f"{where}: {str(exc).splitlines()[0]}"
    return f"[{section}] {name}: {str(exc).splitlines()[0]}"


def _bad_values(where: str, entry: Entry, opt: cfg.Opt) -> Iterator[str]:
    multi = bool(getattr(opt, "multi", False))
    for raw in entry.values if multi else entry.values[-1:]:
        if "$" in raw:
            continue  # converted after substitution: the read of every option checks it
        try:
            opt.type(raw)
        except (ValueError, TypeError) as exc:
            kind = getattr(opt.type, "type_name", type(opt.type).__name__)
            yield f"{where} {entry.name} = {raw!r}: not a valid {kind}: {exc}"


def _registered(conf: cfg.ConfigOpts) -> Iterator[tuple[str | None, str]]:
    """Every registered option as (group or None, name)."""
    for name in conf:
        if name in ("config_file", "config_dir", "config_source"):
            continue
        try:
            value = conf[name]
        except (cfg.Error, ValueError, TypeError):
            yield None, name  # a [DEFAULT] option with a bad value: the caller reports it
            continue
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for opt in value:
                yield name, opt
        else:
            yield None, name


def _closest(word: str, candidates: list[str], form: str) -> str:
    near = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    if not near and word.lower() in {c.lower() for c in candidates}:
        near = [c for c in candidates if c.lower() == word.lower()]
    return f" (did you mean {form.format(near[0])}?)" if near else ""


def check(conf: cfg.ConfigOpts, schema: Schema) -> None:
    """Raise ConfigError with the first problem of ``conf``'s files (see the module's rules)."""
    found = list(entries(files_of(conf)))
    lines = list(problems(conf, schema, found))
    if lines:
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ConfigError(lines[0] + more)
