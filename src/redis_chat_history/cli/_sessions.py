"""Finding sessions across layouts and measuring them, for the CLI's browsing commands.

Sessions are found with SCAN (the store's ``session_ids``, which on a Redis Cluster scans
every primary), then measured in pipelined batches: LLEN, MEMORY USAGE (else the summed
element sizes), TTL, and the last activity. The last activity is the newest retry token's
score (the store scores each append's token with the writer's clock in ms; tokens are
kept ten minutes), else OBJECT IDLETIME (the last access, reads included), else unknown.

The memorystore layout keeps a session under its bare id, so every LIST in the database is
a candidate. Lists another layout names (``message_store:x``, ``chat:{x}:messages``, or the
community ``--key-prefix``) are left to that layout, and lists whose first element is not
a message record (a job queue, ...) are skipped: :meth:`Layout.is_chat_list` decides.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .._clients import SyncClient
from .._validate import check_session_id
from ..errors import InvalidOptionError, WrongTypeError
from ..layouts import CommunityLayout, Layout, MemorystoreLayout, naming_layout, resolve_layout
from ..store import ChatHistoryStore

__all__ = [
    "Element",
    "SessionRef",
    "SessionStats",
    "StoreFactory",
    "find_sessions",
    "glob_literal_prefix",
    "glob_to_regex",
    "layouts_from_names",
    "locate_session",
    "measure",
]

#: Makes the store for a layout: the CLI's ``Cli.store``, so every store a command uses
#: has the CLI's short retry deadline.
StoreFactory = Callable[[Layout], ChatHistoryStore]
#: A list element as the client returns it (bytes, or str with decode_responses).
Element = bytes | str
BATCH = 200
#: Elements read per LRANGE when sizes or texts are read element by element.
CHUNK = 500


@dataclass(frozen=True)
class SessionRef:
    """One session in one layout and the key holding its messages."""

    session_id: str
    layout: Layout
    key: str

    @property
    def layout_name(self) -> str:
        return self.layout.name


@dataclass(frozen=True)
class SessionStats:
    """What ``sessions`` shows for one session."""

    ref: SessionRef
    messages: int
    #: Memory the key uses (MEMORY USAGE) or, where that is refused, its elements' bytes.
    size: int | None
    #: "memory" (MEMORY USAGE) or "elements" (the summed element sizes).
    size_source: str
    #: Seconds until the list expires; None when it never does.
    ttl: int | None
    #: Unix time (s) of the last append (or last access), None when unknown.
    last_activity: float | None
    #: "append" (retry token), "access" (OBJECT IDLETIME) or None.
    activity_source: str | None


def layouts_from_names(names: Sequence[str], key_prefix: str | None = None) -> list[Layout]:
    """Layouts for ``--layout`` names (all three when none), with the community prefix."""
    chosen = list(dict.fromkeys(names)) or ["native", "community", "memorystore"]
    layouts: list[Layout] = []
    for name in chosen:
        if name == "community" and key_prefix is not None:
            layouts.append(CommunityLayout(key_prefix=key_prefix))
        else:
            layouts.append(resolve_layout(name))
    return layouts


def glob_literal_prefix(pattern: str) -> str:
    """The literal text a Redis-style glob starts with (up to its first wildcard)."""
    literal = []
    escaped = False
    for char in pattern:
        if escaped:
            literal.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?[":
            break
        else:
            literal.append(char)
    return "".join(literal)


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Redis-style glob (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x``) matching a
    whole session id."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = pattern.find("]", index + 2)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[index + 1 : end]
                negate = body.startswith("^")
                body = body[1:] if negate else body
                escaped = "".join("\\" + c if c in "\\]^[" else c for c in body)
                out.append(f"[{'^' if negate else ''}{escaped}]")
                index = end
        else:
            out.append(re.escape(char))
        index += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:  # an empty class "[^]", a reversed range "[z-a]", ...
        raise InvalidOptionError(f"invalid glob {pattern!r}: {exc}") from None


def find_sessions(
    stores: StoreFactory,
    layouts: Sequence[Layout],
    *,
    prefix: str = "",
    glob: str | None = None,
) -> list[SessionRef]:
    """Sessions in ``layouts`` whose id starts with ``prefix`` (literally) and matches
    ``glob`` (Redis glob syntax, on the whole id), found with SCAN by ``stores(layout)``."""
    matcher = glob_to_regex(glob) if glob is not None else None
    scan_prefix = prefix
    if glob is not None:
        glob_prefix = glob_literal_prefix(glob)
        if glob_prefix.startswith(prefix):
            scan_prefix = glob_prefix
    found: list[SessionRef] = []
    for layout in layouts:
        store = stores(layout)
        refs = []
        for session_id in store.session_ids(scan_prefix):
            if not session_id.startswith(prefix):
                continue
            if matcher is not None and not matcher.fullmatch(session_id):
                continue
            key = layout.messages_key(session_id)
            if isinstance(layout, MemorystoreLayout) and naming_layout(key, layouts) is not None:
                continue  # another layout's session: no need to read its first element
            refs.append(SessionRef(session_id, layout, key))
        if isinstance(layout, MemorystoreLayout):
            refs = _chat_lists(store.client, refs, layouts)
        found.extend(refs)
    return found


def _chat_lists(
    client: SyncClient, refs: list[SessionRef], layouts: Sequence[Layout]
) -> list[SessionRef]:
    """The lists that hold chats (not a queue, a cache, another layout's session, ...)."""
    kept: list[SessionRef] = []
    for batch in _batches(refs, BATCH):
        with client.pipeline(transaction=False) as pipe:
            for ref in batch:
                pipe.lindex(ref.key, 0)
            firsts = pipe.execute(raise_on_error=False)
        kept.extend(
            ref
            for ref, first in zip(batch, firsts, strict=True)
            if ref.layout.is_chat_list(ref.key, first, layouts)
        )
    return kept


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _int_or_none(reply: Any) -> int | None:
    return None if isinstance(reply, Exception) or reply is None else int(reply)


def measure(
    client: SyncClient,
    refs: Sequence[SessionRef],
    *,
    on_batch: Callable[[int], None] | None = None,
) -> list[SessionStats]:
    """Count, size, TTL and last activity of each session, pipelined in batches.

    Sessions that vanished between the scan and the measurement are left out.
    """
    stats: list[SessionStats] = []
    now = time.time()
    for batch in _batches(refs, BATCH):
        with client.pipeline(transaction=False) as pipe:
            for ref in batch:
                # OBJECT IDLETIME first: the reads after it would reset the idle time.
                pipe.execute_command("OBJECT", "IDLETIME", ref.key)
                pipe.llen(ref.key)
                pipe.execute_command("MEMORY", "USAGE", ref.key, "SAMPLES", "0")
                pipe.ttl(ref.key)
                pipe.zrange(ref.layout.token_key(ref.session_id), -1, -1, withscores=True)
            replies = pipe.execute(raise_on_error=False)
        for position, ref in enumerate(batch):
            idle, length, memory, ttl, newest = replies[position * 5 : position * 5 + 5]
            if isinstance(length, ResponseError) and "WRONGTYPE" in str(length):
                raise WrongTypeError(ref.key, "list")
            if isinstance(length, Exception):
                raise length
            if not length:
                continue  # deleted since the scan
            size, size_source = _int_or_none(memory), "memory"
            if size is None:
                size, size_source = element_bytes(client, ref), "elements"
            seconds = _int_or_none(ttl)
            activity: float | None = None
            source: str | None = None
            if isinstance(newest, list) and newest:
                activity, source = float(newest[0][1]) / 1000, "append"
            elif _int_or_none(idle) is not None:
                activity, source = now - int(idle), "access"
            stats.append(
                SessionStats(
                    ref=ref,
                    messages=int(length),
                    size=size,
                    size_source=size_source,
                    ttl=seconds if seconds is not None and seconds >= 0 else None,
                    last_activity=activity,
                    activity_source=source,
                )
            )
        if on_batch is not None:
            on_batch(len(batch))
    return stats


def element_bytes(client: SyncClient, ref: SessionRef) -> int:
    """The summed size of a session's elements (when MEMORY USAGE is not allowed)."""
    return sum(len(element) for _position, element in iter_elements(client, ref))


def iter_elements(client: SyncClient, ref: SessionRef) -> Iterator[tuple[int, Element]]:
    """The session's raw elements in chronological order with their positions, read in
    chunks (so a long history is never one huge reply)."""
    length = int(client.llen(ref.key))
    for first in range(0, length, CHUNK):
        window = ref.layout.window(first, min(first + CHUNK, length))
        chunk = ref.layout.chronological(client.lrange(ref.key, *window))
        yield from enumerate(chunk, first)


def key_type(client: SyncClient, key: str) -> str:
    kind = client.type(key)
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def locate_session(
    client: SyncClient, session_id: str, layouts: Iterable[Layout]
) -> tuple[list[SessionRef], list[str]]:
    """The layouts holding a session (its key is a LIST), and notes about near misses
    (a key of another type). A memorystore-layout key that another layout names (``show
    message_store:x``) is reported as that layout's session."""
    check_session_id(session_id)
    layouts = list(layouts)
    found: list[SessionRef] = []
    notes: list[str] = []
    for layout in layouts:
        key = layout.messages_key(session_id)
        kind = key_type(client, key)
        if kind == "none":
            continue
        if kind != "list":
            notes.append(f"{key!r} ({layout.name} layout) holds a {kind}, not a list")
            continue
        ref = SessionRef(session_id, layout, key)
        named = naming_layout(key, layouts) if isinstance(layout, MemorystoreLayout) else None
        if named is not None:
            ref = SessionRef(named[1], named[0], key)
        if all(existing.key != ref.key for existing in found):
            found.append(ref)
    return found, notes
