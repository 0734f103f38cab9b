"""Deterministic, realistic chat messages and the helpers that seed them into Redis.

Messages look like a real OpenAI-style conversation as LangChain stores it: human turns
with ids, AI turns with ids, ``response_metadata`` and ``usage_metadata``, about 300 bytes
each once encoded. Seeding writes the community layout directly (``message_store:<id>``,
newest first, ``json.dumps(message_to_dict(m))`` elements), so every system reads the
same bytes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Sequence

import redis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, message_to_dict

from redis_chat_history import CommunityLayout

KEY_PREFIX = "message_store:"

_WORDS = (
    "the", "a", "model", "token", "redis", "list", "session", "answer", "question", "latency",
    "cache", "stream", "prompt", "reply", "user", "agent", "tool", "search", "order", "invoice",
    "refund", "delivery", "weather", "city", "paris", "account", "password", "reset", "shipping",
    "please", "thanks", "could", "you", "explain", "why", "how", "when",
)  # fmt: skip


def _sentence(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(_WORDS))
    return " ".join(words).capitalize() + "."


def _message_id(rng: random.Random, prefix: str) -> str:
    return prefix + str(uuid.UUID(int=rng.getrandbits(128), version=4))


def human(rng: random.Random) -> HumanMessage:
    """A user turn: 40-120 characters of text and an id."""
    return HumanMessage(_sentence(rng, rng.randint(40, 120)), id=_message_id(rng, ""))


def ai(rng: random.Random) -> AIMessage:
    """A model turn with the metadata a chat model attaches (ids, finish reason, usage)."""
    output_tokens = rng.randint(10, 60)
    input_tokens = rng.randint(20, 900)
    return AIMessage(
        _sentence(rng, rng.randint(10, 60)),
        id=_message_id(rng, "run--"),
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
        usage_metadata={
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    )


def conversation(length: int, seed: int = 0) -> list[BaseMessage]:
    """``length`` alternating human/AI messages, the same for the same seed."""
    rng = random.Random(seed)
    return [human(rng) if i % 2 == 0 else ai(rng) for i in range(length)]


def encode(message: BaseMessage) -> str:
    """One list element exactly as langchain-community writes it."""
    return json.dumps(message_to_dict(message))


def community_key(session_id: str) -> str:
    """The list key langchain-community (and our default layout) uses for a session."""
    return KEY_PREFIX + session_id


def session_keys(session_id: str) -> tuple[str, str]:
    """The list key, and the retry-token key our library keeps beside it."""
    return community_key(session_id), CommunityLayout(KEY_PREFIX).token_key(session_id)


def seed(client: redis.Redis, session_id: str, messages: Sequence[BaseMessage]) -> None:
    """Replace a session with ``messages`` (chronological), written newest first."""
    key = community_key(session_id)
    elements = [encode(m) for m in messages]
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(*session_keys(session_id))
        for start in range(0, len(elements), 1000):
            pipe.lpush(key, *elements[start : start + 1000])
        pipe.execute()


def reset(client: redis.Redis, session_id: str) -> Callable[[], None]:
    """A function that empties the session (run untimed before a sample)."""
    keys = session_keys(session_id)

    def empty() -> None:
        client.delete(*keys)

    return empty


def mean_element_bytes(messages: Sequence[BaseMessage]) -> float:
    """Average encoded size, reported next to the results."""
    return sum(len(encode(m)) for m in messages) / len(messages)
