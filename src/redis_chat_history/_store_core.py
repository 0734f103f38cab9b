"""The redis-free core of the LangGraph store: keys, values, plans and flows.

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
========================== ====== ==========================================================

``S`` is the shard's labels joined by ``.`` with ``%``, ``{`` and ``}`` percent-encoded;
a namespace *path* is each label followed by ``.`` (``("memories", "u1")`` is
``memories.u1.``), so a path prefix selects exactly the namespaces under a prefix
(labels contain no ``.``, which LangGraph forbids), and ``<path>.<key>`` is unambiguous
(the first ``..`` ends the path, labels being non-empty).

Items have a ttl of their own (PEXPIRE); the index entries of an expired item are dropped
when a read meets them, and the index keys expire once every item they list would have.
The global registry is another slot, so a put adds to it in the same round trip as a
second command (idempotent ZADD); listings check each namespace they return against its
shard and drop those left without items (re-adding any a concurrent put revived).

Order, as InMemoryStore has it: namespaces in the order they were created, items of a
namespace in the order they were created (an update keeps the place). With ``query=``
items are ranked by their best cosine similarity over their vectors, ties in that order,
then the items without vectors.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._plan import Call, Flow, Plan, Topology, text
from ._store_lua import ALIVE_SCRIPT, GET_SCRIPT, PUT_SCRIPT, SEARCH_SCRIPT
from ._vectors import best_scores
from .codec import MAX_NESTING_DEPTH, exceeds_nesting_limit
from .errors import CorruptItemError, InvalidItemError, WrongTypeError
from .layouts import encode_tag

__all__ = [
    "Get",
    "ListNamespaces",
    "Put",
    "Search",
    "ServerShape",
    "Stored",
    "StoreKeys",
    "batch_flow",
    "encode_value",
    "namespace_of",
    "path_of",
]

#: Namespaces a listing checks for live items per round trip.
_CHECK_CHUNK = 256


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
    size = len(encoded.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidItemError(
            f"{where}: the value encodes to {size} bytes, over max_value_bytes={max_bytes}"
        )
    return encoded


# Replies.


def _checked(reply: Any) -> Any:
    """A script's reply, unless it reports a wrong type or a corrupt item (raised)."""
    if isinstance(reply, list) and reply and isinstance(reply[0], (bytes, str)):
        kind = text(reply[0])
        if kind == "WRONGTYPE" and len(reply) == 4:
            raise WrongTypeError(text(reply[1]), text(reply[3]), text(reply[2]))
        if kind == "CORRUPT" and len(reply) == 3:
            raise CorruptItemError(text(reply[1]), text(reply[2]))
    return reply


