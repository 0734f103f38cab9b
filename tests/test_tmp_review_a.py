from __future__ import annotations
import time, traceback
from typing import Any
import pytest
import redis
from langgraph.store.base import GetOp, PutOp, SearchOp, ListNamespacesOp, MatchCondition
from langgraph.store.memory import InMemoryStore
from redis_chat_history import aclose_shared_clients
from redis_chat_history.langgraph_store import RedisStore
from redis_chat_history import _store_core as core

def ik(ns, key, prefix="lgstore", depth=2):
    shard = ".".join(ns[:depth]); path = "".join(f"{l}." for l in ns)
    return f"{prefix}:{{{shard}}}:i:{path}.{key}"

def show(label, fn):
    try:
        r = fn()
        print(f"[{label}] OK -> {r!r}")
        return r
    except BaseException as e:
        print(f"[{label}] RAISED {type(e).__module__}.{type(e).__name__}: {str(e)[:300]}")

def dump(client):
    return {k: client.type(k) for k in sorted(client.scan_iter(count=1000))}

def test_registry_wrongtype_put(redis_url, client):
    s = RedisStore(redis_url)
    client.set("lgstore:namespaces", "precious")
    show("put with registry a string", lambda: s.put(("a", "b"), "k", {"v": 1}))
    print("keys after:", dump(client))
    print("item:", client.hgetall(ik(("a","b"),"k")))
    show("get after failed put", lambda: s.get(("a","b"),"k"))

def test_unhashable_key(redis_url, client):
    s = RedisStore(redis_url)
    show("PutOp key list", lambda: s.batch([PutOp(("a","b"), ["x"], {"v": 1})]))
    show("GetOp key list", lambda: s.batch([GetOp(("a","b"), ["x"])]))
    show("PutOp namespace list", lambda: s.batch([PutOp(["a","b"], "k", {"v": 1})]))
    show("put ns list via API", lambda: s.put(["a","b"], "k", {"v": 1}))
    m = InMemoryStore()
    show("InMemory put ns list via API", lambda: m.put(["a","b"], "k", {"v": 1}))

def test_surrogates(redis_url, client):
    s = RedisStore(redis_url)
    show("value lone surrogate", lambda: s.put(("a","b"), "k", {"v": "\ud800"}))
    show("key lone surrogate", lambda: s.put(("a","b"), "\udc80", {"v": 1}))
    show("label lone surrogate", lambda: s.put(("a","\udc80"), "k", {"v": 1}))
    show("search label lone surrogate", lambda: s.search(("a","\udc80")))
    print("keys after:", dump(client))

def test_huge_ttl(redis_url, client):
    s = RedisStore(redis_url)
    s.put(("a","b"), "first", {"v": 0})
    show("put ttl=inf", lambda: s.put(("a","b"), "k", {"v": 1}, ttl=float("inf")))
    show("ctor default_ttl=inf", lambda: RedisStore(redis_url, ttl={"default_ttl": float("inf")}))
    show("batch with huge ttl", lambda: s.batch([PutOp(("a","b"), "first", {"v": 99}), PutOp(("a","b"), "k", {"v": 1}, ttl=2e12)]))
    print("first:", client.hgetall(ik(("a","b"),"first")))
    print("k:", client.hgetall(ik(("a","b"),"k")), "pttl", client.pttl(ik(("a","b"),"k")))
    show("get k", lambda: s.get(("a","b"),"k"))
    show("get k refresh", lambda: s.get(("a","b"),"k", refresh_ttl=True))
    show("search refresh", lambda: s.search(("a","b")))

def test_corrupt_created_partial_batch(redis_url, client):
    s = RedisStore(redis_url)
    s.put(("a","b"), "x", {"v": 0})
    s.put(("a","b"), "y", {"v": 0})
    client.hset(ik(("a","b"),"y"), "created", "garbage")
    show("batch put x,y (y corrupt created)", lambda: s.batch([PutOp(("a","b"), "x", {"v": 1}), PutOp(("a","b"), "y", {"v": 1})]))
    print("x now:", client.hget(ik(("a","b"),"x"), "value"))
    print("y now:", client.hget(ik(("a","b"),"y"), "value"))

def test_big_int_eq(redis_url, client):
    s = RedisStore(redis_url); m = InMemoryStore()
    for st in (s, m):
        st.put(("a","b"), "k", {"n": 2**53 + 1})
    f = {"n": 2**53}
    print("redis:", [i.key for i in s.search(("a","b"), filter=f)])
    print("inmem:", [i.key for i in m.search(("a","b"), filter=f)])
    f = {"n": {"$ne": 2**53}}
    print("redis $ne:", [i.key for i in s.search(("a","b"), filter=f)])
    print("inmem $ne:", [i.key for i in m.search(("a","b"), filter=f)])

def test_deep_filter(redis_url, client):
    s = RedisStore(redis_url)
    s.put(("a","b"), "k", {"v": 1})
    f: Any = 1
    for _ in range(400):
        f = {"a": f}
    show("deep filter 400", lambda: s.search(("a","b"), filter={"x": f}))
    f = 1
    for _ in range(2000):
        f = {"a": f}
    show("deep filter 2000", lambda: s.search(("a","b"), filter={"x": f}))

def test_tuple_nesting(redis_url, client):
    s = RedisStore(redis_url)
    v: Any = 1
    for _ in range(900):
        v = (v,)
    show("put tuple-nested 900", lambda: s.put(("a","b"), "k", {"v": v}))
    show("get it", lambda: type(s.get(("a","b"), "k")))
    show("search filter", lambda: s.search(("a","b"), filter={"z": 1}))
