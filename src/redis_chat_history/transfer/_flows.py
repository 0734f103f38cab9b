"""Export and import as flows (see ``_plan``), and the parts migrate shares: what to send
and what to do with the replies, without Redis. The public functions in ``__init__`` drive
them through a store's driver, so transfers get its retries, deadline and cluster routing.

A flow here may catch the errors of a step it yielded: the driver raises a failed step's
error inside the flow, so one bad session is reported and the others are transferred.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._core import PUSH_CHUNK, SessionListing
from .._plan import Call, Flow, Plan, Script, WrongTypeReply, text
from .._sessions_core import restore_flow
from ..errors import ChatHistoryError, OwnerConflictError
from ..layouts import Layout, MemorystoreLayout
from ..settings import StoreSettings
from ._format import (
    BadLine,
    Clock,
    Event,
    Message,
    Problem,
    SessionStart,
    TransferSummary,
    end_line,
    exported_meta,
    header_line,
    message_lines,
    selected,
    session_line,
)

__all__ = [
    "CONDITIONAL_APPEND_SCRIPT",
    "READ_STATE_SCRIPT",
    "TRIM_SCRIPT",
    "ImportOptions",
    "SourceSessions",
    "SourceState",
    "TargetSession",
    "export_flow",
    "import_flow",
    "plan_length",
    "plan_range",
    "restore_meta",
    "source_state",
]

#: Re-comparisons allowed per session when the target changes under an import.
MAX_RESYNCS = 3

# KEYS[1]: the list. ARGV: the length it must have, push command, ttl (0 = leave it),
# elements... Returns {1, new length}, or {0, actual length} without writing when the list
# is not as long as expected (someone else wrote, or this very batch was applied already
# and redis-py re-sent it after a timeout): the caller compares again instead of doubling.
CONDITIONAL_APPEND_SCRIPT = Script(
    f"""
local length = redis.call('LLEN', KEYS[1])
if length ~= tonumber(ARGV[1]) then
  return {{0, length}}
end
local push, last = ARGV[2], #ARGV
for first = 4, last, {PUSH_CHUNK} do
  length = redis.call(push, KEYS[1], unpack(ARGV, first, math.min(last, first + {PUSH_CHUNK - 1})))
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return {{1, length}}
"""
)

# KEYS[1]: the list. ARGV: the length it must have, how many of the oldest messages to keep,
# and the LTRIM bounds that keep them (Layout.window). Returns 1 if trimmed, 0 if the
# length differed.
TRIM_SCRIPT = Script("""
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then
  return 0
end
if tonumber(ARGV[2]) == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('LTRIM', KEYS[1], ARGV[3], ARGV[4])
end
return 1
""")

# KEYS: the list, its metadata hash (one slot). Reply: {length, ttl, metadata fields as
# HGETALL gives them, the metadata's ttl}, or, touching nothing, {'WRONGTYPE', key number,
# type} when a key holds another type.
READ_STATE_SCRIPT = Script("""
local expected = {'list', 'hash'}
for n = 1, 2 do
  local found = redis.call('TYPE', KEYS[n])['ok']
  if found ~= 'none' and found ~= expected[n] then
    return {'WRONGTYPE', n, found}
  end
end
return {redis.call('LLEN', KEYS[1]), redis.call('TTL', KEYS[1]),
        redis.call('HGETALL', KEYS[2]), redis.call('TTL', KEYS[2])}
