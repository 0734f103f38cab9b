"""The public surface: exported names, sync/async parity, and imports without extras."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import redis_chat_history
from redis_chat_history import AsyncChatHistoryStore, ChatHistoryStore

EXPECTED_ALL = {
    "AsyncChatHistoryStore", "ChatHistoryError", "ChatHistoryStore", "CommunityLayout",
    "CorruptMessageError", "DEFAULT_MAX_MESSAGE_BYTES", "Durability", "DurabilityUnsupportedError",
    "NotDurableError", "InvalidMessageError",
    "InvalidOptionError", "InvalidSessionIdError", "Layout", "MAX_SESSION_ID_LENGTH",
    "MemorystoreChatMessageHistory", "MemorystoreLayout", "MessageTooLargeError", "NativeLayout",
    "RedisChatMessageHistory", "WrongTypeError", "__version__", "aclose_shared_clients",
    "close_shared_clients", "redact_url",
    "MAX_TITLE_LENGTH", "OwnerConflictError", "ReindexReport", "SessionInfo", "SessionPage",
    "StoreSettings", "CorruptCheckpointError", "InvalidCheckpointError",
    "CorruptItemError", "InvalidItemError",
}  # fmt: skip


def test_all_is_the_public_surface() -> None:
    """``__all__`` lists exactly the public names, and each one resolves."""
    assert set(redis_chat_history.__all__) == EXPECTED_ALL
    for name in redis_chat_history.__all__:
        assert getattr(redis_chat_history, name) is not None


def test_langgraph_module_exports_savers_and_stores() -> None:
    """One import gives the checkpointers and the long-term memory stores."""
    langgraph = pytest.importorskip("redis_chat_history.langgraph")
    assert set(langgraph.__all__) == {
        "AsyncRedisSaver",
        "AsyncRedisStore",
        "RedisSaver",
        "RedisStore",
    }
    from redis_chat_history.langgraph_store import AsyncRedisStore, RedisStore

    assert langgraph.RedisStore is RedisStore and langgraph.AsyncRedisStore is AsyncRedisStore


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_sync_and_async_stores_mirror_each_other() -> None:
    """Both stores offer the same methods with the same parameters (close vs aclose)."""
    sync, asyncs = _public_methods(ChatHistoryStore), _public_methods(AsyncChatHistoryStore)
    sync["aclose"] = sync.pop("close")
    assert sync.keys() == asyncs.keys()
    for name, signature in sync.items():
        assert list(signature.parameters) == list(asyncs[name].parameters), name
        assert inspect.iscoroutinefunction(getattr(AsyncChatHistoryStore, name)) or name == (
            "session_ids"
        )


def test_core_imports_without_langchain() -> None:
    """The store works with langchain-core absent; the LangChain names explain the extra."""
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "import redis_chat_history as r\n"
        "assert 'langchain_core' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "r.ChatHistoryStore(url='redis://127.0.0.1:1')\n"
        "try:\n    r.RedisChatMessageHistory\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pip install 'redis-chat-history[langchain]'" in result.stdout


def test_importing_the_package_does_not_load_langchain() -> None:
    """``import redis_chat_history`` stays cheap: LangChain loads on first use."""
    code = "import sys, redis_chat_history; print('langchain_core' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_stores_are_made_from_settings_through_a_public_path() -> None:
    """with_settings takes checked settings and keeps every field; anything else is refused."""
    from redis_chat_history import InvalidOptionError, StoreSettings

    settings = StoreSettings.build(layout="community", ttl=60, max_messages=5, strict=False)
    for cls in (ChatHistoryStore, AsyncChatHistoryStore):
        store = cls.with_settings(settings, url="redis://127.0.0.1:1")
        assert store.settings is settings and store.config is settings
        plain = cls(url="redis://127.0.0.1:1", layout="community", ttl=60, max_messages=5,
                    strict=False)  # fmt: skip
        assert plain.settings == settings
        with pytest.raises(InvalidOptionError, match="StoreSettings"):
            cls.with_settings({"layout": "native"}, url="redis://127.0.0.1:1")  # type: ignore[arg-type]
