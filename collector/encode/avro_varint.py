"""The pieces the generated Avro encoder (avro_generated.py) runs on: Avro
varints with a memo, and the exception that hands an event to fastavro."""

from __future__ import annotations


class Slow(Exception):
    """A value the generated code does not handle: fastavro encodes the whole event."""


_INT64 = 1 << 64
# varints of 14-bit groups: _LAST for the final group (1 or 2 bytes), _MORE
# for a group with more to follow (2 bytes, continuation bits set)
_LAST = [bytes([z]) if z < 128 else bytes([(z & 0x7F) | 0x80, z >> 7]) for z in range(1 << 14)]
_MORE = [bytes([(z & 0x7F) | 0x80, (z >> 7) | 0x80]) for z in range(1 << 14)]
MEMO: dict[int, bytes] = {}  # ids (pid, uid, cgroup) recur; timestamps do not (not kept)
_MEMO_MAX = 1 << 16


def zigzag_varint(n: int) -> bytes:
    """An Avro int/long: zig-zag, then base-128 varint, low group first."""
    if type(n) is not int:
        raise Slow
    found = MEMO.get(n)
    if found is not None:
        return found
    z = (n << 1) ^ (n >> 63)
    if z < 16384 and z >= 0:
        return _LAST[z]
    if not 0 <= z < _INT64:
        raise Slow  # outside int64: let fastavro say so
    keep = z < (1 << 32)
    parts = []
    while z >= 16384:
        parts.append(_MORE[z & 0x3FFF])
        z >>= 14
    parts.append(_LAST[z])
    out = b"".join(parts)
    if keep:
        if len(MEMO) >= _MEMO_MAX:
            MEMO.clear()
        MEMO[n] = out
    return out
