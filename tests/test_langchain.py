"""The LangChain drop-ins against a real server: upstream usage, signatures and the extras."""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from pydantic import Field
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_chat_history import (
    CorruptMessageError,
    InvalidMessageError,
    InvalidOptionError,
    MemorystoreChatMessageHistory,
    RedisChatMessageHistory,
)

History = RedisChatMessageHistory | MemorystoreChatMessageHistory
Track = Callable[[History], History]
KINDS = ["community", "memorystore"]


def make(kind: str, session_id: str, redis_url: str, client: redis.Redis, **options: Any) -> Any:
    """A community history from the URL, or a Memorystore history over the bytes client."""
    if kind == "community":
        return RedisChatMessageHistory(session_id, url=redis_url, **options)
    return MemorystoreChatMessageHistory(client, session_id, **options)


def chronological(kind: str, elements: list[bytes]) -> list[bytes]:
    return elements[::-1] if kind == "community" else elements


@contextmanager
def sent_commands(redis_url: str) -> Iterator[list[str]]:
    """Names of the commands clients sent meanwhile (not those a script ran), via MONITOR.

    MONITOR shows commands run inside a Lua script with the client type ``lua`` (the slow
    log cannot tell them apart on Valkey, which logs them with the caller's address). An
    ECHO of a random marker ends the recording.
    """
    marker = f"end-of-recording-{uuid.uuid4().hex}"
    admin = redis.Redis.from_url(redis_url)
    ender = redis.Redis.from_url(redis_url)
    ender.ping()  # its handshake happens before the recording
    seen: list[dict[str, Any]] = []
    started = threading.Event()

    def record() -> None:
        with admin.monitor() as monitor:
            started.set()
            for command in monitor.listen():
                if marker in command["command"]:
                    return
                seen.append(command)

    recorder = threading.Thread(target=record, daemon=True)
    recorder.start()
    started.wait(5)
    sent: list[str] = []
    try:
        yield sent
    finally:
        ender.echo(marker)
        recorder.join(10)
        ender.close()
        admin.close()
    for command in seen:
        if command.get("client_type") != "lua":
            sent.append(command["command"].split()[0].upper())


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- The upstream README snippets, only the import changed --------------------------------


def test_community_readme_snippet(redis_url: str) -> None:
    """langchain-community's documented usage works unchanged."""
    history = RedisChatMessageHistory("foo", url=redis_url)
    history.add_user_message("hi!")
    history.add_ai_message("whats up?")
    assert history.messages == [HumanMessage("hi!"), AIMessage("whats up?")]


def test_memorystore_readme_snippet(redis_url: str) -> None:
    """langchain-google-memorystore-redis's documented usage works unchanged."""
    redis_client = redis.from_url(redis_url)
    message_history = MemorystoreChatMessageHistory(redis_client, session_id="my-session")
    message_history.add_user_message("hi!")
    assert message_history.messages == [HumanMessage("hi!")]
    message_history.clear()
    assert message_history.messages == []
    assert redis_client.exists("my-session") == 0
    redis_client.close()


class EchoModel(BaseChatModel):
    """A chat model that records every input and answers ``echo: <last message>``."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _reply(self, messages: list[BaseMessage]) -> str:
        self.seen.append(list(messages))
        return f"echo: {messages[-1].content}"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._reply(messages)))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        for part in (reply[:5], reply[5:]):
            yield ChatGenerationChunk(message=AIMessageChunk(content=part))


def test_runnable_with_history_docs_snippet(redis_url: str) -> None:
    """The LangChain docs' RunnableWithMessageHistory + Redis example works unchanged."""
    model = EchoModel()
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You're an assistant."),
            MessagesPlaceholder(variable_name="history"),
            ("human", "{question}"),
        ]
    )
    chain_with_history = RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: RedisChatMessageHistory(session_id, url=redis_url),
        input_messages_key="question",
        history_messages_key="history",
    )
    config: Any = {"configurable": {"session_id": "foo"}}
    chain_with_history.invoke({"question": "Hi! I'm bob"}, config=config)
    answer = chain_with_history.invoke({"question": "Whats my name"}, config=config)
    assert answer.content == "echo: Whats my name"
    assert [m.content for m in model.seen[1]] == [
        "You're an assistant.",
        "Hi! I'm bob",
        "echo: Hi! I'm bob",
        "Whats my name",
    ]


