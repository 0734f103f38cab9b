#!/usr/bin/env bash
# The benchmark from a fresh clone: creates .venv-bench, installs the package with every extra
# plus langchain-community (the class we compare against), then runs benchmarks/run.py.
# It starts its own redis-server on a free loopback port. Extra arguments go to the runner
# (--quick, --reps N, --only NAME ...; see `scripts/bench.sh --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv-bench/bin/python ]; then
  python3 -m venv .venv-bench
fi
.venv-bench/bin/python -m pip install --quiet --upgrade pip
.venv-bench/bin/python -m pip install --quiet -e ".[all]" "langchain-community==0.4.2"

exec .venv-bench/bin/python -m benchmarks.run "$@"
