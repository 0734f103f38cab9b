"""StoreSettings: the options both stores (and the LangChain classes) take, checked once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import codec
from ._validate import check_max_messages, check_positive_int, check_ttl
from .durability import Durability, resolve_durability
from .errors import InvalidOptionError
from .layouts import Layout, resolve_layout

__all__ = ["START_ON", "StoreSettings", "check_start_on"]

#: Where a window may start: on a human message, or on any message but a tool result.
START_ON = ("human", "any")


def check_start_on(start_on: Any) -> str:
    """Where a window may start: one of START_ON (InvalidOptionError otherwise)."""
    if start_on not in START_ON:
        raise InvalidOptionError(f"start_on must be 'human' or 'any', got {start_on!r}")
    return str(start_on)


@dataclass(frozen=True)
class StoreSettings:
    """How a store keeps histories; every field is checked by :meth:`build`.

    - ``layout``: the key names and list order ("native", "community", "memorystore" or
      a Layout);
    - ``ttl``: seconds (or a timedelta) each session lives after its last write, None to
      keep it;
    - ``max_messages``: keep at most the newest N messages of a session, trimmed atomically
      by each append at a point that never splits a tool call from its results (the
      window rule, see ``start_on``/``keep_system`` and the README's "Windows");
    - ``start_on``: where windows (``last=``, ``max_tokens=``) and trims may start:
      ``"human"`` (a human message; the default) or ``"any"`` (any message but a tool
      result);
    - ``keep_system``: keep a system message stored at the start of the history in front
      of windows and trims (it counts against their budget);
    - ``max_message_bytes``: the largest encoded message accepted;
    - ``strict``: a stored element that cannot be read raises CorruptMessageError
      (False: it is skipped with a warning);
    - ``retry_deadline``: seconds to keep retrying an operation through connection
      errors and failovers (appends stay exactly-once);
    - ``durability``: wait for replicas or fsync after each append (see Durability).
    """

    layout: Layout
    ttl: int | None = None
    max_messages: int | None = None
    start_on: str = "human"
    keep_system: bool = False
    max_message_bytes: int = codec.DEFAULT_MAX_MESSAGE_BYTES
    strict: bool = True
    retry_deadline: float = 15.0
    durability: Durability = field(default_factory=Durability)

    @classmethod
    def build(
        cls,
        *,
        layout: Layout | str = "native",
        ttl: Any = None,
        max_messages: Any = None,
        start_on: Any = "human",
        keep_system: Any = False,
        max_message_bytes: Any = codec.DEFAULT_MAX_MESSAGE_BYTES,
        strict: Any = True,
        retry_deadline: Any = 15.0,
        durability: Durability | str | None = None,
    ) -> StoreSettings:
        """Settings from user input, each option checked (InvalidOptionError names it)."""
        if not isinstance(strict, bool):
            raise InvalidOptionError(f"strict must be a bool, not {type(strict).__name__}")
        if (
            isinstance(retry_deadline, bool)
            or not isinstance(retry_deadline, (int, float))
            or not 0 <= retry_deadline < float("inf")
        ):
            raise InvalidOptionError(
                f"retry_deadline must be a number of seconds >= 0, got {retry_deadline!r}"
            )
        check_start_on(start_on)
        if not isinstance(keep_system, bool):
            raise InvalidOptionError(
                f"keep_system must be a bool, not {type(keep_system).__name__}"
            )
        return cls(
            layout=resolve_layout(layout),
            ttl=check_ttl(ttl),
            max_messages=check_max_messages(max_messages),
            start_on=str(start_on),
            keep_system=keep_system,
            max_message_bytes=check_positive_int("max_message_bytes", max_message_bytes),
            strict=strict,
            retry_deadline=float(retry_deadline),
            durability=resolve_durability(durability),
        )
