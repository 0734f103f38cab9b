"""The README's asyncio snippets, each under its own asyncio.run(), run by test_clients.py
in a subprocess with warnings as errors; prints how many connections the server has after.
Usage: python readme_async_snippets.py URL RUNS"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import redis
from langchain_core.messages import HumanMessage

from redis_chat_history import (
    AsyncChatHistoryStore,
    MemorystoreChatMessageHistory,
    RedisChatMessageHistory,
)

url = sys.argv[1]
records = [{"type": "human", "data": {"content": "hi"}}]


async def store_snippet() -> None:
    async with AsyncChatHistoryStore(url=url) as astore:
        await astore.append("s", records)
        async for _session_id in astore.session_ids():
            pass


async def history_snippet() -> None:
    history = RedisChatMessageHistory("h", url=url)
    await history.aadd_messages([HumanMessage("hi")])
    await history.aget_messages()


async def twin_snippet(client: Any) -> None:
    history = MemorystoreChatMessageHistory(client, "m")
    await history.aadd_messages([HumanMessage("hi")])
    await history.aget_messages()


client = redis.Redis.from_url(url)
for _ in range(int(sys.argv[2])):
    asyncio.run(store_snippet())
    asyncio.run(history_snippet())
    asyncio.run(twin_snippet(client))
gc.collect()
with redis.Redis.from_url(url) as counter:
    print(len(counter.client_list()))  # noqa: T201
client.close()