""")
STATE_TYPES = WrongTypeReply(("list", "hash"))

Write = Callable[[str], None]


class _ConflictError(Exception):
    """The target session cannot take the incoming messages; the message says why."""


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------------------
# Reading a source session


@dataclass(frozen=True)
class SourceState:
    """A source session: its length, ttl (None: no expiry) and metadata fields."""

    length: int
    ttl: int | None
    meta: dict[str, str]


def _plan_state(layout: Layout, session_id: str) -> Plan[SourceState]:
    """LLEN, TTL and the metadata hash in one round trip (the keys share a slot)."""
    keys = (layout.messages_key(session_id), layout.meta_key(session_id))

    def parse(replies: list[Any]) -> SourceState:
        length, ttl, fields, meta_ttl = STATE_TYPES.check(replies[0], keys)
        meta = {
            text(name): text(value) for name, value in zip(fields[::2], fields[1::2], strict=True)
        }
        seconds = int(ttl) if int(length) else int(meta_ttl)
        return SourceState(int(length), max(seconds, 1) if seconds >= 0 else None, meta)

    return Plan((Call((), READ_STATE_SCRIPT, keys),), parse)


def source_state(
    layout: Layout, session_id: str, named: list[str] | None, summary: TransferSummary
) -> Flow[SourceState | None]:
    """A source session's state, or None (recorded in ``summary`` where it is a problem)
    when it cannot be read or holds nothing: a named session that is missing is reported
    as not found, one found by SCAN that emptied meanwhile is passed over. A named session
    with metadata but no messages is transferred (its metadata)."""
    try:
        state: SourceState = yield _plan_state(layout, session_id)
    except ChatHistoryError as exc:
        summary.add_problem(Problem("error", str(exc), session_id))
        return None
    if state.length == 0 and not (named is not None and state.meta):
        if named is not None:
            key = layout.messages_key(session_id)
            summary.add_problem(Problem("not_found", f"not found (no list at {key!r})", session_id))
        return None
    return state


def plan_range(layout: Layout, key: str, start: int, stop: int) -> Plan[list[bytes]]:
    """Chronological positions ``[start, stop)`` of a session's list, oldest first."""

    def parse(replies: list[Any]) -> list[bytes]:
        return layout.chronological([_as_bytes(element) for element in replies[0]])

    call = Call(("LRANGE", key, *layout.window(start, stop)), raw=True)
    return Plan((call,), parse, (key, "list"))


def plan_length(key: str) -> Plan[int]:
    return Plan((Call(("LLEN", key)),), lambda replies: int(replies[0]), (key, "list"))


class SourceSessions:
    """The sessions to read, a batch at a time: those named, else SCAN's; for the
    memorystore layout only the lists that hold chat messages (unless named), leaving out
    the keys ``other_layouts`` name (the target's, when migrating on one server)."""

    def __init__(
        self,
        config: StoreSettings,
        named: list[str] | None,
        prefix: str,
        summary: TransferSummary,
        other_layouts: tuple[Layout, ...] = (),
    ) -> None:
        self.layout, self.summary, self.other_layouts = config.layout, summary, other_layouts
        self.named = named
        self.listing = SessionListing(config, prefix, 500) if named is None else None

    def batch(self) -> Flow[list[str]]:
        """The next ids; empty once all were given."""
        if self.listing is None:
            ids, self.named = self.named or [], []
            return ids
        while True:
            keys: list[str] = yield self.listing.scan
            if not keys:
                return []
            ids = self.listing.ids(keys)
            if isinstance(self.layout, MemorystoreLayout) and ids:
                ids = yield from self._chat_lists(ids)
            if ids:
                return ids

    def _chat_lists(self, ids: list[str]) -> Flow[list[str]]:
        """The ids whose lists hold chats (not a queue, another layout's session, ...)."""
        layout = self.layout
        keys = [layout.messages_key(session_id) for session_id in ids]
        calls = tuple(Call(("LINDEX", key, 0), raw=True) for key in keys)
        firsts: list[Any] = yield Plan(calls, lambda replies: replies, (keys[0], "list"))
        kept = [
            session_id
            for session_id, key, first in zip(ids, keys, firsts, strict=True)
            if layout.is_chat_list(key, first, self._others(session_id, key))
        ]
        self.summary.skipped += len(ids) - len(kept)
        return kept

    def _others(self, session_id: str, key: str) -> tuple[Layout, ...]:
        """The other layouts, less one naming this very session at this key (a migration
        reports that as the same key rather than passing over it)."""
        return tuple(other for other in self.other_layouts if other.messages_key(session_id) != key)


# ---------------------------------------------------------------------------------------
# Export


def export_flow(
    config: StoreSettings,
    write: Write,
    named: list[str] | None,
    prefix: str,
    chunk_size: int,
    clock: Clock,
) -> Flow[TransferSummary]:
    """Write the sessions (``named``, else those starting with ``prefix``) as JSON Lines
    through ``write``, reading each ``chunk_size`` messages at a time."""
    layout, summary = config.layout, clock.summary
    sources = SourceSessions(config, named, prefix, summary)
    write(header_line(layout))
    while batch := (yield from sources.batch()):
        for session_id in batch:
            state = yield from source_state(layout, session_id, named, summary)
            if state is None:
                continue
            write(session_line(session_id, state.ttl, exported_meta(state.meta)))
            session_json, key, count = (
                json.dumps(session_id),
                layout.messages_key(session_id),
                state.length,
            )
            for start in range(0, count, chunk_size):
                stop = min(count, start + chunk_size)
                chunk: list[bytes] = yield plan_range(layout, key, start, stop)
                write(message_lines(session_json, start, chunk))
                summary.messages += len(chunk)
                clock.tick()
                if len(chunk) < stop - start:
                    break  # the list shrank
            summary.sessions += 1
    write(end_line(summary.sessions, summary.messages))
    clock.tick()
    return summary


