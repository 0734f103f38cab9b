"""The LangGraph thread commands (``threads``, ``thread show|history|delete|prune|copy|
import``) end to end: graphs run on a RedisSaver against the fixture redis-server, then the
CLI reads and manages their threads in-process through click's CliRunner."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import pytest
import redis
from click.testing import CliRunner, Result
from typing_extensions import TypedDict

pytest.importorskip("langgraph.graph")
agents = pytest.importorskip("langchain.agents")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    AnyMessage,
    HumanMessage,
    SystemMessage,
    message_to_dict,
)
from langgraph.channels.delta import DeltaChannel  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402

from redis_chat_history import ChatHistoryStore  # noqa: E402
from redis_chat_history.cli import main  # noqa: E402
from redis_chat_history.langgraph import RedisSaver  # noqa: E402

CLEAN_ENV = {
    "REDIS_CHAT_HISTORY_URL": None,
    "REDIS_URL": None,
    "REDIS_PASSWORD": None,
    "REDISCLI_AUTH": None,
}


def run(*args: str, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), input=input, env=CLEAN_ENV)
    assert "Traceback" not in result.output, result.output
    return result


def run_json(*args: str, code: int = 0) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if result.stdout.strip() else None


def config(thread_id: str, ns: str = "") -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}


@pytest.fixture
def saver(redis_url: str) -> Iterator[RedisSaver]:
    client = redis.Redis.from_url(redis_url)
    yield RedisSaver(redis_client=client, prefix="lg")
    client.close()


def _agent(saver: RedisSaver, *answers: str, record: list[list[str]] | None = None) -> Any:
    class Recording(GenericFakeChatModel):
        def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            if record is not None:
                record.append([str(m.content) for m in messages])
            return super()._generate(messages, *args, **kwargs)

    model = Recording(messages=iter([AIMessage(answer) for answer in answers]))
    return agents.create_agent(model, tools=[], checkpointer=saver)


def _expected(graph: Any, thread_id: str) -> list[dict[str, Any]]:
    return [message_to_dict(m) for m in graph.get_state(config(thread_id)).values["messages"]]


def _messages_delta(current: Any, writes: Sequence[Any]) -> list[Any]:
    out = list(current or [])
    for write in writes:
        out = add_messages(out, write)
    return out


class DeltaMessages(TypedDict):
    messages: Annotated[list[AnyMessage], DeltaChannel(_messages_delta, snapshot_frequency=2)]


def _delta_graph(saver: RedisSaver) -> Any:
    def bot(state: DeltaMessages) -> dict[str, Any]:
        return {"messages": [AIMessage(f"echo {state['messages'][-1].content}")]}

    builder = StateGraph(DeltaMessages)
    builder.add_node("bot", bot)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", END)
    return builder.compile(checkpointer=saver)


# --- show ------------------------------------------------------------------------------------


def test_show_create_agent_thread_equals_graph_state(redis_url: str, saver: RedisSaver) -> None:
    agent = _agent(saver, "Hello Bob", "You are Bob")
    agent.invoke({"messages": [HumanMessage("hi, I'm Bob")]}, config("bob"))
    agent.invoke({"messages": [HumanMessage("what is my name?")]}, config("bob"))
    shown = run_json("thread", "show", "bob", "--url", redis_url)
    assert shown["messages"] == _expected(agent, "bob")
    assert [m["data"]["content"] for m in shown["messages"]] == [
        "hi, I'm Bob",
        "Hello Bob",
        "what is my name?",
        "You are Bob",
    ]
    assert shown["delta"] is False and shown["pending"] == []
    latest = agent.get_state(config("bob")).config["configurable"]["checkpoint_id"]
    assert shown["checkpoint"] == latest

    # An older checkpoint, by id: what the graph's state was there.
    history = list(agent.get_state_history(config("bob")))
    older = history[3]
    old_id = older.config["configurable"]["checkpoint_id"]
    at = run_json("thread", "show", "bob", "--checkpoint", old_id, "--url", redis_url)
    assert at["messages"] == [message_to_dict(m) for m in older.values.get("messages", [])]

    people = run("thread", "show", "bob", "--url", redis_url)
    assert people.exit_code == 0, people.stderr
    for text in ("user", "assistant", "hi, I'm Bob", "You are Bob"):
        assert text in people.stdout


def test_show_delta_channel_thread_equals_graph_state(redis_url: str, saver: RedisSaver) -> None:
    graph = _delta_graph(saver)
    for turn in ("one", "two", "three"):
        graph.invoke({"messages": [HumanMessage(turn)]}, config("d"))
    shown = run_json("thread", "show", "d", "--url", redis_url)
    expected = _expected(graph, "d")
    assert len(expected) == 6
    assert shown["messages"] == expected
    # Every checkpoint of the history, rebuilt without the graph, as the graph has it.
    history = run_json("thread", "history", "d", "--limit", "100", "--url", redis_url)
    states = list(graph.get_state_history(config("d")))
    assert [row["checkpoint"] for row in history["checkpoints"]] == [
        state.config["configurable"]["checkpoint_id"] for state in states
    ]
    assert [row["messages"] for row in history["checkpoints"]] == [
        len(state.values.get("messages", [])) for state in states
    ]
    assert any(row["messages"] for row in history["checkpoints"])
    for state in states[:4]:
        checkpoint_id = state.config["configurable"]["checkpoint_id"]
        at = run_json("thread", "show", "d", "--checkpoint", checkpoint_id, "--url", redis_url)
        assert at["messages"] == [message_to_dict(m) for m in state.values.get("messages", [])]


class ParallelState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    done: Annotated[list[str], operator.add]


def test_show_pending_writes_of_a_failed_step(redis_url: str, saver: RedisSaver) -> None:
    """A step where one task wrote a message and another failed: the message is a pending
    write, shown apart from the conversation."""

    def speaker(state: ParallelState) -> dict[str, Any]:
        return {"messages": [AIMessage("half an answer")]}

    def broken(state: ParallelState) -> dict[str, Any]:
        raise RuntimeError("boom")

    builder = StateGraph(ParallelState)
    builder.add_node("speaker", speaker)
    builder.add_node("broken", broken)
    builder.add_edge(START, "speaker")
    builder.add_edge(START, "broken")
    graph = builder.compile(checkpointer=saver)
    with pytest.raises(RuntimeError):
        graph.invoke({"messages": [HumanMessage("question")]}, config("p"))
    shown = run_json("thread", "show", "p", "--url", redis_url)
    assert [m["data"]["content"] for m in shown["messages"]] == ["question"]
    assert [m["data"]["content"] for m in shown["pending"]] == ["half an answer"]
    people = run("thread", "show", "p", "--url", redis_url)
    assert "pending writes" in people.stdout and "half an answer" in people.stdout
    history = run_json("thread", "history", "p", "--url", redis_url)
    assert history["checkpoints"][0]["pending_writes"] >= 1


def test_not_found_exit_codes(redis_url: str, saver: RedisSaver) -> None:
    assert run_json("threads", "--url", redis_url, code=1)["threads"] == []
    missing = run("thread", "show", "nobody", "--url", redis_url)
    assert missing.exit_code == 1 and missing.stderr.startswith("error: no thread 'nobody'")
    assert run("thread", "history", "nobody", "--url", redis_url).exit_code == 1
    assert run("thread", "delete", "nobody", "--yes", "--url", redis_url).exit_code == 1
    assert run("thread", "prune", "nobody", "--yes", "--url", redis_url).exit_code == 1
    assert run("thread", "copy", "nobody", "x", "--url", redis_url).exit_code == 1
    _agent(saver, "hi").invoke({"messages": [HumanMessage("hello")]}, config("a"))
    bad = run("thread", "show", "a", "--checkpoint", "1ef-nope", "--url", redis_url)
    assert bad.exit_code == 1 and "no checkpoint" in bad.stderr
    assert run("thread", "show", "a", "--ns", "sub", "--url", redis_url).exit_code == 1


# --- threads and history ---------------------------------------------------------------------


def test_threads_lists_newest_first(redis_url: str, saver: RedisSaver, client: Any) -> None:
    first = _agent(saver, "one")
    first.invoke({"messages": [HumanMessage("first")]}, config("old"))
    second = _agent(saver, "two", "three")
    second.invoke({"messages": [HumanMessage("second")]}, config("new"))
    second.invoke({"messages": [HumanMessage("again")]}, config("new"))

    # A subgraph run inside a node checkpoints in its own namespace of the same thread.
    inner = StateGraph(ParallelState)
    inner.add_node("inner", lambda state: {"messages": [AIMessage("from inside")]})
    inner.add_edge(START, "inner")
    compiled_inner = inner.compile()
    outer = StateGraph(ParallelState)
    outer.add_node("outer", lambda state: compiled_inner.invoke(state))
    outer.add_edge(START, "outer")
    graph = outer.compile(checkpointer=saver)
    graph.invoke({"messages": [HumanMessage("nested")]}, {"configurable": {"thread_id": "sub"}})
    client.set("lg:unrelated", "x")  # not a thread key

    listed = run_json("threads", "--url", redis_url)
    rows = {row["thread"]: row for row in listed["threads"]}
    assert [row["thread"] for row in listed["threads"]] == ["sub", "new", "old"]
    assert listed["total"] == 3
    for thread_id, graph_of in (("old", first), ("new", second), ("sub", graph)):
        states = list(graph_of.get_state_history({"configurable": {"thread_id": thread_id}}))
        latest = states[0]
        assert (
            rows[thread_id]["newest_checkpoint"] == latest.config["configurable"]["checkpoint_id"]
        )
        assert rows[thread_id]["ts"] == latest.created_at
        assert rows[thread_id]["ttl"] is None
    assert rows["old"]["namespaces"] == 1 and rows["new"]["namespaces"] == 1
    assert rows["sub"]["namespaces"] == 2
    assert rows["new"]["checkpoints"] == len(list(second.get_state_history(config("new"))))
    assert rows["sub"]["checkpoints"] > len(list(graph.get_state_history(config("sub"))))
    members = [bytes(m).partition(b"\0")[0].decode() for m in client.zrange("lg:{sub}:idx", 0, -1)]
    (inner_ns,) = {ns for ns in members if ns}
    nested = run_json("thread", "show", "sub", "--ns", inner_ns, "--url", redis_url)
    assert [m["data"]["content"] for m in nested["messages"]] == ["nested", "from inside"]
    assert nested["ns"] == inner_ns

    assert [
        r["thread"] for r in run_json("threads", "--limit", "1", "--url", redis_url)["threads"]
    ] == ["sub"]
    assert run_json("threads", "--prefix", "other", "--url", redis_url, code=1)["total"] == 0
    scanned = run_json("threads", "--scan", "--url", redis_url)  # SCAN finds the same threads
    assert [row["thread"] for row in scanned["threads"]] == ["sub", "new", "old"]
    people = run("threads", "--url", redis_url)
    assert people.exit_code == 0 and "new" in people.stdout and "checkpoints" in people.stdout


def test_threads_by_owner_and_import_keeps_the_sessions_owner(redis_url: str) -> None:
    """``threads --owner`` lists one owner's threads from its index (owner key user_id
    unless --owner-key says otherwise); ``thread import --owner-key`` gives the thread
    the chat session's owner, and delete/copy keep the index true."""
    client = redis.Redis.from_url(redis_url)
    prefix = f"own{os.urandom(3).hex()}"
    owned_saver = RedisSaver(redis_client=client, prefix=prefix, owner_key="user_id")
    agent = _agent(owned_saver, "a1", "a2", "b1")
    for thread, owner in (("t1", "ann"), ("t2", "ann"), ("t3", "ben")):
        agent.invoke(
            {"messages": [HumanMessage(f"hi from {thread}")]},
            {"configurable": {"thread_id": thread, "user_id": owner}},
        )
    common = ("--prefix", prefix, "--url", redis_url)
    assert [r["thread"] for r in run_json("threads", "--owner", "ann", *common)["threads"]] == [
        "t2",
        "t1",
    ]
    assert run_json("threads", "--owner", "nobody", *common, code=1)["owner"] == "nobody"
    other_key = run_json("threads", "--owner", "ann", "--owner-key", "team", *common, code=1)
    assert other_key["threads"] == []
    assert run("threads", "--owner", "ann", "--scan", *common).exit_code == 2
    assert run("threads", "--owner", "", *common).exit_code == 2
    people = run("threads", "--owner", "ann", *common)
    assert people.exit_code == 0 and "owner 'ann'" in people.stderr

    store = ChatHistoryStore(redis.Redis.from_url(redis_url))
    store.create_session("chat-o", owner="cat")
    store.append("chat-o", [message_to_dict(HumanMessage("hello"))])
    imported = run_json("thread", "import", "chat-o", "--owner-key", "user_id", *common)
    assert imported["owner"] == "cat"
    assert [r["thread"] for r in run_json("threads", "--owner", "cat", *common)["threads"]] == [
        "chat-o"
    ]
    assert owned_saver.get_tuple(config("chat-o")).metadata["user_id"] == "cat"  # type: ignore[union-attr]

    run_json("thread", "copy", "t3", "t4", "--owner-key", "user_id", *common)
    run_json("thread", "delete", "t1", "--yes", "--owner-key", "user_id", *common)
    assert client.zrange(f"{prefix}:owner:{{ann}}:threads", 0, -1) == [b"t2"]
    assert client.zrange(f"{prefix}:owner:{{ben}}:threads", 0, -1) == [b"t3", b"t4"]
    store.close()
    client.close()


