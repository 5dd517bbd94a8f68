"""`collector check`: everything the collector needs, one line each.

Each check returns (ok, line); the line names what is missing and the fix.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

from collector.config import Config
from collector.errors import CollectorError
from collector.probe import features
from collector.probe.core import object_path
from collector.probe.libbpf import LIBBPF_NAME
from collector.probe.privileges import missing_privileges, missing_scan_privileges


def run_checks(cfg: Config | None = None, backend: str = "core",
               bcc_offsets: str = "auto") -> Iterator[tuple[bool | None, str]]:
    """Both backends are reported; only the lines of the one that would run
    count as failures (None: informational, for the other backend). auto counts
    CO-RE's lines when CO-RE is fine, else bcc's, and both when neither is."""
    from collector.probe.bcc_check import bcc_checks

    problem = missing_privileges()
    yield (problem is None, problem or "privileges: can load tracing BPF programs")
    scan = missing_scan_privileges()
    yield (scan is None, scan or "privileges: can read every process in /proc")
    core = list(_core_checks(problem))
    bcc = list(bcc_checks(problem is None, bcc_offsets))
    core_ok, bcc_ok = all(ok for ok, _ in core), all(ok for ok, _ in bcc)
    counts = {"core": (True, False), "bcc": (False, True),
              "auto": (True, True) if not (core_ok or bcc_ok) else (core_ok, not core_ok)}
    count_core, count_bcc = counts[backend]
    yield from ((ok if count_core or ok else None, line) for ok, line in core)
    yield from ((ok if count_bcc or ok else None, line) for ok, line in bcc)
    yield fast_paths()
    if cfg is not None:
        yield from _sink_checks(cfg)


def fast_paths() -> tuple[bool | None, str]:
    """The C fast paths of the per-event work: informational, the collector runs
    without them (the Python modules they mirror do the same work, at more CPU)."""
    from collector import decode
    from collector.encode import avro, json
    from collector.enrich import exec_id, process_cache
    from collector.pipeline import reader
    from collector.probe import ringbuf

    missing = [name for name, built in (("collector.probe._ring", ringbuf.NATIVE),
                                        ("collector._decode", decode.NATIVE),
                                        ("collector.pipeline._reader", reader.NATIVE),
                                        ("collector.enrich._cache", process_cache.NATIVE),
                                        ("collector.enrich._exec_id", exec_id.NATIVE),
                                        ("collector.encode._jsonline", json.NATIVE),
                                        ("collector.encode._avro", avro.NATIVE)) if not built]
    if not missing:
        return True, ("fast paths: C ring walk, decode, reader loop, process cache, exec_id, "
                      "JSON line and Avro encoders loaded")
    return None, (f"fast paths: {', '.join(missing)} not built for this Python; the Python "
                  "code does the work, at more CPU per event (install from source with a C "
                  "compiler and the Python headers)")


def _core_checks(problem: str | None) -> Iterator[tuple[bool, str]]:
    """The CO-RE backend's lines: libbpf, the kernel's features and variants, the object."""
    try:
        ctypes.CDLL(LIBBPF_NAME)
        yield True, f"libbpf: {LIBBPF_NAME} loads"
    except OSError as exc:
        yield False, f"libbpf: {LIBBPF_NAME} not loadable ({exc}); apt-get install libbpf1"
        return
    kernel_ok = True
    for ok, line in kernel_checks():
        kernel_ok &= ok
        yield ok, line
    obj = object_path()
    if obj.exists():
        yield True, f"BPF object: {obj}"
    else:
        yield False, f"BPF object: {obj} missing; build it with `make setup`"
    if problem is None and kernel_ok and obj.exists():
        yield _try_load()


def kernel_checks() -> Iterator[tuple[bool, str]]:
    """One line per kernel feature the probes need, then the programs this kernel gets."""
    kernel = features.detect()
    problems = kernel.problems()
    for line in problems:
        yield False, line
    if kernel.btf_error is not None:
        return
    if not problems:
        yield True, (f"kernel: Linux {kernel.release}, BTF at {kernel.btf_path}, BPF ring buffer, "
                     f"tracepoints {', '.join(features.TRACEPOINTS)}")
    try:
        variants = kernel.choose()
    except CollectorError as exc:
        yield False, f"variants: {exc}"
        return
    why = {"group_dead": "the exit tracepoint passes group_dead",
           "claim": "no group_dead: one claim per thread group",
           "bpf_loop": "bpf_loop available", "bounded": "no bpf_loop: bounded loops",
           "copies": "task storage: copies survive skipped runs",
           "single": "no task storage: one program per tracepoint"}
    forced = features.forced_variants()
    notes = [f"{k}={v} ({'forced by ' + features.VARIANTS_ENV if k in forced else why[v]})"
             for k, v in (("exit", variants.exit), ("paths", variants.paths),
                          ("runs", variants.runs))]
    yield True, f"variants: {'; '.join(notes)}; programs {', '.join(variants.programs())}"


def _try_load() -> tuple[bool, str]:
    from collector.probe.core import CoreProbe

    probe = CoreProbe()
    try:
        probe.start()
        programs = probe.variants.programs() if probe.variants else ()
        return True, f"probes: loaded and attached ({', '.join(programs)})"
    except CollectorError as exc:
        return False, f"probes: {exc}"
    finally:
        probe.close()


def _sink_checks(cfg: Config) -> Iterator[tuple[bool | None, str]]:
    """Each configured sink's own checks (Sink.check), with its option values."""
    from collector.export.registry import sink_class

    for name in cfg["sinks"]:
        yield from sink_class(name).check(cfg.sink_options(name))
