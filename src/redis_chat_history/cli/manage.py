"""Managing commands: ``delete`` and ``stats``."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import click
import redis.cluster
from redis.exceptions import RedisError
from rich.table import Table
from rich.text import Text

from .._clients import SyncClient
from ..layouts import Layout
from ._app import main
from ._connect import Cli, cli_command_options, layout_options
from ._output import EXIT_DATA, EXIT_NOT_FOUND, EXIT_USAGE, CliError, human_bytes, human_duration
from ._sessions import (
    SessionRef,
    SessionStats,
    find_sessions,
    layouts_from_names,
    locate_session,
    measure,
)
from .browse import stats_json

__all__ = ["TTL_BUCKETS", "delete_cmd", "stats_cmd", "ttl_bucket"]

_PREVIEW = 10


@main.command("delete")
@cli_command_options
@click.argument("session_ids", nargs=-1, metavar="[SESSION]...")
@click.option("--prefix", help="Delete every session whose id starts with this (literally).")
@layout_options(multiple=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
def delete_cmd(
    cli: Cli,
    session_ids: tuple[str, ...],
    prefix: str | None,
    layouts: tuple[str, ...],
    key_prefix: str | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """Delete sessions (their messages and retry tokens), by id or by --prefix.

    Asks before deleting unless --yes is given (without a terminal, --yes is required).
    Exits 1 when nothing matched.
    """
    if bool(session_ids) == (prefix is not None):
        raise CliError("give SESSION ids or --prefix (one of them)", EXIT_USAGE)
    if prefix == "":
        raise CliError("--prefix must not be empty (that would match every session)", EXIT_USAGE)
    client = cli.client
    chosen = layouts_from_names(layouts, key_prefix)
    targets = _targets(cli, chosen, session_ids, prefix, explicit_layout=bool(layouts))
    counts = _counts(client, targets)
    report: dict[str, Any] = {
        "server": cli.server,
        "dry_run": dry_run,
        "sessions": [
            {
                "session": ref.session_id,
                "layout": ref.layout_name,
                "key": ref.key,
                "messages": counts[ref.key],
            }
            for ref in targets
        ],
        "deleted": 0,
        "messages": sum(counts.values()),
    }
    if not targets:
        if cli.json_mode:
            cli.out.json(report)
        what = f"prefix {prefix!r}" if prefix is not None else ", ".join(map(repr, session_ids))
        raise CliError(f"no session matched {what}", EXIT_NOT_FOUND)
    if not cli.json_mode:
        _preview(cli, targets, counts)
    if dry_run:
        if cli.json_mode:
            cli.out.json(report)
        else:
            cli.out.note(f"dry run: {len(targets)} sessions would be deleted")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise CliError("refusing to delete without confirmation: pass --yes", EXIT_USAGE)
        total = sum(counts.values())
        click.confirm(
            f"Delete {len(targets)} sessions ({total} messages) on {cli.server}?",
            abort=True,
            err=True,
        )
    deleted = 0
    for ref in targets:
        deleted += cli.store(ref.layout).delete(ref.session_id)
    report["deleted"] = deleted
    if cli.json_mode:
        cli.out.json(report)
    else:
        cli.out.console.print(
            f"deleted {deleted} sessions ({report['messages']} messages)", markup=False
        )


def _targets(
    cli: Cli,
    layouts: Sequence[Layout],
    session_ids: Sequence[str],
    prefix: str | None,
    *,
    explicit_layout: bool,
) -> list[SessionRef]:
    if prefix is not None:
        return find_sessions(cli.store, layouts, prefix=prefix)
    targets: list[SessionRef] = []
    for session_id in session_ids:
        found, notes = locate_session(cli.client, session_id, layouts)
        if notes and not found:
            raise CliError("; ".join(notes), EXIT_DATA)
        if len(found) > 1 and not explicit_layout:
            where = ", ".join(f"{ref.layout_name} (key {ref.key!r})" for ref in found)
            raise CliError(
                f"session {session_id!r} exists in several layouts: {where}; choose with "
                "--layout (repeat it to delete from several)",
                EXIT_USAGE,
            )
        targets.extend(ref for ref in found if ref.key not in {t.key for t in targets})
    return targets


def _counts(client: SyncClient, refs: Sequence[SessionRef]) -> dict[str, int]:
    with client.pipeline(transaction=False) as pipe:
        for ref in refs:
            pipe.llen(ref.key)
        lengths = pipe.execute() if refs else []
    return {ref.key: int(length) for ref, length in zip(refs, lengths, strict=True)}


def _preview(cli: Cli, refs: Sequence[SessionRef], counts: Mapping[str, int]) -> None:
    for ref in refs[:_PREVIEW]:
        line = Text(ref.session_id, style="bold")
        line.append(f"  {ref.layout_name}, {counts[ref.key]} messages", style="dim")
        cli.out.err_console.print(line)
    if len(refs) > _PREVIEW:
        cli.out.note(f"... and {len(refs) - _PREVIEW} more")


#: TTL buckets of ``stats``: label and upper bound in seconds (None: no upper bound).
TTL_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("< 1h", 3600),
    ("1h - 1d", 86400),
    ("1d - 7d", 7 * 86400),
    ("> 7d", None),
)


def ttl_bucket(ttl: int | None) -> str:
    """The ``stats`` bucket for a TTL in seconds (None: no expiry)."""
    if ttl is None:
        return "no expiry"
    for label, bound in TTL_BUCKETS:
        if bound is None or ttl < bound:
            return label
    raise AssertionError("unreachable")


def _server_memory(client: SyncClient) -> dict[str, Any] | None:
    """used_memory (summed over a cluster's primaries), maxmemory and the eviction policy."""
    try:
        if isinstance(client, redis.cluster.RedisCluster):
            infos = [
                client.get_redis_connection(node).info("memory") for node in client.get_primaries()
            ]
        else:
            infos = [client.info("memory")]
    except RedisError:
        return None  # INFO refused (ACL) or renamed
    return {
        "used_memory": sum(int(info.get("used_memory", 0)) for info in infos),
        "maxmemory": sum(int(info.get("maxmemory", 0)) for info in infos),
        "maxmemory_policy": str(infos[0].get("maxmemory_policy", "")) if infos else "",
    }


@main.command("stats")
@cli_command_options
@layout_options(multiple=True)
@click.option("--prefix", default="", help="Only sessions whose id starts with this text.")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="How many of the largest sessions to list.",
)
def stats_cmd(
    cli: Cli, layouts: tuple[str, ...], key_prefix: str | None, prefix: str, top: int
) -> None:
    """Sessions, messages, memory used, TTL distribution and the largest sessions."""
    client = cli.client
    chosen = layouts_from_names(layouts, key_prefix)
    refs = find_sessions(cli.store, chosen, prefix=prefix)
    with cli.out.progress("measuring sessions", total=len(refs)) as bar:
        stats = measure(client, refs, on_batch=bar.advance)
    largest = sorted(stats, key=lambda s: (-(s.size or 0), s.ref.session_id))[:top]
    buckets = Counter(ttl_bucket(stat.ttl) for stat in stats)
    by_layout = {
        layout.name: {
            "sessions": sum(1 for s in stats if s.ref.layout_name == layout.name),
            "messages": sum(s.messages for s in stats if s.ref.layout_name == layout.name),
            "bytes": sum(s.size or 0 for s in stats if s.ref.layout_name == layout.name),
        }
        for layout in chosen
    }
    sources = {stat.size_source for stat in stats}
    document = {
        "server": cli.server,
        "sessions": len(stats),
        "messages": sum(stat.messages for stat in stats),
        "bytes": sum(stat.size or 0 for stat in stats),
        "bytes_source": "memory" if sources == {"memory"} else ("elements" if stats else None),
        "layouts": by_layout,
        "ttl": {label: buckets.get(label, 0) for label in _bucket_labels()},
        "largest": [stats_json(stat) for stat in largest],
        "server_memory": _server_memory(client),
    }
    if cli.json_mode:
        cli.out.json(document)
        return
    _print_stats(cli, document, largest)


