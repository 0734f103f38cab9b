"""The redis-free core of the LangGraph store: keys, values, gets and puts (searches and
listings are in :mod:`._store_reads`, a whole batch in :mod:`._store_batch`).

Items are grouped in *shards*: the first ``shard_depth`` labels of a namespace (all of
them when it is shorter). A shard's keys share one hash tag, so one script serves every
get, put or search inside it, on a cluster too:

========================== ====== ==========================================================
key                        type   contents
========================== ====== ==========================================================
``P:{S}:ns``               zset   the shard's namespace paths, scored by creation (clock)
``P:{S}:clock``            string the last stamp the shard gave (server µs, always rising)
``P:{S}:n:<path>``         zset   a namespace's item keys, scored by creation (clock)
``P:{S}:i:<path>.<key>``   hash   ``value`` (JSON), ``created``, ``updated`` (µs),
                                  ``ttl`` (ms, if any), ``vec`` (packed float32 unit vectors)
``P:namespaces``           zset   every namespace path, score 0 (lexical), one global key
``P:shard_depth``          string the shard depth the keys were made with (first put)
========================== ====== ==========================================================

``S`` is the shard's labels joined by ``.`` with ``%``, ``{`` and ``}`` percent-encoded;
a namespace *path* is each label followed by ``.`` (``("memories", "u1")`` is
``memories.u1.``), so a path prefix selects exactly the namespaces under a prefix
(labels contain no ``.``, which LangGraph forbids), and ``<path>.<key>`` is unambiguous
(the first ``..`` ends the path, labels being non-empty).

Items have a ttl of their own (PEXPIRE); the index entries of an expired item are dropped
when a read meets them, and the index keys expire once every item they list would have.
The global registry is another slot, so a put adds to it in the same round trip as a
second command (idempotent ZADD; on a cluster again after the script, for namespaces the
script created: see :mod:`._store_batch`); listings check each namespace they return
against its shard and drop those left without items (re-adding any a concurrent put
revived).

Order, as InMemoryStore has it: namespaces in the order they were created, items of a
namespace in the order they were created (an update keeps the place). With ``query=``
items are ranked by their best cosine similarity over their vectors, ties in that order,
then the items without vectors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._plan import Call, Plan, text
from ._store_lua import GET_SCRIPT, PUT_SCRIPT
from .codec import MAX_NESTING_DEPTH, exceeds_nesting_limit
from .errors import CorruptItemError, InvalidItemError, WrongTypeError
from .layouts import encode_tag

__all__ = [
    "Get",
    "ListNamespaces",
    "Put",
    "Search",
    "ServerShape",
    "StoreKeys",
    "Stored",
    "checked",
    "decode_value",
    "encode_value",
    "namespace_of",
    "path_of",
    "plan_gets",
    "plan_puts",
    "registry_plan",
    "stamp_of",
    "together",
]


def path_of(namespace: Sequence[str]) -> str:
    """A namespace as the path stored in keys and sets: each label followed by ``.``."""
    return "".join(f"{label}." for label in namespace)


def namespace_of(path: str) -> tuple[str, ...]:
    """The inverse of :func:`path_of`."""
    return tuple(path.split(".")[:-1])


@dataclass(frozen=True)
class StoreKeys:
    """Key names of one store (``prefix``) whose shards are ``depth`` labels deep."""

    prefix: str
    depth: int

    @property
    def registry(self) -> str:
        return f"{self.prefix}:namespaces"

    @property
    def depth_key(self) -> str:
        """Where the first put records the shard depth its keys were made with, so a store
        (or the CLI) made with another one refuses to read them as its own."""
        return f"{self.prefix}:shard_depth"

    def shard(self, namespace: Sequence[str]) -> str:
        """The shard of a namespace: its first ``depth`` labels."""
        return ".".join(namespace[: self.depth])

    def head(self, shard: str) -> str:
        """What every key of the shard starts with (the scripts append to it)."""
        return f"{self.prefix}:{{{encode_tag(shard)}}}:"

    def shard_keys(self, shard: str) -> tuple[str, str]:
        head = self.head(shard)
        return head + "ns", head + "clock"

    def item(self, namespace: Sequence[str], key: str) -> tuple[str, str]:
        """The item's hash and its namespace's zset."""
        head, path = self.head(self.shard(namespace)), path_of(namespace)
        return f"{head}i:{path}.{key}", f"{head}n:{path}"


class Stored(NamedTuple):
    """An item as a script returned it; ``score`` only for ``query=`` searches."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_us: int
    updated_us: int
    score: float | None = None


