"""A LangGraph store batch as one flow, redis-free: what a store learns before its first
batch, then the batch's reads side by side and its writes (see :mod:`._store_core` for
the keys, :mod:`._store_reads` for searches and listings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._plan import Call, Flow, Plan, Topology, text
from ._store_core import (
    Get,
    ListNamespaces,
    Op,
    Put,
    Search,
    ServerShape,
    StoreKeys,
    plan_gets,
    plan_puts,
    together,
)
from ._store_reads import list_flow, search_flow
from .errors import InvalidOptionError, WrongTypeError

__all__ = ["batch_flow"]


def _first_contact(keys: StoreKeys, shape: ServerShape) -> Flow[None]:
    """What a store learns once, before its first batch: whether it talks to a cluster,
    and that its shard depth is the one the keys under its prefix were made with (and
    that the registry is a sorted set), so a mismatched store refuses instead of reading
    live namespaces as empty (and dropping them from the registry)."""
    shape.one_server = not (yield Topology())

    def parse(replies: list[Any]) -> str | None:
        kind = text(replies[1])
        if kind not in ("none", "zset"):
            raise WrongTypeError(keys.registry, "zset", kind)
        return None if replies[0] is None else text(replies[0])

    recorded = yield Plan(
        (Call(("GET", keys.depth_key)), Call(("TYPE", keys.registry))),
        parse,
        (keys.depth_key, "string"),
    )
    if recorded is not None and recorded != str(keys.depth):
        raise InvalidOptionError(
            f"the keys under prefix {keys.prefix!r} were made with shard_depth={recorded} "
            f"(see {keys.depth_key!r}); this store has shard_depth={keys.depth}"
        )
    shape.depth_recorded = recorded is not None
    shape.checked = True
    return None


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
        replies = yield together([pending[index] for index in order])
        for index, reply in zip(order, replies, strict=True):
            advance(index, reply, False)
    return results


def batch_flow(keys: StoreKeys, ops: Sequence[Op], shape: ServerShape) -> Flow[list[Any]]:
    """A batch as InMemoryStore runs it: reads first (gets grouped per shard, searches and
    listings side by side), then the puts (the last per item wins): on one server a
    single script for every shard, so the batch's writes are all or nothing; on a
    cluster one script per shard (each atomic), in one round trip, and then the
    registry entries of namespaces new to their shards. Results in op order (None for
    puts). A store's first batch first learns its deployment (:func:`_first_contact`)."""
    if not shape.checked:
        yield from _first_contact(keys, shape)
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
        if shape.one_server:
            yield plan_puts(keys, by_shard, shape)
        else:
            plans = [plan_puts(keys, {shard: group}, shape) for shard, group in by_shard.items()]
            added = yield together(plans)
            new_paths = sorted({path for paths in added for path in paths})
            if new_paths:  # after the scripts: a listing between cannot drop them for good
                members = [x for path in new_paths for x in (0, path)]
                yield Plan(
                    (Call(("ZADD", keys.registry, *members)),),
                    lambda replies: None,
                    (keys.registry, "zset"),
                )
        if any(put.value is not None for put in puts.values()):
            shape.depth_recorded = True
    return results


def _plan_flow(plan: Plan[Any]) -> Flow[Any]:
    result = yield plan
    return result
