"""LangGraph thread commands: ``threads`` and ``thread show|history|delete|prune|copy|import``.

They read and manage the checkpoints :class:`redis_chat_history.langgraph.RedisSaver`
stores (``--prefix``, default ``lg``), without the graph that wrote them. LangGraph is an
optional extra: it is imported inside the commands, so the rest of the CLI works without
it, and these commands then stop with one ``error:`` line saying what to install.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import click
from rich.table import Table
from rich.text import Text

from .._clients import SyncClient
from ._app import main
from ._connect import Cli, cli_command_options, layout_options
from ._output import EXIT_DATA, EXIT_NOT_FOUND, EXIT_USAGE, CliError, human_duration
from ._render import render_message, visible

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langgraph.checkpoint.base import CheckpointTuple

    from ..langgraph import RedisSaver

__all__ = ["thread_group", "threads_cmd"]

F = TypeVar("F", bound=Callable[..., Any])

INSTALL_HINT = "pip install 'redis-chat-history[langgraph]'"
#: The packages of the [langgraph] extra (and what they pull in).
_EXTRA_PACKAGES = {"langgraph", "langchain_core", "langchain", "ormsgpack", "xxhash"}
#: Threads read per pipeline when listing.
_BATCH = 200


def _missing_extra(error: ImportError) -> CliError:
    return CliError(
        f"this command needs the {error.name or 'langgraph'} package: {INSTALL_HINT}", EXIT_USAGE
    )


def _is_extra(error: ImportError) -> bool:
    return (error.name or "").split(".")[0] in _EXTRA_PACKAGES


def _saver(cli: Cli, prefix: str, owner_key: str | None = None) -> RedisSaver:
    """A RedisSaver over the command's client (LangGraph imported here, not before), with
    the ``--owner-key`` that :func:`saver_options` keeps in the click context unless
    ``owner_key`` is given."""
    try:
        from ..langgraph import RedisSaver
    except ImportError as error:
        if not _is_extra(error):
            raise
        raise _missing_extra(error) from None
    if owner_key is None:
        owner_key = click.get_current_context().meta.get(_OWNER_KEY)
    return RedisSaver(
        redis_client=cli.client, prefix=prefix, retry_deadline=2.0, owner_key=owner_key
    )


def _add_messages() -> Callable[[Any, Any], Any]:
    """``langgraph.graph.message.add_messages`` (the langgraph package itself)."""
    try:
        from langgraph.graph.message import add_messages
    except ImportError as error:
        if not _is_extra(error):
            raise
        raise _missing_extra(error) from None
    return add_messages


_OWNER_KEY = "redis_chat_history.owner_key"


def _keep_owner_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None and not value:
        raise click.BadParameter("must not be empty")
    ctx.meta[_OWNER_KEY] = value


def saver_options(function: F) -> F:
    """``--prefix`` and ``--owner-key``: the options the saver was made with."""
    function = click.option(
        "--owner-key",
        metavar="KEY",
        expose_value=False,
        callback=_keep_owner_key,
        help="The RedisSaver's owner_key= (e.g. user_id): keeps owners' thread indexes "
        "right when deleting, copying or importing.",
    )(function)
    return click.option(
        "--prefix",
        default="lg",
        show_default=True,
        help="Key prefix of the RedisSaver (RedisSaver(prefix=...)).",
    )(function)


def ns_option(function: F) -> F:
    return click.option(
        "--ns",
        default="",
        show_default="the root namespace",
        help="Checkpoint namespace (a subgraph's, e.g. 'node:task-id').",
    )(function)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")


def _ttl(pttl: Any) -> int | None:
    """PTTL in ms as whole seconds (rounded up), None for no expiry or no key."""
    value = int(pttl)
    return None if value < 0 else -(-value // 1000)


# --- reading a checkpoint's conversation ----------------------------------------------------


class Conversation(NamedTuple):
    """A checkpoint's messages, those of writes of a step that never completed, and
    whether the messages were rebuilt from a DeltaChannel's writes."""

    messages: list[Any]
    pending: list[Any]
    delta: bool


