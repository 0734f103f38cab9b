"""The quickstart: the upstream snippets, unchanged but for the import, end to end.

Runs against ``$REDIS_URL`` when set, else against a persistent embedded redis-server
(data in the per-user data directory), so running it twice shows the history persisted.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from langchain_core._api.deprecation import LangChainDeprecationWarning
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from redis_chat_history import MemorystoreChatMessageHistory, RedisChatMessageHistory, redact_url
from redis_chat_history.embedded import EmbeddedRedis

__all__ = ["NameRecallModel", "main"]


class NameRecallModel(BaseChatModel):
    """A deterministic stand-in for an LLM: it answers from the messages it is given.

    It says how many messages it received and, asked for a name, finds the latest
    "I'm <name>" in them, so its answers show whether the history reached it.
    """

    @property
    def _llm_type(self) -> str:
        return "name-recall"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        question = str(messages[-1].content)
        names = [
            match.group(1)
            for message in messages
            if isinstance(message, HumanMessage)
            for match in re.finditer(r"I'm (\w+)", str(message.content))
        ]
        if "name" in question.lower():
            answer = f"Your name is {names[-1]}." if names else "I don't know your name."
        else:
            answer = "Nice to meet you!"
        reply = f"{answer} (I was given {len(messages)} messages.)"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(reply))])


@contextmanager
def _redis_url(given: str | None = None) -> Iterator[str]:
    url = given or os.environ.get("REDIS_URL")
    if url:
        print(f"Using {'REDIS_URL=' if not given else ''}{redact_url(url)}")
        yield url
        return
    with EmbeddedRedis(persistent=True) as server:
        print(f"Using an embedded redis-server on {redact_url(server.url)} (data in {server.dir})")
        yield server.url


def _show(title: str, messages: list[BaseMessage]) -> None:
    print(f"\n{title}")
    for message in messages:
        print(f"  {message.type:>5}: {message.content}")


def main(url: str | None = None) -> int:
    """Run the three snippets against ``url`` (default: $REDIS_URL, else an embedded
    redis-server) and print what happens."""
    with _redis_url(url) as url:
        # Snippet 1: langchain-community's RedisChatMessageHistory.
        history = RedisChatMessageHistory("foo", url=url)
        earlier = len(history.messages)
        history.add_user_message("hi!")
        history.add_ai_message("whats up?")
        _show(f"RedisChatMessageHistory('foo'): {len(history.messages)} messages", history.messages)
        if earlier:
            print(f"  ({earlier} of them were stored by an earlier run: the history persisted.)")

        # Snippet 2: Google's MemorystoreChatMessageHistory, with a client built by the user.
        redis_client = redis.from_url(url)
        message_history = MemorystoreChatMessageHistory(redis_client, session_id="session1")
        message_history.add_user_message("hello from Memorystore")
        _show("MemorystoreChatMessageHistory('session1'):", message_history.messages)
        message_history.clear()
        print(f"  after clear(): {message_history.messages}")
        redis_client.close()

        # Snippet 3: the same history class inside RunnableWithMessageHistory.
        prompt = ChatPromptTemplate.from_messages(
            [
                ("system", "You're an assistant who remembers names."),
                MessagesPlaceholder(variable_name="history"),
                ("human", "{question}"),
            ]
        )

        def get_session_history(session_id: str) -> BaseChatMessageHistory:
            return RedisChatMessageHistory(session_id, url=url)

        with warnings.catch_warnings():  # upstream deprecated the class; it still works
            warnings.simplefilter("ignore", LangChainDeprecationWarning)
            chain_with_history = RunnableWithMessageHistory(
                prompt | NameRecallModel(),
                get_session_history,
                input_messages_key="question",
                history_messages_key="history",
            )
        RedisChatMessageHistory("bob-chat", url=url).clear()
        config: Any = {"configurable": {"session_id": "bob-chat"}}
        print("\nRunnableWithMessageHistory, two turns on session 'bob-chat':")
        for question in ("Hi! I'm bob", "Whats my name"):
            answer = chain_with_history.invoke({"question": question}, config=config)
            print(f"  human: {question}\n     ai: {answer.content}")
        stored = RedisChatMessageHistory("bob-chat", url=url).messages
        print(f"  stored in Redis: {len(stored)} messages")
        if "name is bob" not in str(stored[-1].content).lower():
            print("The model did not receive the earlier turn!", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
