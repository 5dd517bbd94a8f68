"""The documented example configuration, generated from the option table
(the core's keys and the merged option lists of the project's own sinks).

config/collector.toml is this text; a test keeps the two equal, so the
documentation of every key (meaning, unit, default, allowed values) cannot
drift from what the collector accepts.
"""

from __future__ import annotations

import textwrap
from typing import Any

from collector.config import example_options
from collector.export.options import Option

HEADER = """\
# process-collector configuration (TOML). Every key is optional; the values
# shown are the defaults. Precedence: command-line flag > COLLECTOR_* environment
# variable > this file > default. Unknown keys and bad values stop the collector
# at start with one line naming the key (exit 2).
#
# Generated from collector/config.py (`collector example-config`); keep in sync.
"""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    return repr(v)


def _comment(opt: Option) -> list[str]:
    doc = opt.doc
    if opt.choices:
        doc += f" [{' | '.join(opt.choices)}]"
    if opt.type == "tables":
        doc += ". Env: none (config file only)"
    elif opt.type == "table":
        doc += f". Env: {opt.env} (KEY=VALUE;KEY=VALUE; a ; inside a value is written \\;)"
    else:
        doc += f". Env: {opt.env}"
    return ["# " + line for line in textwrap.wrap(doc, 86)]


def example_toml() -> str:
    lines = [HEADER]
    section = ""
    for opt in example_options():
        head, _, name = opt.key.rpartition(".")
        if head != section:
            section = head
            lines.append(f"\n[{section}]")
        lines.extend(_comment(opt))
        if opt.type == "tables":
            lines.append(f"# [[{opt.key}]]  e.g. binary = \"^/usr/bin/ssh$\"")
            lines.append(f"{name} = []")
        else:
            lines.append(f"{name} = {_toml_value(opt.default)}")
    return "\n".join(lines) + "\n"