# --- Signatures and attributes -------------------------------------------------------------

POK = inspect.Parameter.POSITIONAL_OR_KEYWORD
EMPTY = inspect.Parameter.empty


def test_signatures_match_upstream() -> None:
    """Positional parameters, names and defaults are upstream's; our extras are keyword-only."""
    community = list(inspect.signature(RedisChatMessageHistory).parameters.values())
    assert [(p.name, p.kind, p.default) for p in community[:4]] == [
        ("session_id", POK, EMPTY),
        ("url", POK, "redis://localhost:6379/0"),
        ("key_prefix", POK, "message_store:"),
        ("ttl", POK, None),
    ]
    memorystore = list(inspect.signature(MemorystoreChatMessageHistory).parameters.values())
    assert [(p.name, p.kind, p.default) for p in memorystore[:3]] == [
        ("client", POK, EMPTY),
        ("session_id", POK, EMPTY),
        ("ttl", POK, None),
    ]
    for extra in community[4:] + memorystore[3:]:
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY


def test_community_defaults_without_io() -> None:
    """The defaults are upstream's (URL ``redis://localhost:6379/0``, ``message_store:``)."""
    history = RedisChatMessageHistory("s")
    assert (history.session_id, history.key_prefix, history.ttl) == ("s", "message_store:", None)
    assert history.key == "message_store:s"
    kwargs = history.redis_client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)


def test_community_positional_arguments(redis_url: str, client: redis.Redis) -> None:
    """``RedisChatMessageHistory(session_id, url, key_prefix, ttl)`` as upstream."""
    history = RedisChatMessageHistory("s", redis_url, "myapp:", 60)
    assert (history.session_id, history.key_prefix, history.ttl) == ("s", "myapp:", 60)
    assert history.key == "myapp:s"
    assert isinstance(history.redis_client, redis.Redis)
    history.add_user_message("hi")
    assert client.lrange("myapp:s", 0, -1) == [
        json.dumps(message_to_dict(HumanMessage("hi"))).encode()
    ]
    assert 58 <= client.ttl("myapp:s") <= 60
    assert history.redis_client.llen("myapp:s") == 1


def test_memorystore_positional_arguments(client: redis.Redis) -> None:
    """``MemorystoreChatMessageHistory(client, session_id, ttl)`` with upstream's attributes."""
    history = MemorystoreChatMessageHistory(client, "s", 60)
    assert history.session_id == "s" and history.key == "s"
    assert history._redis is client and history._key == "s" and history._ttl == 60
    history.add_user_message("hi")
    assert client.lrange("s", 0, -1) == [json.dumps(message_to_dict(HumanMessage("hi"))).encode()]
    assert 58 <= client.ttl("s") <= 60
    with pytest.raises(TypeError):
        MemorystoreChatMessageHistory(redis_client=client, session_id="s")  # type: ignore[call-arg]


# --- No I/O in the constructor ---------------------------------------------------------------


def test_community_constructor_does_no_io() -> None:
    """Building against a port nobody listens on succeeds; the first operation fails."""
    port = closed_port()
    history = RedisChatMessageHistory("s", url=f"redis://127.0.0.1:{port}/0", retry_deadline=0)
    assert history.key == "message_store:s"
    with pytest.raises(redis.ConnectionError):
        history.messages  # noqa: B018
    # With the topology given, even the client is made without asking the server.
    forced = RedisChatMessageHistory("s", url=f"redis://127.0.0.1:{port}/0?cluster=no")
    assert isinstance(forced.redis_client, redis.Redis)


