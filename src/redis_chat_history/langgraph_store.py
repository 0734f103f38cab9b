"""LangGraph long-term memory on plain Redis: ``RedisStore`` and ``AsyncRedisStore``.

A ``BaseStore`` with namespaces, filters, TTL and exact semantic search, made of core
commands and Lua only (no RediSearch, no RedisJSON), so it runs on Memorystore,
ElastiCache, Valkey and open-source Redis, standalone or cluster. See ``_store_core``
for the keys. Both classes serve the sync and the async API (``batch`` and ``abatch``).

Costs: a get, put or search whose namespace (prefix) has at least ``shard_depth`` labels
is one script in one shard; a search with a shorter prefix reads the namespace registry
and runs one script per shard under it (one round trip, every shard's items scanned).
With ``query=`` every match under the prefix is scored exactly, in the client (numpy if
installed), as benchmarks/store_search.py measured best: past about 2,000 items at 1,536
dims (5,000 at 384) per searched prefix, use a vector index. docs/langgraph-store.md has
the table and the rest.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from . import _store_core as core
from ._store_batch import batch_flow
from ._store_filters import compile_filter
from ._twin_drivers import TwinDriven, TwinDrivers
from ._validate import check_ttl_minutes
from .codec import DEFAULT_MAX_MESSAGE_BYTES
from .errors import InvalidItemError, InvalidOptionError
from .settings import StoreSettings

__all__ = ["AsyncRedisStore", "RedisStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _when(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _ttl_config(ttl: Any) -> TTLConfig | None:
    """``ttl={"default_ttl": minutes, "refresh_on_read": bool}`` checked (LangGraph's
    TTLConfig; ``sweep_interval_minutes`` is accepted and unused: Redis expires items)."""
    if ttl is None:
        return None
    if not isinstance(ttl, Mapping):
        raise InvalidOptionError(f"ttl must be a dict like {{'default_ttl': 60}}, not {ttl!r}")
    unknown = set(ttl) - {"default_ttl", "refresh_on_read", "sweep_interval_minutes"}
    if unknown:
        raise InvalidOptionError(f"unknown ttl option(s): {sorted(unknown)}")
    minutes = ttl.get("default_ttl")
    if minutes is not None:
        _ttl_ms(minutes)
    if not isinstance(ttl.get("refresh_on_read", True), bool):
        raise InvalidOptionError("ttl['refresh_on_read'] must be a bool")
    return TTLConfig(**ttl)  # type: ignore[typeddict-item]


def _ttl_ms(minutes: Any) -> int:
    """A ttl in minutes as milliseconds (None: 0, no ttl)."""
    return 0 if minutes is None else check_ttl_minutes("ttl", minutes)


def _encodable(text: str) -> bool:
    """Whether a str is valid UTF-8 text (no lone surrogates), as keys and labels must be."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unit(vector: Sequence[float], dims: int) -> tuple[float, ...]:
    """An embedding scaled to length 1 (a zero vector stays zero, scoring 0 as
    InMemoryStore has it), so a dot product is the cosine."""
    if len(vector) != dims:
        raise InvalidOptionError(
            f"the embeddings have {len(vector)} dimensions, but index['dims'] is {dims}"
        )
    norm = math.sqrt(math.fsum(float(x) * float(x) for x in vector))
    return tuple(float(x) / norm if norm > 0 else float(x) for x in vector)


def _unit_vector(vector: Sequence[float], dims: int) -> bytes:
    """An embedding as stored: its unit vector as packed little-endian float32."""
    packed = array("f", _unit(vector, dims))
    if packed.itemsize != 4:  # pragma: no cover - every CPython platform has 4-byte floats
        raise RuntimeError("array('f') is not float32 here")
    return packed.tobytes() if _LITTLE else _swapped(packed)


def _swapped(packed: array[float]) -> bytes:  # pragma: no cover - big-endian hosts
    packed.byteswap()
    return packed.tobytes()


_LITTLE = array("H", [1]).tobytes() == b"\x01\x00"


