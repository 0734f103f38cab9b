"""Layout's list-order API and its chat-list rule, checked without a server.

LRANGE, LPUSH and RPUSH are simulated in Python exactly as Redis runs them (including how
LRANGE clamps its bounds), over lists whose elements are their chronological positions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redis_chat_history import codec
from redis_chat_history.layouts import (
    CommunityLayout,
    Layout,
    MemorystoreLayout,
    NativeLayout,
    Window,
    naming_layout,
)

ORDERS = [CommunityLayout(), MemorystoreLayout(), NativeLayout()]  # newest first, oldest first x2
layouts = st.sampled_from(ORDERS)
lengths = st.integers(min_value=0, max_value=40)
positions = st.integers(min_value=0, max_value=50) | st.sampled_from([2**62, 2**63 - 1])


def lrange(items: list[Any], start: int, stop: int) -> list[Any]:
    """LRANGE as Redis's lrangeGenericCommand computes it."""
    length = len(items)
    if start < 0:
        start += length
    if stop < 0:
        stop += length
    start = max(start, 0)
    if start > stop or start >= length:
        return []
    stop = min(stop, length - 1)
    return items[start : stop + 1]


def push(items: list[Any], command: str, *elements: Any) -> list[Any]:
    """LPUSH / RPUSH: each element in turn goes to the head / the tail."""
    if command == "RPUSH":
        return [*items, *elements]
    assert command == "LPUSH"
    return [*reversed(elements), *items]


def stored(layout: Layout, length: int) -> list[int]:
    """A list holding chronological positions 0..length-1 in the layout's order."""
    return push([], layout.push_command, *range(length))


def check_read(layout: Layout, items: list[int], window: Window, wanted: list[int]) -> None:
    """LRANGE ``window`` gives back ``wanted`` once put in chronological order, and the
    indices say where each element is (LINDEX counts like Python's negative indexing)."""
    found = lrange(items, *window)
    assert layout.chronological(found) == wanted
    indices = layout.indices(window, len(found))
    assert [items[index] for index in indices] == found
    assert layout.chronological(list(indices)) == list(layout.chronological(indices))


@given(layouts, lengths, positions, positions | st.none())
def test_window_reads_exactly_the_positions_asked_for(
    layout: Layout, length: int, start: int, stop: int | None
) -> None:
    items = stored(layout, length)
    wanted = list(range(length))[start:stop]
    check_read(layout, items, layout.window(start, stop), wanted)


@given(layouts, lengths, st.integers(min_value=1, max_value=50) | st.just(2**63 - 1))
def test_last_window_reads_the_newest(layout: Layout, length: int, count: int) -> None:
    items = stored(layout, length)
    check_read(layout, items, layout.last_window(count), list(range(length))[-count:])


@given(layouts, lengths, st.integers(min_value=0, max_value=10), positions, positions)
def test_window_is_anchored_at_the_oldest(
    layout: Layout, length: int, appended: int, start: int, stop: int
) -> None:
    """A window made for the list before an append still reads the same positions."""
    window = layout.window(start, min(stop, length))
    items = push(stored(layout, length), layout.push_command, *range(length, length + appended))
    assert layout.chronological(lrange(items, *window)) == list(range(length))[start:stop]


@given(layouts, lengths, st.lists(st.integers(min_value=1, max_value=5), max_size=5))
def test_push_command_appends_in_chronological_order(
    layout: Layout, length: int, batches: list[int]
) -> None:
    """Batches pushed oldest first, one command each, read back in order."""
    items, total = stored(layout, length), length
    for size in batches:
        items = push(items, layout.push_command, *range(total, total + size))
        total += size
    assert layout.chronological(items) == list(range(total))
    assert layout.in_list_order(list(range(total))) == items


@given(layouts, st.integers(min_value=1, max_value=40), st.data())
def test_index_of_finds_the_position(layout: Layout, length: int, data: st.DataObject) -> None:
    items = stored(layout, length)
    position = data.draw(st.integers(min_value=0, max_value=length - 1))
    index = layout.index_of(position, length)
    assert 0 <= index < length and items[index] == position


def test_order_of_each_layout() -> None:
    assert [layout.push_command for layout in ORDERS] == ["LPUSH", "RPUSH", "RPUSH"]
    assert CommunityLayout().window(0, 3) == (-3, -1)
    assert NativeLayout().window(2) == (2, -1)
    assert CommunityLayout().last_window(1) == (0, 0)
    assert MemorystoreLayout().last_window(1) == (-1, -1)


def test_indices_refuse_windows_whose_answer_depends_on_the_length() -> None:
    with pytest.raises(ValueError):
        Layout.indices((-5, 8), 4)


# The chat-list rule: which lists are a layout's chat sessions.

RECORD = json.dumps({"type": "human", "data": {"content": "hi"}}).encode()
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "first",
    [None, b"job-42", b'{"type": "human"}', b"\xff\xfe", "[1, 2]", DEEP, 7],
    ids=["empty", "text", "no-data", "not-utf8", "array", "deep", "int"],
)
def test_a_list_whose_first_element_is_no_record_is_no_chat(first: Any) -> None:
    for layout in ORDERS:
        key = layout.messages_key("s")
        assert layout.is_chat_list(key, RECORD)
        assert not layout.is_chat_list(key, first)
    assert not codec.holds_record(first)


def test_a_key_the_layout_does_not_name_is_no_chat() -> None:
    assert not NativeLayout().is_chat_list("message_store:s", RECORD)
    assert not CommunityLayout(key_prefix="app:").is_chat_list("message_store:s", RECORD)
    assert not MemorystoreLayout().is_chat_list("bad\x00id", RECORD)


def test_memorystore_leaves_other_layouts_keys_to_them() -> None:
    memorystore, custom = MemorystoreLayout(), CommunityLayout(key_prefix="app:")
    for key in ("chat:{s}:messages", "message_store:s"):
        assert not memorystore.is_chat_list(key, RECORD)
    # A custom prefix is known only when the layout using it is given.
    assert memorystore.is_chat_list("app:s", RECORD)
    assert not memorystore.is_chat_list("app:s", RECORD, [memorystore, custom])
    assert custom.is_chat_list("app:s", RECORD, [memorystore, custom])
    assert memorystore.is_chat_list("plain", RECORD, [memorystore, custom])


def test_naming_layout() -> None:
    custom = CommunityLayout(key_prefix="app:")
    assert naming_layout("app:s", [MemorystoreLayout(), custom]) == (custom, "s")
    assert naming_layout("chat:{a%7Bb}:messages") == (NativeLayout(), "a{b")
    assert naming_layout("message_store:x") == (CommunityLayout(), "x")
    assert naming_layout("plain", [MemorystoreLayout()]) is None


@pytest.mark.parametrize(
    "text", ['{"a": NaN}', '{"n": 123456789012345678901234567890}', '"\\ud800"', "[1.5, null]"]
)
def test_loads_reads_like_the_standard_library(text: str) -> None:
    ours, theirs = codec.loads(text.encode()), json.loads(text)
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("text", [b"{", b"\xff", b"[1,]", b""])
def test_loads_refuses_like_the_standard_library(text: bytes) -> None:
    with pytest.raises(ValueError) as ours:
        codec.loads(text)
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
