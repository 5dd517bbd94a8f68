"""Filter kind `args` (collector/filter/args.py): a regex searched in argv
joined by spaces, after redaction."""

from __future__ import annotations

from collector.filter import args


def test_joined_with_spaces() -> None:
    rule = args.build("k", "^ls -l /tmp$")
    assert rule({"process": {"args": ["ls", "-l", "/tmp"]}})
    assert not rule({"process": {"args": ["ls", "-l /tmpx"]}})

