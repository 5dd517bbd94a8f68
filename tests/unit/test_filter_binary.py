"""Filter kind `binary` (collector/filter/binary.py): a regex searched in the
executed file's absolute path."""

from __future__ import annotations

import os

from collector.filter import binary
from tests.test_filter_rules import TRUE


def test_search_anywhere_anchor_to_pin() -> None:
    def ev(path: str) -> dict[str, object]:
        return {"process": {"binary": path}}

    anywhere = binary.build("k", "bin/t")
    pinned = binary.build("k", [f"^{TRUE}$", "^/nope$"])
    assert anywhere(ev(TRUE)) and anywhere(ev("/sbin/tc"))
    assert pinned(ev(TRUE)) and not pinned(ev(TRUE + "x")) and not pinned(ev(os.sep))

