"""The JSON Lines format of an export, and nothing else: writing and reading its header,
session, message and end lines, checking a file, and the summary a transfer reports.
No Redis here (see ``_flows``); the format itself is described in the package docstring.
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
from typing import Any

from .. import codec
from .._sessions_core import RESTORED_FIELDS, check_owner, check_title
from .._validate import (
    MAX_SESSION_ID_LENGTH,
    MAX_TTL_SECONDS,
    check_positive_int,
    check_session_id,
)
from ..codec import MAX_NESTING_DEPTH, exceeds_nesting_limit
from ..errors import ChatHistoryError, InvalidOptionError, InvalidSessionIdError
from ..layouts import CommunityLayout, Layout, MemorystoreLayout, NativeLayout

_orjson: ModuleType | None
try:  # as in codec: optional
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _orjson = None

FORMAT = "redis-chat-history"
FORMAT_VERSION = 1
#: Messages read or written per round trip.
DEFAULT_CHUNK_SIZE = 1000
#: Problems kept in a summary; more are counted but not listed.
MAX_LISTED_PROBLEMS = 1000
#: Bytes read from a file per call.
_READ_SIZE = 1 << 20

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


class Clock:
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


def header_line(layout: Layout) -> str:
    header: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "layout": layout.name}
    if isinstance(layout, CommunityLayout):
        header["key_prefix"] = layout.key_prefix
    elif isinstance(layout, NativeLayout):
        header["prefix"] = layout.prefix
    return json.dumps(header) + "\n"


def session_line(session_id: str, ttl: int | None, meta: dict[str, Any] | None) -> str:
    line: dict[str, Any] = {"session": session_id, "ttl": ttl}
    if meta:
        line["meta"] = meta
    return json.dumps(line) + "\n"


def exported_meta(fields: dict[str, str]) -> dict[str, Any] | None:
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


def message_lines(session_json: str, first_index: int, elements: Sequence[bytes]) -> str:
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


def end_line(sessions: int, messages: int) -> str:
    return json.dumps({"end": True, "sessions": sessions, "messages": messages}) + "\n"


# ---------------------------------------------------------------------------------------
# Reading lines


@dataclass(frozen=True)
class SessionStart:
    session_id: str
    ttl: int | None
    #: The exported metadata fields (RESTORED_FIELDS, as text), if the session had any.
    meta: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Message:
    session_id: str
    element: bytes


@dataclass(frozen=True)
class BadLine:
    problem: Problem


@dataclass(frozen=True)
class SegmentEnd:
    """An end line (the session before it, if any, is complete)."""


Event = SessionStart | Message | BadLine | SegmentEnd


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
            record = codec.loads(element)
        except (ValueError, UnicodeDecodeError):
            raise _LineError("the message is not valid JSON") from None
        except RecursionError:
            raise _LineError(_TOO_DEEP) from None
        if exceeds_nesting_limit(element, record):
            raise _LineError(_TOO_DEEP)
        if not codec.is_record(record):
            raise _LineError("the message is not a {'type': str, 'data': dict} record")
    return element


def _load_line(line: bytes | str) -> Any:
    """A line as JSON: orjson straight away when installed (a line's only numbers are
    counts, so codec.loads' look for integers beyond 64 bits, a scan of the whole line,
    is not needed), else, and for what orjson refuses, :func:`codec.loads`."""
    if _orjson is not None:
        try:
            return _orjson.loads(line)
        except _orjson.JSONDecodeError:
            pass
    return codec.loads(line)


def _parse(line: bytes | str) -> dict[str, Any]:
    try:
        obj = _load_line(line)
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


class Reader:
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

    def events(self, lines: Iterable[bytes | str]) -> Iterator[Event]:
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
                yield BadLine(
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

    def _bad(self, number: int, reason: str, line: bytes | str) -> Iterator[Event]:
        session = self.current  # an unreadable line counts as the current session's
        with contextlib.suppress(_LineError):  # but a line naming a valid session is its
            session = _session_field(_parse(line))
        self.current = None  # either way the current session's lines are over
        self.summary.complete = False
        self.segment_damaged = True
        if session is not None and session == self.dropping:
            return  # already reported
        self.dropping = session
        yield BadLine(Problem("bad_line", reason, session, number))

    def _event(self, line: bytes | str) -> Event | None:
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
            return SessionStart(session_id, ttl, meta)
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
            return SegmentEnd()
        raise _LineError('not a header, session, message or end line (no "session" field)')

    def _message(self, obj: dict[str, Any]) -> Message | None:
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
        return Message(session_id, element)


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
    clock = Clock(summary, None)
    reader = Reader(summary, validate, max_line_bytes(max_message_bytes))
    for event in reader.events(lines):
        if isinstance(event, SessionStart):
            summary.sessions += 1
        elif isinstance(event, Message):
            summary.messages += 1
        elif isinstance(event, BadLine):
            summary.add_problem(event.problem)
    clock.tick()
    return summary


def selected(session_id: str, session_ids: frozenset[str] | None, prefix: str) -> bool:
    return session_id.startswith(prefix) and (session_ids is None or session_id in session_ids)


def check_chunk_size(chunk_size: Any) -> int:
    check_positive_int("chunk_size", chunk_size)
    if chunk_size > 100_000:
        raise InvalidOptionError(f"chunk_size must be at most 100000, got {chunk_size}")
    return int(chunk_size)


def check_ids(session_ids: Iterable[str] | None) -> list[str] | None:
    if session_ids is None:
        return None
    if isinstance(session_ids, str):
        raise InvalidOptionError("session_ids must be a collection of ids, not one str")
    return [check_session_id(session_id) for session_id in session_ids]
