"""Table and JSON output, and the output options of the openstack client (cliff).

``-f table|json|value|csv|yaml`` and ``-c COLUMN`` (repeatable) mean what they mean to
``openstack``, so scripts written against ``openstack compute service list -f value -c Host``
carry over. The machine formats keep their own field names: ``json`` and ``yaml`` print the
records (``id``, ``disabled_reason``, ...) that ``--format json`` always printed, so existing
scripts do not break; ``-c`` selects among them by the column's name (``Disabled Reason`` and
``disabled_reason`` name the same field).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from vigil.errors import InvalidInput

FORMATS = ("table", "json", "value", "csv", "yaml")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An ASCII table in the layout of the openstack client (cliff)."""
    # Column-wise: one pass per column for the width and one format string per row keeps a
    # 10,000-row listing cheap (a cell-by-cell ljust cost more than reading the rows).
    columns = [["" if v is None else str(v) for v in col] for col in zip(*rows, strict=False)]
    if not columns:
        columns = [[] for _ in headers]
    widths = [max(len(h), *map(len, col)) if col else len(h)
              for h, col in zip(headers, columns, strict=True)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    fmt = "| " + " | ".join(f"{{:<{w}}}" for w in widths) + " |"
    body = [fmt.format(*cells) for cells in zip(*columns, strict=True)]
    return "\n".join([sep, fmt.format(*headers), sep, *body, sep])


def as_json(data: Any, *, plain: bool = False) -> str:
    """``json.dumps(data, indent=2)``.

    ``plain``: the caller vouches that ``data`` holds only dicts with str keys, lists, str,
    int, bool and None (no float: orjson spells some differently, ``1e16`` for ``1e+16``).
    Then orjson writes it, and when its bytes are printable ASCII they are exactly
    json's (tested); otherwise (a non-ASCII or DEL character, which json escapes as ``\\uXXXX``
    and orjson writes as UTF-8) json writes it. json's encoder is pure Python once it indents:
    it was most of ``vigil service list --format json`` at 10,000 services (issue 12).
    """
    if plain:
        import orjson

        fast = orjson.dumps(data, option=orjson.OPT_INDENT_2)
        if fast.isascii() and b"\x7f" not in fast:
            return fast.decode("ascii")
    return json.dumps(data, indent=2, sort_keys=False)


def add_format_options(p: argparse.ArgumentParser) -> None:
    """``-f/--format`` and ``-c/--column``, as the openstack client has them."""
    p.add_argument("-f", "--format", choices=FORMATS, default="table",
                   help="output format (default: table)")
    p.add_argument("-c", "--column", action="append", default=[], metavar="COLUMN",
                   dest="columns", help="only this column (repeat for more), e.g. -c Host")


def _key(name: str) -> str:
    """A column's name as a record's field name: ``Disabled Reason`` -> ``disabled_reason``."""
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def _select(headers: Sequence[str], columns: Sequence[str]) -> list[int]:
    if not columns:
        return list(range(len(headers)))
    by_key = {_key(h): i for i, h in enumerate(headers)}
    picked: list[int] = []
    for column in columns:
        if _key(column) not in by_key:
            raise InvalidInput(f"no column {column!r}: choose from {', '.join(headers)}")
        picked.append(by_key[_key(column)])
    return picked


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def render(fmt: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
           records: Sequence[Mapping[str, Any]], columns: Sequence[str] = (), *,
           plain: bool = False) -> str:
    """One listing in ``fmt``. ``rows`` (under ``headers``) feed the table, value and csv
    formats; ``records`` feed json and yaml. ``columns`` (from ``-c``) keeps only those.
    ``plain``: the records are plain JSON without floats (:func:`as_json`)."""
    picked = _select(headers, columns)
    if fmt in ("json", "yaml"):
        data: list[Mapping[str, Any]] = list(records)
        if columns:
            keys = [_key(headers[i]) for i in picked]
            data = [{k: r[k] for k in keys if k in r} for r in records]
        if fmt == "json":
            return as_json(data, plain=plain)
        import yaml  # only for this format: it costs an import to every other command

        return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False,
                                  allow_unicode=True)).rstrip("\n")
    shown = [headers[i] for i in picked]
    # Without -c every column is shown: the rows as they are, not a copy of each.
    cut = [[row[i] for i in picked] for row in rows] if columns else rows
    if fmt == "table":
        return table(shown, cut)
    if fmt == "value":
        return "\n".join(" ".join(_cell(v) for v in row) for row in cut)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        writer.writerow(shown)
        writer.writerows([[v if isinstance(v, int | float) and not isinstance(v, bool)
                           else _cell(v) for v in row] for row in cut])
        return out.getvalue().rstrip("\n")
    raise AssertionError(fmt)
