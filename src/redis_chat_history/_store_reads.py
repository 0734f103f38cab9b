"""The LangGraph store's reads that walk its indexes, redis-free: searches (one shard, or
every shard under a short prefix through the registry; with ``query=`` every match ranked
in the client) and namespace listings (from the registry, each checked for live items).
See :mod:`._store_core` for the keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ._plan import Call, Flow, Plan, text
from ._store_core import (
    Get,
    ListNamespaces,
    Search,
    Stored,
    StoreKeys,
    checked,
    decode_value,
    namespace_of,
    path_of,
    plan_gets,
    registry_plan,
    stamp_of,
    together,
)
from ._store_lua import ALIVE_SCRIPT, SEARCH_SCRIPT
from ._vectors import best_scores

__all__ = ["list_flow", "search_flow"]

#: Namespaces a listing checks for live items per round trip.
_CHECK_CHUNK = 256


class _Row(NamedTuple):
    """One match as the search script returns it (raw bytes; see _store_lua)."""

    path: bytes
    key: bytes
    value: bytes
    created: bytes
    updated: bytes
    ns_score: bytes  # the namespace's creation stamp in its shard
    lua_score: Any  # the script's own score (its benchmark-only "score" mode), else false
    vectors: bytes | None  # the packed vectors ("fetch" mode), else None
    ttl: bytes | None  # the item's ttl field, if it has one


class _Match(NamedTuple):
    """A search match with what orders it across shards; its value is decoded only if it
    is returned (a query ranks every match, most of which are not)."""

    ns_score: float
    path: str
    created: int
    score: float | None
    row: _Row
    keys: StoreKeys

    @property
    def namespace(self) -> tuple[str, ...]:
        return namespace_of(self.path)

    @property
    def key(self) -> str:
        return text(self.row.key)

    @property
    def ttl(self) -> bool:
        """Whether the item has a ttl (to refresh if it is returned)."""
        return self.row.ttl is not None

    def item(self) -> Stored:
        namespace, name = self.namespace, self.key
        return Stored(
            namespace,
            name,
            decode_value(namespace, name, self.row.value, self.keys),
            self.created,
            stamp_of(self.row.updated, namespace, name, self.keys),
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
        rows = [_Row(*entry) for entry in checked(replies[0])]
        scores: list[float | None] = [None] * len(rows)
        if search.query is not None:
            vectors = [None if row.vectors is None else bytes(row.vectors) for row in rows]
            scores = best_scores(vectors, search.query, search.dims)
        matches = []
        for row, score in zip(rows, scores, strict=True):
            path = text(row.path)
            created_us = stamp_of(row.created, namespace_of(path), text(row.key), keys)
            matches.append(_Match(float(text(row.ns_score)), path, created_us, score, row, keys))
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
    benchmarks/store_search.py: as fast end to end, and the server is blocked 2.7 to 4.5
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
        paths = yield registry_plan(keys, search.prefix)
        shards = sorted({keys.shard(namespace_of(path)) for path in paths})
        if not shards:
            return []
        plans = [plan_search(keys, shard, search, page=False) for shard in shards]
        found = yield together(plans)
        page = _merge((m for matches in found for m in matches), search)
    if search.refresh:
        by_shard: dict[str, list[Get]] = {}
        for match in page:
            if match.ttl:
                get = Get(match.namespace, match.key, True)
                by_shard.setdefault(keys.shard(get.namespace), []).append(get)
        if by_shard:
            yield together([plan_gets(keys, shard, gets) for shard, gets in by_shard.items()])
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
            for path, flag in zip(members, checked(reply), strict=True):
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
    paths = yield registry_plan(keys, lead)
    candidates = sorted(
        ns for ns in (namespace_of(path) for path in paths) if _matches(op.conditions, ns)
    )
    depth = op.max_depth
    # Truncating to a negative depth does not keep the sorted order the early stop needs.
    bounded = min(op.offset, op.limit) >= 0 and (depth is None or depth >= 0)
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
