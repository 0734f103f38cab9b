# ---------------------------------------------------------------------------------------------
# Appended to LangGraph's tests/conftest.py by scripts/langgraph_suite.sh (redis-chat-history).
# Re-binding the fixture names at the end of conftest.py replaces the upstream definitions.
#
# LG_SUITE_MODE:
#   ours      sync_checkpointer = our RedisSaver, async_checkpointer = our AsyncRedisSaver, on
#             the redis-server at LG_SUITE_REDIS_URL, each test under a prefix of its own
#   memory    the same fixtures with langgraph's InMemorySaver standing in for our classes
#             (proves the harness before, or without, redis_chat_history.langgraph)
#   baseline  LangGraph's own in-memory fixture (MemorySaverAssertImmutable) for both
# LG_SUITE_CROSS=1 adds each class serving the other API: params ours_cross / ours_aio_cross.
# LG_SUITE_AES=1 adds both classes with LangGraph's AES EncryptedSerializer as serde=, as
#   upstream's sqlite_aes fixture: params ours_aes / ours_aio_aes.
# LANGGRAPH_STRICT_MSGPACK=true is honoured as upstream's fixtures honour it (it replaces
#   saver.serde after construction).
# LG_SUITE_OUTCOMES names a file that gets one JSON line per failed, passed or skipped test.
#
# Prefixes come from os.urandom, never uuid.uuid4: tests such as test_message_graph patch
# uuid.uuid4 (the deterministic_uuids fixture) and one extra call shifts every later id.
# ---------------------------------------------------------------------------------------------
import json as _lg_suite_json
import os as _lg_suite_os
from collections.abc import AsyncIterator as _LgSuiteAsyncIterator
from collections.abc import Iterator as _LgSuiteIterator
from contextlib import asynccontextmanager as _lg_suite_acm
from contextlib import contextmanager as _lg_suite_cm
from typing import Any as _LgSuiteAny

import pytest as _lg_suite_pytest

try:
    from tests.conftest_checkpointer import _apply_strict_msgpack as _lg_suite_strict
except ImportError:  # an sdist without it

    def _lg_suite_strict(checkpointer: _LgSuiteAny) -> None:
        pass


from tests.conftest_checkpointer import _checkpointer_memory as _lg_suite_upstream_memory

LG_SUITE_MODE = _lg_suite_os.environ.get("LG_SUITE_MODE", "baseline")
LG_SUITE_URL = _lg_suite_os.environ.get("LG_SUITE_REDIS_URL", "")
LG_SUITE_CROSS = _lg_suite_os.environ.get("LG_SUITE_CROSS") == "1"
LG_SUITE_AES = _lg_suite_os.environ.get("LG_SUITE_AES") == "1"
LG_SUITE_STRICT = _lg_suite_os.environ.get("LANGGRAPH_STRICT_MSGPACK", "false").lower() in (
    "1",
    "true",
    "yes",
)
LG_SUITE_OUTCOMES = _lg_suite_os.environ.get("LG_SUITE_OUTCOMES")
if LG_SUITE_MODE not in ("ours", "memory", "baseline"):
    raise ValueError(f"LG_SUITE_MODE={LG_SUITE_MODE!r}: expected ours, memory or baseline")


LG_SUITE_SYNC_PARAMS = [
    "ours",
    *(["ours_aes"] if LG_SUITE_AES else []),
    *(["ours_cross"] if LG_SUITE_CROSS else []),
]
LG_SUITE_ASYNC_PARAMS = [
    "ours_aio",
    *(["ours_aio_aes"] if LG_SUITE_AES else []),
    *(["ours_aio_cross"] if LG_SUITE_CROSS else []),
]


def _lg_suite_options(param: str) -> dict[str, _LgSuiteAny]:
    """Constructor options: a prefix of the test's own, and for *_aes an EncryptedSerializer
    built as upstream's sqlite_aes fixture builds it."""
    options: dict[str, _LgSuiteAny] = {"prefix": "lgt" + _lg_suite_os.urandom(6).hex()}
    if param.endswith("_aes"):
        from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

        strict = {"serde": JsonPlusSerializer(allowed_msgpack_modules=None)}
        options["serde"] = EncryptedSerializer.from_pycryptodome_aes(
            key=b"1234567890123456", **(strict if LG_SUITE_STRICT else {})
        )
    return options


def _lg_suite_strict_unless_aes(saver: _LgSuiteAny, param: str) -> None:
    if not param.endswith("_aes"):  # the AES serializer has strict msgpack inside already
        _lg_suite_strict(saver)


