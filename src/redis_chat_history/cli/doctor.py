"""``doctor``: what the server is, and whether its settings can lose acknowledged messages.

Everything is read from INFO, which managed services (ElastiCache, Memorystore, Redis
Cloud) allow; CONFIG GET is tried for the few settings INFO does not show (the fsync
policy, RDB snapshots, keyspace notifications) and reported as unknown where it is
blocked. :func:`assess` turns the replies into findings without touching Redis.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import click
import redis
import redis.cluster
import redis.connection
from redis.exceptions import RedisError
from rich.text import Text

from .._clients import SyncClient
from .._core import server_version
from ..urls import split_url
from ._app import main
from ._connect import Cli, cli_command_options
from ._output import human_bytes, human_duration

__all__ = ["Finding", "ServerFacts", "assess", "doctor_cmd"]

LEVELS = ("ok", "info", "warn", "risk")
_ICONS = {
    "ok": ("✓", "green"),
    "info": ("i", "blue"),
    "warn": ("!", "yellow"),
    "risk": ("✗", "bold red"),
}


@dataclass(frozen=True)
class Finding:
    """One observation: ``level`` is ok, info, warn (can lose a little) or risk (can lose a
    lot, or silently)."""

    level: str
    topic: str
    message: str
    advice: str = ""


@dataclass
class ServerFacts:
    """What doctor found out about the deployment (the input of :func:`assess`)."""

    mode: str  # standalone, cluster or sentinel
    tls: bool
    host: str
    #: INFO of the node written to (a cluster: one primary), sections merged.
    info: Mapping[str, Any]
    #: CONFIG GET results for the settings INFO lacks; None when CONFIG is not allowed.
    config: Mapping[str, str] | None
    primaries: int = 1
    replicas: int = 0


def _flavour(info: Mapping[str, Any]) -> str:
    if info.get("valkey_version") or str(info.get("server_name", "")).lower() == "valkey":
        return "valkey"
    return "redis"


def _version_text(info: Mapping[str, Any]) -> str:
    return str(info.get("valkey_version") or info.get("redis_version") or "?")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _persistence(facts: ServerFacts, now: float) -> list[Finding]:
    info, config = facts.info, facts.config
    findings: list[Finding] = []
    for status in ("aof_last_write_status", "rdb_last_bgsave_status", "aof_last_bgrewrite_status"):
        if str(info.get(status, "ok")) != "ok":
            findings.append(
                Finding(
                    "risk",
                    "persistence",
                    f"{status} is {info[status]}",
                    "check the server's disk and log; writes may be failing",
                )
            )
    aof = str(info.get("aof_enabled", "0")) == "1"
    save = config.get("save") if config else None
    if aof:
        fsync = config.get("appendfsync") if config else None
        if fsync == "always":
            findings.append(
                Finding(
                    "ok",
                    "persistence",
                    "AOF on with appendfsync always: an acknowledged message is on disk",
                )
            )
        elif fsync == "no":
            findings.append(
                Finding(
                    "warn",
                    "persistence",
                    "AOF on with appendfsync no: a crash "
                    "of the machine can lose the last ~30 s of messages",
                    "use appendfsync everysec (or always), or durability="
                    "'fsync' for messages that must survive",
                )
            )
        else:
            known = "appendfsync everysec" if fsync else "fsync policy unknown (CONFIG blocked; "
            known += "" if fsync else "managed services use everysec)"
            findings.append(
                Finding(
                    "warn",
                    "persistence",
                    f"AOF on, {known}: a crash of the "
                    "machine can lose the last ~1 s of acknowledged messages",
                    "durability='fsync' (Redis/Valkey 7.2+) waits for the fsync "
                    "when a message must survive",
                )
            )
    elif save == "":
        findings.append(
            Finding(
                "risk",
                "persistence",
                "no persistence (AOF off, no RDB "
                "snapshots): a restart loses every message not on a replica",
                "turn on appendonly yes (appendfsync everysec)",
            )
        )
    else:
        last = info.get("rdb_last_save_time")
        changes = info.get("rdb_changes_since_last_save")
        age = f"{human_duration(now - float(last))} ago" if last else "never"
        findings.append(
            Finding(
                "risk",
                "persistence",
                "AOF off: only RDB snapshots "
                f"({'save ' + repr(save) if save else 'policy unknown'}); a crash "
                f"loses everything since the last one (last snapshot {age}, "
                f"{changes if changes is not None else '?'} changes since)",
                "turn on appendonly yes (appendfsync everysec), or rely on "
                "replicas with durability='replicas=1'",
            )
        )
    return findings


def _replication(facts: ServerFacts) -> list[Finding]:
    info = facts.info
    role = str(info.get("role", "master"))
    if role in ("slave", "replica"):
        link = str(info.get("master_link_status", "?"))
        return [
            Finding(
                "risk",
                "replication",
                f"connected to a replica (link to its master {link}): writes are refused here",
                "point the URL at the primary, or use a redis+sentinel:// URL that follows it",
            ),
        ]
    replicas = facts.replicas if facts.mode == "cluster" else int(info.get("connected_slaves", 0))
    if replicas == 0:
        return [
            Finding(
                "warn",
                "replication",
                "no replicas: losing this machine loses what "
                "it has not persisted, and nothing can take over",
                "add a replica (and Sentinel or a managed failover)",
            )
        ]
    findings = [
        Finding(
            "warn",
            "replication",
            f"{replicas} replica(s), replicated "
            "asynchronously: on failover, messages acknowledged but not yet "
            "copied are lost",
            "use durability='replicas=1' where a message "
            "must survive a failover"
            + (" (not yet through a cluster client)" if facts.mode == "cluster" else ""),
        )
    ]
    good = info.get("min_slaves_good_slaves")
    if good is not None:
        findings.append(
            Finding(
                "ok",
                "replication",
                f"min-replicas-to-write is set "
                f"({good} good replicas now): writes stop when replicas fall "
                "behind",
            )
        )
    return findings


def _memory(facts: ServerFacts) -> list[Finding]:
    info = facts.info
    policy = str(info.get("maxmemory_policy", ""))
    limit = int(info.get("maxmemory", 0) or 0)
    used = int(info.get("used_memory", 0) or 0)
    findings: list[Finding] = []
    if policy.startswith("allkeys"):
        findings.append(
            Finding(
                "risk",
                "eviction",
                f"maxmemory-policy {policy}: under memory pressure whole histories are "
                "evicted silently, and so are the retry tokens that keep a re-sent append "
                "from being stored twice",
                "use noeviction (appends then fail loudly) or give chat history its own instance",
            )
        )
    elif policy.startswith("volatile"):
        findings.append(
            Finding(
                "warn",
                "eviction",
                f"maxmemory-policy {policy}: sessions with a TTL can be evicted before they "
                "expire, and their retry tokens with them (a re-sent append could then be "
                "stored twice); sessions without a TTL are safe (their tokens get no TTL "
                "under this policy)",
                "use noeviction, or size the instance with headroom",
            )
        )
    elif policy:
        findings.append(
            Finding(
                "ok",
                "eviction",
                f"maxmemory-policy {policy}: when memory is "
                "full appends fail with an error instead of dropping history",
            )
        )
    if limit and used > 0.9 * limit:
        findings.append(
            Finding(
                "warn",
                "memory",
                f"{human_bytes(used)} of {human_bytes(limit)} maxmemory used (over 90%)",
                "trim histories (max_messages, ttl) or add memory",
            )
        )
    return findings


def assess(facts: ServerFacts, *, now: float | None = None) -> list[Finding]:
    """Findings about durability and operations, most serious first."""
    now = time.time() if now is None else now
    info = facts.info
    findings = [*_persistence(facts, now), *_replication(facts), *_memory(facts)]
    version = server_version({"redis_version": info.get("redis_version", "0")})
    if version and version < (7, 2):
        findings.append(
            Finding(
                "info",
                "version",
                f"{_flavour(info)} {_version_text(info)}: durability='fsync' needs WAITAOF (7.2+)",
            )
        )
    if not facts.tls and not _is_loopback(facts.host):
        findings.append(
            Finding(
                "warn",
                "tls",
                "the connection is not encrypted",
                "use a rediss:// URL if the network is not private",
            )
        )
    if facts.mode == "cluster":
        state = str(info.get("cluster_state", "ok"))
        level = "ok" if state == "ok" else "risk"
        findings.append(
            Finding(
                level,
                "cluster",
                f"cluster_state {state}, {facts.primaries} primaries, {facts.replicas} replicas",
            )
        )
    events = facts.config.get("notify-keyspace-events") if facts.config else None
    if events is not None and not ("K" in events and ("l" in events or "A" in events)):
        findings.append(
            Finding(
                "info",
                "tail",
                "keyspace notifications are off: `tail` polls",
                "CONFIG SET notify-keyspace-events Kl for instant updates",
            )
        )
    return sorted(findings, key=lambda finding: -LEVELS.index(finding.level))


def _merged_info(client: redis.Redis) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for section in ("server", "replication", "persistence", "memory", "cluster"):
        try:
            info.update(client.info(section))
        except RedisError:
            continue  # a section may be blocked on managed services
    return info


def _config(client: redis.Redis) -> dict[str, str] | None:
    try:
        reply = client.config_get("*")
    except RedisError:
        pass
    else:
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in reply.items()
            if (k.decode() if isinstance(k, bytes) else str(k))
            in ("save", "appendfsync", "notify-keyspace-events", "appendonly")
        }
    return None


def _tls(client: SyncClient) -> bool:
    if isinstance(client, redis.cluster.RedisCluster):
        node = client.get_default_node() or client.get_primaries()[0]
        pool = node.redis_connection.connection_pool if node.redis_connection else None
    else:
        pool = client.connection_pool
    connection_class = getattr(pool, "connection_class", None)
    return isinstance(connection_class, type) and issubclass(
        connection_class, redis.connection.SSLConnection
    )


def gather(cli: Cli) -> tuple[ServerFacts, dict[str, Any]]:
    """Ask the server (every primary of a cluster for the node counts) what it is."""
    client = cli.client
    extra: dict[str, Any] = {}
    try:
        host = split_url(cli.shown_url).hostname or ""
    except ValueError:  # a list of sentinels has no one host name
        host = ""
    if isinstance(client, redis.cluster.RedisCluster):
        primaries = client.get_primaries()
        node_client = client.get_redis_connection(primaries[0])
        info = _merged_info(node_client)
        replicas = len(client.get_replicas())
        return ServerFacts(
            "cluster", _tls(client), host, info, _config(node_client), len(primaries), replicas
        ), extra
    info = _merged_info(client)
    service = getattr(client.connection_pool, "service_name", None)
    mode = "sentinel" if service else str(info.get("redis_mode", "standalone"))
    if service:
        extra["sentinel_service"] = service
    return ServerFacts(mode, _tls(client), host, info, _config(client)), extra


@main.command("doctor")
@cli_command_options
def doctor_cmd(cli: Cli) -> None:
    """What the server is and whether its settings can lose acknowledged messages.

    Reads INFO (allowed on managed services) and CONFIG where permitted, and gives concrete
    advice. Exits 0 whenever the server could be inspected, whatever was found.
    """
    facts, extra = gather(cli)
    findings = assess(facts)
    info = facts.info
    summary = {
        "server": cli.server,
        "flavour": _flavour(info),
        "version": _version_text(info),
        "mode": facts.mode,
        "tls": facts.tls,
        "role": str(info.get("role", "?")),
        "primaries": facts.primaries,
        "replicas": facts.replicas if facts.mode == "cluster" else info.get("connected_slaves"),
        "aof": str(info.get("aof_enabled", "?")) == "1" if "aof_enabled" in info else None,
        "maxmemory_policy": info.get("maxmemory_policy"),
        "config_readable": facts.config is not None,
        **extra,
    }
    if cli.json_mode:
        cli.out.json({**summary, "findings": [asdict(finding) for finding in findings]})
        return
    _print(cli, summary, findings)


def _print(cli: Cli, summary: Mapping[str, Any], findings: Sequence[Finding]) -> None:
    console = cli.out.console
    console.print(Text(str(summary["server"]), style="bold"))
    console.print(
        f"{summary['flavour']} {summary['version']}, {summary['mode']}, role {summary['role']}, "
        f"TLS {'on' if summary['tls'] else 'off'}"
        + (
            ""
            if summary["config_readable"]
            else ", CONFIG not readable (normal on managed services; INFO used instead)"
        ),
        markup=False,
    )
    for finding in findings:
        icon, style = _ICONS[finding.level]
        line = Text(f"{icon} ", style=style)
        line.append(f"{finding.topic}: ", style="bold")
        line.append(finding.message)
        console.print(line)
        if finding.advice:
            console.print(Text(f"    → {finding.advice}", style="dim"))
    risks = sum(1 for finding in findings if finding.level == "risk")
    click.echo("")
    cli.out.note(f"{risks} risk(s), {sum(f.level == 'warn' for f in findings)} warning(s)")
