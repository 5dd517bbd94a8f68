"""Redaction: secrets in argv never reach a sink, as the process, a parent,
an ancestor, or a process found by the start-up scan."""

from __future__ import annotations

import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import avro.datafile
import avro.errors
import avro.io
import fastavro

from collector.filter.redact import ArgvRedactor
from tests.helpers import CollectorProcess, stat_value, wait_for
from tests.test_filter_rules import TRUE, run, run_filtered

M = "*****"


def secret_argvs(s: str) -> list[tuple[list[str], list[str]]]:
    """(argv with the secret s, argv as it must be reported)."""
    return [
        ([TRUE, "--password=" + s, "-u", "root"], [TRUE, "--password=" + M, "-u", "root"]),
        ([TRUE, "--password", s, "--verbose"], [TRUE, "--password", M, "--verbose"]),
        ([TRUE, "token=" + s, "api_key=" + s], [TRUE, "token=" + M, "api_key=" + M]),
        ([TRUE, "AWS_SECRET_ACCESS_KEY=" + s], [TRUE, "AWS_SECRET_ACCESS_KEY=" + M]),
        ([TRUE, f"https://alice:{s}@example.com/repo.git"],
         [TRUE, f"https://alice:{M}@example.com/repo.git"]),
        ([TRUE, f"https://example.com/cb?access_token={s}&page=2"],
         [TRUE, f"https://example.com/cb?access_token={M}&page=2"]),
        ([TRUE, "-H", f"Authorization: Bearer {s}"], [TRUE, "-H", f"Authorization: Bearer {M}"]),
        ([TRUE, "-d", f'{{"user": "bob", "password": "{s}"}}'],
         [TRUE, "-d", f'{{"user": "bob", "password": "{M}"}}']),
    ]


def test_secret_never_reaches_stdout_or_file(tmp_path: Path) -> None:
    s = "S3cr3t" + secrets.token_hex(8)
    nap = "import time; time.sleep(30)"
    before = subprocess.Popen([sys.executable, "-c", nap, "--db-password=" + s])  # scan finds it
    out = tmp_path / "events.avro"
    wait_for(lambda: s.encode() in Path(f"/proc/{before.pid}/cmdline").read_bytes())
    try:
        with CollectorProcess("--sink", "stdout", "--sink", "file", "--file-path", str(out),
                              "--file-format", "avro", "--ancestors", "2",
                              "--namespaces") as c:
            c.wait_attached()
            wait_for(lambda: any("start-up scan:" in line for line in c.stderr_lines))
            pids = [run(argv) for argv, _ in secret_argvs(s)]
            # a secret in a parent's and a grandparent's argv
            nested = run(["sh", "-c", "sh -c '/bin/true leaf; exit 0' inner token=" + s
                          + "; exit 0", "outer", "--password=" + s])
            before.kill()
            before.wait()
            assert c.stop() == 0, c.stderr
            line = c.stats_line()
    finally:
        before.kill()
        before.wait()
    raw_stdout = b"".join(c.stdout_lines)
    raw_file = out.read_bytes()
    assert raw_stdout and raw_file
    # the bytes of the secret are nowhere: not in JSON, not in Avro (uncompressed)
    for raw in (raw_stdout, raw_file):
        assert s.encode() not in raw
        assert s[6:].encode() not in raw
    events = c.events()
    with open(out, "rb") as f:
        from_file = list(fastavro.reader(f))
    with warnings.catch_warnings(), open(out, "rb") as f:  # an independent reader: Apache Avro's
        warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)  # timestamp-nanos → long
        from_avro = list(avro.datafile.DataFileReader(f, avro.io.DatumReader()))
    assert len(from_file) == len(from_avro) == len(events)
    assert [e["ancestors"] is None for e in from_avro] == [e["ancestors"] is None for e in events]
    assert [e["process"]["namespaces"] for e in from_avro] == [
        e["process"]["namespaces"] for e in events]
    assert stat_value(line, "written", section="file") == len(events)
    by_pid = {pid: want for pid, (_, want) in zip(pids, secret_argvs(s), strict=True)}
    for e in events + from_file:
        want = by_pid.get(e["process"]["pid"])
        if want is not None:
            assert e["process"]["args"] == want
    assert len([e for e in events if e["process"]["pid"] in by_pid]) == 2 * len(pids)
    leaf = [e for e in events if e["process"]["args"] == ["/bin/true", "leaf"]
            and e["event_type"] == "process_exec"]
    assert len(leaf) == 1
    assert leaf[0]["parent"]["args"] == ["sh", "-c", "/bin/true leaf; exit 0", "inner",
                                         "token=" + M]
    assert leaf[0]["ancestors"][0]["args"][-1] == "--password=" + M
    assert leaf[0]["ancestors"][0]["pid"] == nested
    scanned = [e for e in events if e["process"]["pid"] == before.pid]
    assert [(e["event_type"], e["process"]["flags"]) for e in scanned] == [
        ("process_exec", ["procfs"]), ("process_exit", ["procfs"])]
    assert all(e["process"]["args"][1:] == ["-c", nap, "--db-password=" + M] for e in scanned)
    assert stat_value(line, "redacted") >= len(pids) + 3


def test_own_patterns_and_defaults_off(tmp_path: Path) -> None:
    s = "tok_" + secrets.token_hex(8)
    config = """
[redact]
defaults = false
patterns = ["tok_[0-9a-f]+", "--pin=(\\\\d+)"]
"""

    def spawn() -> tuple[int, int]:
        return (run([TRUE, "x" + s + "y", "--pin=1234"]), run([TRUE, "--password=hunter2"]))

    events, stats, (own, default) = run_filtered(tmp_path, config, spawn)
    [e] = [e for e in events if e["process"]["pid"] == own and e["event_type"] == "process_exec"]
    # no group: the whole match; a group: only the group
    assert e["process"]["args"] == [TRUE, f"x{M}y", f"--pin={M}"]
    [d] = [e for e in events if e["process"]["pid"] == default
           and e["event_type"] == "process_exec"]
    assert d["process"]["args"] == [TRUE, "--password=hunter2"]  # defaults are off
    assert stats["redacted"] >= 2


def test_nothing_else_is_touched() -> None:
    redact = ArgvRedactor([], True)
    for argv in (["ls", "-la", "/tmp"], ["ssh", "git@github.com"], ["git", "commit", "-m", "pass"],
                 ["app", "--token-file", "/run/secrets/t", "--password-stdin", "--verbose"],
                 ["python3", "-c", "print('keyboard')"], ["a", "--token"]):
        assert redact(argv) is argv
    assert redact.redacted == 0


def test_more_default_shapes() -> None:
    redact = ArgvRedactor([], True)
    cases: list[tuple[list[str], list[str]]] = [
        (["git", "clone", "https://ghp_" + "a1" * 18 + "@github.com/o/r"],
         ["git", "clone", f"https://{M}@github.com/o/r"]),
        (["env", "MYSQL_PWD=pw1", "mysql"], ["env", f"MYSQL_PWD={M}", "mysql"]),
        (["x", "--client-secret", "cs1"], ["x", "--client-secret", M]),
        (["x", "AKIA" + "A" * 16], ["x", M]),
        (["x", "xoxb-" + "1" * 12], ["x", M]),
        (["psql", "postgres://u:pw@db:5432/x"], ["psql", f"postgres://u:{M}@db:5432/x"]),
    ]
    for argv, want in cases:
        got: Any = redact(argv)
        assert got == want
        assert got is not argv and argv != want  # the input list is left as it was
