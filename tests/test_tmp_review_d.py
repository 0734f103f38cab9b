from __future__ import annotations
import random, time
from typing import Any
from langgraph.store.base import GetOp, PutOp, SearchOp, ListNamespacesOp, MatchCondition
from langgraph.store.memory import InMemoryStore
from redis_chat_history.langgraph_store import RedisStore

R = random.Random(3)
WORDS = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]

def embed(texts):
    out = []
    for t in texts:
        v = [0.0] * 8
        for j, ch in enumerate(t):
            v[(ord(ch) * 7 + j) % 8] += 1.0 + (j % 3)
        out.append(v)
    return out

INDEX = {"dims": 8, "embed": embed, "fields": ["text"]}

def test_negative_max_depth_chunked(redis_url):
    s = RedisStore(redis_url); m = InMemoryStore()
    for st in (s, m):
        st.batch([PutOp(("a", f"x{i:03d}"), "k", {"v": 1}) for i in range(300)] + [PutOp(("b",), "k", {"v": 1})])
    op = ListNamespacesOp(match_conditions=(), max_depth=-1, limit=1, offset=0)
    print("redis", s.batch([op])[0], "inmem", m.batch([op])[0])

def test_dead_namespaces_listing(redis_url):
    s = RedisStore(redis_url); m = InMemoryStore()
    nss = [("d", str(i % 7), str(i)) for i in range(300)]
    s.batch([PutOp(n, "k", {"v": 1}) for n in nss])
    dead = set(nss[::3])
    s.batch([PutOp(n, "k", None) for n in dead])
    m.batch([PutOp(n, "k", {"v": 1}) for n in nss if n not in dead])
    mism = 0
    for md in (None, 1, 2):
        for limit in (1, 5, 100, 1000):
            for offset in (0, 3, 150):
                op = ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("d", "*")),), max_depth=md, limit=limit, offset=offset)
                if s.batch([op])[0] != m.batch([op])[0]:
                    mism += 1
    print("dead listing mismatches", mism)

def test_query_search_differential(redis_url):
    s = RedisStore(redis_url, index=INDEX); m = InMemoryStore(index=INDEX)
    ops = []
    for i in range(40):
        ns = ("q", str(i % 2))
        v = {"text": " ".join(R.sample(WORDS, 2)), "n": i}
        idx = R.choice([None, None, False, ["text"], ["missing"]])
        ops.append(PutOp(ns, f"k{i}", v, index=idx))
    s.batch(ops); m.batch(ops)
    mism = 0; total = 0
    for q in ["apple", "fig grape", "zzz"]:
        for prefix in [("q",), ("q", "1")]:
            for f in [None, {"n": {"$gte": 10}}]:
                for limit in [1, 3, 10, 100]:
                    for offset in [0, 2, 5, 30]:
                        op = SearchOp(prefix, f, limit, offset, q)
                        want = [(i.key, round(i.score, 4) if i.score is not None else None) for i in m.batch([op])[0]]
                        got = [(i.key, round(i.score, 4) if i.score is not None else None) for i in s.batch([op])[0]]
                        total += 1
                        if got != want:
                            mism += 1
                            wk = [k for k, sc in want if sc is not None]; gk = [k for k, sc in got if sc is not None]
                            if wk != gk and mism < 10:
                                print("SCORED MISMATCH", q, prefix, f, limit, offset, "\n  redis", got, "\n  inmem", want)
    print("query total", total, "mismatches (any)", mism)
