"""Filter kind `uid` (collector/filter/uid.py): the real uid at exec."""

from __future__ import annotations

import pytest

from collector.errors import UsageError
from collector.filter import uid


def test_values() -> None:
    rule = uid.build("k", 0)
    assert rule({"process": {"uid": 0}}) and not rule({"process": {"uid": 1}})
    for bad in (True, -1, 1.5, [0, "x"]):
        with pytest.raises(UsageError, match=r"^config key k: "):
            uid.build("k", bad)

