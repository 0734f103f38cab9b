from __future__ import annotations
import random, itertools
from typing import Any
from langgraph.store.base import GetOp, PutOp, SearchOp, ListNamespacesOp, MatchCondition
from langgraph.store.memory import InMemoryStore
from redis_chat_history.langgraph_store import RedisStore
from redis_chat_history.errors import InvalidOptionError

R = random.Random(7)
SCALARS = [0, 1, 2, 1.5, -3, True, False, None, "a", "b", "2", ""]

def rand_value(depth=0):
    r = R.random()
    if depth < 3 and r < 0.2:
        return {R.choice("xyz"): rand_value(depth + 1) for _ in range(R.randint(1, 2))}
    if depth < 3 and r < 0.35:
        return [rand_value(depth + 1) for _ in range(R.randint(1, 2))]
    return R.choice(SCALARS)

def rand_filter_value(depth=0):
    r = R.random()
    if r < 0.3:
        ops = {}
        for op in R.sample(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"], R.randint(1, 2)):
            ops[op] = R.choice([0, 1, 2, 1.5]) if op not in ("$eq", "$ne") else R.choice(SCALARS)
        return ops
    if depth < 2 and r < 0.45:
        return {R.choice("xyz"): rand_filter_value(depth + 1) for _ in range(R.randint(1, 2))}
    if depth < 2 and r < 0.55:
        return [rand_filter_value(depth + 1) for _ in range(R.randint(1, 2))]
    return R.choice(SCALARS)

def has_empty(v):
    if isinstance(v, dict):
        return not v or any(has_empty(x) for x in v.values())
    if isinstance(v, list):
        return not v or any(has_empty(x) for x in v)
    return False

def test_filters_differential(redis_url):
    s = RedisStore(redis_url); m = InMemoryStore()
    ns = ("f", "1")
    items = {}
    for i in range(60):
        v = {k: rand_value() for k in R.sample("xyzw", R.randint(1, 3))}
        items[f"k{i}"] = v
        s.put(ns, f"k{i}", v); m.put(ns, f"k{i}", v)
    mism = 0; checked = 0; inm_err = 0
    for _ in range(800):
        f = {R.choice("xyzw"): rand_filter_value() for _ in range(R.randint(1, 2))}
        try:
            want = [i.key for i in m.search(ns, filter=f, limit=1000)]
        except (TypeError, ValueError):
            inm_err += 1
            continue
        got = [i.key for i in s.search(ns, filter=f, limit=1000)]
        checked += 1
        if got != want:
            mism += 1
            if mism <= 8:
                diff = sorted(set(got) ^ set(want))
                print("MISMATCH filter", f, "only-redis", sorted(set(got)-set(want)), "only-inmem", sorted(set(want)-set(got)))
                for k in diff[:2]:
                    print("    item", k, items[k], "empties:", has_empty(items[k]))
    print("checked", checked, "mismatches", mism, "inmem errors skipped", inm_err)

def test_list_namespaces_differential(redis_url):
    s = RedisStore(redis_url); m = InMemoryStore()
    labels = ["a", "b", "c", "*x"]
    nss = set()
    for _ in range(400):
        nss.add(tuple(R.choice(labels[:3]) + str(R.randint(0, 3)) for _ in range(R.randint(1, 4))))
    nss = sorted(nss)
    for n in nss:
        s.put(n, "k", {"v": 1}); m.put(n, "k", {"v": 1})
    print("namespaces", len(nss))
    mism = 0; checked = 0
    for _ in range(400):
        conds = []
        if R.random() < 0.6:
            conds.append(MatchCondition("prefix", tuple(R.choice(["*", "a0", "a1", "b2", "c3"]) for _ in range(R.randint(1, 3)))))
        if R.random() < 0.5:
            conds.append(MatchCondition("suffix", tuple(R.choice(["*", "a0", "a1", "b2", "c3"]) for _ in range(R.randint(1, 2)))))
        md = R.choice([None, None, 0, 1, 2, 3, -1])
        limit = R.choice([0, 1, 5, 100, 1000, 10**12])
        offset = R.choice([0, 1, 3, 50, 300, 10**12])
        op = ListNamespacesOp(match_conditions=tuple(conds), max_depth=md, limit=limit, offset=offset)
        want = m.batch([op])[0]
        got = s.batch([op])[0]
        checked += 1
        if got != want:
            mism += 1
            if mism <= 6:
                print("MISMATCH", op, "\n  redis", got[:8], len(got), "\n  inmem", want[:8], len(want))
    print("checked", checked, "mismatches", mism)

def test_pages_differential(redis_url):
    s = RedisStore(redis_url); m = InMemoryStore()
    for i in range(30):
        ns = ("p", str(i % 3), str(i % 2))
        s.put(ns, f"k{i}", {"i": i, "even": i % 2 == 0}); m.put(ns, f"k{i}", {"i": i, "even": i % 2 == 0})
    mism = 0
    for prefix in [(), ("p",), ("p", "1"), ("p", "1", "0")]:
        for f in [None, {"even": True}, {"i": {"$gte": 10}}]:
            for limit in [0, 1, 4, 100, 10**15, -1, -5]:
                for offset in [0, 1, 7, 29, 30, 1000, -1, -3]:
                    op = SearchOp(prefix, f, limit, offset)
                    want = [(i.namespace, i.key) for i in m.batch([op])[0]]
                    got = [(i.namespace, i.key) for i in s.batch([op])[0]]
                    if got != want:
                        mism += 1
                        if mism < 6: print("MISMATCH", prefix, f, limit, offset, got[:4], want[:4])
    print("pages mismatches", mism)