class _Prepared:
    """A batch checked and encoded, with the texts and queries still to embed."""

    def __init__(self, store: _StoreBase, ops: Sequence[Op]) -> None:
        self.store = store
        self.ops = ops
        self.texts: list[str] = []  # distinct texts to embed
        self.queries: list[str] = []  # distinct queries to embed
        self._text_at: dict[str, int] = {}
        self.put_texts: dict[int, list[int]] = {}  # op index -> text indexes
        self.values: dict[int, str | None] = {}
        for op in ops:
            store._check_op(op)
        winners = {
            (op.namespace, op.key): index for index, op in enumerate(ops) if isinstance(op, PutOp)
        }
        for index, op in enumerate(ops):
            if isinstance(op, PutOp):
                self.values[index] = (
                    None
                    if op.value is None
                    else core.encode_value(op.namespace, op.key, op.value, store.max_value_bytes)
                )
                if op.value is not None and winners[(op.namespace, op.key)] == index:
                    self._collect_texts(index, op)
            elif (
                isinstance(op, SearchOp)
                and op.query
                and store.embeddings is not None
                and op.query not in self.queries
            ):
                self.queries.append(op.query)

    def _collect_texts(self, index: int, op: PutOp) -> None:
        store = self.store
        if store.embeddings is None or op.index is False or op.value is None:
            return
        if op.index is None:
            fields = store._fields
        else:
            fields = [(path, tokenize_path(path)) for path in op.index]
        found = []
        for _path, field in fields:
            for text in get_text_at_path(op.value, field):
                if text not in self._text_at:
                    self._text_at[text] = len(self.texts)
                    self.texts.append(text)
                found.append(self._text_at[text])
        if found:
            self.put_texts[index] = found

    def core_ops(
        self, text_vectors: Sequence[Sequence[float]], query_vectors: Sequence[Sequence[float]]
    ) -> list[core.Op]:
        """The ops for the core, with the embeddings (in texts' and queries' order)."""
        store = self.store
        dims = store._dims
        if len(text_vectors) != len(self.texts) or len(query_vectors) != len(self.queries):
            raise InvalidOptionError("the embedder returned a different number of vectors")
        packed = [_unit_vector(vector, dims) for vector in text_vectors]
        queries = {
            query: _unit(vector, dims)
            for query, vector in zip(self.queries, query_vectors, strict=True)
        }
        converted: list[core.Op] = []
        for index, op in enumerate(self.ops):
            if isinstance(op, GetOp):
                converted.append(core.Get(tuple(op.namespace), op.key, bool(op.refresh_ttl)))
            elif isinstance(op, SearchOp):
                converted.append(
                    core.Search(
                        tuple(op.namespace_prefix),
                        compile_filter(op.filter),
                        op.offset,
                        op.limit,
                        bool(op.refresh_ttl),
                        queries.get(op.query) if op.query else None,
                        dims,
                    )
                )
            elif isinstance(op, ListNamespacesOp):
                conditions = tuple(
                    (condition.match_type, tuple(condition.path))
                    for condition in op.match_conditions or ()
                )
                converted.append(core.ListNamespaces(conditions, op.max_depth, op.limit, op.offset))
            else:
                vectors = b"".join(packed[i] for i in self.put_texts.get(index, []))
                converted.append(
                    core.Put(
                        tuple(op.namespace),
                        op.key,
                        self.values[index],
                        _ttl_ms(op.ttl) if op.value is not None else 0,
                        vectors,
                    )
                )
        return converted


def _results(ops: Sequence[Op], found: Sequence[Any]) -> list[Result]:
    """The core's results as LangGraph's Items and SearchItems."""
    results: list[Result] = []
    for op, result in zip(ops, found, strict=True):
        if isinstance(op, GetOp):
            results.append(None if result is None else _item(result))
        elif isinstance(op, SearchOp):
            results.append([_search_item(stored) for stored in result])
        else:
            results.append(result)
    return results


def _item(stored: core.Stored) -> Item:
    return Item(
        value=stored.value,
        key=stored.key,
        namespace=stored.namespace,
        created_at=_when(stored.created_us),
        updated_at=_when(stored.updated_us),
    )


def _search_item(stored: core.Stored) -> SearchItem:
    return SearchItem(
        namespace=stored.namespace,
        key=stored.key,
        value=stored.value,
        created_at=_when(stored.created_us),
        updated_at=_when(stored.updated_us),
        score=stored.score,
    )


