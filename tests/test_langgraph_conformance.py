"""LangGraph's conformance suite (langgraph-checkpoint-conformance 0.0.2) on our checkpointers.

The suite calls only the async methods (aput, aget_tuple, alist, ...), with a fresh saver per
capability; an extended capability (delete_for_runs, copy_thread, prune) is tested when the
saver overrides its async method. Both classes run it: AsyncRedisSaver, and RedisSaver, whose
async API must work as well as its sync one. Each runs over the server the fixtures start
(any ``--topology``), through our URL handling, with a prefix of its own.

LangGraph's own tests (the graph-level suite from the langgraph sdist) run through
scripts/langgraph_suite.sh instead: they take minutes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import AsyncIterator

import pytest

saver_module = pytest.importorskip(
    "redis_chat_history.langgraph", reason="the LangGraph checkpointer is not written yet"
)
conformance = pytest.importorskip(
    "langgraph.checkpoint.conformance", reason="langgraph-checkpoint-conformance not installed"
)

from langgraph.checkpoint.base import BaseCheckpointSaver  # noqa: E402
from langgraph.checkpoint.conformance.report import CapabilityReport  # noqa: E402

from redis_chat_history import aclose_shared_clients  # noqa: E402


def unique_prefix(kind: str) -> str:
    # os.urandom, not uuid4: LangGraph's tests patch uuid.uuid4, so keep the habit here too.
    return f"conf-{kind}-{os.urandom(4).hex()}"


def check(report: CapabilityReport) -> None:
    """Fail with the printed report and every failure message unless all capabilities passed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report.print_report()
    details = json.dumps(report.to_dict(), indent=2)
    assert report.passed_all_base(), f"base capabilities failed:\n{printed.getvalue()}{details}"
    assert report.passed_all(), f"extended capabilities failed:\n{printed.getvalue()}{details}"


async def test_async_saver(redis_url: str) -> None:
    """AsyncRedisSaver, opened as an async context manager, passes every capability it has."""

    @conformance.checkpointer_test(name="AsyncRedisSaver")
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        async with saver_module.AsyncRedisSaver.from_conn_string(
            redis_url, prefix=unique_prefix("async")
        ) as saver:
            await saver.asetup()
            yield saver

    try:
        report = await conformance.validate(factory)
    finally:
        await aclose_shared_clients()
    check(report)


async def test_sync_saver_serves_the_async_api(redis_url: str) -> None:
    """RedisSaver, opened as a sync context manager, passes the same (async) suite."""

    @conformance.checkpointer_test(name="RedisSaver")
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        with saver_module.RedisSaver.from_conn_string(
            redis_url, prefix=unique_prefix("sync")
        ) as saver:
            saver.setup()
            yield saver

    try:
        report = await conformance.validate(factory)
    finally:
        await aclose_shared_clients()
    check(report)


async def test_saver_with_owner_index_and_ttl(redis_url: str) -> None:
    """The options that change the write path (an owner index, a ttl on every key with
    refresh on read) keep every capability: the suite passes with them on."""

    @conformance.checkpointer_test(name="RedisSaver(owner_key, ttl)")
    async def factory() -> AsyncIterator[BaseCheckpointSaver]:
        with saver_module.RedisSaver.from_conn_string(
            redis_url,
            prefix=unique_prefix("owned"),
            owner_key="user_id",
            ttl={"default_ttl": 60, "refresh_on_read": True},
        ) as saver:
            yield saver

    try:
        report = await conformance.validate(factory)
    finally:
        await aclose_shared_clients()
    check(report)