def _is_overwrite(value: Any) -> tuple[bool, Any]:
    try:
        from langgraph.channels.binop import _get_overwrite
    except ImportError:  # pragma: no cover - older langgraph
        from langgraph.types import Overwrite

        return (True, value.value) if isinstance(value, Overwrite) else (False, None)
    return _get_overwrite(value)


def conversation(
    saver: RedisSaver, item: CheckpointTuple, channel: str = "messages"
) -> Conversation:
    """What ``graph.get_state(config).values[channel]`` holds at this checkpoint, read
    from the saver alone: the stored list, or (a DeltaChannel thread) the seed of the delta
    walk with every write after it applied by ``add_messages``."""
    from langgraph.checkpoint.serde.types import _DeltaSnapshot

    value = item.checkpoint["channel_values"].get(channel)
    delta = not isinstance(value, list)
    if isinstance(value, list):
        messages = list(value)
    else:
        add_messages = _add_messages()
        history = saver.get_delta_channel_history(config=item.config, channels=[channel])
        found = history.get(channel) or {"writes": []}
        seed = found.get("seed")
        if isinstance(seed, _DeltaSnapshot):
            seed = seed.value
        messages = list(seed or [])
        for _task, _channel, write in found["writes"]:
            overwrite, replacement = _is_overwrite(write)
            if overwrite:
                messages = list(add_messages([], replacement or []))
            else:
                messages = list(add_messages(messages, write))
    pending: list[Any] = []
    for _task, written_channel, write in item.pending_writes or []:
        if written_channel == channel:
            pending.extend(_as_messages(write))
    return Conversation(messages, pending, delta)


def _as_messages(write: Any) -> list[Any]:
    """A write of the messages channel (a message, a list, dicts, tuples) as messages."""
    from langchain_core.messages import BaseMessage, convert_to_messages

    overwrite, replacement = _is_overwrite(write)
    values = replacement if overwrite else write
    items = values if isinstance(values, list) else [values]
    out: list[Any] = []
    for entry in items:
        if isinstance(entry, BaseMessage):
            out.append(entry)
        else:
            try:
                out.extend(convert_to_messages([entry]))
            except (ValueError, TypeError, NotImplementedError):
                continue  # not a message (e.g. a RemoveMessage marker in another form)
    return out


