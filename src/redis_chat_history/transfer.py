"""Export, import and migrate chat histories: JSON Lines files and copies between layouts
or servers.

Everything streams: a session is read in chunks (``LRANGE``, ``chunk_size`` messages at a
time) and written as it is read, so memory stays flat however long a session or a file is.

**The file format** (JSON Lines, one JSON object per line, pure ASCII)::

    {"format": "redis-chat-history", "version": 1, "layout": "community"}
    {"session": "user-42/chat-7", "ttl": 3600}
    {"session": "user-42/chat-7", "index": 0, "raw": "{\\"type\\": \\"human\\", ...}"}
    {"session": "user-42/chat-7", "index": 1, "raw": "{\\"type\\": \\"ai\\", ...}"}
    {"end": true, "sessions": 1, "messages": 2}

A *session line* (``ttl``: seconds left when exported, or null) precedes the session's
*message lines*, numbered 0, 1, 2, ... oldest first whatever the layout. ``raw`` is the
stored list element exactly as Redis returned it, as a JSON string (``raw_b64``, base64,
for an element that is not UTF-8). Keeping the element's own text rather than re-encoding
a parsed object is what makes an import byte-identical even for elements another tool wrote
with other separators or float spellings; ``jq '.raw | fromjson'`` gives the records. The
header line (``layout`` is only informational) and the *end line* are written by
:func:`export_sessions`; an import reports a file without its end line as incomplete.

**Import and migrate never duplicate, so they can be re-run.** For each session the target
list is compared with the incoming messages: messages already there at the same positions
are skipped, the rest are appended, so an interrupted run completes when run again. Each
batch is pushed by a script that first checks the list still has the length we expect,
so a retried or concurrent write is detected instead of doubled. A target session that
holds *different* messages is a conflict: it is left unchanged and reported, unless
``replace=True``, which keeps the common beginning and rewrites the rest. A target that
already holds every message and more after them counts as already imported.

**Bad lines** (not JSON, an unknown kind of line, a missing field, an index out of order, an
element that is not a message record) are reported with their line number. The session
they belong to is imported up to the line before; the rest of it is skipped, so it is never
stored with a gap, and importing a corrected file later completes it. Other sessions are
imported. :func:`check_lines` checks a whole file without Redis, for all-or-nothing
imports (the CLI's ``--strict``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any, TextIO

import redis
import redis.cluster
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError, ResponseError

from . import codec
from ._core import PUSH_CHUNK
from ._plan import Plan, Script, translate_error
from ._sessions_core import RESTORED_FIELDS, check_owner, check_title, restore_flow
from ._validate import (
    MAX_SESSION_ID_LENGTH,
    MAX_TTL_SECONDS,
    check_positive_int,
    check_session_id,
)
from .codec import MAX_NESTING_DEPTH, exceeds_nesting_limit
from .errors import (
    ChatHistoryError,
    InvalidOptionError,
    InvalidSessionIdError,
    OwnerConflictError,
    WrongTypeError,
)
from .layouts import CommunityLayout, Layout, MemorystoreLayout, NativeLayout
from .store import ChatHistoryStore

_orjson: ModuleType | None
try:  # optional speed-up for reading files, as in codec
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _orjson = None

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "FORMAT",
    "FORMAT_VERSION",
    "Problem",
    "TransferSummary",
    "check_lines",
    "export_sessions",
    "file_layout",
    "import_sessions",
    "max_line_bytes",
    "migrate_sessions",
]

FORMAT = "redis-chat-history"
FORMAT_VERSION = 1
#: Messages read or written per round trip.
DEFAULT_CHUNK_SIZE = 1000
#: Problems kept in a summary; more are counted but not listed.
MAX_LISTED_PROBLEMS = 1000
#: Re-comparisons allowed per session when the target changes under an import.
MAX_RESYNCS = 3
#: Bytes read from a file per call.
_READ_SIZE = 1 << 20

SyncClient = redis.Redis | redis.cluster.RedisCluster
Progress = Callable[["TransferSummary"], None]

# ---------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Problem:
    """Something left out, and why.

    ``kind`` is one of ``bad_line`` (``line`` is its 1-based number), ``incomplete`` (the
    input ended early), ``conflict`` (the target holds other messages), ``not_found`` (a
    named session does not exist), ``unverified`` (a copy did not match its source, which
    was kept) or ``error`` (e.g. a key of another Redis type).
    """

    kind: str
    reason: str
    session: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.session is not None:
            where.append(f"session {self.session!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


@dataclass
class TransferSummary:
    """What an export, import or migration did; updated as it goes (see ``progress``)."""

    #: Sessions exported, or imported/copied completely (including those already there).
    sessions: int = 0
    #: Messages written: lines exported, or elements appended to the target.
    messages: int = 0
    #: Messages the target already held at the same position (a re-run skips them).
    already_present: int = 0
    #: JSON Lines bytes written (export) or read (import); element bytes copied (migrate).
    bytes: int = 0
    seconds: float = 0.0
    #: Source sessions deleted after a verified copy (``move=True``).
    moved: int = 0
    #: Target sessions whose differing messages were rewritten (``replace=True``).
    replaced: int = 0
    #: Memorystore layout only: lists left out as not being chat sessions (see
    #: :func:`export_sessions`).
    skipped: int = 0
    #: Reading a file: False when it did not end with its end line.
    complete: bool = True
    dry_run: bool = False
    problem_count: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was left out and the input was complete."""
        return self.problem_count == 0 and self.complete

    def add_problem(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (problems as ``{"kind", "reason", "session", "line"}``)."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["ok"] = self.ok
        return data


class _Clock:
    """Keeps ``summary.seconds`` current and reports progress."""

    def __init__(self, summary: TransferSummary, progress: Progress | None) -> None:
        self.summary, self.progress = summary, progress
        self.started = time.perf_counter()

    def tick(self) -> None:
        self.summary.seconds = time.perf_counter() - self.started
        if self.progress is not None:
            self.progress(self.summary)


# ---------------------------------------------------------------------------------------
# Writing lines


def _header_line(layout: Layout) -> str:
    header: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "layout": layout.name}
    if isinstance(layout, CommunityLayout):
        header["key_prefix"] = layout.key_prefix
    elif isinstance(layout, NativeLayout):
        header["prefix"] = layout.prefix
    return json.dumps(header) + "\n"