async def test_memorystore_constructor_does_no_io(track: Track) -> None:
    """Same for Memorystore, sync and async (the derived asyncio client fails the same way)."""
    client = redis.Redis(host="127.0.0.1", port=closed_port(), retry=Retry(NoBackoff(), 0))
    history = track(MemorystoreChatMessageHistory(client, "s", retry_deadline=0))
    with pytest.raises(redis.ConnectionError):
        history.add_user_message("hi")
    with pytest.raises(redis.ConnectionError):
        await history.aget_messages()
    client.close()


# --- Batches: one round trip, atomic ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_add_messages_is_one_command(
    kind: str, redis_url: str, client: redis.Redis, track: Track
) -> None:
    """A batch of any size is one EVALSHA, sync and async; a single message too."""
    history = track(make(kind, "s", redis_url, client))
    history.add_user_message("warm up")  # connection handshake and script load
    await history.aadd_messages([HumanMessage("warm up")])
    with sent_commands(redis_url) as sent:
        history.add_messages([HumanMessage(f"m{i}") for i in range(50)])
    assert sent == ["EVALSHA"]
    with sent_commands(redis_url) as sent:
        await history.aadd_messages([AIMessage(f"a{i}") for i in range(50)])
    assert sent == ["EVALSHA"]
    with sent_commands(redis_url) as sent:
        history.add_ai_message("one more")
    assert sent == ["EVALSHA"]
    with sent_commands(redis_url) as sent:
        assert len(history.messages) == 103
    assert sent == ["LRANGE"]


@pytest.mark.parametrize("kind", KINDS)
async def test_bad_batch_writes_nothing(
    kind: str, redis_url: str, client: redis.Redis, track: Track
) -> None:
    """A batch with one non-serialisable message leaves the history as it was (sync, async)."""
    history = track(make(kind, "s", redis_url, client))
    history.add_user_message("kept")
    snapshot = client.lrange(history.key, 0, -1)
    bad = [HumanMessage("ok"), AIMessage("x", additional_kwargs={"blob": b"\x00raw"})]
    with sent_commands(redis_url) as sent:
        with pytest.raises(InvalidMessageError):
            history.add_messages(bad)
        with pytest.raises(InvalidMessageError):
            await history.aadd_messages(bad)
    assert sent == []
    assert client.lrange(history.key, 0, -1) == snapshot
    assert history.messages == [HumanMessage("kept")]


# --- TTL --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ttl_is_set_on_write(kind: str, redis_url: str, client: redis.Redis) -> None:
    """ttl=60 leaves TTL ~60 after each write; ttl=0 and None mean no expiry, as upstream."""
    history = make(kind, "with-ttl", redis_url, client, ttl=60)
    history.add_user_message("hi")
    assert 58 <= client.ttl(history.key) <= 60
    client.expire(history.key, 10)
    history.add_ai_message("again")
    assert 58 <= client.ttl(history.key) <= 60  # refreshed by the write, like upstream
    for ttl in (0, None):
        plain = make(kind, f"no-ttl-{ttl}", redis_url, client, ttl=ttl)
        plain.add_user_message("hi")
        assert client.ttl(plain.key) == -1


@pytest.mark.parametrize("kind", KINDS)
def test_negative_ttl_is_refused(kind: str, redis_url: str, client: redis.Redis) -> None:
    """A negative ttl raises instead of silently wiping the history as upstream did."""
    history = make(kind, "s", redis_url, client)
    history.add_user_message("precious")
    with pytest.raises(InvalidOptionError):
        make(kind, "s", redis_url, client, ttl=-1)
    with pytest.raises(InvalidOptionError):
        RedisChatMessageHistory("s", redis_url, "message_store:", -5)
    assert history.messages == [HumanMessage("precious")]


# --- decode_responses clients ----------------------------------------------------------------


def decoding_history(how: str, redis_url: str) -> History:
    if how == "community-url":
        return RedisChatMessageHistory("d", url=redis_url + "?decode_responses=True")
    decoding = redis.Redis.from_url(redis_url, decode_responses=True)
    if how == "community-client":
        return RedisChatMessageHistory("d", client=decoding)
    return MemorystoreChatMessageHistory(decoding, "d")