def _records(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    from langchain_core.messages import message_to_dict

    return [message_to_dict(message) for message in messages]


def _thread_exists(client: SyncClient, saver: RedisSaver, thread_id: str) -> int:
    """How many checkpoints the thread has (0: none), in every namespace."""
    from .. import _checkpoint_core as core

    return int(client.zcard(core.ThreadKeys(saver.prefix, thread_id).keys[0]))


def _not_found(thread_id: str, prefix: str) -> CliError:
    return CliError(f"no thread {thread_id!r} (prefix {prefix!r})", EXIT_NOT_FOUND)


def _ago(ts: str | None) -> str:
    """``3m ago`` for a checkpoint's ISO ts (blank if it has none)."""
    if not ts:
        return ""
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return ts
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return f"{human_duration(max(0.0, time.time() - when.timestamp()))} ago"


def _ts_text(ts: Any) -> str:
    """A checkpoint's ISO ts for people: to the second (UTC, as LangGraph writes it)."""
    text = str(ts or "")
    return text[:19].replace("T", " ") if len(text) >= 19 else text


# --- threads ----------------------------------------------------------------------------------


class ThreadRow(NamedTuple):
    thread_id: str
    namespaces: int
    checkpoints: int
    newest: str | None
    newest_ns: str | None
    ts: str | None
    ttl: int | None


def _thread_rows(
    client: SyncClient, saver: RedisSaver, thread_ids: Sequence[str]
) -> list[ThreadRow]:
    """Counts, newest checkpoint (id, namespace, ts) and TTL of each thread: pipelined,
    a round trip per namespace a thread has (skipping through its ``idx`` zset by
    namespace), and one for the newest checkpoints' timestamps."""
    from .. import _checkpoint_core as core

    rows: list[ThreadRow] = []
    for start in range(0, len(thread_ids), _BATCH):
        batch = list(thread_ids[start : start + _BATCH])
        keys = [core.ThreadKeys(saver.prefix, thread_id).keys for thread_id in batch]
        with client.pipeline(transaction=False) as pipe:
            for thread_keys in keys:
                pipe.zcard(thread_keys[0])
                pipe.zrange(thread_keys[1], -1, -1)
                pipe.pttl(thread_keys[1])
                pipe.zrangebylex(thread_keys[0], "-", "+", 0, 1)
            replies = pipe.execute()
        counts = [int(replies[n * 4]) for n in range(len(batch))]
        newest = [replies[n * 4 + 1] for n in range(len(batch))]
        ttls = [_ttl(replies[n * 4 + 2]) for n in range(len(batch))]
        namespaces = [0] * len(batch)
        cursor: dict[int, bytes] = {}
        for n in range(len(batch)):
            first = replies[n * 4 + 3]
            if first:
                namespaces[n] = 1
                cursor[n] = _bytes(first[0]).partition(b"\0")[0]
        while cursor:  # the next namespace of each thread: the first member past "ns\0..."
            order = list(cursor)
            with client.pipeline(transaction=False) as pipe:
                for n in order:
                    pipe.zrangebylex(keys[n][0], b"[" + cursor[n] + b"\x01", "+", 0, 1)
                found = pipe.execute()
            cursor = {}
            for n, member in zip(order, found, strict=True):
                if member:
                    namespaces[n] += 1
                    cursor[n] = _bytes(member[0]).partition(b"\0")[0]
        latest: list[tuple[str, str] | None] = []
        for reply in newest:
            if reply:
                checkpoint_id, _, ns = _bytes(reply[0]).partition(b"\0")
                latest.append((checkpoint_id.decode(), ns.decode()))
            else:
                latest.append(None)
        with client.pipeline(transaction=False) as pipe:
            for thread_keys, found_latest in zip(keys, latest, strict=True):
                if found_latest is not None:
                    pipe.hget(thread_keys[2], f"{found_latest[1]}\0{found_latest[0]}")
            payloads = iter(pipe.execute() if any(latest) else [])
        for n, thread_id in enumerate(batch):
            ts: str | None = None
            if latest[n] is not None:
                payload = next(payloads)
                if payload is not None:
                    ts = _payload_ts(saver, _bytes(payload))
            rows.append(
                ThreadRow(
                    thread_id,
                    namespaces[n],
                    counts[n],
                    latest[n][0] if latest[n] else None,  # type: ignore[index]
                    latest[n][1] if latest[n] else None,  # type: ignore[index]
                    ts,
                    ttls[n],
                )
            )
    return rows


def _payload_ts(saver: RedisSaver, payload: bytes) -> str | None:
    """The ``ts`` of a stored checkpoint payload (None if it cannot be read)."""
    from .. import _checkpoint_core as core

    try:
        typed = core.split_payload(payload)
        checkpoint, _metadata = core.loads(saver.serde, typed, "", "")
        return str(checkpoint.get("ts")) if checkpoint.get("ts") else None
    except Exception:  # another serializer (encryption) or a damaged payload
        return None


def _row_json(row: ThreadRow) -> dict[str, Any]:
    return {
        "thread": row.thread_id,
        "namespaces": row.namespaces,
        "checkpoints": row.checkpoints,
        "newest_checkpoint": row.newest,
        "newest_ns": row.newest_ns,
        "ts": row.ts,
        "ttl": row.ttl,
    }


@main.command("threads")
@cli_command_options
@saver_options
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Threads to show."
)
@click.option(
    "--scan",
    is_flag=True,
    help="Find the threads by SCAN instead of the registry (also threads written before it).",
)
@click.option(
    "--owner",
    metavar="OWNER",
    help="Only this owner's threads, from its index (RedisSaver(owner_key=...); "
    "--owner-key defaults to user_id here).",
)
def threads_cmd(cli: Cli, prefix: str, limit: int, scan: bool, owner: str | None) -> None:
    """List LangGraph threads stored by RedisSaver, newest activity first.

    Shows each thread's namespaces, checkpoints, newest checkpoint (id and ts) and TTL.
    The threads come from the registry every put updates (newest first, no SCAN); with
    --scan they are found by SCANning the whole keyspace (every primary of a cluster), an
    admin command whose cost grows with the number of keys. With --owner, the owner's
    threads come from its index. Exits 1 when there are none.
    """
    from .. import _checkpoint_core as core

    if owner is not None:
        if scan:
            raise CliError("--owner and --scan do not go together", EXIT_USAGE)
        saver = _saver(cli, prefix, click.get_current_context().meta.get(_OWNER_KEY) or "user_id")
        thread_ids = [thread for thread, _when in saver.list_threads(owner=owner)]
    elif scan:
        saver = _saver(cli, prefix)
        thread_ids = saver._sync_driver()._drive(core.thread_ids_flow(prefix))
    else:
        saver = _saver(cli, prefix)
        thread_ids = [thread for thread, _when in saver.list_threads()]
    rows = _thread_rows(cli.client, saver, thread_ids)
    rows.sort(key=lambda row: (row.newest or "", row.thread_id), reverse=True)
    page = rows[:limit]
    if cli.json_mode:
        cli.out.json(
            {
                "server": cli.server,
                "prefix": prefix,
                "owner": owner,
                "total": len(rows),
                "limit": limit,
                "threads": [_row_json(row) for row in page],
            }
        )
    elif not rows:
        cli.out.console.print(f"no threads with prefix {prefix!r}", style="dim")
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        table.add_column("thread", min_width=min(24, max(len(row.thread_id) for row in page)))
        table.add_column("ns", justify="right")
        table.add_column("checkpoints", justify="right")
        table.add_column("newest checkpoint", no_wrap=True, min_width=36)
        table.add_column("activity", justify="right", no_wrap=True)
        table.add_column("ttl", justify="right", no_wrap=True)
        for row in page:
            table.add_row(
                Text(visible(row.thread_id)),
                str(row.namespaces),
                str(row.checkpoints),
                row.newest or "",
                _ago(row.ts),
                human_duration(row.ttl) if row.ttl is not None else "-",
            )
        cli.out.console.print(table)
        whose = "" if owner is None else f", owner {visible(owner)!r}"
        cli.out.note(
            f"{len(page)} of {len(rows)} threads (prefix {prefix!r}{whose}) on {cli.server}"
        )
    if not rows:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


