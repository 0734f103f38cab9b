"""Reading commands: ``sessions`` (alias ``list``), ``show``, ``tail`` and ``search``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

import click
import redis.cluster
from redis.exceptions import RedisError
from rich.table import Table
from rich.text import Text

from .. import _windows
from .._clients import SyncClient
from ..codec import MAX_NESTING_DEPTH, exceeds_nesting_limit, is_record, loads
from ..settings import START_ON
from ._app import main
from ._connect import Cli, cli_command_options, layout_options
from ._output import EXIT_DATA, EXIT_NOT_FOUND, EXIT_USAGE, CliError, human_bytes, human_duration
from ._render import message_text, render_message, role_of, visible
from ._sessions import (
    Element,
    SessionRef,
    SessionStats,
    find_sessions,
    glob_to_regex,
    iter_elements,
    layouts_from_names,
    locate_session,
    measure,
)

__all__ = ["locate_one", "search_cmd", "sessions_cmd", "show_cmd", "tail_cmd"]

SORT_KEYS = ("activity", "size", "messages", "id")


def iso_time(timestamp: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC (ms precision), None stays None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def ago(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return f"{human_duration(max(0.0, time.time() - timestamp))} ago"


def stats_json(stat: SessionStats) -> dict[str, Any]:
    """The stable JSON shape of one session in ``sessions`` and ``stats``."""
    return {
        "session": stat.ref.session_id,
        "layout": stat.ref.layout_name,
        "key": stat.ref.key,
        "messages": stat.messages,
        "bytes": stat.size,
        "bytes_source": stat.size_source,
        "ttl": stat.ttl,
        "last_activity": iso_time(stat.last_activity),
        "last_activity_source": stat.activity_source,
    }


def _sort(stats: list[SessionStats], by: str) -> list[SessionStats]:
    if by == "activity":
        return sorted(stats, key=lambda s: (-(s.last_activity or 0), s.ref.session_id))
    if by == "size":
        return sorted(stats, key=lambda s: (-(s.size or 0), s.ref.session_id))
    if by == "messages":
        return sorted(stats, key=lambda s: (-s.messages, s.ref.session_id))
    return sorted(stats, key=lambda s: (s.ref.session_id, s.ref.layout_name))


@main.command("sessions")
@cli_command_options
@layout_options(multiple=True)
@click.option("--prefix", default="", help="Only ids starting with this text, taken literally.")
@click.option(
    "--match",
    "glob",
    metavar="GLOB",
    help="Only ids matching this glob (* ? [abc] [^a]; \\ escapes).",
)
@click.option(
    "--sort",
    type=click.Choice(SORT_KEYS),
    default="activity",
    show_default=True,
    help="Newest activity, largest size or most messages first, or by id.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Sessions per page."
)
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many (paging).")
@click.option(
    "--owner",
    metavar="USER",
    help="Only USER's sessions, newest first, from the owner index (no SCAN; default layout "
    "native); page with --cursor.",
)
@click.option("--cursor", help="With --owner: the next page's cursor printed by the previous one.")
def sessions_cmd(
    cli: Cli,
    layouts: tuple[str, ...],
    key_prefix: str | None,
    prefix: str,
    glob: str | None,
    sort: str,
    limit: int,
    offset: int,
    owner: str | None,
    cursor: str | None,
) -> None:
    """List sessions with message count, size, TTL and last activity.

    Exits 1 when no session matched.
    """
    if glob is not None:
        glob_to_regex(glob)  # a bad pattern is a usage error before any work
    if owner is not None:
        _owner_sessions(cli, owner, layouts, key_prefix, limit=limit, cursor=cursor)
        return
    if cursor is not None:
        raise CliError("--cursor pages through --owner listings; use --offset here", EXIT_USAGE)
    chosen = layouts_from_names(layouts, key_prefix)
    refs = find_sessions(cli.store, chosen, prefix=prefix, glob=glob)
    with cli.out.progress("measuring sessions", total=len(refs)) as bar:
        stats = measure(cli.client, refs, on_batch=bar.advance)
    ordered = _sort(stats, sort)
    page = ordered[offset : offset + limit]
    next_offset = offset + limit if offset + limit < len(ordered) else None
    if cli.json_mode:
        cli.out.json(
            {
                "server": cli.server,
                "layouts": [layout.name for layout in chosen],
                "total": len(ordered),
                "offset": offset,
                "limit": limit,
                "next_offset": next_offset,
                "sort": sort,
                "sessions": [stats_json(stat) for stat in page],
            }
        )
    else:
        _print_sessions(cli, page, total=len(ordered), offset=offset, next_offset=next_offset)
    if not ordered:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


main.add_command(sessions_cmd, "list")


def _owner_sessions(
    cli: Cli,
    owner: str,
    layouts: tuple[str, ...],
    key_prefix: str | None,
    *,
    limit: int,
    cursor: str | None,
) -> None:
    """One page of ``owner``'s sessions from the store's owner index, newest first."""
    if len(layouts) > 1:
        raise CliError("--owner reads one layout's owner index: give one --layout", EXIT_USAGE)
    (layout,) = layouts_from_names(layouts or ("native",), key_prefix)
    page = cli.store(layout).owner_sessions(owner, limit=min(limit, 1000), cursor=cursor)
    rows = [
        {
            "session": info.session_id,
            "title": info.title,
            "messages": info.message_count,
            "created": info.created.isoformat(timespec="milliseconds") if info.created else None,
            "last_activity": (
                info.last_activity.isoformat(timespec="milliseconds")
                if info.last_activity
                else None
            ),
        }
        for info in page.sessions
    ]
    if cli.json_mode:
        cli.out.json(
            {
                "server": cli.server,
                "layout": layout.name,
                "owner": owner,
                "sessions": rows,
                "next_cursor": page.next_cursor,
            }
        )
    elif not rows:
        cli.out.console.print(f"no sessions for owner {owner!r}", style="dim")
    else:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("session", "title", "messages", "last activity", "created"):
            table.add_column(column, justify="right" if column == "messages" else "left")
        for info in page.sessions:
            table.add_row(
                Text(visible(info.session_id)),
                Text(visible(info.title or "")),
                str(info.message_count),
                ago(info.last_activity.timestamp()) if info.last_activity else "",
                ago(info.created.timestamp()) if info.created else "",
            )
        cli.out.console.print(table)
        more = f"; next page: --cursor {page.next_cursor}" if page.next_cursor else ""
        cli.out.note(f"{len(rows)} sessions of {owner!r} ({layout.name} layout){more}")
    if not rows:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


def _print_sessions(
    cli: Cli, page: Sequence[SessionStats], *, total: int, offset: int, next_offset: int | None
) -> None:
    if not total:
        cli.out.console.print("no sessions found", style="dim")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column, justify in (
        ("session", "left"), ("layout", "left"), ("messages", "right"), ("size", "right"),
        ("ttl", "right"), ("last activity", "right"),
    ):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for stat in page:
        activity = Text(ago(stat.last_activity))
        if stat.activity_source == "access":
            activity.append(" (read)", style="dim")
        table.add_row(
            Text(stat.ref.session_id),
            stat.ref.layout_name,
            str(stat.messages),
            human_bytes(stat.size),
            human_duration(stat.ttl) if stat.ttl is not None else "-",
            activity,
        )
    cli.out.console.print(table)
    shown = f"{offset + 1}-{offset + len(page)} of {total}" if page else f"none of {total}"
    more = f"; next page: --offset {next_offset}" if next_offset is not None else ""
    cli.out.note(f"{shown} sessions on {cli.server}{more}")


def locate_one(
    cli: Cli, session_id: str, layouts: Sequence[str], key_prefix: str | None
) -> SessionRef:
    """The one layout holding ``session_id``; a clear error when none or several do."""
    chosen = layouts_from_names(layouts, key_prefix)
    found, notes = locate_session(cli.client, session_id, chosen)
    if not found:
        if notes:
            raise CliError("; ".join(notes), EXIT_DATA)
        where = ", ".join(
            f"{layout.name} ({layout.messages_key(session_id)!r})" for layout in chosen
        )
        raise CliError(f"no session {session_id!r}; looked in {where}", EXIT_NOT_FOUND)
    if len(found) > 1:
        where = ", ".join(f"{ref.layout_name} (key {ref.key!r})" for ref in found)
        raise CliError(
            f"session {session_id!r} exists in several layouts: {where}; choose one with --layout",
            EXIT_USAGE,
        )
    ref = found[0]
    if ref.session_id != session_id:
        cli.out.note(f"{ref.key!r} is the {ref.layout_name} layout's session {ref.session_id!r}")
    return ref


def _element_text(element: Element) -> str:
    return element.decode("utf-8", "replace") if isinstance(element, bytes) else element


def _window(client: SyncClient, ref: SessionRef, total: int, start: int) -> list[Element]:
    """Stored elements at chronological positions ``[start, total)``, oldest first."""
    if start >= total:
        return []
    elements: list[Element] = client.lrange(ref.key, *ref.layout.window(start, total))
    return ref.layout.chronological(elements)


#: The largest LRANGE count (Redis list indexes are signed 64-bit).
_MAX_READ = 2**63 - 1


class _Item(NamedTuple):
    """One element shown: its chronological position, the element, and its record (or
    why it is unreadable)."""

    position: int
    element: Element
    record: dict[str, Any] | None
    reason: str | None


class _Window(NamedTuple):
    """What ``show --last`` shows: the session's length, the window's elements (oldest
    first), whether a system message and the question of the current turn were kept in
    front of its newest messages, and how many tool results without their call it left
    out."""

    total: int
    items: list[_Item]
    system: bool
    question: bool
    orphans: int


def _read_window(
    client: SyncClient, ref: SessionRef, last: int, *, human_only: bool, keep_system: bool
) -> _Window:
    """The window of at most ``last`` messages that ``ChatHistoryStore.messages(last=...)``
    returns (the rule of :mod:`redis_chat_history._windows`), as stored elements, corrupt
    ones included.

    Reads like the library: the newest ``last`` elements (and the oldest, for
    ``keep_system``) with the length in one MULTI, so one consistent view; when the
    answer depends on older messages (the question of a long agent turn), again with
    four times as many, and the answer comes from the last read alone.
    """
    key, layout = ref.key, ref.layout
    size = min(last, _MAX_READ)
    while True:
        with client.pipeline(transaction=True) as pipe:
            pipe.llen(key)
            pipe.lrange(key, *layout.last_window(size))
            if keep_system:
                pipe.lrange(key, *layout.window(0, 1))
            replies = pipe.execute()
        total = int(replies[0])
        elements: list[Element] = layout.chronological(replies[1])
        complete = total <= size
        first = total - len(elements)  # the position of elements[0]
        system: Element | None = None
        if keep_system and replies[2] and _windows.kind(replies[2][0]) == _windows.SYSTEM:
            system = replies[2][0]
            if complete:  # the system message is among the newest: set it apart
                elements, first = elements[1:], first + 1
        cut = _windows.choose(
            [_windows.kind(element) for element in elements],
            count=last,
            human_only=human_only,
            system_cost=None if system is None else 0,
            complete=complete,
        )
        if cut is not None or size >= _MAX_READ:
            break
        size = min(size * 4, _MAX_READ)
    if cut is None:  # pragma: no cover - a list of 2**63 elements
        cut = _windows.Cut(system is not None, None, len(elements))
    chosen: list[tuple[int, Element]] = []
    if cut.system and system is not None:
        chosen.append((0, system))
    if cut.question is not None:
        chosen.append((first + cut.question, elements[cut.question]))
    chosen.extend((first + p, elements[p]) for p in range(cut.start, len(elements)))
    items = [_Item(position, element, *read_record(element)) for position, element in chosen]
    # Tool results stored without their call are left out, as the library leaves them out.
    keep = iter(_windows.answered([item.record for item in items if item.record is not None]))
    answered = [item for item in items if item.record is None or next(keep)]
    return _Window(
        total, answered, cut.system, cut.question is not None, len(items) - len(answered)
    )


def _window_title(window: _Window, last: int, human_only: bool) -> str:
    """How much of the session ``show --last`` shows, for the title."""
    shown = len(window.items)
    if not shown:
        start = "human message" if human_only else "message but tool results"
        return f"showing none (window of at most {last}: no {start} to start it on)"
    positions = [item.position for item in window.items]
    if positions == list(range(window.total - shown, window.total)):
        return f"showing the newest {shown} (window of at most {last})"
    notes = []
    if window.system:
        notes.append("the system message kept in front")
    if window.question:
        notes.append("the question of the current turn kept in front")
    if window.orphans:
        notes.append(f"{window.orphans} tool results without their call left out")
    return f"showing {shown} (window of at most {last}; {', '.join(notes)})"


@main.command("show")
@cli_command_options
@click.argument("session_id")
@layout_options(multiple=False)
@click.option(
    "--last",
    type=click.IntRange(min=1),
    help="Only the window of at most the newest N messages that messages(last=N) returns: "
    "it starts where no tool call loses its results.",
)
@click.option(
    "--start-on",
    type=click.Choice(START_ON),
    default="human",
    show_default=True,
    help="With --last: start the window on a human message, or on any message but a tool result.",
)
@click.option(
    "--keep-system",
    is_flag=True,
    help="With --last: keep a system message stored first in front of the window (it counts "
    "against N).",
)
@click.option(
    "--raw", is_flag=True, help="Print the stored JSON elements as they are, one per line."
)
def show_cmd(
    cli: Cli,
    session_id: str,
    layouts: tuple[str, ...],
    key_prefix: str | None,
    last: int | None,
    start_on: str,
    keep_system: bool,
    raw: bool,
) -> None:
    """Show a conversation: roles in colour, tool calls and results, media summarised."""
    ref = locate_one(cli, session_id, layouts, key_prefix)
    human_only = start_on == "human"
    header: dict[str, Any] = {"session": ref.session_id, "layout": ref.layout_name, "key": ref.key}
    shown = ""  # how much of the session is shown, for the title
    settings: dict[str, Any] | None = None
    if last:
        window = _read_window(cli.client, ref, last, human_only=human_only, keep_system=keep_system)
        total, items = window.total, window.items
        settings = {"last": last, "start_on": start_on, "keep_system": keep_system}
        if len(items) < total:
            shown = ", " + _window_title(window, last, human_only)
    else:
        total = int(cli.client.llen(ref.key))
        items = [
            _Item(position, element, *read_record(element))
            for position, element in enumerate(_window(cli.client, ref, total, 0))
        ]
    start = items[0].position if items else (total if last else 0)
    header |= {"count": total, "first_position": start, "window": settings}
    if raw:
        texts = [_element_text(item.element) for item in items]
        if cli.json_mode:
            positions = [item.position for item in items]
            cli.out.json({**header, "positions": positions, "elements": texts})
            return
        on_terminal = cli.out.console.is_terminal
        for text in texts:  # JSON Lines, exactly as stored (made visible on a terminal)
            click.echo(visible(text) if on_terminal else text)
        return
    readable = [item for item in items if item.record is not None]
    corrupt = [
        {
            "position": item.position,
            "index": ref.layout.index_of(item.position, total),
            "reason": item.reason,
        }
        for item in items
        if item.record is None
    ]
    if cli.json_mode:
        document = {
            **header,
            "positions": [item.position for item in readable],
            "messages": [item.record for item in readable],
        }
        if corrupt:
            document["corrupt"] = corrupt
        cli.out.json(document)
    else:
        title = f"{ref.session_id}  ({ref.layout_name}, {total} messages{shown})"
        cli.out.console.print(Text(visible(title), style="bold"))
        for item in items:
            if item.record is not None:
                cli.out.console.print(render_message(item.record, item.position))
            else:
                cli.out.console.print(
                    Text(f"[{item.position}] unreadable: {visible(item.reason or '')}", style="red")
                )
    if corrupt:
        first = corrupt[0]
        more = f" (and {len(corrupt) - 1} more)" if len(corrupt) > 1 else ""
        raise CliError(
            f"corrupt message at {ref.key!r} index {first['index']}: {first['reason']}{more}; "
            "the other messages were shown",
            EXIT_DATA,
        )


def read_record(element: Element) -> tuple[dict[str, Any] | None, str | None]:
    """The message record an element holds, or None and why it is not readable (not UTF-8
    or JSON, not a record, nested deeper than the CLI renders)."""
    try:
        record = loads(element)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError as exc:
        return None, f"not valid JSON ({exc})"
    except RecursionError:
        return None, f"nested more than {MAX_NESTING_DEPTH} levels deep"
    if not is_record(record):
        return None, "not a {'type': str, 'data': dict} record"
    if exceeds_nesting_limit(element, record):
        return None, f"nested more than {MAX_NESTING_DEPTH} levels deep"
    return record, None


def _decode(element: Element) -> dict[str, Any] | None:
    return read_record(element)[0]


class _Follower:
    """Reads what was appended to a session since the last look.

    A change is noticed from LLEN, the newest element and the newest retry token (every
    append through this library adds one), so a list kept at ``max_messages``, whose
    length stays put, is followed too, even when the new message equals the previous
    newest. The new messages are found by lining the newest elements up with those seen
    before. Each read takes the length, the elements and the token in one MULTI, so an
    append landing in between cannot shift the positions shown.
    """

    WINDOW = 1000

    def __init__(self, client: SyncClient, ref: SessionRef) -> None:
        self.client, self.ref = client, ref
        self.token_key = ref.layout.token_key(ref.session_id)
        self.length = 0
        self.seen: list[Element] = []  # the newest elements seen, oldest first
        self.token: Any = None

    def _state(self) -> tuple[int, Element | None, Any]:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.ref.key)
            pipe.lrange(self.ref.key, *self.ref.layout.last_window(1))
            pipe.zrange(self.token_key, -1, -1)
            length, newest, token = pipe.execute()
        return int(length), (newest[0] if newest else None), token

    def _newest(self, count: int) -> tuple[int, list[tuple[int, Element]], Any]:
        """The list's length, its newest ``count`` elements with their positions (oldest
        first) and its newest retry token, read atomically."""
        key, layout = self.ref.key, self.ref.layout
        with self.client.pipeline(transaction=True) as pipe:
            pipe.llen(key)
            pipe.lrange(key, *layout.last_window(count))
            pipe.zrange(self.token_key, -1, -1)
            length, elements, token = pipe.execute()
        elements = layout.chronological(elements)
        return int(length), list(enumerate(elements, int(length) - len(elements))), token

    def start(self, last: int) -> list[tuple[int, Element]]:
        """The newest ``last`` elements, and remember where the session stands."""
        self.length, window, self.token = self._newest(max(last, 10))
        self.seen = [element for _position, element in window]
        return window[len(window) - last :] if last else []

    def _added(self, elements: list[Element], minimum: int) -> int | None:
        """How many of ``elements`` (the newest, oldest first) are new: the fewest, at least
        ``minimum``, that leave the rest lined up with the end of what was seen; None if
        nothing lines up."""
        seen = self.seen
        for added in range(max(minimum, 0), len(elements)):
            kept = len(elements) - added
            overlap = min(kept, len(seen))
            if elements[kept - overlap : kept] == seen[len(seen) - overlap :]:
                return added
        return None

    def poll(self) -> tuple[list[tuple[int, Element]], str | None]:
        """New elements since the last call, and a note when the list shrank or was trimmed."""
        length, newest, token = self._state()
        unchanged = newest == (self.seen[-1] if self.seen else None)
        if length == self.length and unchanged and token == self.token:
            return [], None
        length, window, token = self._newest(self.WINDOW)
        elements = [element for _position, element in window]
        new: list[tuple[int, Element]] = []
        note = None
        if length == 0:
            note = "the session was cleared" if self.length else None
        elif self.length == 0 or not self.seen:
            new = window
        else:
            appended = token != self.token and bool(token)
            added = self._added(elements, max(length - self.length, 1 if appended else 0))
            if added is None:
                new = window
                note = "the session changed beyond recognition; showing its newest messages"
            else:
                new = window[len(window) - added :] if added else []
        self.length, self.seen, self.token = length, elements, token
        return new, note


def _keyspace_db(client: SyncClient) -> int:
    if isinstance(client, redis.cluster.RedisCluster):
        return 0
    return int(client.connection_pool.connection_kwargs.get("db") or 0)


def _notifications_on(client: SyncClient) -> bool | None:
    """Whether keyspace events for lists are published (None: CONFIG is not allowed)."""
    try:
        reply = client.config_get("notify-keyspace-events")
    except RedisError:
        return None
    value = next(iter(reply.values()), "") if isinstance(reply, dict) else ""
    flags = value.decode() if isinstance(value, bytes) else str(value)
    return "K" in flags and ("l" in flags or "A" in flags)


@main.command("tail")
@cli_command_options
@click.argument("session_id")
@layout_options(multiple=False)
@click.option("--last", type=click.IntRange(min=0), default=10, show_default=True,
              help="Show this many earlier messages first.")  # fmt: skip
@click.option("--count", type=click.IntRange(min=1), help="Stop after N new messages.")
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after this many seconds.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between polls when no notification arrives.")  # fmt: skip
def tail_cmd(
    cli: Cli,
    session_id: str,
    layouts: tuple[str, ...],
    key_prefix: str | None,
    last: int,
    count: int | None,
    duration: float | None,
    interval: float,
) -> None:
    """Follow a conversation live as messages arrive (Ctrl-C to stop; --json: JSON Lines).

    Listens to keyspace notifications when the server publishes them and polls every
    --interval seconds in any case, so it works where CONFIG is locked away. A session that
    does not exist yet is waited for when --layout is given.
    """
    client = cli.client
    if layouts:  # wait for the session in this layout even if it does not exist yet
        layout = layouts_from_names(layouts, key_prefix)[0]
        found, notes = locate_session(client, session_id, [layout])
        if notes:
            raise CliError("; ".join(notes), EXIT_DATA)
        ref = found[0] if found else SessionRef(session_id, layout, layout.messages_key(session_id))
    else:
        ref = locate_one(cli, session_id, layouts, key_prefix)
    follower = _Follower(client, ref)

    def emit(items: list[tuple[int, Element]]) -> None:
        for position, element in items:
            record = _decode(element)
            if cli.json_mode:
                cli.out.json_line(
                    {"session": ref.session_id, "layout": ref.layout_name, "position": position,
                     "message": record, "raw": None if record else _element_text(element)}
                )  # fmt: skip
            elif record is None:
                cli.out.console.print(Text(f"[{position}] (not a message) ", style="red")
                                      + Text(visible(_element_text(element))))  # fmt: skip
            else:
                cli.out.console.print(render_message(record, position))

    emit(follower.start(last))
    live = _notifications_on(client)
    pubsub: Any = client.pubsub()
    try:
        pubsub.subscribe(f"__keyspace@{_keyspace_db(client)}__:{ref.key}")
    except RedisError:  # SUBSCRIBE not allowed for this user: polling alone
        pubsub.close()
        pubsub, live = None, False
    how = {True: "keyspace notifications and polling", None: "polling (and keyspace "
           "notifications if the server publishes them)", False: "polling"}[live]  # fmt: skip
    cli.out.note(f"following {ref.session_id!r} ({ref.layout_name}) by {how}; Ctrl-C stops")
    deadline = None if duration is None else time.monotonic() + duration
    shown = 0
    try:
        while count is None or shown < count:
            wait = interval
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            _wait_for_event(pubsub, wait)
            new, note = follower.poll()
            if note:
                cli.out.note(note)
            if count is not None:
                new = new[: count - shown]
            emit(new)
            shown += len(new)
    except KeyboardInterrupt:
        pass
    finally:
        if pubsub is not None:
            pubsub.close()


def _wait_for_event(pubsub: Any, seconds: float) -> None:
    """Sleep until a keyspace event arrives or ``seconds`` pass; drain a burst of events."""
    if pubsub is None:
        time.sleep(seconds)
        return
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=seconds)
    while message is not None:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)


@main.command("search")
@cli_command_options
@click.argument("text")
@layout_options(multiple=True)
@click.option("--session", "session_ids", multiple=True, metavar="ID",
              help="Search only this session (repeatable).")  # fmt: skip
@click.option("--prefix", default="", help="Only sessions whose id starts with this text.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Stop after this many matches.")  # fmt: skip
@click.option("--raw", is_flag=True, help="Match the stored JSON instead of the message text.")
@click.option("--case-sensitive", is_flag=True)
def search_cmd(
    cli: Cli,
    text: str,
    layouts: tuple[str, ...],
    key_prefix: str | None,
    session_ids: tuple[str, ...],
    prefix: str,
    limit: int,
    raw: bool,
    case_sensitive: bool,
) -> None:
    """Find messages containing TEXT, in some sessions or all (plain Redis, no modules).

    Matches the text of messages (text parts, tool calls) case-insensitively; --raw
    matches the stored JSON. Exits 1 when nothing matched.
    """
    if not text:
        raise CliError("give a non-empty TEXT to search for", EXIT_USAGE)
    client = cli.client
    if session_ids:
        refs = [locate_one(cli, session_id, layouts, key_prefix) for session_id in session_ids]
    else:
        refs = find_sessions(cli.store, layouts_from_names(layouts, key_prefix), prefix=prefix)
    needle = text if case_sensitive else text.casefold()
    matches: list[dict[str, Any]] = []
    scanned = searched = 0
    with cli.out.progress("searching sessions", total=len(refs)) as bar:
        for ref in refs:
            searched += 1
            for position, element in iter_elements(client, ref):
                scanned += 1
                record = _decode(element)
                haystack = _element_text(element) if raw or record is None else message_text(record)
                if needle not in (haystack if case_sensitive else haystack.casefold()):
                    continue
                matches.append({"ref": ref, "position": position, "record": record,
                                "element": element, "text": haystack})  # fmt: skip
                if len(matches) >= limit:
                    break
            bar.advance()
            if len(matches) >= limit:
                break
    truncated = len(matches) >= limit
    if cli.json_mode:
        cli.out.json(
            {
                "query": text,
                "sessions_searched": searched,
                "sessions": len(refs),
                "messages_searched": scanned,
                "truncated": truncated,
                "matches": [
                    {
                        "session": match["ref"].session_id,
                        "layout": match["ref"].layout_name,
                        "position": match["position"],
                        "role": role_of(match["record"]) if match["record"] else None,
                        "snippet": _snippet(match["text"], text, case_sensitive),
                        "message": match["record"],
                    }
                    for match in matches
                ],
            }
        )
    else:
        for match in matches:
            line = Text(f"{match['ref'].session_id}", style="bold")
            line.append(f" [{match['position']}] ", style="dim")
            role = role_of(match["record"]) if match["record"] else "?"
            line.append(f"{role}: ", style="cyan")
            snippet = Text(visible(_snippet(match["text"], text, case_sensitive)))
            snippet.highlight_words(
                [visible(text)], style="bold reverse", case_sensitive=case_sensitive
            )
            cli.out.console.print(line + snippet)
        if truncated:
            where = f"{searched} of {len(refs)} sessions (stopped at --limit {limit})"
        else:
            where = f"{len(refs)} sessions"
        cli.out.note(f"{len(matches)} matches in {scanned} messages of {where}")
    if not matches:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


def _snippet(haystack: str, needle: str, case_sensitive: bool, width: int = 60) -> str:
    """The match with up to ``width`` characters of context each side, on one line."""
    flat = " ".join(haystack.split())
    where = (flat if case_sensitive else flat.casefold()).find(
        needle if case_sensitive else needle.casefold()
    )
    if where < 0:  # the match spanned a line break
        return flat[: 2 * width] + ("…" if len(flat) > 2 * width else "")
    start, stop = max(0, where - width), min(len(flat), where + len(needle) + width)
    return ("…" if start else "") + flat[start:stop] + ("…" if stop < len(flat) else "")