def test_history_pages_newest_first(redis_url: str, saver: RedisSaver) -> None:
    agent = _agent(saver, "a", "b")
    agent.invoke({"messages": [HumanMessage("q1")]}, config("h"))
    agent.invoke({"messages": [HumanMessage("q2")]}, config("h"))
    states = list(agent.get_state_history(config("h")))
    full = run_json("thread", "history", "h", "--url", redis_url)["checkpoints"]
    assert [row["checkpoint"] for row in full] == [
        s.config["configurable"]["checkpoint_id"] for s in states
    ]
    assert [row["source"] for row in full] == [s.metadata["source"] for s in states]
    assert [row["step"] for row in full] == [s.metadata["step"] for s in states]
    assert [row["ts"] for row in full] == [s.created_at for s in states]
    assert [row["messages"] for row in full] == [len(s.values.get("messages", [])) for s in states]
    assert [row["pending_writes"] for row in full] == [
        len(item.pending_writes or []) for item in saver.list(config("h"))
    ]

    page = run_json("thread", "history", "h", "--limit", "2", "--url", redis_url)
    assert [row["checkpoint"] for row in page["checkpoints"]] == [r["checkpoint"] for r in full[:2]]
    assert page["next_before"] == full[1]["checkpoint"]
    rest = run_json(
        "thread",
        "history",
        "h",
        "--before",
        page["next_before"],
        "--limit",
        "100",
        "--url",
        redis_url,
    )
    assert [row["checkpoint"] for row in rest["checkpoints"]] == [r["checkpoint"] for r in full[2:]]
    assert rest["next_before"] is None
    people = run("thread", "history", "h", "--url", redis_url)
    assert people.exit_code == 0 and full[0]["checkpoint"] in people.stdout


