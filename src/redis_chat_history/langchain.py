"""Drop-in replacements for the two LangChain chat histories people keep in Redis.

``RedisChatMessageHistory`` takes langchain-community's arguments and reads and writes its
data (``message_store:<id>``, newest first); ``MemorystoreChatMessageHistory`` takes
langchain-google-memorystore-redis's arguments and data (``<id>``, oldest first). Only the
import line changes. Both add one-round-trip atomic batches, exactly-once appends, native
asyncio methods, windowed reads and clear errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.messages.utils import count_tokens_approximately

from ._clients import AsyncClient, SyncClient, async_twin, redact_url
from ._validate import check_session_id
from .async_store import AsyncChatHistoryStore
from .codec import DEFAULT_MAX_MESSAGE_BYTES, Record
from .durability import Durability
from .errors import InvalidOptionError
from .layouts import CommunityLayout, Layout, MemorystoreLayout
from .settings import StoreSettings
from .store import ChatHistoryStore

__all__ = ["MemorystoreChatMessageHistory", "RedisChatMessageHistory"]


# Types whose constructor only forwards its keyword arguments to pydantic validation
# (their __init__ adds nothing unless "content_blocks" is given). RemoveMessage is not here.
_VALIDATED_TYPES: dict[str, type[BaseMessage]] = {
    "human": HumanMessage, "ai": AIMessage, "system": SystemMessage, "chat": ChatMessage,
    "function": FunctionMessage, "tool": ToolMessage, "AIMessageChunk": AIMessageChunk,
    "HumanMessageChunk": HumanMessageChunk, "SystemMessageChunk": SystemMessageChunk,
    "ChatMessageChunk": ChatMessageChunk, "FunctionMessageChunk": FunctionMessageChunk,
    "ToolMessageChunk": ToolMessageChunk,
}  # fmt: skip


def record_to_message(record: Record) -> BaseMessage:
    """One stored record as a LangChain message, equal to what ``messages_from_dict`` returns.

    For the common types the record is validated straight into a new instance, skipping
    the constructors' keyword plumbing, which costs more than the validation on long
    histories; anything else goes through ``messages_from_dict``.
    """
    cls = _VALIDATED_TYPES.get(record["type"])
    data = record["data"]
    if cls is None or "content_blocks" in data:
        return messages_from_dict([record])[0]
    return _validated_message(cls, data)


def _validated_message(cls: type[BaseMessage], data: Any) -> BaseMessage:
    """A new ``cls`` validated from ``data``: exactly what pydantic's ``BaseModel.__init__``
    does, without LangChain's constructor around it. The one use of a pydantic internal
    (``__pydantic_validator__``); tests/test_message_conversion.py pins its behaviour
    against ``messages_from_dict`` for every class above."""
    message = cls.__new__(cls)
    cls.__pydantic_validator__.validate_python(data, self_instance=message)
    return message


def _check_window(name: str, window: Any) -> int | None:
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 1
    ):
        raise InvalidOptionError(f"{name} must be None or an int >= 1, got {window!r}")
    return window


def approximate_tokens(message: BaseMessage) -> int:
    """langchain-core's ``count_tokens_approximately`` for one message: the default
    counter of ``window_tokens`` (pass ``token_counter=`` for a model's tokenizer)."""
    return count_tokens_approximately([message])


class _RedisHistory(BaseChatMessageHistory):
    """What both drop-ins share: a sync store, an asyncio store made on demand, a window."""

    def __init__(
        self,
        session_id: str,
        config: StoreSettings,
        *,
        client: SyncClient | None,
        async_client: AsyncClient | None,
        url: str | None,
        window: int | None,
        window_tokens: int | None,
        token_counter: Callable[[BaseMessage], int] | None,
    ) -> None:
        self.session_id = check_session_id(session_id)
        self.window = _check_window("window", window)
        self.window_tokens = _check_window("window_tokens", window_tokens)
        if token_counter is not None and not callable(token_counter):
            raise InvalidOptionError("token_counter must be a callable taking one message")
        self.token_counter = token_counter or approximate_tokens
        self._config = config
        self._url = url
        self._sync_client = client
        self._async_client = async_client
        self._store: ChatHistoryStore | None = None
        self._async_store: tuple[asyncio.AbstractEventLoop, AsyncChatHistoryStore] | None = None

    def __repr__(self) -> str:
        where = f"url={redact_url(self._url)!r}" if self._url else "client"
        return (
            f"{type(self).__name__}(session_id={self.session_id!r}, {where}, "
            f"layout={self._config.layout!r})"
        )

    @property
    def store(self) -> ChatHistoryStore:
        """The synchronous store behind this history."""
        if self._store is None:
            self._store = ChatHistoryStore.with_settings(
                self._config, client=self._sync_client, url=self._url
            )
        return self._store

    @property
    def async_store(self) -> AsyncChatHistoryStore:
        """The asyncio store behind this history, for the running event loop."""
        loop = asyncio.get_running_loop()
        if self._async_store is None or self._async_store[0] is not loop:
            client: AsyncClient | None = self._async_client
            if client is None and self._url is None:
                assert self._sync_client is not None
                client = async_twin(self._sync_client)
            store = AsyncChatHistoryStore.with_settings(self._config, client=client, url=self._url)
            self._async_store = (loop, store)
        return self._async_store[1]

    @property
    def key(self) -> str:
        """The Redis key of this session's message list."""
        return self._config.layout.messages_key(self.session_id)

    @property
    def messages(self) -> list[BaseMessage]:
        """The conversation, oldest first; with ``window`` and/or ``window_tokens`` only
        the newest messages within them, cut where no tool call loses its results."""
        return self.get_messages(last=self.window, max_tokens=self.window_tokens)

    @messages.setter
    def messages(self, messages: list[BaseMessage]) -> None:
        raise NotImplementedError(
            "Direct assignment to 'messages' is not allowed. Use the 'add_messages' instead."
        )

    def get_messages(
        self, last: int | None = None, max_tokens: int | None = None
    ) -> list[BaseMessage]:
        """All messages, or a window: at most the newest ``last`` messages and
        ``max_tokens`` tokens, oldest first, cut where no tool call loses its results
        (reading only the newest messages)."""
        return self.store.messages(
            self.session_id,
            last=last,
            max_tokens=max_tokens,
            token_counter=self.token_counter,
            convert=record_to_message,
        )

    async def aget_messages(
        self, last: int | None = None, max_tokens: int | None = None
    ) -> list[BaseMessage]:
        """Async twin of :meth:`get_messages`; without arguments, of :attr:`messages`
        (the ``window`` and ``window_tokens``)."""
        if last is None and max_tokens is None:
            last, max_tokens = self.window, self.window_tokens
        return await self.async_store.messages(
            self.session_id,
            last=last,
            max_tokens=max_tokens,
            token_counter=self.token_counter,
            convert=record_to_message,
        )

    def add_message(self, message: BaseMessage) -> None:
        """Store one message (one round trip, exactly once)."""
        self.add_messages([message])

    def add_messages(
        self, messages: Sequence[BaseMessage], *, idempotency_key: str | None = None
    ) -> None:
        """Store a batch in one round trip, atomically and exactly once. With
        ``idempotency_key`` (a client message id, say) sending the same batch again within
        10 minutes does not store it twice (see ChatHistoryStore.append)."""
        if messages:
            records = [message_to_dict(m) for m in messages]
            self.store.append(self.session_id, records, idempotency_key=idempotency_key)

    async def aadd_messages(
        self, messages: Sequence[BaseMessage], *, idempotency_key: str | None = None
    ) -> None:
        """Async twin of :meth:`add_messages`."""
        if messages:
            records = [message_to_dict(m) for m in messages]
            await self.async_store.append(self.session_id, records, idempotency_key=idempotency_key)

    def clear(self) -> None:
        """Delete this session's messages."""
        self.store.clear(self.session_id)

    async def aclear(self) -> None:
        """Async twin of :meth:`clear`."""
        await self.async_store.clear(self.session_id)


class RedisChatMessageHistory(_RedisHistory):
    """langchain-community's ``RedisChatMessageHistory``, same arguments and data.

    Keyword-only extras: ``client``/``async_client`` (use these redis-py clients instead
    of ``url``), ``layout`` (default: community with ``key_prefix``), ``max_messages``
    (keep at most the newest N), ``window`` (``.messages`` returns at most the newest N),
    ``window_tokens`` (and at most N tokens, counted by ``token_counter``; default:
    ``count_tokens_approximately``), ``start_on`` (``"human"``, the default, or
    ``"any"``) and ``keep_system`` (keep a leading system message) for how windows and
    trims are cut so that no tool call loses its results (README: "Windows"), ``strict``,
    ``max_message_bytes``, ``retry_deadline`` (seconds to keep retrying
    through a failover; appends stay exactly-once) and ``durability`` (e.g.
    ``"replicas=1"``: wait for a replica; see :mod:`redis_chat_history.durability`).
    """

    def __init__(
        self,
        session_id: str,
        url: str = "redis://localhost:6379/0",
        key_prefix: str = "message_store:",
        ttl: int | None = None,
        *,
        client: SyncClient | None = None,
        async_client: AsyncClient | None = None,
        layout: Layout | str | None = None,
        max_messages: int | None = None,
        window: int | None = None,
        window_tokens: int | None = None,
        token_counter: Callable[[BaseMessage], int] | None = None,
        start_on: str = "human",
        keep_system: bool = False,
        strict: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retry_deadline: float = 15.0,
        durability: Durability | str | None = None,
    ) -> None:
        config = StoreSettings.build(
            layout=CommunityLayout(key_prefix) if layout is None else layout,
            ttl=ttl,
            max_messages=max_messages,
            start_on=start_on,
            keep_system=keep_system,
            max_message_bytes=max_message_bytes,
            strict=strict,
            retry_deadline=retry_deadline,
            durability=durability,
        )
        self.key_prefix = key_prefix
        self.ttl = ttl
        use_url = None if client is not None else url
        super().__init__(
            session_id,
            config,
            client=client,
            async_client=async_client,
            url=use_url,
            window=window,
            window_tokens=window_tokens,
            token_counter=token_counter,
        )

    @property
    def redis_client(self) -> SyncClient:
        """The synchronous redis-py client (shared per URL; created without I/O)."""
        return self.store.client


class MemorystoreChatMessageHistory(_RedisHistory):
    """langchain-google-memorystore-redis's ``MemorystoreChatMessageHistory``, same
    arguments (the client comes first) and data. Accepts ``redis.Redis`` and
    ``redis.cluster.RedisCluster`` clients, with or without ``decode_responses``.

    Keyword-only extras as for :class:`RedisChatMessageHistory`; async methods use
    ``async_client`` if given, else an asyncio client with the same connection settings.
    """

    def __init__(
        self,
        client: SyncClient,
        session_id: str,
        ttl: int | None = None,
        *,
        async_client: AsyncClient | None = None,
        layout: Layout | str | None = None,
        max_messages: int | None = None,
        window: int | None = None,
        window_tokens: int | None = None,
        token_counter: Callable[[BaseMessage], int] | None = None,
        start_on: str = "human",
        keep_system: bool = False,
        strict: bool = True,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retry_deadline: float = 15.0,
        durability: Durability | str | None = None,
    ) -> None:
        if not isinstance(client, (redis.Redis, redis.cluster.RedisCluster)):
            raise InvalidOptionError(
                "client must be a redis.Redis or redis.cluster.RedisCluster, not "
                f"{type(client).__name__}"
            )
        config = StoreSettings.build(
            layout=MemorystoreLayout() if layout is None else layout,
            ttl=ttl,
            max_messages=max_messages,
            start_on=start_on,
            keep_system=keep_system,
            max_message_bytes=max_message_bytes,
            strict=strict,
            retry_deadline=retry_deadline,
            durability=durability,
        )
        super().__init__(
            session_id,
            config,
            client=client,
            async_client=async_client,
            url=None,
            window=window,
            window_tokens=window_tokens,
            token_counter=token_counter,
        )
        # The attribute names upstream used, for code that reached into them.
        self._redis = client
        self._key = self.key
        self._ttl = ttl
