"""One awaitable surface over the sync or the async methods of a LangGraph saver, store or
graph, so one test covers both APIs: ``await both.put(...)`` calls ``put`` or ``aput``;
async and sync iterators come back as lists."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Both"]


class Both:
    def __init__(self, target: Any, use_async: bool) -> None:
        self.target = target
        self.use_async = use_async

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.target, f"a{name}" if self.use_async else name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if hasattr(result, "__aiter__"):
                return [item async for item in result]
            if inspect.isawaitable(result):
                return await result
            if inspect.isgenerator(result) or isinstance(result, Iterator):
                return list(result)
            return result

        return call
