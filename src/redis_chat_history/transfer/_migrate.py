"""Migrate as a flow: copy sessions from a source store to a target store (steps for the
target are wrapped in OnTarget), verify each copy, restore its metadata and, for a move,
delete the source with ``delete_flow`` if it is still exactly what was copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from .._plan import Flow, Info, OnTarget
from .._sessions_core import Unchanged, delete_flow
from ..errors import ChatHistoryError
from ..layouts import Layout, MemorystoreLayout
from ..settings import StoreSettings
from ._flows import (
    SourceSessions,
    SourceState,
    TargetSession,
    plan_length,
    plan_range,
    restore_meta,
    source_state,
)
from ._format import Clock, Problem, TransferSummary, exported_meta

__all__ = ["MigrateOptions", "migrate_flow", "on_target"]

T = TypeVar("T")


def on_target(flow: Flow[T]) -> Flow[T]:
    """``flow`` with every step sent to the target store."""
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(reply) if error is None else flow.throw(error)
        except StopIteration as done:
            result: T = done.value
            return result
        error = None
        try:
            reply = yield step if isinstance(step, OnTarget) else OnTarget(step)
        except Exception as exc:  # the step failed: the flow may handle it
            reply, error = None, exc


def _server_identity(database: int) -> Flow[frozenset[str]]:
    """The run id of the server (a cluster's default node) with the database number;
    empty if INFO is refused."""
    info: dict[str, Any] | None = yield Info("server")
    if not info or "run_id" not in info:
        return frozenset()
    return frozenset({f"{info['run_id']}/{database}"})


@dataclass(frozen=True)
class MigrateOptions:
    """What a migration does (see ``migrate_sessions``)."""

    named: list[str] | None
    prefix: str
    move: bool
    replace: bool
    restore_ttl: bool
    dry_run: bool
    chunk_size: int
    #: The two stores share one client: they are on one server.
    same_client: bool
    #: The database numbers of the source and the target client (0 on a cluster).
    databases: tuple[int, int]


def _verify(
    source: tuple[Layout, str], target: tuple[Layout, str], count: int, chunk_size: int
) -> Flow[Unchanged | str]:
    """Check the target holds exactly the source's ``count`` messages; else say why not."""
    source_length = yield plan_length(source[1])
    target_length = yield OnTarget(plan_length(target[1]))
    if source_length != count:
        return f"the source changed during the copy ({count} -> {source_length} messages)"
    if target_length != count:
        return f"the target holds {target_length} messages, the source {count}"
    oldest = newest = b""
    for start in range(0, count, chunk_size):
        stop = min(count, start + chunk_size)
        ours: list[bytes] = yield plan_range(*source, start, stop)
        theirs: list[bytes] = yield OnTarget(plan_range(*target, start, stop))
        if ours != theirs:
            differs = [
                i for i, pair in enumerate(zip(ours, theirs, strict=False)) if pair[0] != pair[1]
            ]
            position = start + (differs[0] if differs else min(len(ours), len(theirs)))
            return f"the copy differs from the source at message {position}"
        oldest = ours[0] if start == 0 else oldest
        newest = ours[-1]
    head, tail = source[0].in_list_order([oldest, newest])
    return Unchanged(count, head, tail)


def migrate_flow(
    source_config: StoreSettings,
    target_config: StoreSettings,
    options: MigrateOptions,
    clock: Clock,
) -> Flow[TransferSummary]:
    """Copy sessions from the source to the target (steps for it are OnTarget), verify
    each copy, restore its metadata, and with ``move`` delete the source if unchanged."""
    summary, named = clock.summary, options.named
    source_layout, target_layout = source_config.layout, target_config.layout
    same_server = options.same_client
    if not same_server:
        ours = yield from _server_identity(options.databases[0])
        theirs = yield from on_target(_server_identity(options.databases[1]))
        same_server = bool(ours & theirs)
    # On one server a memorystore source would list the lists this migration creates.
    others = (target_layout,) if same_server else ()
    sources = SourceSessions(source_config, named, options.prefix, summary, others)
    while batch := (yield from sources.batch()):
        for session_id in batch:
            source_key = source_layout.messages_key(session_id)
            target_key = target_layout.messages_key(session_id)
            if same_server:
                if source_key == target_key:
                    reason = f"source and target are the same key {source_key!r}"
                    summary.add_problem(Problem("error", reason, session_id))
                    continue
                if (
                    named is None
                    and not isinstance(target_layout, MemorystoreLayout)
                    and target_layout.session_id_of(source_key) is not None
                ):
                    continue  # one of the target layout's own lists, not a source session
            state = yield from source_state(source_layout, session_id, named, summary)
            if state is None:
                continue
            yield from _migrate_one(
                source_config, target_config, options, clock, session_id, state, same_server
            )
    clock.tick()
    return summary


def _migrate_one(
    source_config: StoreSettings,
    target_config: StoreSettings,
    options: MigrateOptions,
    clock: Clock,
    session_id: str,
    state: SourceState,
    same_server: bool,
) -> Flow[None]:
    """Copy, verify, restore the metadata of, and maybe delete one source session."""
    summary, chunk_size = clock.summary, options.chunk_size
    source_layout, target_layout = source_config.layout, target_config.layout
    source_key = source_layout.messages_key(session_id)
    target_key = target_layout.messages_key(session_id)
    ttl = state.ttl if options.restore_ttl else None
    writer = TargetSession(
        target_layout,
        session_id,
        ttl,
        replace=options.replace,
        dry_run=options.dry_run,
        chunk_size=chunk_size,
        summary=summary,
    )
    sessions_before = summary.sessions
    yield from on_target(writer.open())
    for start in range(0, state.length, chunk_size):
        stop = min(state.length, start + chunk_size)
        chunk: list[bytes] = yield plan_range(source_layout, source_key, start, stop)
        yield from on_target(writer.feed(chunk))
        summary.bytes += sum(len(element) for element in chunk)
        clock.tick()
        if writer.failed is not None or len(chunk) < stop - start:
            break
    yield from on_target(writer.finish(complete=True))
    if writer.failed is not None or options.dry_run:
        return
    try:
        verified = yield from _verify(
            (source_layout, source_key), (target_layout, target_key), state.length, chunk_size
        )
    except ChatHistoryError as exc:
        verified = str(exc)
    if isinstance(verified, str):
        summary.sessions = sessions_before
        summary.add_problem(Problem("unverified", f"not verified: {verified}", session_id))
        return
    target_index: str | None = None
    meta = exported_meta(state.meta)
    if meta is not None:
        fields = {name: str(value) for name, value in meta.items()}
        restored = yield from on_target(
            restore_meta(target_config, session_id, fields, ttl, options.replace, summary)
        )
        if not restored:
            summary.sessions = sessions_before
            return  # the source keeps its session (and metadata)
        if "owner" in fields and same_server:
            target_index = target_layout.owner_index_key(fields["owner"])
    if options.move:
        yield from _move(source_config, session_id, verified, target_index, summary)
    clock.tick()


def _move(
    source_config: StoreSettings,
    session_id: str,
    verified: Unchanged,
    target_index: str | None,
    summary: TransferSummary,
) -> Flow[None]:
    """Delete the source session if it is still as verified. ``target_index``: the owner
    index the copy is listed in, when the source's is the same key (kept)."""
    try:
        deleted = yield from delete_flow(
            source_config,
            [session_id],
            unless_changed={session_id: verified},
            keep_indexed_in=target_index,
        )
    except ChatHistoryError as exc:
        summary.add_problem(Problem("error", f"copied, but not deleted: {exc}", session_id))
        return
    if deleted:
        summary.moved += 1
    else:
        summary.add_problem(
            Problem(
                "unverified",
                "copied and verified, but the source changed before it could be "
                "deleted, so it was kept; run again",
                session_id,
            )
        )
