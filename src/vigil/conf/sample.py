"""Render a commented sample configuration file from the registered options."""

from __future__ import annotations

import textwrap

from oslo_config import cfg

from vigil.conf import opts


def _default_text(opt: cfg.Opt) -> str:
    if opt.sample_default is not None:
        return str(opt.sample_default)
    default = opt.default
    if default is None:
        return "<None>"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, list | tuple):
        return ",".join(str(x) for x in default)
    return str(default)


def _help_text(opt: cfg.Opt) -> str:
    """The help, with argparse's escapes resolved: oslo.log wrote some of its help texts for the
    command line (``%%(asctime)s``, ``Default: %(default)s``)."""
    text = opt.help or ""
    if "%(default)s" in text or "%%" in text:
        try:
            return text % {"default": _default_text(opt)}
        except (KeyError, ValueError, TypeError):
            return text
    return text


def render() -> str:
    """The sample: every option commented out at its default, with its help text."""
    lines = ["# Vigil configuration (nova.conf-style). Uncomment to change a default.", ""]
    transport = cfg.StrOpt(
        "transport_url",
        default="fake://",
        help="oslo.messaging transport: rabbit://guest:guest@127.0.0.1:5672/ across processes; "
        "fake:// only inside one process (vigil up).",
    )
    # Merge entries of the same group (several modules contribute to [DEFAULT]).
    merged: dict[str | None, list[cfg.Opt]] = {}
    for g, o in opts.list_opts():
        merged.setdefault(g, []).extend(o)
    merged[None].append(transport)
    for group, options in merged.items():
        lines.append(f"[{group or 'DEFAULT'}]")
        lines.append("")
        for opt in options:
            for chunk in textwrap.wrap(_help_text(opt), width=76):
                lines.append(f"# {chunk}")
            kind = type(opt.type).__name__.lower() if opt.type is not None else "string"
            choices = getattr(opt.type, "choices", None)
            extra = f" (one of: {', '.join(str(c) for c in choices)})" if choices else ""
            lines.append(f"# Type: {kind}{extra}")
            lines.append(f"#{opt.dest} = {_default_text(opt)}")
            lines.append("")
    return "\n".join(lines)
