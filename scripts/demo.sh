#!/usr/bin/env bash
# Runs the quickstart from a fresh clone: creates .venv, installs the package with its
# extras, and replays the LangChain snippets against $REDIS_URL or an embedded redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[all]"
exec .venv/bin/redis-chat-history demo "$@"
