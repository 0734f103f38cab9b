"""Chat history for LLM applications in plain Redis, Valkey, Memorystore and ElastiCache.

The core stores (:class:`ChatHistoryStore`, :class:`AsyncChatHistoryStore`) need only
redis-py. The LangChain drop-ins (:class:`RedisChatMessageHistory`,
:class:`MemorystoreChatMessageHistory`) load on first use and need the ``langchain`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._clients import aclose_shared_clients, close_shared_clients, redact_url
from ._sessions_core import MAX_TITLE_LENGTH, ReindexReport, SessionInfo, SessionPage
from ._validate import MAX_SESSION_ID_LENGTH
from ._version import __version__
from .async_store import AsyncChatHistoryStore
from .codec import DEFAULT_MAX_MESSAGE_BYTES
from .durability import Durability
from .errors import (
    ChatHistoryError,
    CorruptCheckpointError,
    CorruptItemError,
    CorruptMessageError,
    DurabilityUnsupportedError,
    InvalidCheckpointError,
    InvalidItemError,
    InvalidMessageError,
    InvalidOptionError,
    InvalidSessionIdError,
    MessageTooLargeError,
    NotDurableError,
    OwnerConflictError,
    WrongTypeError,
)
from .layouts import CommunityLayout, Layout, MemorystoreLayout, NativeLayout
from .settings import StoreSettings
from .store import ChatHistoryStore

if TYPE_CHECKING:
    from .langchain import MemorystoreChatMessageHistory, RedisChatMessageHistory

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_SESSION_ID_LENGTH",
    "MAX_TITLE_LENGTH",
    "AsyncChatHistoryStore",
    "ChatHistoryError",
    "ChatHistoryStore",
    "CommunityLayout",
    "CorruptCheckpointError",
    "CorruptItemError",
    "CorruptMessageError",
    "Durability",
    "DurabilityUnsupportedError",
    "InvalidCheckpointError",
    "InvalidItemError",
    "InvalidMessageError",
    "InvalidOptionError",
    "InvalidSessionIdError",
    "Layout",
    "MemorystoreChatMessageHistory",
    "MemorystoreLayout",
    "MessageTooLargeError",
    "NativeLayout",
    "NotDurableError",
    "OwnerConflictError",
    "RedisChatMessageHistory",
    "ReindexReport",
    "SessionInfo",
    "SessionPage",
    "StoreSettings",
    "WrongTypeError",
    "__version__",
    "aclose_shared_clients",
    "close_shared_clients",
    "redact_url",
]

_LANGCHAIN_NAMES = frozenset({"RedisChatMessageHistory", "MemorystoreChatMessageHistory"})


def __getattr__(name: str) -> Any:
    """Load the LangChain classes only when asked for, so the core works without them."""
    if name in _LANGCHAIN_NAMES:
        try:
            from . import langchain
        except ImportError as exc:  # langchain-core missing
            raise ImportError(
                f"{name} needs langchain-core: pip install 'redis-chat-history[langchain]'"
            ) from exc
        return getattr(langchain, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
