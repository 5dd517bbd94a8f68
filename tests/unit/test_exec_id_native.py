"""collector.enrich._exec_id (C) against its reference, exec_id.make_exec_id_py:
the same exec_id for every node and number, the reference's result (or error)
for what the C path does not take."""

from __future__ import annotations

import random

import pytest

from collector.enrich import exec_id as ids
from collector.enrich.exec_id import make_exec_id_py, parse_exec_id

native = ids._NATIVE


def test_the_package_was_built_with_it() -> None:
    assert ids.NATIVE and ids.make_exec_id is native


def test_the_reference_text_for_any_node_and_numbers() -> None:
    assert native is not None
    rng = random.Random(15)
    nodes = ["vm", "", "a", "ab", "abc", "node-7.example.org", "日本", "é" * 80, "x" * 256,
             "colon:in:node", "\0nul"]
    numbers = [0, 1, 9, 10, -1, 2**63 - 1, -(2**63), 4_194_304]
    for _ in range(3000):
        node = rng.choice(nodes) + "".join(rng.choice("ab:é-_") for _ in range(rng.randrange(4)))
        ktime = rng.choice([*numbers, rng.randrange(2**63)])
        pid = rng.choice([*numbers, rng.randrange(2**22)])
        got = native(node, ktime, pid)
        assert got == make_exec_id_py(node, ktime, pid), (node, ktime, pid)
        assert "=" not in got
    assert parse_exec_id(native("vm", 123, 45)) == ("vm", 123, 45)


@pytest.mark.parametrize("args", [("n" * 300, 1, 2), ("vm", 2**64, 1), ("vm", 1, -(2**70)),
                                  ("vm", True, 1), ("vm", 1.5, 2)])
def test_what_it_does_not_take_is_the_references(args: tuple) -> None:  # type: ignore[type-arg]
    assert native is not None
    assert native(*args) == make_exec_id_py(*args)


def test_errors_are_the_references() -> None:
    assert native is not None
    for args in (("bad \udc80", 1, 2), (None, 1, 2)):
        try:
            make_exec_id_py(*args)  # type: ignore[arg-type]
        except Exception as exc:
            with pytest.raises(type(exc)):
                native(*args)
        else:
            assert native(*args) == make_exec_id_py(*args)  # type: ignore[arg-type]
