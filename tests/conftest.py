"""Shared fixtures. Tests run as root against the real kernel: fail loudly,
not skip, when that is not the case, so a CI without privileges is red.

The exception is the fast tier, tests/unit/ (`make test-unit`): no kernel,
no broker, no root; it runs in seconds anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import helpers

pytest_plugins = ["tests.kafka_fixtures", "tests.registry_fixtures"]


UNIT = Path(__file__).resolve().parent / "unit"


@pytest.fixture(autouse=True)
def _require_root(request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0 and UNIT not in Path(str(request.node.path)).resolve().parents:
        pytest.fail("the tests load BPF programs: run them as root (make test); "
                    "tests/unit/ runs without (make test-unit)")


@pytest.fixture(autouse=True)
def _mark_test_start() -> None:
    """helpers.since_this_test() for this test (pids wrap during a long run)."""
    helpers._test_began = helpers.started_since()