class _StoreBase(TwinDriven, BaseStore):
    """What both stores share: options, checks, embeddings, and both APIs."""

    supports_ttl = True

    def __init__(
        self,
        conn: Any = None,
        *,
        redis_url: str | None = None,
        redis_client: Any = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        prefix: str = "lgstore",
        shard_depth: int = 2,
        retry_deadline: float = 15.0,
        max_value_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise InvalidOptionError(f"prefix must be a non-empty str without braces: {prefix!r}")
        if isinstance(shard_depth, bool) or not isinstance(shard_depth, int) or shard_depth < 1:
            raise InvalidOptionError(f"shard_depth must be an int >= 1, got {shard_depth!r}")
        if (
            isinstance(max_value_bytes, bool)
            or not isinstance(max_value_bytes, int)
            or max_value_bytes < 1
        ):
            raise InvalidOptionError(f"max_value_bytes must be an int >= 1: {max_value_bytes!r}")
        self.prefix = prefix
        self.shard_depth = shard_depth
        self.max_value_bytes = max_value_bytes
        self.ttl_config = _ttl_config(ttl)
        self._keys = core.StoreKeys(prefix, shard_depth)
        settings = StoreSettings.build(retry_deadline=retry_deadline)
        self._setup_index(index)
        given = [value for value in (conn, redis_url, redis_client) if value is not None]
        if len(given) != 1:
            raise InvalidOptionError("pass one of conn, redis_url= or redis_client=")
        self._drivers = TwinDrivers(settings, given[0], "store")
        self._shape = core.ServerShape()

    def _setup_index(self, index: IndexConfig | None) -> None:
        """InMemoryStore's reading of ``index``: dims, embed (anything ensure_embeddings
        takes) and fields (default ``["$"]``, the whole value)."""
        self.index_config: dict[str, Any] | None = None
        self.embeddings: Any = None
        self._fields: list[tuple[str, Any]] = []
        self._dims = 0
        if not index:
            return
        dims = index.get("dims")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise InvalidOptionError(f"index['dims'] must be an int >= 1, got {dims!r}")
        self.index_config = dict(index)
        self.embeddings = ensure_embeddings(index.get("embed"))
        self._dims = dims
        self._fields = [
            (path, tokenize_path(path)) if path != "$" else (path, path)
            for path in (index.get("fields") or ["$"])
        ]
        self.index_config["__tokenized_fields"] = self._fields

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._drivers.shown()}, prefix={self.prefix!r})"

    def _check_op(self, op: Op) -> None:
        """LangGraph's label rules (every op, as ``validate_op_namespace`` asks of stores
        that join labels into text), a namespace for items, str keys."""
        if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
            raise ValueError(f"Unknown operation type: {type(op)}")
        validate_op_namespace(op)
        labels = (
            op.namespace if isinstance(op, (GetOp, PutOp)) else getattr(op, "namespace_prefix", ())
        )
        if not all(_encodable(label) for label in labels if isinstance(label, str)):
            raise InvalidNamespaceError(f"namespace labels must be valid UTF-8 text: {labels!r}")
        if isinstance(op, (GetOp, PutOp)):
            if not op.namespace:
                raise InvalidNamespaceError("Namespace cannot be empty.")
            if not isinstance(op.key, str):
                raise InvalidItemError(f"item keys must be str, not {type(op.key).__name__}")
            if not _encodable(op.key):
                raise InvalidItemError(f"item keys must be valid UTF-8 text: {op.key!r}")
        if isinstance(op, PutOp) and op.value is not None:
            _ttl_ms(op.ttl)
        if isinstance(op, ListNamespacesOp):
            depth = op.max_depth
            if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)):
                raise InvalidOptionError(f"max_depth must be an int or None, got {depth!r}")
            for condition in op.match_conditions or ():
                if not all(_encodable(label) for label in condition.path):
                    raise InvalidNamespaceError(
                        f"labels must be valid UTF-8 text: {condition.path!r}"
                    )
                if condition.match_type not in ("prefix", "suffix"):
                    raise ValueError(f"Unsupported match type: {condition.match_type}")
        for name in ("limit", "offset"):
            number = getattr(op, name, 0)
            if isinstance(number, bool) or not isinstance(number, int):
                raise InvalidOptionError(f"{name} must be an int, got {number!r}")

    # The API: everything goes through batch/abatch.

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        prepared = _Prepared(self, ops)
        texts: list[list[float]] = []
        queries: list[list[float]] = []
        if prepared.texts:
            texts = self.embeddings.embed_documents(prepared.texts)
        for query in prepared.queries:
            queries.append(self.embeddings.embed_query(query))
        flow = batch_flow(self._keys, prepared.core_ops(texts, queries), self._shape)
        return _results(ops, self._sync_driver()._drive(flow))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        prepared = _Prepared(self, ops)
        texts: list[list[float]] = []
        queries: list[list[float]] = []
        if prepared.texts:
            texts = await self.embeddings.aembed_documents(prepared.texts)
        if prepared.queries:
            queries = list(
                await asyncio.gather(*(self.embeddings.aembed_query(q) for q in prepared.queries))
            )
        flow = batch_flow(self._keys, prepared.core_ops(texts, queries), self._shape)
        return _results(ops, await self._async_driver()._drive(flow))


class RedisStore(_StoreBase):
    """A LangGraph store on plain Redis over ``conn``: a redis-py client (sync, asyncio
    or cluster; the other API uses a twin) or a URL; ``redis_url=`` and ``redis_client=``
    are accepted too, as langgraph-checkpoint-redis's AsyncRedisStore names them.
    ``index`` and ``ttl`` are LangGraph's IndexConfig and TTLConfig. Our own options are
    keyword-only: ``prefix`` (of every key, default ``"lgstore"``), ``shard_depth`` (how
    many leading labels of a namespace share a cluster slot, default 2:
    ``("memories", user_id)`` is one slot per user), ``retry_deadline`` (seconds of
    retrying through failovers), ``max_value_bytes`` (the largest value accepted, as
    JSON)."""

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        **options: Any,
    ) -> Iterator[RedisStore]:
        """A store over a URL (shared client per URL), as a context manager."""
        store = cls(conn_string, index=index, ttl=ttl, **options)
        store.setup()
        yield store


class AsyncRedisStore(_StoreBase):
    """:class:`RedisStore` for asyncio code: the same keys and options."""

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        **options: Any,
    ) -> AsyncIterator[AsyncRedisStore]:
        """A store over a URL (shared clients per URL), as an async context manager."""
        store = cls(conn_string, index=index, ttl=ttl, **options)
        await store.asetup()
        yield store
