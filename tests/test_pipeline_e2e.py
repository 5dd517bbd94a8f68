"""The export pipeline end to end: the real `collector run`, the real kernel,
real processes spawned by this test, real files (and a real full disk).

Processes are spawned from pytest (the collector ignores its own
descendants); each test matches events on the pids it spawned.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import signal
import subprocess
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.datafile
import avro.errors
import avro.io
import fastavro
import orjson
import pytest

from tests.helpers import COLLECTOR, CollectorProcess, of_pid, stat_value, wait_for
from tests.support.small_fs import fill, small_tmpfs

ROTATED = re.compile(r"^events\.\d{8}T\d{6}Z-(\d{6})\.(jsonl|avro)(\.gz)?$")


# -- helpers -----------------------------------------------------------------------------


def spawn(n: int, argv: tuple[str, ...] = ("/bin/true",)) -> list[int]:
    """Run n short processes one after another (a burst); their pids, in order."""
    pids = []
    env = {"PATH": "/usr/bin:/bin"}
    for _ in range(n):
        pid = os.posix_spawn(argv[0], list(argv), env)
        os.waitpid(pid, 0)
        pids.append(pid)
    return pids


def config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A TOML config file from {"file": {...}, ...}."""
    lines = []
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        for k, v in keys.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            else:
                lines.append(f"{k} = {v}")
    p = tmp_path / "collector.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def rotated(d: Path) -> list[Path]:
    found = [(int(m.group(1)), d / n) for n in os.listdir(d) if (m := ROTATED.match(n))]
    return [p for _, p in sorted(found)]


def all_files(active: Path) -> list[Path]:
    """Rotated files in order, then the active one."""
    return [*rotated(active.parent), *([active] if active.exists() else [])]


def jsonl_lines(p: Path) -> list[bytes]:
    data = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
    assert data == b"" or data.endswith(b"\n"), f"{p} ends in a partial line"
    return data.splitlines(keepends=True)


def jsonl_events(p: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in jsonl_lines(p)]


def avro_events(data: bytes) -> list[dict[str, Any]]:
    """Records by fastavro, checked against the Apache Avro library's reading."""
    ours = list(fastavro.reader(io.BytesIO(data)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)  # timestamp-nanos → long
        with avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader()) as r:
            theirs = list(r)
    assert theirs == ours
    return ours


def read_events(p: Path) -> list[dict[str, Any]]:
    return avro_events(p.read_bytes()) if ".avro" in p.name else jsonl_events(p)


def assert_each_once(events: list[dict[str, Any]], pids: list[int]) -> None:
    """Every exec and exit of the pids spawned is there exactly once."""
    assert pids
    spawned = Counter(pids)
    execs = Counter(e["process"]["pid"] for e in events
                    if e["event_type"] == "process_exec" and "procfs" not in e["process"]["flags"])
    exits = Counter(e["process"]["pid"] for e in events if e["event_type"] == "process_exit")
    missing = [p for p in spawned if execs[p] != spawned[p] or exits[p] != spawned[p]]
    assert not missing, (f"{len(missing)} of {len(spawned)} pids without exactly one exec and exit, "
                         f"e.g. {[(p, execs[p], exits[p]) for p in missing[:5]]}")


