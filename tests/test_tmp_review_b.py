from __future__ import annotations
import time, random, json
from typing import Any
from langgraph.store.base import GetOp, PutOp, SearchOp, ListNamespacesOp, MatchCondition
from langgraph.store.memory import InMemoryStore
from redis_chat_history.langgraph_store import RedisStore

def ik(ns, key, prefix="lgstore", depth=2):
    shard = ".".join(ns[:depth]); path = "".join(f"{l}." for l in ns)
    return f"{prefix}:{{{shard}}}:i:{path}.{key}"

def test_ttl_mixed_batch_index_expires(redis_url, client):
    s = RedisStore(redis_url)
    ns = ("m", "u1")
    s.batch([PutOp(ns, "forever", {"v": 1}, ttl=None), PutOp(ns, "short", {"v": 2}, ttl=0.001)])
    print("pttl item forever:", client.pttl(ik(ns, "forever")))
    for k in ("lgstore:{m.u1}:n:m.u1.", "lgstore:{m.u1}:ns", "lgstore:{m.u1}:clock"):
        print("pttl", k, client.pttl(k))
    time.sleep(0.2)
    print("get forever:", s.get(ns, "forever"))
    print("search:", [i.key for i in s.search(ns)])
    print("list_namespaces:", s.list_namespaces())
    print("registry:", client.zrange("lgstore:namespaces", 0, -1))
    print("search short prefix:", [i.key for i in s.search(("m",))])

def test_ttl_mixed_batch_two_namespaces(redis_url, client):
    s = RedisStore(redis_url)
    s.batch([PutOp(("m", "u1", "a"), "forever", {"v": 1}), PutOp(("m", "u1", "b"), "short", {"v": 2}, ttl=0.001)])
    for k in ("lgstore:{m.u1}:n:m.u1.a.", "lgstore:{m.u1}:ns", "lgstore:{m.u1}:clock"):
        print("pttl", k, client.pttl(k))
    time.sleep(0.2)
    print("get forever:", s.get(("m","u1","a"), "forever") is not None)
    print("search:", [i.key for i in s.search(("m","u1"))])
    print("list_namespaces:", s.list_namespaces())

def test_namespace_order_after_empty(redis_url, client):
    s = RedisStore(redis_url); m = InMemoryStore()
    for st in (s, m):
        st.put(("a", "1"), "k", {"v": 1})
        st.put(("a", "2"), "k", {"v": 2})
        st.delete(("a", "1"), "k")
        st.put(("a", "1"), "k", {"v": 3})
    print("redis :", [(i.namespace, i.key) for i in s.search(("a",))])
    print("inmem :", [(i.namespace, i.key) for i in m.search(("a",))])
    print("redis long:", [(i.namespace, i.key) for i in s.search(("a","1"))])