@pytest.mark.parametrize("how", ["community-url", "community-client", "memorystore"])
async def test_decode_responses_clients_work(
    how: str, redis_url: str, client: redis.Redis, track: Track
) -> None:
    """Clients with ``decode_responses=True`` (which broke both upstreams) work, sync and async."""
    history = track(decoding_history(how, redis_url))
    assert history.store.client.get_encoder().decode_responses  # "True" from a URL query
    first, second = HumanMessage("héllo 你好 🙂"), AIMessage("ok", id="a1")
    history.add_messages([first])
    await history.aadd_messages([second])
    assert history.messages == [first, second]
    assert await history.aget_messages() == [first, second]
    kind = "memorystore" if how == "memorystore" else "community"
    assert chronological(kind, client.lrange(history.key, 0, -1)) == [
        json.dumps(message_to_dict(m)).encode() for m in (first, second)
    ]
    await history.aclear()
    assert history.messages == []
    history.add_user_message("x")
    history.clear()
    assert client.exists(history.key) == 0
    history.store.client.close()


# --- Windowed reads ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_last_k_is_newest_in_order(
    kind: str, redis_url: str, client: redis.Redis, track: Track
) -> None:
    """``get_messages(last=k)``/``aget_messages(last=k)`` return the newest k, oldest first."""
    history = track(make(kind, "w", redis_url, client))
    history.add_messages([HumanMessage(f"m{i}") for i in range(6)])
    expected = [HumanMessage("m3"), HumanMessage("m4"), HumanMessage("m5")]
    assert history.get_messages(last=3) == expected
    assert await history.aget_messages(last=3) == expected
    assert len(history.messages) == len(history.get_messages()) == 6
    windowed = track(make(kind, "w", redis_url, client, window=3))
    assert windowed.messages == expected
    assert await windowed.aget_messages() == expected
    assert windowed.get_messages(last=1) == [HumanMessage("m5")]


@pytest.mark.parametrize("kind", KINDS)
async def test_window_reads_only_the_newest(
    kind: str, redis_url: str, client: redis.Redis, track: Track
) -> None:
    """With an older element corrupt, ``last=k`` still reads; a full read names key and index."""
    history = track(make(kind, "w", redis_url, client))
    history.add_messages([HumanMessage(f"m{i}") for i in range(5)])
    oldest = 4 if kind == "community" else 0
    # Corrupt, but a human message by its type: a window of 5 starts on it.
    client.lset(history.key, oldest, b'{"type": "human", not json}')
    assert [m.content for m in history.get_messages(last=4)] == ["m1", "m2", "m3", "m4"]
    assert [m.content for m in await history.aget_messages(last=4)] == ["m1", "m2", "m3", "m4"]
    windowed = make(kind, "w", redis_url, client, window=4)
    assert len(windowed.messages) == 4
    for read in (lambda: history.messages, lambda: history.get_messages(last=5)):
        with pytest.raises(CorruptMessageError) as caught:
            read()
        assert caught.value.key == history.key
        assert client.lindex(history.key, caught.value.index) == b'{"type": "human", not json}'
        assert repr(history.key) in str(caught.value)
    with pytest.raises(CorruptMessageError):
        await history.aget_messages()


# --- Native asyncio ------------------------------------------------------------------------------


def async_history(how: str, redis_url: str) -> History:
    if how == "community-url":
        return RedisChatMessageHistory("a", url=redis_url)
    if how == "community-sync-client":
        return RedisChatMessageHistory("a", client=redis.Redis.from_url(redis_url))
    return MemorystoreChatMessageHistory(redis.Redis.from_url(redis_url), "a")


