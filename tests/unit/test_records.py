"""The record builder follows schemas/, and exit statuses decode as wait(2) says."""

from __future__ import annotations

import signal

import pytest

from collector.decode import exit_fields, signal_name
from collector.enrich.namespaces import KINDS
from collector.enrich.records import EVENT_TYPES, event_record, process_record
from collector.schema import field_names


def test_builders_have_the_schemas_fields_in_its_order() -> None:
    proc = process_record(**dict.fromkeys(field_names("Process")))  # type: ignore[arg-type]
    assert tuple(proc) == field_names("Process")
    event = event_record("process_exec", 1, "n", proc, None, None)
    assert tuple(event) == field_names("ProcessEvent")
    assert EVENT_TYPES == ("process_exec", "process_exit")
    assert KINDS == field_names("Namespaces")


@pytest.mark.parametrize(("status", "fields"), [
    (0, (0, None, False)),
    (3 << 8, (3, None, False)),
    (255 << 8, (255, None, False)),
    (signal.SIGKILL, (None, "SIGKILL", False)),
    (signal.SIGSEGV | 0x80, (None, "SIGSEGV", True)),
    (signal.SIGRTMIN + 3, (None, "SIGRTMIN+3", False)),
])
def test_exit_status_word(status: int, fields: tuple[object, ...]) -> None:
    assert exit_fields(status) == fields


def test_every_signal_number_has_a_name() -> None:
    assert all(signal_name(n) for n in range(1, 128))
