"""Options: the core's table plus every registered sink's, from the file,
the environment, --sink-option and the dedicated flags; checked one by one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.config import all_options, parse_sink_options, resolve
from collector.config_doc import example_toml
from collector.errors import UsageError
from collector.export import Option, PipelineSettings, RetryPolicy
from collector.export.options import resolve_options
from collector.export.registry import builtin_names, sink_class, sink_names

REPO = Path(__file__).resolve().parents[2]


def test_the_built_in_sinks_are_registered_by_entry_point() -> None:
    assert set(builtin_names()) == {"stdout", "file", "kafka"} <= set(sink_names())
    assert builtin_names() == ("stdout", "file", "kafka")  # their listing order
    for name in builtin_names():
        assert sink_class(name).name == name


def test_an_unknown_sink_is_one_line_naming_the_registered_ones() -> None:
    with pytest.raises(UsageError, match=re.escape("sink 'printer' is not registered; the sinks are")):
        sink_class("printer")


def test_example_config_is_generated_from_the_merged_option_lists() -> None:
    assert (REPO / "config" / "collector.toml").read_text() == example_toml()
    keys = {o.key for o in all_options()}
    assert {"file.path", "file.when_full", "kafka.retry_max_ms", "stdout.format"} <= keys


def test_sink_option_items_and_their_errors() -> None:
    assert parse_sink_options(["file.max_bytes=1000", "kafka.options.acks=1",
                               "kafka.options.linger.ms=3"]) == {
        "file.max_bytes": "1000", "kafka.options": {"acks": "1", "linger.ms": "3"}}
    with pytest.raises(UsageError, match=re.escape("item 1 is not NAME.KEY=VALUE")):
        parse_sink_options(["nodot"])
    with pytest.raises(UsageError, match=re.escape("config key file.colour: unknown key")):
        parse_sink_options(["file.colour=blue"])
    with pytest.raises(UsageError, match=re.escape("no sink is named printer")):
        parse_sink_options(["printer.x=1"])


def test_precedence_flag_over_environment_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[file]\npath = "/from/file"\nmax_bytes = 5\n')
    env = {"COLLECTOR_FILE_MAX_BYTES": "6"}
    got = resolve(config_path=cfg, environ=env, flags={"file.max_bytes": "7"})
    assert (got["file.path"], got["file.max_bytes"]) == ("/from/file", 7)
    assert resolve(config_path=cfg, environ=env)["file.max_bytes"] == 6
    assert resolve(environ={"COLLECTOR_FORMAT": "compact"})["stdout.format"] == "compact"


def test_capture_backend_is_core_bcc_or_auto() -> None:
    assert resolve(environ={})["capture.backend"] == "core"
    for name in ("core", "bcc", "auto"):
        assert resolve(environ={"COLLECTOR_BACKEND": name})["capture.backend"] == name
    assert resolve(environ={"COLLECTOR_CAPTURE_BACKEND": "bcc"})["capture.backend"] == "bcc"
    with pytest.raises(UsageError, match=re.escape("config key capture.backend: 'ebpf' is not "
                                                   "valid; expected one of core, bcc, auto")):
        resolve(environ={"COLLECTOR_BACKEND": "ebpf"})


def test_values_are_checked_by_their_option() -> None:
    with pytest.raises(UsageError, match=re.escape("config key file.max_bytes: 'lots' is not valid")):
        resolve(environ={}, flags={"file.max_bytes": "lots"})
    with pytest.raises(UsageError, match=re.escape("config key file.path: required with "
                                                   "--sink file (--file-path PATH)")):
        resolve(environ={}, flags={"sinks": ["file"]})


def test_a_sink_section_becomes_its_options_and_the_cores_pipeline() -> None:
    cfg = resolve(environ={}, flags={"sinks": ["file"], "file.path": "/x",
                                     "file.retry_initial_ms": "20"})
    assert "retry_initial_ms" not in cfg.sink_options("file")
    assert cfg.sink_options("file")["path"] == "/x"
    p = cfg.pipeline("file")
    assert isinstance(p, PipelineSettings)
    assert p.retry == RetryPolicy(0.02, 10.0, 300.0)
    assert (p.batch_events, p.batch_timeout_s) == (1000, 0.2)  # the file sink's defaults


def test_resolve_options_fills_defaults_and_rejects_unknown_keys() -> None:
    declared = (Option("url", "str", "", "where", required=True),
                Option("n", "int", 3, "how many", minimum=1))
    assert resolve_options("x", declared, {"url": "u"}) == {"url": "u", "n": 3}
    assert resolve_options("x", declared, {"url": "u", "n": "5"}) == {"url": "u", "n": 5}
    with pytest.raises(UsageError, match=re.escape("config key x.m: unknown key")):
        resolve_options("x", declared, {"url": "u", "m": 1})
    with pytest.raises(UsageError, match=re.escape("config key x.n: 0 is not valid; expected int >= 1")):
        resolve_options("x", declared, {"url": "u", "n": 0})
    with pytest.raises(UsageError, match=re.escape("config key x.url: required with --sink x")):
        resolve_options("x", declared, {})
