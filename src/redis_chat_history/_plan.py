"""The vocabulary of the redis-free core: what to send, and how to read what comes back.

Every operation is a *flow*: a generator that yields *steps* and receives each step's
result, then returns the operation's result. The steps are:

- :class:`Plan`: calls sent together in one round trip, and a function reading the replies;
- :class:`BestEffort`: a plan whose failure is logged and does not fail the operation;
- :class:`Scan`: the next batch of keys matching a pattern (SCAN; empty when done);
- :class:`Info`: a section of ``INFO`` of the server (None if it refuses);
- :class:`OnTarget`: a step for the operation's second store (a migration's target).

A step that fails has its error raised inside the flow, at the ``yield``, so a flow may
handle it (a transfer reports one bad session and goes on); most let it pass.

The sync and async shells (``_sync_driver``/``_async_driver``) only drive flows: they send,
scan, and sleep between retries. Everything else (key names, commands, scripts, reading
replies, what to do next) is decided here and in the modules built on this one, which
never import redis-py, so each operation is written once and tested without a server.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from .errors import WrongTypeError

__all__ = [
    "MAX_REDIRECTS",
    "BestEffort",
    "Call",
    "Flow",
    "Info",
    "OnTarget",
    "Plan",
    "RetryTimer",
    "Scan",
    "Script",
    "Step",
    "Topology",
    "WrongTypeReply",
    "run_plan",
    "text",
    "translate_error",
]

T = TypeVar("T")

#: Cluster redirections (MOVED/ASK) followed for one round trip before giving up.
MAX_REDIRECTS = 5


def text(value: bytes | str) -> str:
    """A key, member or field read from Redis as text. Bytes that are not UTF-8 become
    lone surrogates (``surrogateescape``), so the text maps back to the same bytes."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Script:
    """A Lua script, sent as EVALSHA and, if the server lacks it, loaded and sent again."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


class Call(NamedTuple):
    """One Redis call: a plain command, or a script with its keys and args. ``raw`` asks
    for the reply as bytes even from a ``decode_responses=True`` client (stored messages
    are decoded by :mod:`codec`, which reports a non-UTF-8 element as corrupt)."""

    args: tuple[Any, ...]
    script: Script | None = None
    keys: tuple[str, ...] = ()
    raw: bool = False

    def wire(self) -> tuple[Any, ...]:
        """The arguments as sent: the command, or EVALSHA with the script's keys and args."""
        if self.script is None:
            return self.args
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)


class WrongTypeReply(NamedTuple):
    """How a script says that a key holds another type than it expects, touching nothing:
    the reply ``{'WRONGTYPE', key number, type}`` (a reply rather than an error, so a
    pipeline of scripts still returns the others' results). ``names`` are the types the
    script expects for its KEYS, in order, as :class:`WrongTypeError` shows them."""

    names: tuple[str, ...]

    def error(self, reply: Any, keys: Sequence[str]) -> WrongTypeError | None:
        """WrongTypeError for such a reply, naming the key; None for any other reply."""
        if not (isinstance(reply, list) and len(reply) == 3):
            return None
        if text(reply[0]) != "WRONGTYPE":
            return None
        position = int(reply[1]) - 1
        return WrongTypeError(keys[position], self.names[position], text(reply[2]))

    def check(self, reply: Any, keys: Sequence[str]) -> Any:
        """The reply, unless it is a wrong-type reply, which is raised."""
        error = self.error(reply, keys)
        if error is not None:
            raise error
        return reply


@dataclass(slots=True)
class Plan(Generic[T]):
    """Calls sent together in one round trip, and how to read their replies."""

    calls: tuple[Call, ...]
    parse: Callable[[list[Any]], T]
    #: The key and type named when Redis itself answers WRONGTYPE to a plain command
    #: (scripts report wrong types in their replies, see WrongTypeReply).
    expects: tuple[str, str] | None = None
    #: Send the calls in order on one connection to the primary holding this key
    #: (WAIT and WAITAOF only count the writes made on their own connection).
    same_connection_as: str | None = None


@dataclass(frozen=True)
class BestEffort:
    """A plan whose failure does not fail the operation (the write it follows has already
    happened): the shell logs the error, and the flow receives None."""

    plan: Plan[Any]
    #: What the plan is for, for the log message.
    purpose: str


@dataclass(frozen=True, eq=False)
class Scan:
    """SCAN for keys matching ``match`` (of ``type``, e.g. "list"): each time a flow
    yields the same Scan it receives the next batch of at most ``count`` keys as text, and
    an empty batch once every key has been seen (SCAN may return a key more than once).
    On a cluster every primary is scanned."""

    match: str
    type: str
    count: int


@dataclass(frozen=True)
class Info:
    """A section of ``INFO`` (of a cluster's default node), as a dict; the flow receives
    None if the server refuses it (an ACL user without INFO, a renamed command)."""

    section: str


@dataclass(frozen=True)
class Topology:
    """Whether the client routes commands by slot (a cluster): the flow receives True if
    so. A flow asks before sending keys of several slots in one script, which only one
    server holding them all can run."""


@dataclass(frozen=True)
class OnTarget:
    """A step for the second store of a two-store operation (a migration's target); the
    operation's other steps are for the store it runs on."""

    step: Plan[Any] | BestEffort | Scan | Info | Topology


Step = Plan[Any] | BestEffort | Scan | Info | Topology | OnTarget
Flow = Generator[Step, Any, T]


def run_plan(plan: Plan[T]) -> Flow[T]:
    """A flow of one plan (so every operation can be driven the same way)."""
    result: T = yield plan
    return result


def translate_error(message: str, plan: Plan[Any]) -> WrongTypeError | None:
    """Turn Redis's own WRONGTYPE error into WrongTypeError naming the plan's key; None
    for any other error."""
    # redis-py prefixes errors inside a pipeline with the failing command (which may hold
    # user text); Redis's own message is what follows the last marker (redis.asyncio shows
    # it as the exception's args tuple).
    message = message.rpartition(" of pipeline caused error: ")[2]
    if message.startswith(("('", '("')) and message.endswith(",)"):
        message = message[2:-3]
    if not message.startswith("WRONGTYPE"):
        return None
    key, expected = plan.expects or ("?", "list")
    return WrongTypeError(key, expected)


class RetryTimer:
    """Whether a round trip that failed with a connection error is tried again, and when.

    redis-py already retries each command a few times; this covers what outlasts that, such
    as a failover (seconds). Every plan is safe to send again (appends carry their token),
    so it is re-sent with backoff from 50 ms doubling to 1 s until ``deadline`` seconds
    after the operation started (one timer per operation); then the error is raised.
    The same timer bounds redis-py's own retries inside the call (``_clients.call_budget``):
    ``failed`` says an attempt has failed, after which no wait may run past the deadline.
    """

    def __init__(self, deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._give_up_at = clock() + deadline
        self._delay = 0.05
        self.failed = False

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self._give_up_at - self._clock()

    def next_delay(self) -> float | None:
        """Seconds to wait before the next try, or None to give up."""
        left = self.left()
        if left <= 0:
            return None
        delay, self._delay = min(self._delay, left), min(self._delay * 2, 1.0)
        return delay