def _lg_suite_classes() -> tuple[_LgSuiteAny, _LgSuiteAny]:
    """(sync class, async class) under test."""
    if LG_SUITE_MODE == "ours":
        from redis_chat_history.langgraph import AsyncRedisSaver, RedisSaver

        return RedisSaver, AsyncRedisSaver
    from langgraph.checkpoint.memory import InMemorySaver

    class StandInRedisSaver(InMemorySaver):
        """InMemorySaver with our constructor, context managers and setup."""

        def __init__(self, redis_url: str | None = None, **options: _LgSuiteAny) -> None:
            super().__init__(serde=options.get("serde"))

        @classmethod
        @_lg_suite_cm
        def from_conn_string(
            cls, url: str, **options: _LgSuiteAny
        ) -> _LgSuiteIterator[_LgSuiteAny]:
            yield cls(url, **options)

        def setup(self) -> None:
            pass

        async def asetup(self) -> None:
            pass

    class StandInAsyncRedisSaver(StandInRedisSaver):
        @classmethod
        @_lg_suite_acm
        async def from_conn_string(  # type: ignore[override]
            cls, url: str, **options: _LgSuiteAny
        ) -> _LgSuiteAsyncIterator[_LgSuiteAny]:
            yield cls(url, **options)

    return StandInRedisSaver, StandInAsyncRedisSaver


async def _lg_suite_close_twins() -> None:
    """Close the asyncio clients a sync saver may have made for its async API."""
    try:
        from redis_chat_history import aclose_shared_clients
    except ImportError:
        return
    await aclose_shared_clients()


@_lg_suite_pytest.fixture(scope="session", autouse=True)
def _lg_suite_server() -> None:
    """Fail fast when the suite's redis-server is not answering."""
    if LG_SUITE_MODE != "baseline":
        import redis

        client = redis.Redis.from_url(LG_SUITE_URL)
        try:
            client.ping()
        finally:
            client.close()


if LG_SUITE_MODE == "baseline":

    @_lg_suite_pytest.fixture(scope="function", params=["memory"])
    def sync_checkpointer(request: _LgSuiteAny) -> _LgSuiteAny:
        with _lg_suite_upstream_memory() as checkpointer:
            yield checkpointer

    @_lg_suite_pytest.fixture(scope="function", params=["memory"])
    async def async_checkpointer(request: _LgSuiteAny) -> _LgSuiteAny:
        with _lg_suite_upstream_memory() as checkpointer:
            yield checkpointer

else:

    @_lg_suite_pytest.fixture(scope="function", params=LG_SUITE_SYNC_PARAMS)
    def sync_checkpointer(request: _LgSuiteAny) -> _LgSuiteAny:
        sync_class, async_class = _lg_suite_classes()
        options = _lg_suite_options(request.param)
        if request.param != "ours_cross":
            with sync_class.from_conn_string(LG_SUITE_URL, **options) as saver:
                saver.setup()
                _lg_suite_strict_unless_aes(saver, request.param)
                yield saver
        else:  # the async class serving the sync API
            saver = async_class(redis_url=LG_SUITE_URL, **options)
            saver.setup()
            _lg_suite_strict(saver)
            yield saver
            close = getattr(saver, "close", None)
            if close is not None:
                close()

    @_lg_suite_pytest.fixture(scope="function", params=LG_SUITE_ASYNC_PARAMS)
    async def async_checkpointer(request: _LgSuiteAny) -> _LgSuiteAny:
        sync_class, async_class = _lg_suite_classes()
        options = _lg_suite_options(request.param)
        if request.param != "ours_aio_cross":
            async with async_class.from_conn_string(LG_SUITE_URL, **options) as saver:
                await saver.asetup()
                _lg_suite_strict_unless_aes(saver, request.param)
                yield saver
        else:  # the sync class serving the async API
            with sync_class.from_conn_string(LG_SUITE_URL, **options) as saver:
                saver.setup()
                _lg_suite_strict(saver)
                yield saver
        await _lg_suite_close_twins()


def _lg_suite_record(nodeid: str, outcome: str) -> None:
    if LG_SUITE_OUTCOMES:
        with open(LG_SUITE_OUTCOMES, "a", encoding="utf-8") as out:
            out.write(_lg_suite_json.dumps({"nodeid": nodeid, "outcome": outcome}) + "\n")


def pytest_runtest_logreport(report: _LgSuiteAny) -> None:
    if report.failed:
        _lg_suite_record(
            report.nodeid, "failed" if report.when == "call" else f"{report.when} error"
        )
    elif report.when == "call":
        _lg_suite_record(
            report.nodeid, "xfailed" if hasattr(report, "wasxfail") else report.outcome
        )
    elif report.skipped:
        _lg_suite_record(report.nodeid, "skipped")


def pytest_collectreport(report: _LgSuiteAny) -> None:
    if report.failed:
        _lg_suite_record(report.nodeid or "<collection>", "collection error")