def stop_ok(c: CollectorProcess) -> str:
    rc = c.stop()
    assert rc == 0, c.stderr
    assert "Traceback" not in c.stderr
    return c.stats_line()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test alone."""
    with small_tmpfs(tmp_path, 4) as mnt:
        yield mnt


# -- fan-out ---------------------------------------------------------------------------------


def test_stdout_and_file_receive_the_same_events(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    with CollectorProcess("--sink", "stdout", "--sink", "file", "--file-path", str(out)) as c:
        c.wait_attached()
        pids = spawn(50, ("/bin/echo", "fan", "out\nline", "caf\xe9"))
        line = stop_ok(c)
    from_file = jsonl_lines(out)
    assert sorted(from_file) == sorted(c.stdout_lines)  # the same bytes, event for event
    assert_each_once([orjson.loads(x) for x in from_file], pids)
    n = len(from_file)
    assert stat_value(line, "written", section="file") == n
    assert stat_value(line, "written", section="stdout") == n
    assert stat_value(line, "queued", section="file") == n
    assert out.stat().st_mode & 0o777 == 0o640


# -- rotation under a real burst -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_rotation_under_a_burst_keeps_every_event_once(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"events.{fmt}"
    cfg = config(tmp_path, file={"path": str(out), "format": fmt, "max_bytes": 200_000,
                                 "retain": 1000, "gzip": fmt == "jsonl", "batch_events": 200,
                                 "batch_bytes": 50_000,  # a batch alone never exceeds max_bytes
                                 "avro_codec": "null"})  # deflate would fit the burst in one file
    with CollectorProcess("--config", str(cfg), "--sink", "file") as c:
        c.wait_attached()
        pids = spawn(1000)
        line = stop_ok(c)
    files = all_files(out)
    events = [e for f in files for e in read_events(f)]
    assert_each_once(events, pids)
    assert len(files) >= 4
    assert stat_value(line, "drops") == 0
    assert stat_value(line, "written", section="file") == len(events)
    assert stat_value(line, "rotations", section="file") == len(files) - 1
    for f in files[:-1]:
        assert f.name.endswith(".jsonl.gz" if fmt == "jsonl" else ".avro")
        size = len(gzip.decompress(f.read_bytes())) if fmt == "jsonl" else f.stat().st_size
        assert size <= 200_000
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


# -- a full disk -----------------------------------------------------------------------------


@pytest.mark.slow
def test_full_disk_drop_policy_counts_and_stdout_keeps_going(tmp_path: Path, tmpfs: Path) -> None:
    out = tmpfs / "events.jsonl"
    cfg = config(tmp_path, file={"path": str(out), "when_full": "drop-newest",
                                 "queue_events": 200, "retry_initial_ms": 50,
                                 "retry_max_ms": 200, "retry_max_elapsed_s": 1.0,
                                 "batch_timeout_ms": 50})
    with CollectorProcess("--config", str(cfg), "--sink", "stdout", "--sink", "file",
                          "--stats-interval", "0.5") as c:
        c.wait_attached()
        wait_for(lambda: out.exists() and out.stat().st_size > 0)
        filler = fill(tmpfs)
        first = spawn(300)
        wait_for(lambda: "No space left on device" in c.stderr, timeout=20)
        wait_for(lambda: any(stat_value(s, "dropped", section="file") > 0
                             for s in c.stderr_lines if s.startswith("stats:")), timeout=20)
        # stdout was not held up by the file sink
        wait_for(lambda: len(of_pid(c.events(), first[-1], "process_exit")) == 1, timeout=20)
        os.unlink(filler)
        time.sleep(1.5)  # the batch being retried is dropped or written; writing resumes
        second = spawn(100)
        line = stop_ok(c)
    stdout_events = c.events()
    assert_each_once(stdout_events, first + second)
    lines = jsonl_lines(out)  # every line whole
    file_events = [orjson.loads(x) for x in lines]
    assert_each_once(file_events, second)  # resumed once space was freed
    assert set(lines) <= set(c.stdout_lines)  # nothing the stdout sink did not also get
    assert len(set(lines)) == len(lines)
    queued = stat_value(line, "queued", section="file")
    written = stat_value(line, "written", section="file")
    dropped = dict(re.findall(r"(\w+):(\d+)", line.split("| file ")[1].split(" | ")[0]))
    assert written == len(lines)
    assert set(dropped) <= {"queue_full", "retries_exhausted"} and dropped
    assert queued == written + int(dropped.get("retries_exhausted", 0))
    assert queued + int(dropped.get("queue_full", 0)) == stat_value(line, "queued", section="stdout")
    assert stat_value(line, "dropped", section="stdout") == 0
    assert stat_value(line, "retries", section="file") > 0


@pytest.mark.slow
def test_full_disk_block_policy_loses_nothing_once_space_is_freed(tmp_path: Path,
                                                                   tmpfs: Path) -> None:
    out = tmpfs / "events.avro"
    cfg = config(tmp_path, file={"path": str(out), "format": "avro", "when_full": "block",
                                 "retry_initial_ms": 50, "retry_max_ms": 200,
                                 "batch_timeout_ms": 50})
    with CollectorProcess("--config", str(cfg), "--sink", "stdout", "--sink", "file") as c:
        c.wait_attached()
        wait_for(lambda: len(avro_events(out.read_bytes())) > 0)
        filler = fill(tmpfs)
        first = spawn(200)
        wait_for(lambda: "No space left on device" in c.stderr, timeout=20)
        wait_for(lambda: len(of_pid(c.events(), first[-1], "process_exit")) == 1, timeout=20)
        size_full = out.stat().st_size
        time.sleep(0.5)
        assert out.stat().st_size == size_full  # nothing half-written while full
        os.unlink(filler)
        second = spawn(100)
        line = stop_ok(c)
    file_events = avro_events(out.read_bytes())
    assert_each_once(file_events, first + second)
    assert len(file_events) == len(c.stdout_lines)
    assert stat_value(line, "dropped", section="file") == 0
    assert stat_value(line, "retries", section="file") > 0
    assert stat_value(line, "written", section="file") == len(file_events)


# -- SIGHUP, SIGKILL -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_sighup_reopens_after_logrotate_moved_the_file(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"events.{fmt}"
    moved = tmp_path / f"events.{fmt}.1"
    with CollectorProcess("--sink", "file", "--file-path", str(out), "--file-format", fmt) as c:
        c.wait_attached()
        before = spawn(20)
        wait_for(lambda: len(of_pid(read_events(out), before[-1], "process_exit")) == 1)
        os.rename(out, moved)
        c.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: out.exists())
        after = spawn(20)
        stop_ok(c)
    old, new = read_events(moved), read_events(out)
    assert_each_once(old, before)
    assert_each_once(new, after)
    assert not any(e["process"]["pid"] in set(after) for e in old)
    assert not any(e["process"]["pid"] in set(before) for e in new)
    assert out.stat().st_mode & 0o777 == 0o640


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_sigkill_mid_write_leaves_readable_files(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"events.{fmt}"
    cfg = config(tmp_path, file={"path": str(out), "format": fmt, "max_bytes": 200_000,
                                 "retain": 1000, "batch_events": 20, "batch_timeout_ms": 0,
                                 "fsync": "never", "avro_codec": "null"})
    burst: list[int] = []
    with CollectorProcess("--config", str(cfg), "--sink", "file") as c:
        c.wait_attached()
        t = threading.Thread(target=lambda: burst.extend(spawn(1500)))
        t.start()
        wait_for(lambda: len(rotated(tmp_path)) >= 2, timeout=30)
        c.proc.kill()  # SIGKILL while the burst is being written
        assert c.wait() == -signal.SIGKILL
        t.join()
    files = all_files(out)
    # rotated files are whole; the active one is whole up to its last complete line / block
    for f in files[:-1]:
        read_events(f)
    data = out.read_bytes()
    if fmt == "jsonl":
        good = data[: data.rfind(b"\n") + 1]
        before = [orjson.loads(x) for x in good.splitlines()]
    else:
        f = io.BytesIO(data)
        blocks = fastavro.block_reader(f)  # the header is always whole: new files are staged
        good_end = f.tell()  # a file rotated in just now holds its header and no block yet
        try:
            for _ in blocks:
                good_end = f.tell()
        except Exception:
            pass
        good = data[:good_end]
        before = avro_events(good)
    assert len(data) - len(good) < 200_000  # only the last write can be torn
    seen = [e for f in files[:-1] for e in read_events(f)] + before
    assert seen, "nothing was written before the kill"
    keys = [(e["event_type"], e["process"]["exec_id"]) for e in seen]
    assert len(keys) == len(set(keys))  # nothing twice
    # start again on the same path: the torn tail is cut, writing goes on after it
    with CollectorProcess("--config", str(cfg), "--sink", "file") as c2:
        c2.wait_attached()
        after = spawn(10)
        stop_ok(c2)
    union = [e for f in all_files(out) for e in read_events(f)]  # every file whole now
    assert union[: len(seen)] == seen
    assert_each_once(union[len(seen):], after)


# -- errors at start -----------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    full_env.update(env or {})
    return subprocess.run([*prefix, COLLECTOR, "run", *args], capture_output=True, text=True,
                          env=full_env, stdin=subprocess.DEVNULL, timeout=60, check=False)


def one_line(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # one line: nothing attached, no traceback
    assert lines[0].startswith("collector: ")
    return lines[0]


def test_missing_directory_fails_at_start(tmp_path: Path) -> None:
    res = run_cli("--sink", "stdout", "--sink", "file", "--file-path",
                  str(tmp_path / "nope" / "events.jsonl"), "--duration", "5")
    assert one_line(res, 4) == (f"collector: file sink: directory {tmp_path / 'nope'} does not "
                                "exist; create it or choose another file.path")
    assert res.stdout == ""


def test_path_that_is_a_directory_fails_at_start(tmp_path: Path) -> None:
    res = run_cli("--sink", "file", "--file-path", str(tmp_path), "--duration", "5")
    assert one_line(res, 4) == (f"collector: file sink: {tmp_path} is a directory; file.path "
                                "must name a file")


def test_read_only_file_system_fails_at_start(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        res = run_cli("--sink", "file", "--file-path", str(ro / "e.jsonl"), "--duration", "5")
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=True)
    assert one_line(res, 4) == (f"collector: file sink: cannot open {ro / 'e.jsonl'}: the file "
                                "system is read-only; choose another file.path")


def test_unwritable_directory_fails_at_start(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    # root without CAP_DAC_OVERRIDE is held to the directory's mode, like any user
    no_dac = ("setpriv", "--bounding-set=-dac_override,-dac_read_search",
              "--inh-caps=-dac_override,-dac_read_search")
    res = run_cli("--sink", "file", "--file-path", str(locked / "e.jsonl"), "--duration", "5",
                  prefix=no_dac)
    assert one_line(res, 4) == (f"collector: file sink: cannot open {locked / 'e.jsonl'}: "
                                "permission denied; let the collector's user write there or "
                                "choose another file.path")
    assert os.listdir(locked) == []


@pytest.mark.parametrize(("env", "toml", "words"), [
    ({"COLLECTOR_FILE_MAX_BYTES": "-1"}, None,
     "config key file.max_bytes: -1 is not valid; expected int >= 0"),
    ({"COLLECTOR_FILE_FSYNC": "sometimes"}, None,
     "config key file.fsync: 'sometimes' is not valid; expected one of never, batch, interval"),
    ({"COLLECTOR_FILE_MODE": "rw-r-----"}, None,
     "config key file.mode: 'rw-r-----' is not valid; expected an octal file mode such as 0640"),
    ({"COLLECTOR_FILE_RETAIN": "ten"}, None,
     "config key file.retain: 'ten' is not valid; expected an integer"),
    ({"COLLECTOR_FILE_FORMAT": "avro", "COLLECTOR_FILE_GZIP": "true"}, None,
     "config key file.gzip: applies to jsonl files only; Avro blocks are compressed by "
     "file.avro_codec"),
    ({}, "[file]\nrotate_every = 3\n",
     "config key file.rotate_every: unknown key"),
    ({}, '[file]\nwhen_full = "sometimes"\n',
     "config key file.when_full: 'sometimes' is not valid; expected one of block, drop-newest, "
     "drop-oldest"),
])
def test_bad_file_settings_exit_2_naming_the_key(tmp_path: Path, env: dict[str, str],
                                                   toml: str | None, words: str) -> None:
    args = ["--sink", "file", "--file-path", str(tmp_path / "e.jsonl"), "--duration", "5"]
    if toml is not None:
        cfg = tmp_path / "c.toml"
        cfg.write_text(toml)
        args += ["--config", str(cfg)]
    line = one_line(run_cli(*args, env=env), 2)
    assert words in line
    assert not (tmp_path / "e.jsonl").exists()


def test_ids_beyond_31_bits_reach_avro_files_intact(tmp_path: Path) -> None:
    """Linux uids and gids are unsigned 32-bit: 3,000,000,000 is a valid uid (user
    namespaces map such ranges). Its exec and exit reach an Avro file, readable
    by both libraries, with the id as it is."""
    path = tmp_path / "events.avro"
    big = 3_000_000_000
    with CollectorProcess("--sink", "file", "--file-path", str(path), "--file-format", "avro",
                          "--no-procfs-events") as c:
        c.wait_attached()
        marker = f"big-ids-{uuid.uuid4().hex[:10]}"  # another run of this test may share the host
        p = subprocess.Popen(["setpriv", f"--reuid={big}", f"--regid={big}", "--clear-groups",
                              "/bin/true", marker])
        assert p.wait() == 0
        time.sleep(0.5)
        line = stop_ok(c)
    assert stat_value(line, "dropped", "file") == 0
    mine = [e for e in read_events(path) if e["process"]["args"] == ["/bin/true", marker]]
    assert [e["event_type"] for e in mine] == ["process_exec", "process_exit"]
    for e in mine:
        assert (e["process"]["uid"], e["process"]["euid"]) == (big, big)
        assert (e["process"]["gid"], e["process"]["egid"]) == (big, big)