def _decode(namespace: tuple[str, ...], key: str, raw: Any, keys: StoreKeys) -> dict[str, Any]:
    try:
        value = json.loads(text(raw))
    except (ValueError, RecursionError) as exc:
        raise CorruptItemError(keys.item(namespace, key)[0], f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CorruptItemError(keys.item(namespace, key)[0], "the value is not a JSON object")
    return value


def _stamp(raw: Any, namespace: tuple[str, ...], key: str, keys: StoreKeys) -> int:
    try:
        return int(text(raw))
    except ValueError as exc:
        raise CorruptItemError(keys.item(namespace, key)[0], "bad created/updated") from exc


# Plans.


def _registry_plan(keys: StoreKeys, prefix: tuple[str, ...]) -> Plan[list[str]]:
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
        for get, got in zip(gets, _checked(replies[0]), strict=True):
            if got is None:
                found.append(None)
                continue
            value, created, updated = got
            found.append(
                Stored(
                    get.namespace,
                    get.key,
                    _decode(get.namespace, get.key, value, keys),
                    _stamp(created, get.namespace, get.key, keys),
                    _stamp(updated, get.namespace, get.key, keys),
                )
            )
        return found

    call = Call(tuple(args), script=GET_SCRIPT, keys=tuple(call_keys), raw=True)
    return Plan((call,), parse)


def plan_puts(keys: StoreKeys, groups: Mapping[str, Sequence[Put]]) -> Plan[None]:
    """Apply puts and deletes of one or more shards (each shard's ops) in one script call,
    all or nothing, and register their namespaces (another slot: a second command in the
    same round trip). Several shards in one call only where one server holds them all."""
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
    call = Call((len(counts), *counts, *args), script=PUT_SCRIPT, keys=tuple(call_keys))
    every = [put for puts in groups.values() for put in puts]
    paths = sorted({path_of(put.namespace) for put in every if put.value is not None})
    calls = [call]
    if paths:
        calls.append(Call(("ZADD", keys.registry, *(x for p in paths for x in (0, p)))))
    return Plan(
        tuple(calls), lambda replies: _checked(replies[0]) and None, (keys.registry, "zset")
    )


class _Match(NamedTuple):
    """A search match with what orders it across shards; its value is decoded only if it
    is returned (a query ranks every match, most of which are not)."""

    ns_score: float
    path: str
    created: int
    score: float | None
    row: Any  # the script's entry for it
    ttl: bool  # the item has a ttl (to refresh if it is returned)
    keys: StoreKeys

    @property
    def namespace(self) -> tuple[str, ...]:
        return namespace_of(self.path)

    @property
    def key(self) -> str:
        return text(self.row[1])

    def item(self) -> Stored:
        namespace, name = self.namespace, self.key
        value, updated = self.row[2], self.row[4]
        return Stored(
            namespace,
            name,
            _decode(namespace, name, value, self.keys),
            self.created,
            _stamp(updated, namespace, name, self.keys),
            self.score,
        )


def plan_search(keys: StoreKeys, shard: str, search: Search, *, page: bool) -> Plan[list[_Match]]:
    """One shard's matches: the page itself (``page``: the script refreshes their ttls),
    or its first offset+limit; with a query every match and its vectors, ranked here
    (see :func:`search_flow`)."""
    offset, limit = search.offset, search.limit
    ranked = search.query is not None
    if ranked:
        offset, limit = 0, -1
    elif not page or offset < 0 or limit < 0:
        offset, limit = 0, (search.offset + search.limit if min(offset, limit) >= 0 else -1)
    args = (
        keys.head(shard),
        path_of(search.prefix),
        search.filter,
        offset,
        limit,
        "1" if search.refresh and page and not ranked else "0",
        "",
        search.dims,
        "fetch" if ranked else "score",
    )

    def parse(replies: list[Any]) -> list[_Match]:
        rows = _checked(replies[0])
        scores: list[float | None] = [None] * len(rows)
        if search.query is not None:
            vectors = [None if row[7] is None else bytes(row[7]) for row in rows]
            scores = best_scores(vectors, search.query, search.dims)
        matches = []
        for row, score in zip(rows, scores, strict=True):
            path, key, ns_score, ttl = text(row[0]), row[1], row[5], row[8]
            created_us = _stamp(row[3], namespace_of(path), text(key), keys)
            matches.append(
                _Match(float(text(ns_score)), path, created_us, score, row, ttl is not None, keys)
            )
        return matches

    call = Call(args, script=SEARCH_SCRIPT, keys=keys.shard_keys(shard), raw=True)
    return Plan((call,), parse)


def _merge(matches: Iterable[_Match], search: Search) -> list[_Match]:
    """Matches of several shards in one listing's order (with a query: by score, ties
    in that order, then those without vectors), then the page."""
    ordered = sorted(matches, key=lambda m: (m.ns_score, m.path, m.created))
    if search.query is not None:
        scored = [m for m in ordered if m.score is not None]
        scored.sort(key=lambda m: -(m.score or 0.0))  # stable: ties keep listing order
        ordered = scored + [m for m in ordered if m.score is None]
    return ordered[search.offset : search.offset + search.limit]


def search_flow(keys: StoreKeys, search: Search) -> Flow[list[Stored]]:
    """A search: one script when the prefix fixes the shard, else one per shard that
    holds a namespace under the prefix (found in the registry). With a query the
    scripts return every match with its vectors and the client ranks them (measured by
    benchmarks/store_search.py: as fast end to end, and the server is blocked 2.4 to 5.0
    times less than by scoring in Lua). Unless the script returned the page itself, the
    ttls of the returned items are refreshed in a second round trip (if any has one)."""
    if len(search.prefix) >= keys.depth:
        shard = keys.shard(search.prefix)
        exact = min(search.offset, search.limit) >= 0 and search.query is None
        matches = yield plan_search(keys, shard, search, page=exact)
        if exact:
            return [m.item() for m in matches]
        page = _merge(matches, search)
    else:
        paths = yield _registry_plan(keys, search.prefix)
        shards = sorted({keys.shard(namespace_of(path)) for path in paths})
        if not shards:
            return []
        plans = [plan_search(keys, shard, search, page=False) for shard in shards]
        found = yield _together(plans)
        page = _merge((m for matches in found for m in matches), search)
    if search.refresh:
        by_shard: dict[str, list[Get]] = {}
        for match in page:
            if match.ttl:
                get = Get(match.namespace, match.key, True)
                by_shard.setdefault(keys.shard(get.namespace), []).append(get)
        if by_shard:
            yield _together([plan_gets(keys, shard, gets) for shard, gets in by_shard.items()])
    return [m.item() for m in page]


def _matches(conditions: Sequence[tuple[str, tuple[str, ...]]], namespace: tuple[str, ...]) -> bool:
    """Whether a namespace meets every condition (InMemoryStore's ``_does_match``)."""
    for kind, labels in conditions:
        if len(namespace) < len(labels):
            return False
        pairs = (
            zip(namespace, labels, strict=False)
            if kind == "prefix"
            else zip(reversed(namespace), reversed(labels), strict=False)
        )
        if any(want != "*" and have != want for have, want in pairs):
            return False
    return True


def _alive_plan(keys: StoreKeys, paths: Sequence[str]) -> Plan[dict[str, bool]]:
    """Which namespaces have a live item (one script per shard, one round trip)."""
    by_shard: dict[str, list[str]] = {}
    for path in paths:
        by_shard.setdefault(keys.shard(namespace_of(path)), []).append(path)
    calls, order = [], []
    for shard, members in by_shard.items():
        args = (keys.head(shard), *members)
        calls.append(Call(args, script=ALIVE_SCRIPT, keys=(keys.shard_keys(shard)[0],)))
        order.append(members)

    def parse(replies: list[Any]) -> dict[str, bool]:
        alive: dict[str, bool] = {}
        for members, reply in zip(order, replies, strict=True):
            for path, flag in zip(members, _checked(reply), strict=True):
                alive[path] = bool(int(flag))
        return alive

    return Plan(tuple(calls), parse)


def list_flow(keys: StoreKeys, op: ListNamespaces) -> Flow[list[tuple[str, ...]]]:
    """Namespaces from the registry (ZRANGEBYLEX on the leading labels before any ``*``),
    filtered and sorted as InMemoryStore does, each checked for a live item in the order
    returned until the page is full; entries found dead are dropped from the registry."""
    lead: tuple[str, ...] = ()
    for kind, labels in op.conditions:
        if kind == "prefix":
            fixed = []
            for label in labels:
                if label == "*":
                    break
                fixed.append(label)
            lead = tuple(fixed) if len(fixed) > len(lead) else lead
    paths = yield _registry_plan(keys, lead)
    candidates = sorted(
        ns for ns in (namespace_of(path) for path in paths) if _matches(op.conditions, ns)
    )
    depth = op.max_depth
    bounded = min(op.offset, op.limit) >= 0
    wanted = op.offset + op.limit
    listed: list[tuple[str, ...]] = []
    for start in range(0, len(candidates), _CHECK_CHUNK):
        chunk = [path_of(ns) for ns in candidates[start : start + _CHECK_CHUNK]]
        alive = yield _alive_plan(keys, chunk)
        dead = [path for path in chunk if not alive[path]]
        if dead:
            alive.update((yield from _forget(keys, dead)))
        for path in chunk:
            if not alive[path]:
                continue
            shown = namespace_of(path)
            if depth is not None:
                shown = shown[:depth]
            if not listed or listed[-1] != shown:
                listed.append(shown)
        if bounded and len(listed) >= wanted:
            break
    if depth is not None:
        listed = sorted(set(listed))
    return listed[op.offset : op.offset + op.limit]


def _forget(keys: StoreKeys, dead: list[str]) -> Flow[dict[str, bool]]:
    """Drop dead namespaces from the registry; then check them again and put back any a
    put revived meanwhile (its ZADD may have landed before our ZREM)."""
    yield Plan(
        (Call(("ZREM", keys.registry, *dead)),), lambda replies: None, (keys.registry, "zset")
    )
    again: dict[str, bool] = yield _alive_plan(keys, dead)
    revived = [path for path in dead if again[path]]
    if revived:
        members = [x for path in revived for x in (0, path)]
        yield Plan(
            (Call(("ZADD", keys.registry, *members)),),
            lambda replies: None,
            (keys.registry, "zset"),
        )
    return again


def _together(plans: Sequence[Plan[Any]]) -> Plan[list[Any]]:
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


def gather(flows: Sequence[Flow[Any]]) -> Flow[list[Any]]:
    """Run flows side by side: each round trip sends every flow's next plan together."""
    results: list[Any] = [None] * len(flows)
    pending: dict[int, Plan[Any]] = {}

    def advance(index: int, reply: Any, first: bool) -> None:
        try:
            step = next(flows[index]) if first else flows[index].send(reply)
        except StopIteration as done:
            results[index] = done.value
            pending.pop(index, None)
            return
        assert isinstance(step, Plan), "store flows only yield plans"
        pending[index] = step

    for index in range(len(flows)):
        advance(index, None, True)
    while pending:
        order = list(pending)
        replies = yield _together([pending[index] for index in order])
        for index, reply in zip(order, replies, strict=True):
            advance(index, reply, False)
    return results


@dataclass
class ServerShape:
    """What a store learned of its deployment: whether one server holds every shard (not
    a cluster), asked once, by the first batch that writes to several shards."""

    one_server: bool | None = None


def batch_flow(keys: StoreKeys, ops: Sequence[Op], shape: ServerShape) -> Flow[list[Any]]:
    """A batch as InMemoryStore runs it: reads first (gets grouped per shard, searches and
    listings side by side), then the puts (the last per item wins): on one server a
    single script for every shard, so the batch's writes are all or nothing; on a
    cluster one script per shard (each atomic), in one round trip. Results in op order
    (None for puts)."""
    results: list[Any] = [None] * len(ops)
    flows: list[Flow[Any]] = []
    targets: list[list[int] | int] = []  # per flow: its op, or the ops of a get group
    gets: dict[tuple[str, bool], list[tuple[int, Get]]] = {}
    puts: dict[tuple[tuple[str, ...], str], Put] = {}
    for index, op in enumerate(ops):
        if isinstance(op, Get):
            gets.setdefault((keys.shard(op.namespace), op.refresh), []).append((index, op))
        elif isinstance(op, Search):
            flows.append(search_flow(keys, op))
            targets.append(index)
        elif isinstance(op, ListNamespaces):
            flows.append(list_flow(keys, op))
            targets.append(index)
        else:
            puts[(op.namespace, op.key)] = op
    for (shard, _refresh), group in gets.items():
        flows.append(_plan_flow(plan_gets(keys, shard, [get for _, get in group])))
        targets.append([at for at, _get in group])
    if flows:
        for target, found in zip(targets, (yield from gather(flows)), strict=True):
            if isinstance(target, int):
                results[target] = found
            else:
                for at, item in zip(target, found, strict=True):
                    results[at] = item
    if puts:
        by_shard: dict[str, list[Put]] = {}
        for put in puts.values():
            by_shard.setdefault(keys.shard(put.namespace), []).append(put)
        if len(by_shard) > 1 and shape.one_server is None:
            shape.one_server = not (yield Topology())
        if len(by_shard) == 1 or shape.one_server:
            yield plan_puts(keys, by_shard)
        else:
            plans = [plan_puts(keys, {shard: group}) for shard, group in by_shard.items()]
            yield _together(plans)
    return results


def _plan_flow(plan: Plan[Any]) -> Flow[Any]:
    result = yield plan
    return result