# The ops, checked and encoded by the store class before the flow runs.


class Get(NamedTuple):
    namespace: tuple[str, ...]
    key: str
    refresh: bool


class Search(NamedTuple):
    prefix: tuple[str, ...]
    filter: str  # compiled (_store_filters.compile_filter), "" for none
    offset: int
    limit: int
    refresh: bool
    query: tuple[float, ...] | None = None  # the unit query vector
    dims: int = 0


class ListNamespaces(NamedTuple):
    conditions: tuple[tuple[str, tuple[str, ...]], ...]  # (prefix|suffix, labels)
    max_depth: int | None
    limit: int
    offset: int


class Put(NamedTuple):
    namespace: tuple[str, ...]
    key: str
    value: str | None  # JSON; None deletes
    ttl_ms: int
    vectors: bytes = b""


Op = Get | Search | ListNamespaces | Put


def encode_value(namespace: tuple[str, ...], key: str, value: Any, max_bytes: int) -> str:
    """An item's value as stored: strict JSON (no NaN), at most ``max_bytes`` UTF-8 bytes
    and MAX_NESTING_DEPTH levels deep (as messages are: deeper values exhaust the
    recursion limits of the JSON codecs that read them, here and in the scripts)."""
    where = f"item {key!r} in {namespace!r}"
    if not isinstance(value, Mapping):
        raise InvalidItemError(f"{where}: the value must be a dict, not {type(value).__name__}")
    try:
        encoded = json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
    except RecursionError:
        encoded = ""
    except (TypeError, ValueError) as exc:
        raise InvalidItemError(f"{where}: the value is not JSON-serialisable: {exc}") from exc
    if not encoded or exceeds_nesting_limit(encoded, value):
        raise InvalidItemError(f"{where}: the value is nested more than {MAX_NESTING_DEPTH} levels")
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidItemError(f"{where}: the value holds text that is not UTF-8: {exc}") from exc
    if size > max_bytes:
        raise InvalidItemError(
            f"{where}: the value encodes to {size} bytes, over max_value_bytes={max_bytes}"
        )
    return encoded


# Replies.


def checked(reply: Any) -> Any:
    """A script's reply, unless it reports a wrong type or a corrupt item (raised)."""
    if isinstance(reply, list) and reply and isinstance(reply[0], (bytes, str)):
        kind = text(reply[0])
        if kind == "WRONGTYPE" and len(reply) == 4:
            raise WrongTypeError(text(reply[1]), text(reply[3]), text(reply[2]))
        if kind == "CORRUPT" and len(reply) == 3:
            raise CorruptItemError(text(reply[1]), text(reply[2]))
    return reply


