"""The Kafka sink's C part (sinks/kafka/_produce.c), when it was built.

A wheel or an editable install made without a C compiler has no _produce:
the sink then runs its Python references (MessagePy, produce_all_py), which
the tests hold the C to."""

from __future__ import annotations

import importlib
from typing import Any


def native_part(name: str) -> Any | None:
    """sinks.kafka._produce.<name>, or None when the C part is not built."""
    try:
        module = importlib.import_module("sinks.kafka._produce")
    except ImportError:  # installed without a C compiler
        return None
    return getattr(module, name)
