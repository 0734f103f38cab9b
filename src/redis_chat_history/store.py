# Generated from async_store.py by scripts/unasync.py: edit that file, then run the script.
"""ChatHistoryStore: the store for blocking code, a thin shell over the core's flows.

The asyncio store is the source; the sync one is generated from it by
``scripts/unasync.py``, so their methods cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from . import _core, _windows
from . import _sessions_core as _sessions
from . import _sync_io as _io
from ._plan import run_plan
from ._sessions_core import ReindexReport, SessionInfo, SessionPage
from ._sync_driver import SyncDriver
from .codec import Record
from .durability import Durability
from .errors import InvalidOptionError

__all__ = ["ChatHistoryStore"]

T = TypeVar("T")


class ChatHistoryStore(SyncDriver):
    """Chat histories in Redis, one session per list; most methods are one round trip.

    Pass a redis-py client (``Redis`` or ``RedisCluster``, with or without
    ``decode_responses``) or ``url=``; URL clients are shared (per process, and per event
    loop for asyncio) and get timeouts and a retry policy. Records are the dicts
    LangChain's ``message_to_dict`` returns. Appends are atomic and exactly-once even when
    redis-py retries them. The options are StoreSettings'; ``with_settings`` takes them
    checked already.
    """

    @property
    def client(self) -> _io.Client:
        """The client in use: the one given, or the shared one for the URL."""
        return _io.current_client(self._client, self._url)

    def __enter__(self) -> ChatHistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client if this store was given it; shared URL clients stay open."""
        if self._client is not None:
            self._client.close()

    def append(
        self,
        session_id: str,
        records: Sequence[Mapping[str, Any]],
        *,
        durability: Durability | str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append records (oldest first) atomically, exactly once; return the message count.

        ``durability`` overrides the store's level for this call (see Durability); if it is
        not reached in time NotDurableError says the records were written all the same.
        ``idempotency_key`` (a client message id, say) names the batch: sent again within
        10 minutes it is not stored twice, even by another process or after a restart.
        Without one, only redis-py's own re-sends of this call are recognised.
        """
        return self._drive(
            _core.append_flow(
                self.config,
                session_id,
                records,
                self._server(),
                durability=durability,
                idempotency_key=idempotency_key,
            )
        )

    def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        max_tokens: int | None = None,
        token_counter: Callable[[Any], int] | None = None,
        start_on: str | None = None,
        keep_system: bool | None = None,
        start: int = 0,
        stop: int | None = None,
        strict: bool | None = None,
        convert: Callable[[Record], T] | None = None,
    ) -> list[Any]:
        """Messages in chronological order: all, positions ``[start, stop)``, or a window.

        A window is at most the newest ``last`` messages and ``max_tokens`` tokens (counted
        by ``token_counter`` on each converted message; default: the approximation of
        langchain-core's ``count_tokens_approximately`` on records), cut where it never
        splits a tool call from its results (see the README's "Windows"); ``start_on``
        and ``keep_system`` default to the store's. Only the newest messages are read.
        ``convert`` maps each record."""
        if last is not None or max_tokens is not None:
            if start != 0 or stop is not None:
                raise InvalidOptionError("pass either start/stop or last/max_tokens, not both")
            return self._drive(
                _windows.window_flow(
                    self.config,
                    session_id,
                    last=last,
                    max_tokens=max_tokens,
                    token_counter=token_counter,
                    start_on=start_on,
                    keep_system=keep_system,
                    strict=strict,
                    convert=convert,
                )
            )
        plan = _core.plan_read(
            self.config, session_id, start=start, stop=stop, strict=strict, convert=convert
        )
        return self._drive(run_plan(plan))

    def count(self, session_id: str) -> int:
        """How many messages the session holds."""
        return self._drive(run_plan(_core.plan_count(self.config, session_id)))

    def clear(self, session_id: str) -> bool:
        """Remove the session's messages; True if it had any."""
        return self._drive(run_plan(_core.plan_clear(self.config, session_id)))

    def delete(self, *session_ids: str) -> int:
        """Delete whole sessions (messages, metadata, owner index entries); return how
        many existed."""
        return self._drive(_sessions.delete_flow(self.config, session_ids))

    def session_ids(self, prefix: str = "", *, batch: int = 500) -> Iterator[str]:
        """Iterate the ids of stored sessions (SCAN, so never blocking the server) whose id
        starts with ``prefix``, taken literally. Each id is yielded once."""
        listing = _core.SessionListing(self.config, prefix, batch)
        for keys in self._scan_batches(listing.scan):
            for session_id in listing.ids(keys):
                yield session_id

    # Sessions that know who they belong to (metadata and per-owner indexes). The index
    # of an owner is another key than the session's own ones (another slot on a cluster),
    # so it is written after the session, and checked and repaired when read.

    def create_session(
        self, session_id: str, *, owner: str | None = None, title: str | None = None
    ) -> SessionInfo:
        """Give a session metadata (owner, title, created and last-activity times) and
        list it under its owner. Idempotent: what is already set is kept (use
        rename_session to change the title); naming another owner than the session's
        raises OwnerConflictError. Messages already stored stay."""
        return self._drive(_sessions.create_flow(self.config, session_id, owner, title))

    def session_info(self, session_id: str) -> SessionInfo | None:
        """The session's owner, title, times and message count; None if it does not exist."""
        return self._drive(run_plan(_sessions.plan_session_info(self.config, session_id)))

    def rename_session(self, session_id: str, title: str) -> bool:
        """Set the session's title; False if there is no such session."""
        return self._drive(run_plan(_sessions.plan_rename(self.config, session_id, title)))

    def owner_sessions(
        self, owner: str, *, limit: int = 20, cursor: str | None = None
    ) -> SessionPage:
        """One page of the owner's sessions, most recently active first, in O(limit)
        without SCAN. Pass the page's ``next_cursor`` as ``cursor`` for the next one."""
        return self._drive(_sessions.owner_sessions_flow(self.config, owner, limit, cursor))

    def delete_session(self, session_id: str) -> bool:
        """Delete one session (messages, metadata, owner index entry); True if it existed."""
        return self.delete(session_id) == 1

    def reindex(self, owner: str | None = None, *, batch: int = 500) -> ReindexReport:
        """Rebuild owner indexes from the sessions' metadata and drop stale entries (all
        owners, or only ``owner``). The repair path: it SCANs every metadata key."""
        return self._drive(_sessions.reindex_flow(self.config, owner, batch))
