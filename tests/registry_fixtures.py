"""The session's real Schema Registry (Apicurio 3.3.3), started on first use.

One registry serves every test that needs one (subjects are per topic, and
topics are unique per test); a test that restarts or stops it leaves it
running again through the `registry` fixture. Stopped at the end of the
session (about 250 MB RSS).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.apicurio import ApicurioRegistry


@pytest.fixture(scope="session")
def _session_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApicurioRegistry]:
    reg = ApicurioRegistry(tmp_path_factory.mktemp("apicurio"))
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture
def registry(_session_registry: ApicurioRegistry) -> ApicurioRegistry:
    """The session registry, running."""
    if not _session_registry.is_running():
        _session_registry.start()
    return _session_registry