# --- delete, prune, copy ---------------------------------------------------------------------


def test_delete_prune_copy(redis_url: str, saver: RedisSaver) -> None:
    agent = _agent(saver, "a", "b", "c", "d")
    agent.invoke({"messages": [HumanMessage("q1")]}, config("t1"))
    agent.invoke({"messages": [HumanMessage("q2")]}, config("t1"))
    agent.invoke({"messages": [HumanMessage("q3")]}, config("t2"))
    before = _expected(agent, "t1")

    copied = run_json("thread", "copy", "t1", "t3", "--url", redis_url)
    assert copied["checkpoints"] == len(list(agent.get_state_history(config("t1"))))
    assert run_json("thread", "show", "t3", "--url", redis_url)["messages"] == before
    assert _expected(agent, "t3") == before
    refused = run("thread", "copy", "t1", "t2", "--url", redis_url)
    assert refused.exit_code == 2 and "--replace" in refused.stderr
    assert run_json("thread", "copy", "t1", "t2", "--replace", "--url", redis_url)
    assert _expected(agent, "t2") == before

    pruned = run_json("thread", "prune", "t3", "--yes", "--url", redis_url)
    assert pruned["threads"] == [
        {"thread": "t3", "checkpoints": 1, "removed": copied["checkpoints"] - 1}
    ]
    assert run_json("thread", "show", "t3", "--url", redis_url)["messages"] == before
    assert len(run_json("thread", "history", "t3", "--url", redis_url)["checkpoints"]) == 1

    no_tty = run("thread", "delete", "t1", "--url", redis_url)
    assert no_tty.exit_code == 2 and "--yes" in no_tty.stderr
    dry = run_json("thread", "delete", "t1", "t2", "ghost", "--dry-run", "--url", redis_url)
    assert dry["deleted"] == 0 and dry["missing"] == ["ghost"]
    assert [row["thread"] for row in dry["threads"]] == ["t1", "t2"]
    assert run("thread", "show", "t1", "--url", redis_url).exit_code == 0
    deleted = run_json("thread", "delete", "t1", "t2", "--yes", "--url", redis_url)
    assert deleted["deleted"] == 2
    assert run("thread", "show", "t1", "--url", redis_url).exit_code == 1
    assert run("thread", "show", "t2", "--url", redis_url).exit_code == 1
    assert [r["thread"] for r in run_json("threads", "--url", redis_url)["threads"]] == ["t3"]

    gone = run_json("thread", "prune", "t3", "--strategy", "delete", "--yes", "--url", redis_url)
    assert gone["threads"][0]["checkpoints"] == 0
    assert run("thread", "show", "t3", "--url", redis_url).exit_code == 1


