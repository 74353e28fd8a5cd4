"""Table and JSON output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


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


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False)