@pytest.mark.parametrize("how", ["community-url", "community-sync-client", "memorystore"])
async def test_async_methods_are_native(
    how: str, redis_url: str, client: redis.Redis, track: Track, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aget/aadd/aclear use redis.asyncio on the loop: no thread executor, no sync client."""
    history = track(async_history(how, redis_url))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the sync path or a worker thread was used")

    with monkeypatch.context() as patch:
        patch.setattr(asyncio.get_running_loop(), "run_in_executor", refuse)
        patch.setattr(redis.Redis, "execute_command", refuse)
        await history.aadd_messages([HumanMessage("one"), AIMessage("two")])
        await history.aadd_messages([HumanMessage("three")])
        assert [m.content for m in await history.aget_messages()] == ["one", "two", "three"]
        assert [m.content for m in await history.aget_messages(last=1)] == ["three"]
        assert isinstance(history.async_store.client, redis.asyncio.Redis)
        await history.aclear()
        assert await history.aget_messages() == []
        with pytest.raises(AssertionError):
            history.add_user_message("sync is blocked here")
    assert client.exists(history.key) == 0
    history.add_user_message("sync works again")
    assert [m.content for m in await history.aget_messages()] == ["sync works again"]
    if how != "community-url":
        history.store.client.close()


# --- RunnableWithMessageHistory ---------------------------------------------------------------


async def run_turn(chain: RunnableWithMessageHistory, mode: str, question: Any, sid: str) -> Any:
    config: Any = {"configurable": {"session_id": sid}}
    if mode == "invoke":
        return chain.invoke(question, config)
    if mode == "ainvoke":
        return await chain.ainvoke(question, config)
    if mode == "stream":
        return list(chain.stream(question, config))
    return [chunk async for chunk in chain.astream(question, config)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("history_key", [None, "history"])
@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_runnable_with_message_history(
    mode: str,
    history_key: str | None,
    kind: str,
    redis_url: str,
    client: redis.Redis,
    track: Track,
) -> None:
    """Two turns through RWMH: turn two sees turn one; streamed replies persist as chunks."""
    model = EchoModel()

    def get_session_history(session_id: str) -> History:
        return track(make(kind, session_id, redis_url, client))  # a new history per call

    if history_key:
        prompt = ChatPromptTemplate.from_messages(
            [("system", "be brief"), MessagesPlaceholder(history_key), ("human", "{question}")]
        )
        chain = RunnableWithMessageHistory(
            prompt | model,
            get_session_history,
            input_messages_key="question",
            history_messages_key=history_key,
        )
        turns: list[Any] = [{"question": "hi, I'm Bob"}, {"question": "who am I?"}]
    else:
        chain = RunnableWithMessageHistory(model, get_session_history)
        turns = [[HumanMessage("hi, I'm Bob")], [HumanMessage("who am I?")]]
    for question in turns:
        await run_turn(chain, mode, question, "rwmh")

    streamed = mode in ("stream", "astream")
    ai_type = AIMessageChunk if streamed else AIMessage
    expected = [
        (HumanMessage, "hi, I'm Bob"),
        (ai_type, "echo: hi, I'm Bob"),
        (HumanMessage, "who am I?"),
    ]
    system = [(SystemMessage, "be brief")] if history_key else []
    assert [(type(m), m.content) for m in model.seen[1]] == system + expected
    stored = make(kind, "rwmh", redis_url, client).messages
    assert [(type(m), m.content) for m in stored] == [*expected, (ai_type, "echo: who am I?")]
    raw = chronological(kind, client.lrange(make(kind, "rwmh", redis_url, client).key, 0, -1))
    assert [json.loads(e)["type"] for e in raw] == [
        "human",
        ai_type.__name__ if streamed else "ai",
        "human",
        ai_type.__name__ if streamed else "ai",
    ]


# --- Imports -------------------------------------------------------------------------------------


def test_langchain_is_imported_lazily() -> None:
    """``import redis_chat_history`` leaves langchain-core unloaded until a drop-in is used."""
    code = (
        "import sys\n"
        "import redis_chat_history\n"
        "assert 'langchain_core' not in sys.modules, 'langchain_core imported eagerly'\n"
        "from redis_chat_history import RedisChatMessageHistory\n"
        "from redis_chat_history import MemorystoreChatMessageHistory\n"
        "assert 'langchain_core' in sys.modules\n"
        "from langchain_core.chat_history import BaseChatMessageHistory\n"
        "assert issubclass(RedisChatMessageHistory, BaseChatMessageHistory)\n"
        "assert issubclass(MemorystoreChatMessageHistory, BaseChatMessageHistory)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
