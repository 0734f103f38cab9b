"""The fast record -> message path returns exactly what ``messages_from_dict`` returns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
    message_to_dict,
    messages_from_dict,
)

from redis_chat_history.langchain import record_to_message

MESSAGES = [
    SystemMessage("be brief"),
    HumanMessage("hi", id="h1", name="bob", additional_kwargs={"k": [1, None]}),
    HumanMessage([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": "x"}]),
    AIMessage("", id="a1", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}],
              usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
              response_metadata={"model_name": "m"}),
    ToolMessage("sunny", tool_call_id="c1", artifact={"raw": [1]}, status="error"),
    ChatMessage("hmm", role="critic"),
    FunctionMessage("42", name="calc"),
    AIMessageChunk("part", id="run-1", tool_call_chunks=[{"name": "f", "args": "{", "id": "c",
                                                          "index": 0}]),
    HumanMessageChunk("h"), SystemMessageChunk("s"), ChatMessageChunk("c", role="r"),
    FunctionMessageChunk("f", name="n"), ToolMessageChunk("t", tool_call_id="c2"),
    RemoveMessage(id="gone"),
]  # fmt: skip

LEGACY_RECORDS: list[dict[str, Any]] = [
    # langchain-core 0.3 wrote "example": false.
    {"type": "human", "data": {"content": "old", "additional_kwargs": {}, "response_metadata": {},
                               "type": "human", "name": None, "id": None, "example": False}},
    # OpenAI-style tool calls only in additional_kwargs: parsed into tool_calls on read.
    {"type": "ai", "data": {"content": "", "additional_kwargs": {"tool_calls": [
        {"id": "c9", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}}},
    # Very old records carry only content and additional_kwargs.
    {"type": "ai", "data": {"content": "bare", "additional_kwargs": {}}},
    {"type": "human", "data": {"content_blocks": [{"type": "text", "text": "blocks"}]}},
]  # fmt: skip


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_matches_messages_from_dict(message: Any) -> None:
    """Every message type reads back equal to upstream's reader, with the same class."""
    record = json.loads(json.dumps(message_to_dict(message)))
    ours, theirs = record_to_message(record), messages_from_dict([record])[0]
    assert type(ours) is type(theirs) and ours == theirs
    assert ours.model_fields_set == theirs.model_fields_set
    assert message_to_dict(ours) == message_to_dict(theirs)


@pytest.mark.parametrize(
    "record", LEGACY_RECORDS, ids=["example", "legacy-tools", "bare", "blocks"]
)
def test_legacy_records_match(record: dict[str, Any]) -> None:
    """Records from older langchain-core versions read exactly as upstream reads them."""
    ours, theirs = record_to_message(record), messages_from_dict([record])[0]
    assert ours == theirs and message_to_dict(ours) == message_to_dict(theirs)


def test_legacy_tool_calls_are_parsed() -> None:
    """Tool calls stored only in additional_kwargs surface as ``tool_calls``."""
    message = record_to_message(LEGACY_RECORDS[1])
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"] == {"city": "Paris"}


@pytest.mark.parametrize(
    "record",
    [{"type": "robot", "data": {"content": "x"}}, {"type": "human", "data": {"content": 5}},
     {"type": "tool", "data": {"content": "no call id"}}],
)  # fmt: skip
def test_unreadable_records_raise_like_upstream(record: dict[str, Any]) -> None:
    """Unknown types and invalid fields raise the same error class as upstream's reader."""
    with pytest.raises((ValueError, KeyError)) as theirs:
        messages_from_dict([record])
    with pytest.raises((ValueError, KeyError)) as ours:
        record_to_message(record)
    assert isinstance(ours.value, type(theirs.value)) or isinstance(theirs.value, type(ours.value))