def _session_line(session_id: str, ttl: int | None, meta: dict[str, Any] | None) -> str:
    line: dict[str, Any] = {"session": session_id, "ttl": ttl}
    if meta:
        line["meta"] = meta
    return json.dumps(line) + "\n"


def _exported_meta(fields: dict[str, str]) -> dict[str, Any] | None:
    """The metadata hash's fields as a session line carries them (times as integers)."""
    meta: dict[str, Any] = {}
    for name in RESTORED_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        if name in ("created", "last_activity"):
            if value.isascii() and value.isdigit():
                meta[name] = int(value)
        else:
            meta[name] = value
    return meta or None


def _message_lines(session_json: str, first_index: int, elements: Sequence[bytes]) -> str:
    """Message lines for ``elements`` (chronological), numbered from ``first_index``."""
    head = '{"session": ' + session_json + ', "index": '
    lines = []
    for index, element in enumerate(elements, first_index):
        try:
            field_and_value = '"raw": ' + json.dumps(element.decode("utf-8"))
        except UnicodeDecodeError:
            field_and_value = '"raw_b64": "' + base64.b64encode(element).decode("ascii") + '"'
        lines.append(f"{head}{index}, {field_and_value}}}\n")
    return "".join(lines)


def _end_line(sessions: int, messages: int) -> str:
    return json.dumps({"end": True, "sessions": sessions, "messages": messages}) + "\n"


# ---------------------------------------------------------------------------------------
# Reading lines


@dataclass(frozen=True)
class _SessionStart:
    session_id: str
    ttl: int | None
    #: The exported metadata fields (RESTORED_FIELDS, as text), if the session had any.
    meta: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class _Message:
    session_id: str
    element: bytes


@dataclass(frozen=True)
class _BadLine:
    problem: Problem


@dataclass(frozen=True)
class _SegmentEnd:
    """An end line (the session before it, if any, is complete)."""


_Event = _SessionStart | _Message | _BadLine | _SegmentEnd


class _LineError(ValueError):
    """A line that cannot be used; the message says why."""


def _int_field(
    obj: dict[str, Any],
    name: str,
    *,
    minimum: int,
    maximum: int | None = None,
    nullable: bool = False,
) -> Any:
    value = obj.get(name)
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = " or null" if nullable else ""
        raise _LineError(f'"{name}" must be an integer >= {minimum}{allowed}, got {value!r}')
    if maximum is not None and value > maximum:
        raise _LineError(f'"{name}" must be at most {maximum}, got {value!r}')
    return value


def _session_field(obj: dict[str, Any]) -> str:
    session_id = obj.get("session")
    try:
        return check_session_id(session_id)
    except InvalidSessionIdError as exc:
        raise _LineError(f'"session": {exc}') from None


#: The largest time (ms) a metadata line may carry: 2**53, beyond which JSON numbers are
#: not exact everywhere (and far beyond any real clock).
_MAX_TIME_MS = 2**53


def _meta_field(obj: dict[str, Any]) -> dict[str, str] | None:
    meta = obj.get("meta")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise _LineError(f'"meta" must be an object, got {type(meta).__name__}')
    fields: dict[str, str] = {}
    try:
        if meta.get("owner") is not None:
            fields["owner"] = check_owner(meta["owner"])
        if meta.get("title") is not None:
            fields["title"] = check_title(meta["title"])
    except ChatHistoryError as exc:
        raise _LineError(f'"meta": {exc}') from None
    for name in ("created", "last_activity"):
        value = meta.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_TIME_MS:
            raise _LineError(f'"meta": "{name}" must be a time in ms (an integer >= 0)')
        fields[name] = str(value)
    return fields


_TOO_DEEP = f"the message nests arrays or objects more than {MAX_NESTING_DEPTH} levels deep"


def _element_of(obj: dict[str, Any], validate: bool) -> bytes:
    raw = obj.get("raw")
    if raw is not None or "raw" in obj:
        if not isinstance(raw, str):
            raise _LineError(f'"raw" must be a string, got {type(raw).__name__}')
        try:
            element = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise _LineError('"raw" holds a lone surrogate escape; use "raw_b64"') from None
    elif "raw_b64" in obj:
        try:
            element = base64.b64decode(obj["raw_b64"], validate=True)
        except (TypeError, ValueError, binascii.Error):
            raise _LineError('"raw_b64" is not valid base64') from None
    else:
        raise _LineError('a message line needs "raw" (or "raw_b64")')
    if validate:
        try:
            record = _load_json(element)
        except (ValueError, UnicodeDecodeError):
            raise _LineError("the message is not valid JSON") from None
        except RecursionError:
            raise _LineError(_TOO_DEEP) from None
        if exceeds_nesting_limit(element, record):
            raise _LineError(_TOO_DEEP)
        if not codec.is_record(record):
            raise _LineError("the message is not a {'type': str, 'data': dict} record")
    return element


