"""Copied into the scratch copy of langgraph-checkpoint's tests as ``tests/stand_in.py``:
``InMemoryStore`` there becomes our store (same arguments), on the server in
$STORE_SUITE_URL, each instance under a prefix of its own so tests do not see each
other's items. $STORE_SUITE_CLASS picks RedisStore (sync) or AsyncRedisStore (async)."""

from __future__ import annotations

import itertools
import os
from typing import Any

from redis_chat_history.langgraph_store import AsyncRedisStore, RedisStore

_numbers = itertools.count()
_Base: Any = AsyncRedisStore if os.environ.get("STORE_SUITE_CLASS") == "async" else RedisStore


class InMemoryStore(_Base):  # type: ignore[misc]
    def __init__(self, *, index: Any = None) -> None:
        prefix = f"suite{os.getpid()}-{next(_numbers)}"
        super().__init__(os.environ["STORE_SUITE_URL"], index=index, prefix=prefix)