# ---------------------------------------------------------------------------------------
# Writing into a target session (import and migrate)


class TargetSession:
    """Feeds one incoming session, oldest message first, into a target list.

    Positions the target already holds are compared, not written; the rest are appended in
    batches by CONDITIONAL_APPEND_SCRIPT. If the target changed in between, the pending
    batch is compared again against what is there now. Every method that talks to Redis
    is a flow; one that fails records the problem in ``failed`` and the summary.
    """

    def __init__(
        self,
        layout: Layout,
        session_id: str,
        ttl: int | None,
        *,
        replace: bool,
        dry_run: bool,
        chunk_size: int,
        summary: TransferSummary,
    ) -> None:
        self.layout, self.session_id = layout, session_id
        self.key = layout.messages_key(session_id)
        self.ttl, self.replace, self.dry_run = ttl, replace, dry_run
        self.chunk_size, self.summary = chunk_size, summary
        self.position = 0  # incoming messages seen so far
        self.length = 0  # what the target list holds (or would hold, in a dry run)
        self.pending: list[bytes] = []
        self.window_start = 0  # the chronological position of window[0]
        self.window: list[bytes] = []  # target elements read for comparison
        self.appended = self.resyncs = 0
        self.replaced = False
        self.failed: str | None = None

    def open(self) -> Flow[None]:
        """Learn how long the target list is."""
        try:
            self.length = yield plan_length(self.key)
        except ChatHistoryError as exc:
            self._fail(exc)

    def _fail(self, error: Exception) -> None:
        self.failed = str(error)
        self.pending = []
        kind = "conflict" if isinstance(error, _ConflictError) else "error"
        self.summary.add_problem(Problem(kind, str(error), self.session_id))

    def feed(self, elements: list[bytes]) -> Flow[None]:
        """Take the next incoming messages (chronological)."""
        for element in elements:
            if self.failed is not None:
                return
            try:
                if self.position < self.length:
                    yield from self._place(element, self.position)
                else:  # the common case, kept free of generator calls
                    self.pending.append(element)
                    if len(self.pending) >= self.chunk_size:
                        yield from self._flush()
            except (_ConflictError, ChatHistoryError) as exc:
                self._fail(exc)
                return
            self.position += 1

    def _place(self, element: bytes, position: int) -> Flow[None]:
        if position < self.length:
            if (yield from self._target_at(position)) == element:
                self.summary.already_present += 1
                return
            if not self.replace:
                raise _ConflictError(
                    f"the target already holds different messages (first difference at "
                    f"message {position}); left unchanged (replace to overwrite)"
                )
            yield from self._trim(keep=position)
        self.pending.append(element)
        if len(self.pending) >= self.chunk_size:
            yield from self._flush()

    def _target_at(self, position: int) -> Flow[bytes]:
        offset = position - self.window_start
        if not 0 <= offset < len(self.window):
            stop = min(self.length, position + self.chunk_size)
            self.window_start = position
            self.window = yield plan_range(self.layout, self.key, position, stop)
            offset = 0
            if not self.window:
                raise _ConflictError("the target list shrank while it was being compared")
        return self.window[offset]

    def _trim(self, keep: int) -> Flow[None]:
        """Drop the target's messages from chronological position ``keep`` on."""
        self.replaced = True
        if not self.dry_run:
            args = (self.length, keep, *self.layout.window(0, keep))
            call = Call(args, TRIM_SCRIPT, (self.key,))
            trimmed = yield Plan((call,), lambda replies: replies[0], (self.key, "list"))
            if not trimmed:
                raise _ConflictError("the target list changed while being replaced; run again")
        self.length, self.window = keep, []

    def _flush(self) -> Flow[None]:
        batch, self.pending = self.pending, []
        if not batch:
            return
        first = self.length
        if not self.dry_run:
            args = (first, self.layout.push_command, self.ttl or 0, *batch)
            call = Call(args, CONDITIONAL_APPEND_SCRIPT, (self.key,))
            applied, length = yield Plan((call,), lambda replies: replies[0], (self.key, "list"))
            if not applied:
                yield from self._resync(batch, first, int(length))
                return
        self.length = first + len(batch)
        self.appended += len(batch)
        self.summary.messages += len(batch)

    def _resync(self, batch: list[bytes], first: int, actual: int) -> Flow[None]:
        """The target is not as long as expected: compare the batch again against it."""
        self.resyncs += 1
        if self.resyncs > MAX_RESYNCS:
            raise _ConflictError("the target list keeps changing while being written; run again")
        self.length, self.window = actual, []
        for offset, element in enumerate(batch):
            yield from self._place(element, first + offset)

    def finish(self, *, complete: bool) -> Flow[None]:
        """End of the incoming session: write what is pending and set the ttl.

        ``complete`` is False when the input stopped early (a bad line, a truncated file);
        then a longer target is not trimmed even with ``replace``.
        """
        if self.failed is not None:
            return
        try:
            yield from self._flush()
            if self.length > self.position and self.replace and complete:
                yield from self._trim(keep=self.position)
            if self.ttl and not self.dry_run and self.appended == 0 and self.length:
                call = Call(("EXPIRE", self.key, self.ttl))
                yield Plan((call,), lambda replies: None, (self.key, "list"))
        except (_ConflictError, ChatHistoryError) as exc:
            self._fail(exc)
            return
        if self.replaced:
            self.summary.replaced += 1
        if complete:
            self.summary.sessions += 1


