"""Filter kind `args` (collector/filter/args.py): a regex searched in argv
joined by spaces, after redaction."""

from __future__ import annotations

from pathlib import Path

from tests.test_filter_rules import TRUE, run, run_filtered, types_of


def test_deny_args(tmp_path: Path) -> None:
    events, _, (dropped, kept) = run_filtered(
        tmp_path, '[[filter.deny]]\nargs = "--drop-me( |$)"\n',
        lambda: (run([TRUE, "x", "--drop-me"]), run([TRUE, "--drop-me-not"])))
    assert types_of(events, dropped) == []
    assert types_of(events, kept) == ["process_exec", "process_exit"]


def test_spans_arguments_and_sees_redacted_argv(tmp_path: Path) -> None:
    # the rule cannot match the secret: it was never kept
    events, _, (secret, spanned) = run_filtered(
        tmp_path, '[[filter.allow]]\nargs = ["hunter2", "-o ProxyCommand", "\\\\*{5}"]\n',
        lambda: (run([TRUE, "--password=hunter2"]), run([TRUE, "-o", "ProxyCommand"])))
    [ex, _] = [e for e in events if e["process"]["pid"] == secret]
    assert ex["process"]["args"] == [TRUE, "--password=*****"]  # passed on the ***** rule
    assert types_of(events, spanned) == ["process_exec", "process_exit"]