def _bucket_labels() -> list[str]:
    return ["no expiry", *(label for label, _bound in TTL_BUCKETS)]


def _print_stats(cli: Cli, document: Mapping[str, Any], largest: Sequence[SessionStats]) -> None:
    console = cli.out.console
    size_note = "" if document["bytes_source"] != "elements" else " (element bytes; MEMORY refused)"
    console.print(Text(f"{document['server']}", style="bold"))
    console.print(
        f"{document['sessions']} sessions, {document['messages']} messages, "
        f"{human_bytes(document['bytes'])}{size_note}",
        markup=False,
    )
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    for column in ("layout", "sessions", "messages", "size"):
        table.add_column(column, justify="left" if column == "layout" else "right")
    for name, row in document["layouts"].items():
        table.add_row(name, str(row["sessions"]), str(row["messages"]), human_bytes(row["bytes"]))
    console.print(table)
    ttl = ", ".join(f"{label}: {count}" for label, count in document["ttl"].items())
    console.print(f"TTL: {ttl}", markup=False)
    memory = document["server_memory"]
    if memory:
        limit = human_bytes(memory["maxmemory"]) if memory["maxmemory"] else "no limit"
        console.print(
            f"server memory: {human_bytes(memory['used_memory'])} used, maxmemory {limit}, "
            f"policy {memory['maxmemory_policy'] or '?'}",
            markup=False,
        )
    if largest:
        top = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("largest sessions", "layout", "messages", "size", "ttl"):
            top.add_column(column, justify="right" if column in ("messages", "size") else "left")
        for stat in largest:
            top.add_row(
                Text(stat.ref.session_id),
                stat.ref.layout_name,
                str(stat.messages),
                human_bytes(stat.size),
                human_duration(stat.ttl) if stat.ttl is not None else "-",
            )
        console.print(top)