def restore_meta(
    config: StoreSettings,
    session_id: str,
    fields: dict[str, str],
    ttl: int | None,
    overwrite: bool,
    summary: TransferSummary,
) -> Flow[bool]:
    """Write a session's metadata into the target and index its owner; False (a problem is
    recorded) if the session belongs to another owner or the write failed."""
    try:
        yield from restore_flow(config, session_id, fields, ttl=ttl, overwrite=overwrite)
    except OwnerConflictError as exc:
        summary.add_problem(Problem("conflict", f"{exc} (replace to overwrite)", session_id))
        return False
    except ChatHistoryError as exc:
        summary.add_problem(Problem("error", f"metadata not restored: {exc}", session_id))
        return False
    return True


# ---------------------------------------------------------------------------------------
# Import


@dataclass(frozen=True)
class ImportOptions:
    """How an import treats what it reads (see ``import_sessions``)."""

    wanted: frozenset[str] | None
    prefix: str
    replace: bool
    restore_ttl: bool
    dry_run: bool
    chunk_size: int


def import_flow(
    config: StoreSettings, events: Iterable[Event], options: ImportOptions, clock: Clock
) -> Flow[TransferSummary]:
    """Write the sessions of a file's events (from a ``Reader``) into the target."""
    summary, chunk_size = clock.summary, options.chunk_size
    target: TargetSession | None = None
    start: SessionStart | None = None
    batch: list[bytes] = []
    seen = 0
    for event in events:
        if isinstance(event, Message):
            if target is not None and target.session_id == event.session_id:
                batch.append(event.element)
                if len(batch) >= chunk_size:
                    yield from target.feed(batch)
                    batch = []
            seen += 1
            if seen % chunk_size == 0:
                clock.tick()
            continue
        if target is not None and start is not None:  # a session, end or bad line ends it
            yield from target.feed(batch)
            batch = []
            # A bad line of this session cuts it short; any other line follows its end.
            cut_short = isinstance(event, BadLine) and event.problem.session == target.session_id
            yield from target.finish(complete=not cut_short)
            if not cut_short and target.failed is None and start.meta and not options.dry_run:
                ttl = start.ttl if options.restore_ttl else None
                yield from restore_meta(
                    config, start.session_id, start.meta, ttl, options.replace, summary
                )
            target = start = None
        if isinstance(event, BadLine):
            summary.add_problem(event.problem)
        elif isinstance(event, SessionStart) and selected(
            event.session_id, options.wanted, options.prefix
        ):
            start = event
            target = TargetSession(
                config.layout,
                event.session_id,
                event.ttl if options.restore_ttl else None,
                replace=options.replace,
                dry_run=options.dry_run,
                chunk_size=chunk_size,
                summary=summary,
            )
            yield from target.open()
    if target is not None:  # the input ended inside a session: it may be cut short
        yield from target.feed(batch)
        yield from target.finish(complete=False)
        if not summary.complete:
            summary.add_problem(
                Problem(
                    "incomplete",
                    "the input ends inside this session; imported what it holds",
                    target.session_id,
                )
            )
    clock.tick()
    return summary
