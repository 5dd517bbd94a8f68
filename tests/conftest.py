"""Shared fixtures. Tests run as root against the real kernel: fail loudly,
not skip, when that is not the case, so a CI without privileges is red."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.kafka_fixtures", "tests.registry_fixtures"]


@pytest.fixture(scope="session", autouse=True)
def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the tests load BPF programs: run them as root (make test)")
