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

**Async**: :func:`aexport_sessions`, :func:`aimport_sessions` and :func:`amigrate_sessions`
take AsyncChatHistoryStores and do the same. Every transfer is a flow of steps (``_flows``,
``_migrate``) that the store's driver runs, so transfers get its retry deadline (per round
trip) and cluster routing; the sync and async functions differ only in awaiting the
driver. The async ones read and write the given file object with its own (blocking)
``read``/``write``: wrap a slow file in a thread if the event loop must not wait for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO, TypeVar

from .._plan import Flow
from .._validate import check_positive_int
from ..async_store import AsyncChatHistoryStore
from ..settings import StoreSettings
from ..store import ChatHistoryStore
from ._flows import (
    CONDITIONAL_APPEND_SCRIPT,
    TRIM_SCRIPT,
    ImportOptions,
    export_flow,
    import_flow,
)
from ._format import (
    DEFAULT_CHUNK_SIZE,
    FORMAT,
    FORMAT_VERSION,
    MAX_LISTED_PROBLEMS,
    Clock,
    Problem,
    Progress,
    Reader,
    TransferSummary,
    check_chunk_size,
    check_ids,
    check_lines,
    file_layout,
    max_line_bytes,
)
from ._migrate import MigrateOptions, migrate_flow

__all__ = [
    "CONDITIONAL_APPEND_SCRIPT",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT",
    "FORMAT_VERSION",
    "MAX_LISTED_PROBLEMS",
    "TRIM_SCRIPT",
    "Problem",
    "Progress",
    "TransferSummary",
    "aexport_sessions",
    "aimport_sessions",
    "amigrate_sessions",
    "check_lines",
    "export_sessions",
    "file_layout",
    "import_sessions",
    "max_line_bytes",
    "migrate_sessions",
]

T = TypeVar("T")
AnyStore = ChatHistoryStore | AsyncChatHistoryStore


# ---------------------------------------------------------------------------------------
# The flows, ready to run (shared by the sync and async functions)


def _export(
    store: AnyStore,
    out: TextIO,
    session_ids: Iterable[str] | None,
    prefix: str,
    chunk_size: int,
    progress: Progress | None,
) -> Flow[TransferSummary]:
    chunk_size = check_chunk_size(chunk_size)
    named = check_ids(session_ids)
    clock = Clock(TransferSummary(), progress)

    def write(text: str) -> None:
        out.write(text)
        clock.summary.bytes += len(text)  # the text is ASCII: one byte per character

    return export_flow(store.config, write, named, prefix, chunk_size, clock)


def _import(
    store: AnyStore,
    lines: Iterable[bytes | str],
    session_ids: Iterable[str] | None,
    prefix: str,
    options: dict[str, Any],
    progress: Progress | None,
    max_message_bytes: int | None,
) -> Flow[TransferSummary]:
    chunk_size = check_chunk_size(options.pop("chunk_size"))
    named = check_ids(session_ids)
    if max_message_bytes is None:
        max_message_bytes = store.config.max_message_bytes
    check_positive_int("max_message_bytes", max_message_bytes)
    summary = TransferSummary(dry_run=options["dry_run"])
    reader = Reader(summary, options.pop("validate"), max_line_bytes(max_message_bytes))
    wanted = frozenset(named) if named is not None else None
    settings = ImportOptions(wanted, prefix, chunk_size=chunk_size, **options)
    return import_flow(store.config, reader.events(lines), settings, Clock(summary, progress))


def _migrate(
    source: StoreSettings,
    target: StoreSettings,
    options: dict[str, Any],
    session_ids: Iterable[str] | None,
    progress: Progress | None,
) -> Flow[TransferSummary]:
    chunk_size = check_chunk_size(options.pop("chunk_size"))
    named = check_ids(session_ids)
    settings = MigrateOptions(named=named, chunk_size=chunk_size, **options)
    clock = Clock(TransferSummary(dry_run=settings.dry_run), progress)
    return migrate_flow(source, target, settings, clock)


def _database(client: Any) -> int:
    """The database number a client uses (0 for a cluster client, which has no pool)."""
    pool = getattr(client, "connection_pool", None)
    return int(getattr(pool, "connection_kwargs", {}).get("db", 0) or 0)


def _placement(source_client: Any, target_client: Any) -> dict[str, Any]:
    """What the clients tell of where source and target are (see MigrateOptions)."""
    return {
        "same_client": source_client is target_client,
        "databases": (_database(source_client), _database(target_client)),
    }


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
    return store._drive(
        _export(store, out, session_ids, prefix, chunk_size, progress), deadline_per_step=True
    )


async def aexport_sessions(
    store: AsyncChatHistoryStore,
    out: TextIO,
    *,
    session_ids: Iterable[str] | None = None,
    prefix: str = "",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
) -> TransferSummary:
    """:func:`export_sessions` for an async store (``out`` is written with its own,
    blocking, ``write``)."""
    return await store._drive(
        _export(store, out, session_ids, prefix, chunk_size, progress), deadline_per_step=True
    )


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
    options = dict(
        replace=replace,
        restore_ttl=restore_ttl,
        validate=validate,
        dry_run=dry_run,
        chunk_size=chunk_size,
    )
    flow = _import(store, lines, session_ids, prefix, options, progress, max_message_bytes)
    return store._drive(flow, deadline_per_step=True)


async def aimport_sessions(
    store: AsyncChatHistoryStore,
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
    """:func:`import_sessions` for an async store (``lines`` is read with its own,
    blocking, iteration or ``read``)."""
    options = dict(
        replace=replace,
        restore_ttl=restore_ttl,
        validate=validate,
        dry_run=dry_run,
        chunk_size=chunk_size,
    )
    flow = _import(store, lines, session_ids, prefix, options, progress, max_message_bytes)
    return await store._drive(flow, deadline_per_step=True)


# ---------------------------------------------------------------------------------------
# Migrate


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
    source_client, target_client = source._connection(), target._connection()
    options = dict(
        prefix=prefix,
        move=move,
        replace=replace,
        restore_ttl=restore_ttl,
        dry_run=dry_run,
        chunk_size=chunk_size,
        **_placement(source_client, target_client),
    )
    flow = _migrate(source.config, target.config, options, session_ids, progress)
    return source._drive(flow, target, deadline_per_step=True)


async def amigrate_sessions(
    source: AsyncChatHistoryStore,
    target: AsyncChatHistoryStore,
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
    """:func:`migrate_sessions` between async stores."""
    source_client, target_client = await source._connection(), await target._connection()
    options = dict(
        prefix=prefix,
        move=move,
        replace=replace,
        restore_ttl=restore_ttl,
        dry_run=dry_run,
        chunk_size=chunk_size,
        **_placement(source_client, target_client),
    )
    flow = _migrate(source.config, target.config, options, session_ids, progress)
    return await source._drive(flow, target, deadline_per_step=True)