def _load_json(text: bytes | str) -> Any:
    """orjson if installed, else (or for what orjson refuses: NaN, lone surrogates) the
    standard library. Unlike :func:`codec._loads` it does not look for integers beyond 64
    bits, which orjson reads as floats: the only numbers a line holds are counts, and one
    that large is rejected either way."""
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _parse(line: bytes | str) -> dict[str, Any]:
    try:
        obj = _load_json(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _LineError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise _LineError("not a line of an export (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise _LineError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def max_line_bytes(max_message_bytes: int = codec.DEFAULT_MAX_MESSAGE_BYTES) -> int:
    """The longest line an import reads, for elements of up to ``max_message_bytes``.

    An export writes an element as a JSON string, where a byte takes at most 6 (``\\u001b``);
    the rest is room for a session id and metadata. A longer line is reported and skipped
    without being held in memory.
    """
    return 6 * max_message_bytes + 32 * MAX_SESSION_ID_LENGTH + 65536


# A run of blank lines (skipped in one step, so a flood of them costs little).
_BLANK_RUN = re.compile(rb"[ \t\r\n]*\n")


def _numbered_lines(
    lines: Iterable[bytes | str], max_line: int, summary: TransferSummary
) -> Iterator[tuple[int, bytes | str | None]]:
    """(line number, line) for every line that is not blank; None for a line longer than
    ``max_line`` bytes. A binary stream (it has ``read``) is read in blocks, so memory stays
    bounded whatever its lines; other iterables are taken line by line. Counts the bytes."""
    if hasattr(lines, "read") and not isinstance(lines, io.TextIOBase):
        read = getattr(lines, "read1", None) or lines.read
        yield from _stream_lines(read, max_line, summary)
        return
    for number, line in enumerate(lines, 1):
        size = len(line) if isinstance(line, bytes) else len(line.encode("utf-8", "surrogatepass"))
        summary.bytes += size
        if size > max_line:
            yield number, None
        elif line and not line.isspace():
            yield number, line


def _stream_lines(
    read: Callable[[int], bytes], max_line: int, summary: TransferSummary
) -> Iterator[tuple[int, bytes | None]]:
    number = 0
    pending = b""  # the start of a line whose end has not been read yet
    skipping = False  # inside a line that is too long: discard up to its end
    while True:
        chunk = read(_READ_SIZE)
        if not chunk:
            break
        summary.bytes += len(chunk)
        data = pending + chunk if pending else chunk
        pending = b""
        start, end = 0, len(data)
        while start < end:
            if skipping:
                newline = data.find(b"\n", start)
                if newline < 0:
                    break
                skipping, start = False, newline + 1
                continue
            blank = _BLANK_RUN.match(data, start)
            if blank is not None:
                number += data.count(b"\n", start, blank.end())
                start = blank.end()
                continue
            newline = data.find(b"\n", start)
            if newline < 0:
                if end - start > max_line:
                    number += 1
                    skipping = True
                    yield number, None
                else:
                    pending = data[start:]
                break
            number += 1
            yield number, data[start : newline + 1] if newline - start <= max_line else None
            start = newline + 1
    if pending.strip():
        yield number + 1, pending


def file_layout(line: bytes | str) -> Layout | None:
    """The layout (with its key prefix) an export's header line names; None if ``line`` is
    not a header line. Raises InvalidOptionError for a header naming no known layout."""
    try:
        obj = _parse(line)
    except _LineError:
        return None
    if "format" not in obj:
        return None
    name = obj.get("layout")
    if name in ("community", "langchain-community"):
        prefix = obj.get("key_prefix", "message_store:")
        return CommunityLayout(prefix if isinstance(prefix, str) else "message_store:")
    if name == "native":
        prefix = obj.get("prefix", "chat")
        return NativeLayout(prefix) if isinstance(prefix, str) else NativeLayout()
    if name == "memorystore":
        return MemorystoreLayout()
    raise InvalidOptionError(f"the export's header names an unknown layout {name!r}")


class _Reader:
    """Turns lines into events, checking their order; counts bytes and segments.

    After a bad line inside a session, that session's remaining message lines are dropped
    without further reports, so one damaged session yields one problem.
    """

    def __init__(self, summary: TransferSummary, validate: bool, max_line: int) -> None:
        self.summary, self.validate, self.max_line = summary, validate, max_line
        self.current: str | None = None  # the session whose messages may follow
        self.dropping: str | None = None  # a session whose remaining lines are skipped
        self.next_index = 0
        self.segment_sessions = self.segment_messages = 0
        self.segment_damaged = False  # a bad line was seen: the end line's counts cannot match
        self.saw_line = False  # a line that is a JSON object
        self.saw_header = False

    def events(self, lines: Iterable[bytes | str]) -> Iterator[_Event]:
        summary = self.summary
        summary.complete = False
        nonblank = False
        for number, line in _numbered_lines(lines, self.max_line, summary):
            if line is None:
                reason = (
                    f"the line is longer than {self.max_line:,} bytes, the most a message of "
                    "max_message_bytes can take; skipped"
                )
                yield from self._bad(number, reason, b"")
                continue
            first, nonblank = not nonblank, True
            try:
                event = self._event(line)
            except _LineError as exc:
                if first and not self.saw_line:
                    summary.add_problem(
                        Problem("bad_line", f"not a {FORMAT} export: {exc}", line=number)
                    )
                    return  # not even a JSON object first: some other file
                yield from self._bad(number, str(exc), line)
                continue
            if first and not self.saw_header:
                self.segment_damaged = True
                yield _BadLine(
                    Problem(
                        "bad_line",
                        f"the file does not start with its header line ({FORMAT!r}, version "
                        f"{FORMAT_VERSION}): was it removed or the file cut at the start?",
                        line=number,
                    )
                )
            if event is not None:
                yield event
        if not nonblank:
            summary.add_problem(Problem("incomplete", "the input is empty"))

    def _bad(self, number: int, reason: str, line: bytes | str) -> Iterator[_Event]:
        session = self.current  # an unreadable line counts as the current session's
        with contextlib.suppress(_LineError):  # but a line naming a valid session is its
            session = _session_field(_parse(line))
        self.current = None  # either way the current session's lines are over
        self.summary.complete = False
        self.segment_damaged = True
        if session is not None and session == self.dropping:
            return  # already reported
        self.dropping = session
        yield _BadLine(Problem("bad_line", reason, session, number))

    def _event(self, line: bytes | str) -> _Event | None:
        obj = _parse(line)
        self.saw_line = True
        self.summary.complete = False
        if "index" in obj:
            return self._message(obj)
        if "session" in obj:
            session_id = _session_field(obj)
            ttl = _int_field(obj, "ttl", minimum=1, maximum=MAX_TTL_SECONDS, nullable=True)
            meta = _meta_field(obj)
            self.current, self.dropping, self.next_index = session_id, None, 0
            self.segment_sessions += 1
            return _SessionStart(session_id, ttl, meta)
        if "format" in obj:
            if obj.get("format") != FORMAT or obj.get("version") != FORMAT_VERSION:
                raise _LineError(
                    f"unsupported format {obj.get('format')!r} version {obj.get('version')!r}; "
                    f"this version reads {FORMAT!r} version {FORMAT_VERSION}"
                )
            self.current = self.dropping = None
            self.segment_sessions = self.segment_messages = 0
            self.segment_damaged = False
            self.saw_header = True
            return None
        if obj.get("end") is True:
            sessions = _int_field(obj, "sessions", minimum=0)
            messages = _int_field(obj, "messages", minimum=0)
            counted = (self.segment_sessions, self.segment_messages)
            self.current = self.dropping = None
            self.segment_sessions = self.segment_messages = 0
            damaged, self.segment_damaged = self.segment_damaged, False
            if (sessions, messages) != counted and not damaged:
                raise _LineError(
                    f"the end line counts {sessions} sessions and {messages} messages, but "
                    f"{counted[0]} sessions and {counted[1]} messages came before it"
                )
            self.summary.complete = True
            return _SegmentEnd()
        raise _LineError('not a header, session, message or end line (no "session" field)')

    def _message(self, obj: dict[str, Any]) -> _Message | None:
        session_id = obj.get("session")
        if session_id != self.current or session_id is None:  # checked on its session line
            session_id = _session_field(obj)
            if session_id == self.dropping:
                return None
            raise _LineError("a message line without its session line before it")
        index = obj["index"]
        if type(index) is not int:
            index = _int_field(obj, "index", minimum=0)
        if index != self.next_index:
            raise _LineError(f"message index {index} where {self.next_index} was expected")
        element = _element_of(obj, self.validate)
        self.next_index += 1
        self.segment_messages += 1
        return _Message(session_id, element)


def check_lines(
    lines: Iterable[bytes | str],
    *,
    validate: bool = True,
    max_message_bytes: int = codec.DEFAULT_MAX_MESSAGE_BYTES,
) -> TransferSummary:
    """Read a whole export without touching Redis: every bad line is reported, and
    ``complete`` says whether the file ends with its end line. ``sessions``/``messages``
    count what an import into an empty database would write. Lines longer than
    :func:`max_line_bytes` of ``max_message_bytes`` are reported."""
    summary = TransferSummary(dry_run=True)
    clock = _Clock(summary, None)
    reader = _Reader(summary, validate, max_line_bytes(max_message_bytes))
    for event in reader.events(lines):
        if isinstance(event, _SessionStart):
            summary.sessions += 1
        elif isinstance(event, _Message):
            summary.messages += 1
        elif isinstance(event, _BadLine):
            summary.add_problem(event.problem)
    clock.tick()
    return summary


# ---------------------------------------------------------------------------------------
# Talking to Redis

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
# 1 if the list is newest first. Returns 1 if trimmed, 0 if the length differed.
TRIM_SCRIPT = Script("""
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then
  return 0
end
local keep = tonumber(ARGV[2])
if keep == 0 then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] == '1' then
  redis.call('LTRIM', KEYS[1], -keep, -1)
else
  redis.call('LTRIM', KEYS[1], 0, keep - 1)
end
return 1
""")

# KEYS: the list, its token set, its metadata hash (one slot). ARGV: the length the list
# must have, its first and last element. Deletes the keys only if the list is still what
# was verified. Reply: {1, the metadata's owner (if any)} when deleted, else {0}.
DELETE_IF_UNCHANGED_SCRIPT = Script("""
local length = tonumber(ARGV[1])
if redis.call('LLEN', KEYS[1]) ~= length then
  return {0}
end
if length > 0 and (redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2]
                   or redis.call('LINDEX', KEYS[1], -1) ~= ARGV[3]) then
  return {0}
end
local owner = false
if redis.call('TYPE', KEYS[3])['ok'] == 'hash' then
  owner = redis.call('HGET', KEYS[3], 'owner')
  redis.call('DEL', KEYS[3])
end
redis.call('DEL', KEYS[1], KEYS[2])
return {1, owner}
""")


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")


def _call(client: SyncClient, *args: Any, raw: bool = False) -> Any:
    """Send one command; ``raw`` reads the reply as bytes even on a client made with
    ``decode_responses=True`` (list elements need not be UTF-8)."""
    options = {NEVER_DECODE: True} if raw else {}
    try:
        return client.execute_command(*args, **options)  # type: ignore[no-untyped-call]
    except ResponseError as exc:
        error = translate_error(str(exc), _naming(str(args[1])))
        if error is None:
            raise
        raise error from exc


def _run_script(
    client: SyncClient, script: Script, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    try:
        try:
            return client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(script.text, len(keys), *keys, *args)
    except ResponseError as exc:
        error = translate_error(str(exc), _naming(keys[0]))
        if error is None:
            raise
        raise error from exc


def _naming(key: str) -> Plan[None]:
    """A plan that only names ``key`` (a list) in WrongTypeError."""
    return Plan((), lambda replies: None, (key, "list"))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class _SourceState:
    """A source session: its length, ttl (None: no expiry) and metadata fields."""

    length: int
    ttl: int | None
    meta: dict[str, str]


def _read_state(client: SyncClient, layout: Layout, session_id: str) -> _SourceState:
    """LLEN, TTL and the metadata hash in one round trip (the keys share a slot)."""
    key, meta_key = layout.messages_key(session_id), layout.meta_key(session_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(key)
        pipe.ttl(key)
        pipe.hgetall(meta_key)
        pipe.ttl(meta_key)
        replies = pipe.execute(raise_on_error=False)
    checks = zip(replies, (key, key, meta_key), ("list", "list", "hash"), strict=False)
    for reply, name, expected in checks:
        if isinstance(reply, ResponseError) and str(reply).startswith("WRONGTYPE"):
            raise WrongTypeError(name, expected)
        if isinstance(reply, Exception):
            raise reply
    length, ttl, fields, meta_ttl = replies
    items = (
        fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2], strict=True)
    )
    meta = {_text(name): _text(value) for name, value in items}
    seconds = int(ttl) if int(length) else int(meta_ttl)
    return _SourceState(int(length), max(seconds, 1) if seconds >= 0 else None, meta)


def _source_state(
    client: SyncClient,
    layout: Layout,
    session_id: str,
    named: list[str] | None,
    summary: TransferSummary,
) -> _SourceState | None:
    """A source session's state, or None (recorded in ``summary`` where it is a problem)
    when it cannot be read or holds nothing: a named session that is missing is reported
    as not found, one found by SCAN that emptied meanwhile is passed over. A named session
    with metadata but no messages is transferred (its metadata)."""
    try:
        state = _read_state(client, layout, session_id)
    except ChatHistoryError as exc:
        summary.add_problem(Problem("error", str(exc), session_id))
        return None
    if state.length == 0 and not (named is not None and state.meta):
        if named is not None:
            key = layout.messages_key(session_id)
            summary.add_problem(Problem("not_found", f"not found (no list at {key!r})", session_id))
        return None
    return state


def _read_range(client: SyncClient, layout: Layout, key: str, start: int, stop: int) -> list[bytes]:
    """Chronological positions ``[start, stop)`` of a session's list, oldest first."""
    if layout.newest_first:  # chronological position i sits at index -(i + 1)
        found = _call(client, "LRANGE", key, -stop, -(start + 1), raw=True)
        return [_as_bytes(element) for element in reversed(found)]
    found = _call(client, "LRANGE", key, start, stop - 1, raw=True)
    return [_as_bytes(element) for element in found]


def _read_chunks(
    client: SyncClient, layout: Layout, key: str, count: int, chunk_size: int
) -> Iterator[list[bytes]]:
    """The first ``count`` messages in chronological chunks; stops early if the list shrank."""
    for start in range(0, count, chunk_size):
        chunk = _read_range(client, layout, key, start, min(count, start + chunk_size))
        if chunk:
            yield chunk
        if len(chunk) < min(count, start + chunk_size) - start:
            return


def _selected(session_id: str, session_ids: frozenset[str] | None, prefix: str) -> bool:
    return session_id.startswith(prefix) and (session_ids is None or session_id in session_ids)


def _is_chat_list(client: SyncClient, key: str) -> bool:
    """Whether a list the memorystore layout lists (it has no prefix: every LIST in the
    database) holds chat messages: not a native or default community key, and its first
    element is a message record."""
    if NativeLayout().session_id_of(key) is not None:
        return False
    if CommunityLayout().session_id_of(key) is not None:
        return False
    first = _call(client, "LINDEX", key, 0, raw=True)
    try:
        return first is not None and codec.is_record(_load_json(first))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def _source_sessions(
    store: ChatHistoryStore, named: list[str] | None, prefix: str, summary: TransferSummary
) -> Iterator[str]:
    """The sessions to read: those named, else SCAN's; for the memorystore layout only the
    lists that hold chat messages (unless named)."""
    if named is not None:
        yield from named
        return
    layout = store.config.layout
    for session_id in store.session_ids(prefix):
        if isinstance(layout, MemorystoreLayout) and not _is_chat_list(
            store.client, layout.messages_key(session_id)
        ):
            summary.skipped += 1
            continue
        yield session_id


def _check_chunk_size(chunk_size: Any) -> int:
    check_positive_int("chunk_size", chunk_size)
    if chunk_size > 100_000:
        raise InvalidOptionError(f"chunk_size must be at most 100000, got {chunk_size}")
    return int(chunk_size)


def _check_ids(session_ids: Iterable[str] | None) -> list[str] | None:
    if session_ids is None:
        return None
    if isinstance(session_ids, str):
        raise InvalidOptionError("session_ids must be a collection of ids, not one str")
    return [check_session_id(session_id) for session_id in session_ids]


# ---------------------------------------------------------------------------------------
# Export


def export_sessions(
    store: ChatHistoryStore,
    out: TextIO,
    *,
    session_ids: Iterable[str] | None = None,
    prefix: str = "",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
) -> TransferSummary:
    """Write sessions of ``store`` (its client and layout) to ``out`` as JSON Lines.

    Exports the sessions named in ``session_ids`` (a missing one is reported as a
    problem), else every session whose id starts with ``prefix`` (all by default). Each
    session is read ``chunk_size`` messages at a time and written as read, so memory does
    not grow with the number of messages (only SCAN's set of ids seen grows, with the
    number of sessions). It is not a snapshot: messages appended while a session is being
    exported are left for the next export.

    The memorystore layout has no key prefix, so SCAN finds every LIST in the database;
    unless named, lists that are native or default community keys, or whose first element
    is not a message record, are left out and counted in ``skipped``.
    """
    chunk_size = _check_chunk_size(chunk_size)
    named = _check_ids(session_ids)
    client, layout = store.client, store.config.layout
    summary = TransferSummary()
    clock = _Clock(summary, progress)
    ids = _source_sessions(store, named, prefix, summary)

    def write(text: str) -> None:
        out.write(text)
        summary.bytes += len(text)  # the text is ASCII: one byte per character

    write(_header_line(layout))
    for session_id in ids:
        key = layout.messages_key(session_id)
        state = _source_state(client, layout, session_id, named, summary)
        if state is None:
            continue
        write(_session_line(session_id, state.ttl, _exported_meta(state.meta)))
        session_json, written = json.dumps(session_id), 0
        for chunk in _read_chunks(client, layout, key, state.length, chunk_size):
            write(_message_lines(session_json, written, chunk))
            written += len(chunk)
            summary.messages += len(chunk)
            clock.tick()
        summary.sessions += 1
    write(_end_line(summary.sessions, summary.messages))
    clock.tick()
    return summary


# ---------------------------------------------------------------------------------------
# Writing into a target session (import and migrate)


class _ConflictError(Exception):
    """The target session cannot take the incoming messages; the message says why."""


class _TargetSession:
    """Feeds one incoming session, oldest message first, into a target list.

    Positions the target already holds are compared, not written; the rest are appended in
    batches by CONDITIONAL_APPEND_SCRIPT. If the target changed in between, the pending
    batch is compared again against what is there now.
    """

    def __init__(
        self,
        client: SyncClient,
        layout: Layout,
        session_id: str,
        ttl: int | None,
        *,
        replace: bool,
        dry_run: bool,
        chunk_size: int,
        summary: TransferSummary,
    ) -> None:
        self.client, self.layout, self.session_id = client, layout, session_id
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
        try:
            self.length = int(_call(client, "LLEN", self.key))
        except ChatHistoryError as exc:
            self._fail(exc)

    def _fail(self, error: Exception) -> None:
        self.failed = str(error)
        self.pending = []
        kind = "conflict" if isinstance(error, _ConflictError) else "error"
        self.summary.add_problem(Problem(kind, str(error), self.session_id))

    def feed(self, element: bytes) -> None:
        """Take the next incoming message (chronological)."""
        if self.failed is not None:
            return
        try:
            self._place(element, self.position)
        except (_ConflictError, ChatHistoryError) as exc:
            self._fail(exc)
            return
        self.position += 1

    def _place(self, element: bytes, position: int) -> None:
        if position < self.length:
            if self._target_at(position) == element:
                self.summary.already_present += 1
                return
            if not self.replace:
                raise _ConflictError(
                    f"the target already holds different messages (first difference at "
                    f"message {position}); left unchanged (replace to overwrite)"
                )
            self._trim(keep=position)
        self.pending.append(element)
        if len(self.pending) >= self.chunk_size:
            self._flush()

    def _target_at(self, position: int) -> bytes:
        offset = position - self.window_start
        if not 0 <= offset < len(self.window):
            stop = min(self.length, position + self.chunk_size)
            self.window_start = position
            self.window = _read_range(self.client, self.layout, self.key, position, stop)
            offset = 0
            if not self.window:
                raise _ConflictError("the target list shrank while it was being compared")
        return self.window[offset]

    def _trim(self, keep: int) -> None:
        """Drop the target's messages from chronological position ``keep`` on."""
        self.replaced = True
        if not self.dry_run:
            args = (self.length, keep, 1 if self.layout.newest_first else 0)
            if not _run_script(self.client, TRIM_SCRIPT, (self.key,), args):
                raise _ConflictError("the target list changed while being replaced; run again")
        self.length, self.window = keep, []

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        first = self.length
        if not self.dry_run:
            push = "LPUSH" if self.layout.newest_first else "RPUSH"
            args = (first, push, self.ttl or 0, *batch)
            applied, length = _run_script(self.client, CONDITIONAL_APPEND_SCRIPT, (self.key,), args)
            if not applied:
                self._resync(batch, first, int(length))
                return
        self.length = first + len(batch)
        self.appended += len(batch)
        self.summary.messages += len(batch)

    def _resync(self, batch: list[bytes], first: int, actual: int) -> None:
        """The target is not as long as expected: compare the batch again against it."""
        self.resyncs += 1
        if self.resyncs > MAX_RESYNCS:
            raise _ConflictError("the target list keeps changing while being written; run again")
        self.length, self.window = actual, []
        for offset, element in enumerate(batch):
            self._place(element, first + offset)

    def finish(self, *, complete: bool) -> None:
        """End of the incoming session: write what is pending and set the ttl.

        ``complete`` is False when the input stopped early (a bad line, a truncated file);
        then a longer target is not trimmed even with ``replace``.
        """
        if self.failed is not None:
            return
        try:
            self._flush()
            if self.length > self.position and self.replace and complete:
                self._trim(keep=self.position)
            if self.ttl and not self.dry_run and self.appended == 0 and self.length:
                _call(self.client, "EXPIRE", self.key, self.ttl)
        except (_ConflictError, ChatHistoryError) as exc:
            self._fail(exc)
            return
        if self.replaced:
            self.summary.replaced += 1
        if complete:
            self.summary.sessions += 1


def _restore_meta(
    store: ChatHistoryStore,
    session_id: str,
    fields: dict[str, str],
    ttl: int | None,
    overwrite: bool,
    summary: TransferSummary,
) -> bool:
    """Write a session's metadata into ``store`` and index its owner; False (a problem is
    recorded) if the session belongs to another owner or the write failed."""
    try:
        store._drive(restore_flow(store.config, session_id, fields, ttl=ttl, overwrite=overwrite))
    except OwnerConflictError as exc:
        summary.add_problem(Problem("conflict", f"{exc} (replace to overwrite)", session_id))
        return False
    except ChatHistoryError as exc:
        summary.add_problem(Problem("error", f"metadata not restored: {exc}", session_id))
        return False
    return True


# ---------------------------------------------------------------------------------------
# Import


def import_sessions(
    store: ChatHistoryStore,
    lines: Iterable[bytes | str],
    *,
    session_ids: Iterable[str] | None = None,
    prefix: str = "",
    replace: bool = False,
    restore_ttl: bool = True,
    validate: bool = True,
    dry_run: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    max_message_bytes: int | None = None,
) -> TransferSummary:
    """Import JSON Lines (as :func:`export_sessions` writes them) into ``store``'s layout.

    Safe to re-run: messages the target already holds at the same positions are skipped,
    so an interrupted import completes without duplicates. A target session holding
    different messages is left unchanged and reported, unless ``replace`` (which keeps
    the common beginning, rewrites the rest and drops extra messages). Bad lines are
    reported with their line number; the session they occur in is imported up to the line
    before them. ``restore_ttl`` sets each session's exported ttl. ``validate`` checks that
    every element is a message record. ``dry_run`` compares but writes nothing.
    Only sessions named in ``session_ids`` and starting with ``prefix`` are imported.
    The store's own ttl and max_messages options are not applied.

    A session's metadata (owner, title, created, last activity) is restored once its
    messages are, and the session is indexed under its owner; a session that already
    belongs to another owner keeps its metadata and is reported as a conflict (``replace``
    overwrites it). Lines longer than :func:`max_line_bytes` of ``max_message_bytes``
    (default: the store's) are reported and skipped; pass a binary stream (a file opened
    ``"rb"``) for memory bounded by that length.
    """
    chunk_size = _check_chunk_size(chunk_size)
    named = _check_ids(session_ids)
    wanted = frozenset(named) if named is not None else None
    client, layout = store.client, store.config.layout
    if max_message_bytes is None:
        max_message_bytes = store.config.max_message_bytes
    check_positive_int("max_message_bytes", max_message_bytes)
    summary = TransferSummary(dry_run=dry_run)
    clock = _Clock(summary, progress)
    target: _TargetSession | None = None
    start: _SessionStart | None = None
    seen = 0
    reader = _Reader(summary, validate, max_line_bytes(max_message_bytes))
    for event in reader.events(lines):
        if isinstance(event, _Message):
            if target is not None and target.session_id == event.session_id:
                target.feed(event.element)
            seen += 1
            if seen % chunk_size == 0:
                clock.tick()
            continue
        if target is not None and start is not None:  # a session, end or bad line ends it
            # A bad line of this session cuts it short; any other line follows its end.
            cut_short = isinstance(event, _BadLine) and event.problem.session == target.session_id
            target.finish(complete=not cut_short)
            if not cut_short and target.failed is None and start.meta and not dry_run:
                ttl = start.ttl if restore_ttl else None
                _restore_meta(store, start.session_id, start.meta, ttl, replace, summary)
            target = start = None
        if isinstance(event, _BadLine):
            summary.add_problem(event.problem)
        elif isinstance(event, _SessionStart) and _selected(event.session_id, wanted, prefix):
            start = event
            target = _TargetSession(
                client,
                layout,
                event.session_id,
                event.ttl if restore_ttl else None,
                replace=replace,
                dry_run=dry_run,
                chunk_size=chunk_size,
                summary=summary,
            )
    if target is not None:  # the input ended inside a session: it may be cut short
        target.finish(complete=False)
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


# ---------------------------------------------------------------------------------------
# Migrate


def _server_identity(client: SyncClient) -> frozenset[str]:
    """Run ids (with the database number) of the server(s) behind a client."""
    if isinstance(client, redis.cluster.RedisCluster):
        replies = client.info("server", target_nodes=redis.cluster.RedisCluster.PRIMARIES)
        # One dict per primary, keyed by node name (or just the dict when there is one).
        infos = [replies] if "run_id" in replies else list(replies.values())
        return frozenset(f"{info['run_id']}/0" for info in infos if isinstance(info, dict))
    info = client.info("server")
    db = client.connection_pool.connection_kwargs.get("db", 0)
    return frozenset({f"{info['run_id']}/{db}"})


@dataclass(frozen=True)
class _Verified:
    """A verified source list's length and its elements at list index 0 and -1."""

    length: int
    head: bytes
    tail: bytes


def _unindex(client: SyncClient, index: str, session_id: str, *, keep: str) -> None:
    """Remove a moved session from its owner's index in the source layout (best effort: a
    listing drops an entry whose metadata is gone anyway). ``keep``: an index key that is
    also the target's, which must not lose the entry."""
    if index == keep:
        return
    with contextlib.suppress(ChatHistoryError, redis.RedisError):
        _call(client, "ZREM", index, session_id)


def _verify(
    source: tuple[SyncClient, Layout, str],
    target: tuple[SyncClient, Layout, str],
    count: int,
    chunk_size: int,
) -> _Verified | str:
    """Check the target holds exactly the source's ``count`` messages; else say why not."""
    source_length = int(_call(source[0], "LLEN", source[2]))
    target_length = int(_call(target[0], "LLEN", target[2]))
    if source_length != count:
        return f"the source changed during the copy ({count} -> {source_length} messages)"
    if target_length != count:
        return f"the target holds {target_length} messages, the source {count}"
    oldest = newest = b""
    for start in range(0, count, chunk_size):
        stop = min(count, start + chunk_size)
        ours = _read_range(*source, start, stop)
        theirs = _read_range(*target, start, stop)
        if ours != theirs:
            differs = [
                i for i, pair in enumerate(zip(ours, theirs, strict=False)) if pair[0] != pair[1]
            ]
            position = start + (differs[0] if differs else min(len(ours), len(theirs)))
            return f"the copy differs from the source at message {position}"
        oldest = ours[0] if start == 0 else oldest
        newest = ours[-1]
    head, tail = (newest, oldest) if source[1].newest_first else (oldest, newest)
    return _Verified(count, head, tail)


def migrate_sessions(
    source: ChatHistoryStore,
    target: ChatHistoryStore,
    *,
    session_ids: Iterable[str] | None = None,
    prefix: str = "",
    move: bool = False,
    replace: bool = False,
    restore_ttl: bool = True,
    dry_run: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
) -> TransferSummary:
    """Copy sessions from ``source`` to ``target`` (another layout, server, or both).

    Each session is copied in chunks, then verified: the target must hold as many
    messages as the source, byte-identical, in the same order. With ``move`` the source
    session is deleted only after that, and only if it is still exactly as verified.
    Safe to re-run after an interruption (see :func:`import_sessions` for how messages
    already present, conflicts and ``replace`` are handled). ``restore_ttl`` copies each
    session's remaining ttl. ``dry_run`` compares but writes and deletes nothing.

    On one server, a source key that is also a key of the target layout is skipped (a
    memorystore source would otherwise list the lists this migration creates), and a
    session whose source and target keys are the same key is reported, not copied.
    """
    chunk_size = _check_chunk_size(chunk_size)
    named = _check_ids(session_ids)
    source_client, source_layout = source.client, source.config.layout
    target_client, target_layout = target.client, target.config.layout
    same_server = source_client is target_client or bool(
        _server_identity(source_client) & _server_identity(target_client)
    )
    summary = TransferSummary(dry_run=dry_run)
    clock = _Clock(summary, progress)
    ids = _source_sessions(source, named, prefix, summary)
    for session_id in ids:
        source_key = source_layout.messages_key(session_id)
        target_key = target_layout.messages_key(session_id)
        target_index = ""
        if same_server:
            if source_key == target_key:
                summary.add_problem(
                    Problem(
                        "error", f"source and target are the same key {source_key!r}", session_id
                    )
                )
                continue
            if (
                named is None
                and not isinstance(target_layout, MemorystoreLayout)
                and target_layout.session_id_of(source_key) is not None
            ):
                continue  # one of the target layout's own lists, not a source session
        state = _source_state(source_client, source_layout, session_id, named, summary)
        if state is None:
            continue
        length, ttl = state.length, state.ttl
        writer = _TargetSession(
            target_client,
            target_layout,
            session_id,
            ttl if restore_ttl else None,
            replace=replace,
            dry_run=dry_run,
            chunk_size=chunk_size,
            summary=summary,
        )
        sessions_before = summary.sessions
        for chunk in _read_chunks(source_client, source_layout, source_key, length, chunk_size):
            for element in chunk:
                writer.feed(element)
            summary.bytes += sum(len(element) for element in chunk)
            clock.tick()
            if writer.failed is not None:
                break
        writer.finish(complete=True)
        if writer.failed is not None or dry_run:
            continue
        try:
            verified = _verify(
                (source_client, source_layout, source_key),
                (target_client, target_layout, target_key),
                length,
                chunk_size,
            )
        except ChatHistoryError as exc:
            verified = str(exc)
        if isinstance(verified, str):
            summary.sessions = sessions_before
            summary.add_problem(Problem("unverified", f"not verified: {verified}", session_id))
            continue
        meta = _exported_meta(state.meta)
        if meta is not None:
            fields = {name: str(value) for name, value in meta.items()}
            session_ttl = ttl if restore_ttl else None
            if not _restore_meta(target, session_id, fields, session_ttl, replace, summary):
                summary.sessions = sessions_before
                continue  # the source keeps its session (and metadata)
            if "owner" in fields:
                target_index = target_layout.owner_index_key(fields["owner"])
        if move:
            keys = (
                source_key,
                source_layout.token_key(session_id),
                source_layout.meta_key(session_id),
            )
            args = (verified.length, verified.head, verified.tail)
            deleted = _run_script(source_client, DELETE_IF_UNCHANGED_SCRIPT, keys, args)
            if int(deleted[0]) == 1:
                summary.moved += 1
                owner = _text(deleted[1]) if len(deleted) > 1 and deleted[1] else None
                if owner is not None:
                    _unindex(
                        source_client,
                        source_layout.owner_index_key(owner),
                        session_id,
                        keep=target_index if same_server else "",
                    )
            else:
                summary.add_problem(
                    Problem(
                        "unverified",
                        "copied and verified, but the source changed before it could be "
                        "deleted, so it was kept; run again",
                        session_id,
                    )
                )
        clock.tick()
    clock.tick()
    return summary
