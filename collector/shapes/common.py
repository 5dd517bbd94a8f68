"""What the OCSF and ECS shapes share: product identity, the command line."""

from __future__ import annotations

import functools
import re
import shlex
from importlib import metadata

PRODUCT = "process-collector"
#: what shlex.quote leaves unquoted (its own test, applied to all words at once)
_unsafe = re.compile(r"[^\w@%+=:,./-]", re.ASCII).search


@functools.cache  # metadata lookups read files: once, not per event
def product_version() -> str:
    try:
        return metadata.version("process-collector")
    except metadata.PackageNotFoundError:
        return "0"


def command_line(args: list[str]) -> str:
    """argv as one string a POSIX shell reads back into the same argv (quotes where
    needed); the argv itself is kept as an array too, since a string cannot hold
    argument boundaries unambiguously for every reader."""
    # most argvs need no quotes: one search over all of them instead of one per word
    if all(args) and _unsafe("".join(args)) is None:
        return " ".join(args)
    return shlex.join(args)


def basename(path: str) -> str:
    return path.rpartition("/")[2] or path