# --- thread ... -------------------------------------------------------------------------------


@main.group("thread")
def thread_group() -> None:
    """Look at and manage one LangGraph thread stored by RedisSaver (no graph needed)."""


def _config(thread_id: str, ns: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _get(saver: RedisSaver, thread_id: str, ns: str, checkpoint_id: str | None) -> CheckpointTuple:
    item = saver.get_tuple(_config(thread_id, ns, checkpoint_id))  # type: ignore[arg-type]
    if item is None:
        if checkpoint_id:
            raise CliError(
                f"no checkpoint {checkpoint_id!r} in thread {thread_id!r} (namespace {ns!r})",
                EXIT_NOT_FOUND,
            )
        where = f" in namespace {ns!r}" if ns else ""
        raise CliError(f"no thread {thread_id!r}{where} (prefix {saver.prefix!r})", EXIT_NOT_FOUND)
    return item


@thread_group.command("show")
@cli_command_options
@click.argument("thread_id", metavar="THREAD")
@saver_options
@ns_option
@click.option(
    "--checkpoint", "checkpoint_id", metavar="ID", help="This checkpoint, not the latest."
)
def thread_show_cmd(
    cli: Cli, thread_id: str, prefix: str, ns: str, checkpoint_id: str | None
) -> None:
    """The conversation of a thread at its latest (or the given) checkpoint.

    The ``messages`` channel as the graph's state has it, read without the graph (a
    DeltaChannel thread's messages are rebuilt from the stored writes), and apart from it
    the messages of a step that never completed (pending writes). Exits 1 when the thread
    or checkpoint does not exist.
    """
    saver = _saver(cli, prefix)
    item = _get(saver, thread_id, ns, checkpoint_id)
    found = conversation(saver, item)
    metadata = item.metadata or {}
    records, pending = _records(found.messages), _records(found.pending)
    if cli.json_mode:
        cli.out.json(
            {
                "thread": thread_id,
                "ns": ns,
                "checkpoint": item.config["configurable"]["checkpoint_id"],
                "ts": item.checkpoint.get("ts"),
                "source": metadata.get("source"),
                "step": metadata.get("step"),
                "delta": found.delta,
                "messages": records,
                "pending": pending,
            }
        )
        return
    console = cli.out.console
    title = Text(visible(thread_id), style="bold")
    title.append(
        f"  checkpoint {item.config['configurable']['checkpoint_id']}  "
        f"{_ts_text(item.checkpoint.get('ts'))}  {metadata.get('source', '?')} "
        f"step {metadata.get('step', '?')}",
        style="dim",
    )
    console.print(title)
    if not records:
        console.print("(no messages)", style="dim")
    for position, record in enumerate(records):
        console.print(render_message(record, position))
    if pending:
        console.print(Text("pending writes (a step that never completed):", style="bold yellow"))
        for record in pending:
            console.print(render_message(record))
    delta = " (rebuilt from DeltaChannel writes)" if found.delta and records else ""
    cli.out.note(f"{len(records)} messages, {len(pending)} pending{delta}")


@thread_group.command("history")
@cli_command_options
@click.argument("thread_id", metavar="THREAD")
@saver_options
@ns_option
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Checkpoints."
)
@click.option("--before", metavar="ID", help="Only checkpoints older than this one (paging).")
def thread_history_cmd(
    cli: Cli, thread_id: str, prefix: str, ns: str, limit: int, before: str | None
) -> None:
    """A thread's checkpoints, newest first: id, ts, source, step, messages, pending writes.

    Page with --before (the last id shown). Exits 1 when the thread has no checkpoint in
    the namespace.
    """
    saver = _saver(cli, prefix)
    before_config = _config(thread_id, ns, before) if before else None
    items = list(
        saver.list(_config(thread_id, ns), before=before_config, limit=limit)  # type: ignore[arg-type]
    )
    if not items and (before is None or not _thread_exists(cli.client, saver, thread_id)):
        raise _not_found(thread_id, prefix)
    rows = []
    for item in items:
        metadata = item.metadata or {}
        rows.append(
            {
                "checkpoint": item.config["configurable"]["checkpoint_id"],
                "parent": (item.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
                "ts": item.checkpoint.get("ts"),
                "source": metadata.get("source"),
                "step": metadata.get("step"),
                "messages": len(conversation(saver, item).messages),
                "pending_writes": len(item.pending_writes or []),
            }
        )
    next_before = rows[-1]["checkpoint"] if len(rows) == limit else None
    if cli.json_mode:
        cli.out.json(
            {"thread": thread_id, "ns": ns, "checkpoints": rows, "next_before": next_before}
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    # Ids and numbers whole; on a narrow terminal the ts (last) is cut (--json has it).
    table.add_column("checkpoint", no_wrap=True, min_width=36)
    for column in ("source", "step", "msgs", "pending"):
        table.add_column(
            column, justify="left" if column == "source" else "right", min_width=len(column)
        )
    table.add_column("ts (UTC)", no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(
            row["checkpoint"],
            str(row["source"] or ""),
            str(row["step"] if row["step"] is not None else ""),
            str(row["messages"]),
            str(row["pending_writes"]),
            _ts_text(row["ts"]),
        )
    cli.out.console.print(table)
    more = f"; older: --before {next_before}" if next_before else ""
    cli.out.note(f"{len(rows)} checkpoints of thread {thread_id!r}{more}")


def _existing(cli: Cli, saver: RedisSaver, thread_ids: Sequence[str]) -> dict[str, int]:
    """The threads that exist, with their checkpoint counts (in the order given)."""
    found: dict[str, int] = {}
    for thread_id in dict.fromkeys(thread_ids):
        count = _thread_exists(cli.client, saver, thread_id)
        if count:
            found[thread_id] = count
    return found


def _confirm(cli: Cli, yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError("refusing to change threads without confirmation: pass --yes", EXIT_USAGE)
    click.confirm(question, abort=True, err=True)


def _report_missing(cli: Cli, thread_ids: Sequence[str], found: Mapping[str, int]) -> list[str]:
    missing = [thread_id for thread_id in dict.fromkeys(thread_ids) if thread_id not in found]
    if missing and not cli.json_mode:
        cli.out.note("no such thread: " + ", ".join(map(repr, missing)))
    return missing


@thread_group.command("delete")
@cli_command_options
@click.argument("thread_ids", nargs=-1, required=True, metavar="THREAD...")
@saver_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
def thread_delete_cmd(
    cli: Cli, thread_ids: tuple[str, ...], prefix: str, yes: bool, dry_run: bool
) -> None:
    """Delete threads: every checkpoint and write, in every namespace.

    Asks first unless --yes (without a terminal, --yes is required). Exits 1 when none of
    the threads exists.
    """
    saver = _saver(cli, prefix)
    found = _existing(cli, saver, thread_ids)
    missing = _report_missing(cli, thread_ids, found)
    report: dict[str, Any] = {
        "prefix": prefix,
        "dry_run": dry_run,
        "threads": [{"thread": t, "checkpoints": n} for t, n in found.items()],
        "missing": missing,
        "deleted": 0,
    }
    if not found:
        if cli.json_mode:
            cli.out.json(report)
        raise CliError("no thread matched " + ", ".join(map(repr, thread_ids)), EXIT_NOT_FOUND)
    if not cli.json_mode:
        for thread_id, count in found.items():
            line = Text(visible(thread_id), style="bold")
            line.append(f"  {count} checkpoints", style="dim")
            cli.out.err_console.print(line)
    if dry_run:
        if cli.json_mode:
            cli.out.json(report)
        else:
            cli.out.note(f"dry run: {len(found)} threads would be deleted")
        return
    _confirm(cli, yes, f"Delete {len(found)} threads on {cli.server}?")
    for thread_id in found:
        saver.delete_thread(thread_id)
    report["deleted"] = len(found)
    if cli.json_mode:
        cli.out.json(report)
    else:
        cli.out.console.print(f"deleted {len(found)} threads", markup=False)


@thread_group.command("prune")
@cli_command_options
@click.argument("thread_ids", nargs=-1, required=True, metavar="THREAD...")
@saver_options
@click.option(
    "--strategy",
    type=click.Choice(("keep_latest", "delete")),
    default="keep_latest",
    show_default=True,
    help="keep_latest: keep each namespace's newest checkpoint; delete: the whole thread.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def thread_prune_cmd(
    cli: Cli, thread_ids: tuple[str, ...], prefix: str, strategy: str, yes: bool
) -> None:
    """Prune threads: keep only the newest checkpoint of each namespace, or delete them.

    keep_latest is refused (exit 2) for DeltaChannel threads, whose values are rebuilt
    from the older checkpoints' writes. Exits 1 when none of the threads exists.
    """
    saver = _saver(cli, prefix)
    found = _existing(cli, saver, thread_ids)
    missing = _report_missing(cli, thread_ids, found)
    if not found:
        raise CliError("no thread matched " + ", ".join(map(repr, thread_ids)), EXIT_NOT_FOUND)
    what = "keep only the newest checkpoints of" if strategy == "keep_latest" else "delete"
    _confirm(cli, yes, f"Prune ({what}) {len(found)} threads on {cli.server}?")
    results: list[dict[str, Any]] = []
    for thread_id, before in found.items():
        try:
            saver.prune([thread_id], strategy=strategy)
        except NotImplementedError:
            raise CliError(
                f"thread {thread_id!r} has DeltaChannel checkpoints: keep_latest would lose "
                "the writes its messages are rebuilt from; use --strategy delete",
                EXIT_USAGE,
            ) from None
        after = _thread_exists(cli.client, saver, thread_id)
        results.append({"thread": thread_id, "checkpoints": after, "removed": before - after})
    if cli.json_mode:
        cli.out.json(
            {"prefix": prefix, "strategy": strategy, "threads": results, "missing": missing}
        )
        return
    for row in results:
        cli.out.console.print(
            f"{visible(row['thread'])}: removed {row['removed']} checkpoints, "
            f"{row['checkpoints']} left",
            markup=False,
        )


@thread_group.command("copy")
@cli_command_options
@click.argument("source", metavar="SOURCE")
@click.argument("target", metavar="TARGET")
@saver_options
@click.option("--replace", is_flag=True, help="Replace TARGET if it already has checkpoints.")
def thread_copy_cmd(cli: Cli, source: str, target: str, prefix: str, replace: bool) -> None:
    """Copy a thread (every namespace, checkpoint, write and its TTL) to another id.

    Exits 1 when SOURCE does not exist, 2 when TARGET exists (unless --replace).
    """
    saver = _saver(cli, prefix)
    if source == target:
        raise CliError("SOURCE and TARGET are the same thread", EXIT_USAGE)
    count = _thread_exists(cli.client, saver, source)
    if not count:
        raise _not_found(source, prefix)
    if _thread_exists(cli.client, saver, target) and not replace:
        raise CliError(
            f"thread {target!r} already has checkpoints; pass --replace to overwrite it",
            EXIT_USAGE,
        )
    saver.copy_thread(source, target)
    if cli.json_mode:
        cli.out.json({"source": source, "target": target, "checkpoints": count})
    else:
        cli.out.console.print(
            f"copied {visible(source)} to {visible(target)} ({count} checkpoints)", markup=False
        )


@thread_group.command("import")
@cli_command_options
@click.argument("session_id", metavar="SESSION")
@click.option(
    "--thread",
    "thread_id",
    metavar="THREAD",
    help="The thread to start (default: the session id). It must not have checkpoints.",
)
@layout_options(multiple=False)
@saver_options
@ns_option
def thread_import_cmd(
    cli: Cli,
    session_id: str,
    thread_id: str | None,
    layouts: tuple[str, ...],
    key_prefix: str | None,
    prefix: str,
    ns: str,
) -> None:
    """Start a thread with a stored chat session's messages.

    The session (found in any layout, or --layout) becomes the thread's starting state, as
    ``update_state(config, {"messages": ...}, as_node="model")`` leaves it: a create_agent
    agent continues the conversation. With --owner-key, the session's owner (from its
    metadata) becomes the thread's, under that metadata key. Exits 1 when the session does
    not exist, 2 when the thread already has checkpoints.
    """
    from .browse import locate_one

    saver = _saver(cli, prefix)
    try:
        from ..langchain import record_to_message
    except ImportError as error:
        if not _is_extra(error):
            raise
        raise _missing_extra(error) from None
    _add_messages()  # import_messages needs the langgraph package itself
    ref = locate_one(cli, session_id, layouts, key_prefix)
    target = session_id if thread_id is None else thread_id
    if not target:
        raise CliError("--thread must not be empty", EXIT_USAGE)
    if saver.get_tuple(_config(target, ns)) is not None:  # type: ignore[arg-type]
        raise CliError(
            f"thread {target!r} already has checkpoints (namespace {ns!r}); delete it first "
            "or choose another --thread",
            EXIT_USAGE,
        )
    store = cli.store(ref.layout)
    records = store.messages(ref.session_id, strict=True)
    info = store.session_info(ref.session_id) if saver.owner_key is not None else None
    owner = None if info is None else info.owner
    try:
        messages = [record_to_message(record) for record in records]
    except (ValueError, TypeError, KeyError) as error:
        raise CliError(
            f"session {session_id!r} has a message LangChain cannot read: {error}", EXIT_DATA
        ) from None
    saved = saver.import_messages(target, messages, checkpoint_ns=ns, owner=owner)
    document = {
        "session": ref.session_id,
        "layout": ref.layout_name,
        "thread": target,
        "owner": owner,
        "ns": ns,
        "checkpoint": saved["configurable"]["checkpoint_id"],
        "messages": len(messages),
    }
    if cli.json_mode:
        cli.out.json(document)
    else:
        cli.out.console.print(
            f"imported {len(messages)} messages of session {visible(ref.session_id)} "
            f"({ref.layout_name}) into thread {visible(target)}",
            markup=False,
        )
