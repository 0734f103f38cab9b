"""The fast record -> message path returns exactly what ``messages_from_dict`` returns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
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

from redis_chat_history.langchain import _VALIDATED_TYPES, record_to_message

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


# The fast path calls pydantic's ``__pydantic_validator__.validate_python(data,
# self_instance=message)`` on an instance made with ``cls.__new__``: what
# ``BaseModel.__init__`` itself does, minus the message classes' own ``__init__``. These
# tests pin that contract for every class the fast path takes, so a pydantic or
# langchain-core release that changes it fails here rather than in users' histories.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=3)
texts = st.text(max_size=12)
contents = texts | st.lists(
    texts | st.fixed_dictionaries({"type": st.just("text"), "text": texts}), max_size=3
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {"name": texts, "args": json_objects, "id": texts | st.none()},
        optional={"type": st.just("tool_call")},
    ),
    max_size=2,
)
usage = st.fixed_dictionaries(
    {"input_tokens": st.integers(0, 99), "output_tokens": st.integers(0, 99),
     "total_tokens": st.integers(0, 198)}
)  # fmt: skip

COMMON = {"id": texts | st.none(), "name": texts | st.none(),
          "additional_kwargs": json_objects, "response_metadata": json_objects}  # fmt: skip
#: Fields each class requires, and the ones it adds to COMMON.
FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "human": ({}, {}),
    "HumanMessageChunk": ({}, {}),
    "system": ({}, {}),
    "SystemMessageChunk": ({}, {}),
    "chat": ({"role": texts}, {}),
    "ChatMessageChunk": ({"role": texts}, {}),
    "function": ({"name": texts}, {}),
    "FunctionMessageChunk": ({"name": texts}, {}),
    "tool": ({"tool_call_id": texts},
             {"artifact": json_values, "status": st.sampled_from(["success", "error"])}),
    "ToolMessageChunk": ({"tool_call_id": texts}, {"artifact": json_values}),
    "ai": ({}, {"tool_calls": tool_calls, "usage_metadata": usage}),
    "AIMessageChunk": ({}, {"usage_metadata": usage, "tool_call_chunks": st.lists(
        st.fixed_dictionaries({"name": texts | st.none(), "args": texts | st.none(),
                               "id": texts | st.none(), "index": st.integers(0, 3) | st.none()}),
        max_size=2)}),
}  # fmt: skip


def test_every_fast_path_type_is_the_class_upstream_reads_it_as() -> None:
    assert set(FIELDS) == set(_VALIDATED_TYPES)
    for type_name, cls in _VALIDATED_TYPES.items():
        data = {"content": "x", "role": "r", "name": "n", "tool_call_id": "c"}
        assert type(messages_from_dict([{"type": type_name, "data": data}])[0]) is cls


@given(st.data())
@pytest.mark.parametrize("type_name", sorted(FIELDS))
def test_pydantic_validation_into_a_new_instance_matches_upstream(
    type_name: str, data: st.DataObject
) -> None:
    """For each class the fast path takes, and any data: the instance pydantic fills
    equals the one ``messages_from_dict`` builds, field for field (or both refuse)."""
    required, optional = FIELDS[type_name]
    fields = data.draw(
        st.fixed_dictionaries(
            {"content": contents, **required},
            optional={**{k: v for k, v in COMMON.items() if k not in required}, **optional},
        )
    )
    record = json.loads(json.dumps({"type": type_name, "data": fields}))
    cls = _VALIDATED_TYPES[type_name]
    assert "content_blocks" not in fields  # else record_to_message takes the slow path
    try:
        theirs = messages_from_dict([record])[0]
    except (ValueError, TypeError, KeyError) as refused:
        event(f"upstream refuses: {type(refused).__name__}")
        with pytest.raises(type(refused)):
            record_to_message(record)
        return
    ours = cls.__new__(cls)
    assert cls.__pydantic_validator__.validate_python(record["data"], self_instance=ours) is ours
    assert_same_message(ours, theirs)
    assert_same_message(record_to_message(record), theirs)  # the library's own path


def assert_same_message(ours: Any, theirs: Any) -> None:
    """Equal field for field, including what pydantic records beside the fields."""
    assert type(ours) is type(theirs)
    assert ours == theirs and ours.__dict__ == theirs.__dict__
    assert ours.model_fields_set == theirs.model_fields_set
    assert ours.__pydantic_extra__ == theirs.__pydantic_extra__
    assert ours.__pydantic_private__ == theirs.__pydantic_private__
    assert message_to_dict(ours) == message_to_dict(theirs)
