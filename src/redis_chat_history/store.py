"""ChatHistoryStore: the synchronous store, a thin shell over :mod:`._core`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import redis
import redis.cluster
from redis.exceptions import NoScriptError, RedisError, ResponseError

from . import _core
from ._clients import client_for_url, is_transient, redact_url
from .codec import DEFAULT_MAX_MESSAGE_BYTES, Record
from .durability import Durability, DurabilityUnsupportedError, resolve_durability
from .errors import InvalidOptionError
from .layouts import Layout

__all__ = ["ChatHistoryStore"]

T = TypeVar("T")
SyncClient = redis.Redis | redis.cluster.RedisCluster


def _text(key: bytes | str) -> str:
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else key


class ChatHistoryStore:
    """Chat histories in Redis, one session per list; every method is one round trip.

    Pass a redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``, with or
    without ``decode_responses``) or ``url=``; URL clients are shared per process and get
    timeouts and a retry policy. Records are the dicts LangChain's ``message_to_dict``
    returns. Appends are atomic and exactly-once even when redis-py retries them.
    """

    def __init__(
        self,
        client: SyncClient | None = None,
        *,
        url: str | None = None,
        layout: Layout | str = "native",
        ttl: Any = None,
        max_messages: int | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        strict: bool = True,
        retry_deadline: float = 15.0,
        durability: Durability | str | None = None,
    ) -> None:
        if (client is None) == (url is None):
            raise InvalidOptionError("pass either a redis client or url=, not both or neither")
        self.config = _core.StoreConfig.build(
            layout, ttl, max_messages, max_message_bytes, strict, retry_deadline, durability
        )
        self._url = url
        self._client = client
        self._version: tuple[int, ...] | None = None

    @classmethod
    def _from_config(
        cls, client: SyncClient | None, config: _core.StoreConfig, url: str | None = None
    ) -> ChatHistoryStore:
        """A store over an already validated config (used by the LangChain classes)."""
        store = cls.__new__(cls)
        store.config, store._url, store._client = config, url, client
        store._version = None
        return store

    @property
    def client(self) -> SyncClient:
        """The client in use: the one given, or the shared one for the URL (made on first
        use, which probes a TCP URL once for cluster mode)."""
        if self._client is not None:
            return self._client
        return client_for_url(self._url or "")

    def __repr__(self) -> str:
        where = redact_url(self._url) if self._url else repr(self._client)
        return f"ChatHistoryStore({where}, layout={self.config.layout!r})"

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
    ) -> int:
        """Append records (oldest first) atomically, exactly once; return the message count.

        ``durability`` overrides the store's level for this call (see Durability); if it is
        not reached in time NotDurableError says the records were written all the same.
        """
        level = self.config.durability if durability is None else resolve_durability(durability)
        self._check_durability(level)
        plan = _core.plan_append(self.config, session_id, records, durability=level)
        return self.count(session_id) if plan is None else self._run(plan)

    def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        start: int = 0,
        stop: int | None = None,
        strict: bool | None = None,
        convert: Callable[[Record], T] | None = None,
    ) -> list[Any]:
        """Messages in chronological order: all, positions ``[start, stop)``, or the newest
        ``last`` (reading only those from Redis). ``convert`` maps each record."""
        return self._run(
            _core.plan_read(
                self.config,
                session_id,
                start=start,
                stop=stop,
                last=last,
                strict=strict,
                convert=convert,
            )
        )

    def count(self, session_id: str) -> int:
        """How many messages the session holds."""
        return self._run(_core.plan_count(self.config, session_id))

    def clear(self, session_id: str) -> bool:
        """Remove the session's messages; True if it had any."""
        return self._run(_core.plan_clear(self.config, session_id))

    def delete(self, *session_ids: str) -> int:
        """Delete whole sessions; return how many existed."""
        return self._run(_core.plan_delete(self.config, session_ids))

    def session_ids(self, prefix: str = "", *, batch: int = 500) -> Iterator[str]:
        """Iterate the ids of stored sessions (SCAN, so never blocking the server) whose id
        starts with ``prefix``, taken literally. Each id is yielded once."""
        layout, seen = self.config.layout, set()
        pattern = layout.scan_pattern(prefix)
        for key in self.client.scan_iter(match=pattern, count=batch, _type="list"):
            session_id = layout.session_id_of(_text(key))
            if session_id is not None and session_id.startswith(prefix) and session_id not in seen:
                seen.add(session_id)
                yield session_id

    def _run(self, plan: _core.Plan[T]) -> T:
        timer: _core.RetryTimer | None = None
        while True:
            try:
                return self._run_once(plan)
            except RedisError as error:
                if not is_transient(error):
                    raise
                timer = timer or _core.RetryTimer(self.config.retry_deadline)
                delay = timer.next_delay()
                if delay is None:
                    raise
                time.sleep(delay)

    def _run_once(self, plan: _core.Plan[T]) -> T:
        try:
            if len(plan.calls) == 1:
                replies = [self._send(plan.calls[0])]
            elif not plan.calls:
                replies = []
            else:
                replies = self._send_pipeline(self.client, plan.calls)
        except ResponseError as exc:
            error = _core.translate_error(str(exc), plan.keys)
            if error is None:
                raise
            raise error from exc
        return plan.parse(replies)

    def _check_durability(self, level: Durability) -> None:
        if not level.waits:
            return
        client = self.client
        if level.fsync and self._version is None:
            self._version = _core.server_version(client.info("server"))
        cluster = isinstance(client, redis.cluster.RedisCluster)
        problem = _core.durability_problem(level, cluster=cluster, version=self._version)
        if problem:
            raise DurabilityUnsupportedError(problem)

    @staticmethod
    def _send_pipeline(client: SyncClient, calls: Sequence[_core.Call]) -> list[Any]:
        """Send calls on one connection in one round trip (loading scripts if needed)."""
        for attempt in range(2):
            with client.pipeline(transaction=False) as pipe:
                for call in calls:
                    if call.script is None:
                        pipe.execute_command(*call.args)
                    else:
                        pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                try:
                    return pipe.execute()
                except NoScriptError:
                    if attempt:
                        raise
            for script in {call.script for call in calls if call.script is not None}:
                client.script_load(script.text)
        raise AssertionError("unreachable")

    def _send(self, call: _core.Call) -> Any:
        if call.script is None:
            return self.client.execute_command(*call.args)  # type: ignore[no-untyped-call]
        keys = call.keys
        try:
            return self.client.evalsha(call.script.sha, len(keys), *keys, *call.args)
        except NoScriptError:
            return self.client.eval(call.script.text, len(keys), *keys, *call.args)
