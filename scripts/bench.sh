#!/usr/bin/env bash
# The benchmark from a fresh clone: creates .venv-bench, installs the package with every extra
# plus langchain-community (the class we compare against), then runs benchmarks/run.py.
# It starts its own redis-server on a free loopback port. Extra arguments go to the runner
# (--quick, --reps N, --only NAME ...; see `scripts/bench.sh --help`).
#
# `scripts/bench.sh langgraph [--turns 30] [--reps N] [--no-save]` runs the LangGraph
# checkpointer comparison instead (benchmarks/langgraph.py): it also installs the savers it
# compares against and starts its own PostgreSQL (initdb and pg_ctl must be on PATH).
#
# `scripts/bench.sh store [--reps N] [--no-save]` runs the LangGraph store's benchmarks:
# everyday operations against raw redis-py (benchmarks/store_ops.py), then exact semantic
# search, scored with numpy, in pure Python and in Lua (benchmarks/store_search.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
fi
.venv-bench/bin/python -m pip install --quiet --upgrade pip
.venv-bench/bin/python -m pip install --quiet -e ".[all]" "langchain-community==0.4.2"

if [ "${1:-}" = "langgraph" ]; then
  shift
  .venv-bench/bin/python -m pip install --quiet \
    "langgraph-checkpoint>=4.3,<5" "langgraph>=1.2.24,<1.3" "langchain>=1.5,<2" \
    "langgraph-checkpoint-sqlite==3.1.2" "langgraph-checkpoint-postgres==3.2.0" \
    "psycopg[binary]==3.3.9" psycopg-pool "langgraph-checkpoint-plainredis==0.1.0" \
    "langgraph-checkpoint-aws[valkey]==1.2.6"
  exec .venv-bench/bin/python -m benchmarks.langgraph "$@"
fi

if [ "${1:-}" = "store" ]; then
  shift
  .venv-bench/bin/python -m benchmarks.store_ops "$@"
  exec .venv-bench/bin/python -m benchmarks.store_search "$@"
fi

exec .venv-bench/bin/python -m benchmarks.run "$@"
