"""Filter kind `container_id` (collector/filter/container_id.py): an id or
prefix, or true/false for in a container / on the host. The container is a
real cgroup named the way docker names them."""

from __future__ import annotations

from collector.filter import container_id


def test_any_container_or_host() -> None:
    def ev(cid: str | None) -> dict[str, object]:
        return {"process": {"container_id": cid}}

    inside, host = container_id.build("k", True), container_id.build("k", False)
    prefixes = container_id.build("k", ["ab", "cd"])
    assert [inside(ev("ab" * 32)), inside(ev(None))] == [True, False]
    assert [host(ev("ab" * 32)), host(ev(None))] == [False, True]
    assert [prefixes(ev("cd" * 32)), prefixes(ev("ef" * 32)), prefixes(ev(None))] == [
        True, False, False]