def test_prune_keep_latest_refused_for_delta_threads(redis_url: str, saver: RedisSaver) -> None:
    graph = _delta_graph(saver)
    for turn in ("one", "two", "three"):
        graph.invoke({"messages": [HumanMessage(turn)]}, config("d"))
    refused = run("thread", "prune", "d", "--yes", "--url", redis_url)
    assert refused.exit_code == 2 and "--strategy delete" in refused.stderr
    assert run_json("thread", "show", "d", "--url", redis_url)["messages"] == _expected(graph, "d")


# --- import ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["native", "community", "memorystore"])
def test_import_session_starts_a_thread_an_agent_continues(
    redis_url: str, saver: RedisSaver, client: Any, layout: str
) -> None:
    store = ChatHistoryStore(redis.Redis.from_url(redis_url), layout=layout)
    records = [
        message_to_dict(SystemMessage("Be brief.")),
        message_to_dict(HumanMessage("hi, I'm Bob")),
        message_to_dict(AIMessage("Hello Bob")),
    ]
    store.append("chat-7", records)
    imported = run_json("thread", "import", "chat-7", "--thread", "bob", "--url", redis_url)
    assert imported["messages"] == 3 and imported["thread"] == "bob"
    assert imported["layout"] == layout

    shown = run_json("thread", "show", "bob", "--url", redis_url)
    assert [(m["type"], m["data"]["content"]) for m in shown["messages"]] == [
        (r["type"], r["data"]["content"]) for r in records
    ]
    people = run("thread", "show", "bob", "--url", redis_url)
    assert "Hello Bob" in people.stdout and "Be brief." in people.stdout

    seen: list[list[str]] = []
    agent = _agent(saver, "You are Bob", record=seen)
    assert shown["messages"] == _expected(agent, "bob")
    agent.invoke({"messages": [HumanMessage("what is my name?")]}, config("bob"))
    assert seen == [["Be brief.", "hi, I'm Bob", "Hello Bob", "what is my name?"]]

    again = run("thread", "import", "chat-7", "--thread", "bob", "--url", redis_url)
    assert again.exit_code == 2 and "already has checkpoints" in again.stderr
    # Default thread id: the session id.
    assert run_json("thread", "import", "chat-7", "--url", redis_url)["thread"] == "chat-7"
    missing = run("thread", "import", "nothing", "--url", redis_url)
    assert missing.exit_code == 1 and missing.stderr.startswith("error: no session")
    store.close()


# --- without LangGraph -----------------------------------------------------------------------

_WITHOUT_LANGGRAPH = (
    "import sys\n"
    "for name in ('langgraph', 'langchain', 'langchain_core'):\n"
    "    sys.modules[name] = None\n"
    "from redis_chat_history.cli import main\n"
    "main()\n"
)


def test_without_langgraph_the_cli_works_and_says_what_to_install(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _WITHOUT_LANGGRAPH, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    assert cli("--help").returncode == 0
    assert cli("sessions", "--url", redis_url).returncode == 1  # runs: no sessions
    for args in (("threads",), ("thread", "show", "x"), ("thread", "import", "s"), ("memories",)):
        done = cli(*args, "--url", redis_url)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert "pip install 'redis-chat-history[langgraph]'" in lines[0]
