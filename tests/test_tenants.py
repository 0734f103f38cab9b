"""Tenant isolation with a key prefix and a restricted ACL user (the documented recipe)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import topologies
from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    NativeLayout,
    NotDurableError,
    aclose_shared_clients,
)

#: The recipe from docs/deployment.md: own keys only, the command groups the store uses,
#: nothing dangerous (no KEYS, FLUSHALL, CONFIG, DEBUG, ...). INFO lets the store tell a
#: cluster from a plain server (without it, give cluster=yes/no in the URL).
TENANT_RULES = (
    "resetkeys", "~chat:{tenant}:*", "resetchannels", "-@all", "+@read", "+@write",
    "+@connection", "+@scripting", "+scan", "+info", "+wait", "+time", "-@dangerous",
)  # fmt: skip


def rules(tenant: str) -> tuple[str, ...]:
    return tuple(rule.replace("{tenant}", tenant) for rule in TENANT_RULES)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[topologies.AclServer]:
    users = [("tenant_a", "pw-a", rules("tenant_a")), ("tenant_b", "pw-b", rules("tenant_b"))]
    with topologies.acl_server(tmp_path_factory.mktemp("tenants"), users=users) as started:
        yield started


def url(server: topologies.AclServer, tenant: str) -> str:
    return f"redis://{tenant}:{server.user(tenant).password}@127.0.0.1:{server.port}/0"


def record(text: str) -> dict[str, object]:
    return {"type": "human", "data": {"content": text}}


def test_every_operation_works_for_the_tenant(server: topologies.AclServer) -> None:
    """Append, reads, count, windows, listing, clear, delete and durability all work."""
    store = ChatHistoryStore(
        url=url(server, "tenant_a"), layout=NativeLayout("chat:tenant_a"), ttl=600,
        max_messages=50,
    )  # fmt: skip
    assert store.append("s1", [record("a"), record("b")]) == 2
    assert store.append("s2", [record("c")]) == 1
    with pytest.raises(NotDurableError):  # WAIT is allowed; there is just no replica here
        store.append("s2", [record("d")], durability="replicas=1,timeout_ms=10")
    assert store.count("s2") == 2
    assert [r["data"]["content"] for r in store.messages("s1", last=1)] == ["b"]
    assert store.count("s1") == 2
    assert sorted(store.session_ids()) == ["s1", "s2"]
    assert store.clear("s1") is True
    assert store.delete("s2") == 1
    assert list(store.session_ids()) == []


async def test_async_operations_work_for_the_tenant(server: topologies.AclServer) -> None:
    """The asyncio store works under the same restrictions."""
    async with AsyncChatHistoryStore(
        url=url(server, "tenant_a"), layout=NativeLayout("chat:tenant_a")
    ) as store:
        assert await store.append("as", [record("x")]) == 1
        assert [s async for s in store.session_ids()] == ["as"]
        assert await store.clear("as")
    await aclose_shared_clients()


def test_other_tenants_data_is_unreachable(server: topologies.AclServer) -> None:
    """tenant_b cannot read, write or delete tenant_a's sessions, even naming the keys."""
    mine = ChatHistoryStore(url=url(server, "tenant_a"), layout=NativeLayout("chat:tenant_a"))
    mine.append("secret", [record("tenant a only")])
    intruder = ChatHistoryStore(url=url(server, "tenant_b"), layout=NativeLayout("chat:tenant_a"))
    for attempt in (
        lambda: intruder.messages("secret"),
        lambda: intruder.append("secret", [record("injected")]),
        lambda: intruder.clear("secret"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    assert [r["data"]["content"] for r in mine.messages("secret")] == ["tenant a only"]
    assert mine.count("secret") == 1


def test_scan_caveat_key_names_are_visible(server: topologies.AclServer) -> None:
    """The documented caveat: ACL key patterns do not filter SCAN, so names can leak."""
    ChatHistoryStore(url=url(server, "tenant_a"), layout=NativeLayout("chat:tenant_a")).append(
        "visible-name", [record("x")]
    )
    with redis.Redis(port=server.port, username="tenant_b", password="pw-b") as tenant_b:
        names = [key.decode() for key in tenant_b.scan_iter(match="chat:*")]
    assert "chat:tenant_a:{visible-name}:messages" in names