def decode_value(namespace: tuple[str, ...], key: str, raw: Any, keys: StoreKeys) -> dict[str, Any]:
    try:
        value = json.loads(text(raw))
    except (ValueError, RecursionError) as exc:
        raise CorruptItemError(keys.item(namespace, key)[0], f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CorruptItemError(keys.item(namespace, key)[0], "the value is not a JSON object")
    return value


def stamp_of(raw: Any, namespace: tuple[str, ...], key: str, keys: StoreKeys) -> int:
    try:
        return int(text(raw))
    except ValueError as exc:
        raise CorruptItemError(keys.item(namespace, key)[0], "bad created/updated") from exc


# Plans.


def registry_plan(keys: StoreKeys, prefix: tuple[str, ...]) -> Plan[list[str]]:
    """Every registered namespace path under ``prefix``."""
    path = path_of(prefix)
    low, high = ("-", "+") if not path else (f"[{path}", f"({path[:-1]}/")
    return Plan(
        (Call(("ZRANGEBYLEX", keys.registry, low, high), raw=True),),
        lambda replies: [text(member) for member in replies[0]],
        (keys.registry, "zset"),
    )


def plan_gets(keys: StoreKeys, shard: str, gets: Sequence[Get]) -> Plan[list[Stored | None]]:
    """Items of one shard, in one script call (refreshing ttls if the first get asks)."""
    shard_keys = keys.shard_keys(shard)
    call_keys: list[str] = list(shard_keys)
    args: list[Any] = ["1" if gets[0].refresh else "0"]
    for get in gets:
        call_keys += keys.item(get.namespace, get.key)
        args += [path_of(get.namespace), get.key]

    def parse(replies: list[Any]) -> list[Stored | None]:
        found: list[Stored | None] = []
        for get, got in zip(gets, checked(replies[0]), strict=True):
            if got is None:
                found.append(None)
                continue
            value, created, updated = got
            found.append(
                Stored(
                    get.namespace,
                    get.key,
                    decode_value(get.namespace, get.key, value, keys),
                    stamp_of(created, get.namespace, get.key, keys),
                    stamp_of(updated, get.namespace, get.key, keys),
                )
            )
        return found

    call = Call(tuple(args), script=GET_SCRIPT, keys=tuple(call_keys), raw=True)
    return Plan((call,), parse)


@dataclass
class ServerShape:
    """What a store learns of its deployment before its first batch (see
    :func:`_first_contact`): whether one server holds every shard (not a cluster), and
    whether its shard depth is recorded under its prefix yet."""

    checked: bool = False
    one_server: bool = True
    depth_recorded: bool = False


def plan_puts(
    keys: StoreKeys, groups: Mapping[str, Sequence[Put]], shape: ServerShape
) -> Plan[list[str]]:
    """Apply puts and deletes of one or more shards (each shard's ops) in one script call,
    all or nothing; returns the namespace paths it added to their shards. On one server
    their registry entries are added in the same round trip, after the script on the same
    connection; on a cluster the registry is on another node, so the flow adds the new
    paths once the script has replied (see :func:`batch_flow`)."""
    call_keys: list[str] = []
    counts: list[int] = []
    args: list[Any] = []
    for shard, puts in groups.items():
        call_keys += keys.shard_keys(shard)
        counts.append(len(puts))
        for put in puts:
            call_keys += keys.item(put.namespace, put.key)
            mode = "d" if put.value is None else "p"
            args += [mode, path_of(put.namespace), put.key, put.value or "", put.ttl_ms]
            args.append(put.vectors)
    calls = [Call((len(counts), *counts, *args), script=PUT_SCRIPT, keys=tuple(call_keys))]
    every = [put for puts in groups.values() for put in puts]
    paths = sorted({path_of(put.namespace) for put in every if put.value is not None})
    if paths:
        calls.append(Call(("ZADD", keys.registry, *(x for p in paths for x in (0, p)))))
        if not shape.depth_recorded:
            calls.append(Call(("SET", keys.depth_key, keys.depth, "NX")))

    def parse(replies: list[Any]) -> list[str]:
        return [text(path) for path in checked(replies[0])[1:]]

    return Plan(tuple(calls), parse, (keys.registry, "zset"))


def together(plans: Sequence[Plan[Any]]) -> Plan[list[Any]]:
    """Several plans as one round trip; each reads its own replies."""
    sizes = [len(plan.calls) for plan in plans]
    calls = tuple(call for plan in plans for call in plan.calls)

    def parse(replies: list[Any]) -> list[Any]:
        results, start = [], 0
        for plan, size in zip(plans, sizes, strict=True):
            results.append(plan.parse(replies[start : start + size]))
            start += size
        return results

    expects = next((plan.expects for plan in plans if plan.expects), None)
    return Plan(calls, parse, expects)
