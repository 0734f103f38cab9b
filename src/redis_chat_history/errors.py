"""The exceptions this package raises.

Everything derives from :class:`ChatHistoryError`, so one ``except`` catches all of them::

    ChatHistoryError
    ├── InvalidSessionIdError      (also ValueError) the session id cannot be used
    ├── InvalidOptionError         (also ValueError) a ttl, limit or layout option is wrong
    ├── InvalidMessageError        (also ValueError) a message cannot be stored as given
    │   └── MessageTooLargeError   the encoded message is over the size limit
    ├── CorruptMessageError        (also ValueError) a stored value is not a message
    ├── InvalidCheckpointError     (also ValueError) a checkpoint, namespace or write is wrong
    ├── CorruptCheckpointError     (also ValueError) a stored checkpoint value is unreadable
    ├── InvalidItemError           (also ValueError) a LangGraph store item cannot be stored
    ├── CorruptItemError           (also ValueError) a stored LangGraph store item is unreadable
    ├── WrongTypeError             (also TypeError)  a key holds another Redis type
    ├── OwnerConflictError         (also ValueError) the session belongs to another owner
    ├── NotDurableError            written, but the durability level was not reached
    └── DurabilityUnsupportedError the level cannot be confirmed here; nothing written

Errors from Redis itself (connection refused, timeouts, ...) are redis-py's own
``redis.exceptions.RedisError`` subclasses and pass through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .durability import Durability

__all__ = [
    "ChatHistoryError",
    "CorruptCheckpointError",
    "CorruptItemError",
    "CorruptMessageError",
    "DurabilityUnsupportedError",
    "InvalidCheckpointError",
    "InvalidItemError",
    "InvalidMessageError",
    "InvalidOptionError",
    "InvalidSessionIdError",
    "MessageTooLargeError",
    "NotDurableError",
    "OwnerConflictError",
    "WrongTypeError",
]


class ChatHistoryError(Exception):
    """Base class of every error raised by redis-chat-history."""


class InvalidSessionIdError(ChatHistoryError, ValueError):
    """The session id is not a non-empty string of printable characters within the length limit."""


class InvalidOptionError(ChatHistoryError, ValueError):
    """A store option (ttl, max_messages, size limit, layout, ...) has a wrong type or value."""


class InvalidMessageError(ChatHistoryError, ValueError):
    """A message record cannot be stored: it is not a ``{"type": ..., "data": {...}}`` mapping
    or it is not JSON-serialisable. Nothing of its batch was written."""


class MessageTooLargeError(InvalidMessageError):
    """The encoded message is larger than the store's ``max_message_bytes``."""

    def __init__(self, size: int, limit: int, position: int) -> None:
        super().__init__(
            f"message {position} of the batch encodes to {size} bytes, over the limit of "
            f"{limit} bytes (max_message_bytes); nothing of the batch was written"
        )
        self.size = size
        self.limit = limit
        self.position = position


class CorruptMessageError(ChatHistoryError, ValueError):
    """A value stored in the session's list is not valid JSON or not a message record.

    ``key`` is the Redis key and ``index`` the element's index in that list (as ``LINDEX``
    counts), so it can be inspected with ``redis-cli LINDEX key index``.
    """

    def __init__(self, key: str, index: int, reason: str) -> None:
        super().__init__(f"corrupt message at {key!r} index {index}: {reason}")
        self.key = key
        self.index = index
        self.reason = reason


class InvalidCheckpointError(ChatHistoryError, ValueError):
    """A LangGraph checkpoint, config, namespace or write cannot be stored as given (a NUL
    in a namespace, a missing thread id, ...); nothing was written."""


class CorruptCheckpointError(ChatHistoryError, ValueError):
    """A stored checkpoint value cannot be read (by the saver's serializer); other data
    is untouched. ``key`` and ``field`` say where it is."""

    def __init__(self, key: str, field: str, reason: str) -> None:
        self.key, self.field, self.reason = key, field, reason
        super().__init__(f"checkpoint data at {key!r} field {field!r} cannot be read: {reason}")


class InvalidItemError(ChatHistoryError, ValueError):
    """A LangGraph store item cannot be stored as given (its value is not a JSON object,
    is over the size limit, or its key is not a str); nothing of its batch was written."""


class CorruptItemError(ChatHistoryError, ValueError):
    """A stored LangGraph store item cannot be read; ``key`` is its Redis key. Other items
    are untouched."""

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"store item at {key!r} cannot be read: {reason}")


class WrongTypeError(ChatHistoryError, TypeError):
    """A key the session needs holds another Redis type (e.g. a string where a list belongs)."""

    def __init__(self, key: str, expected: str, actual: str | None = None) -> None:
        found = f"a {actual}" if actual else "another type"
        super().__init__(f"key {key!r} holds {found}, not a {expected}; it was left untouched")
        self.key = key
        self.expected = expected
        self.actual = actual


class OwnerConflictError(ChatHistoryError, ValueError):
    """``create_session`` named an owner, but the session already belongs to another one.

    Nothing was changed. The other owner is not named, so the message is safe to show to
    the user who asked.
    """


class NotDurableError(ChatHistoryError):
    """The append WAS applied on the primary, but the durability level was not reached in
    time (too few replicas acknowledged, or the AOF was not fsynced). It is not rolled back.

    Retrying is safe only with the same idempotency key: ``append(...,
    idempotency_key=error.idempotency_key)`` within the retry window (10 minutes) finds the
    batch already stored and only waits again; a retry without it stores the batch twice.
    """

    def __init__(
        self,
        level: Durability,
        *,
        replicas: int,
        fsynced: bool,
        idempotency_key: str | None = None,
    ) -> None:
        missing = []
        if level.replicas > replicas:
            missing.append(f"{replicas} of {level.replicas} replicas acknowledged it")
        if level.fsync and not fsynced:
            missing.append("the primary did not fsync it to its AOF")
        retry = (
            f"; retry with idempotency_key={idempotency_key!r} to wait again without storing "
            "it twice"
            if idempotency_key is not None
            else ""
        )
        super().__init__(
            f"the append was written to the primary but is not yet durable ({level}): "
            f"{' and '.join(missing)} within {level.timeout_ms} ms; it was not rolled back" + retry
        )
        self.written = True
        self.level = level
        self.replicas = replicas
        self.fsynced = fsynced
        self.idempotency_key = idempotency_key


class DurabilityUnsupportedError(ChatHistoryError):
    """The server cannot confirm this durability level (WAITAOF needs Redis/Valkey 7.2+),
    or the client cannot (WAIT needs one primary connection, not a Redis Cluster client).
    Raised before anything is written."""
