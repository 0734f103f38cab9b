"""The two LangChain drop-ins on every deployment (``pytest --topology NAME``): the
community class from the deployment's URL (TLS, Sentinel, Cluster, ACL user, renamed admin
commands) and the Memorystore class with a client the application built, sync and async."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from redis_chat_history import MemorystoreChatMessageHistory, RedisChatMessageHistory


def texts(messages: list[Any]) -> list[str]:
    return [message.content for message in messages]


async def test_community_history_from_the_deployment_url(redis_url: str, track: Any) -> None:
    """RedisChatMessageHistory(session_id, url=...) with the upstream defaults."""
    history = track(RedisChatMessageHistory("user-42/{chat}", url=redis_url, ttl=600))
    history.add_user_message("hello")
    history.add_messages([AIMessage("hi there"), HumanMessage("how are you?")])
    await history.aadd_messages([AIMessage("fine")])
    expected = ["hello", "hi there", "how are you?", "fine"]
    assert texts(history.messages) == expected
    assert texts(await history.aget_messages()) == expected
    assert texts(history.get_messages(last=2)) == expected[-2:]
    history.clear()
    assert history.messages == []


async def test_memorystore_history_with_the_applications_client(client: Any, track: Any) -> None:
    """MemorystoreChatMessageHistory(client, session_id) with the deployment's own client
    (a TLS client, a Sentinel master client, a RedisCluster); its async methods use an
    asyncio twin derived from that client."""
    history = track(MemorystoreChatMessageHistory(client, "session-{1}", ttl=600))
    history.add_user_message("hello")
    await history.aadd_messages([AIMessage("hi"), HumanMessage("bye")])
    assert texts(await history.aget_messages()) == ["hello", "hi", "bye"]
    assert texts(history.messages) == ["hello", "hi", "bye"]
    await history.aclear()
    assert history.messages == []
