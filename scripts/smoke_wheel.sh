#!/usr/bin/env bash
# Packaging smoke test: build the sdist and the wheel, install the wheel (with the cli,
# embedded and langchain extras) into a clean venv, and use it from an empty directory
# with an empty HOME, so nothing from the source tree can stand in for a missing file.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

.venv/bin/python -m build --sdist --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/*.whl)
sdist=$(ls "$work"/dist/*.tar.gz)
echo "   built $(basename "$wheel") and $(basename "$sdist")"
tar -tzf "$sdist" | grep "/src/redis_chat_history/py.typed$" >/dev/null
tar -tzf "$sdist" | grep "/tests/fixtures/langchain_community.json$" >/dev/null

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "${wheel}[cli,embedded,langchain]" \
  2>"$work/pip.log" || { cat "$work/pip.log"; exit 1; }
mkdir "$work/home" "$work/empty"
cd "$work/empty"
export HOME="$work/home" PATH="$work/venv/bin:$PATH"
unset REDIS_URL REDIS_CHAT_HISTORY_URL PYTHONPATH

python - "$repo" <<'PY'
import importlib.resources
import pathlib
import sys

import redis_chat_history
from redis_chat_history import ChatHistoryStore, RedisChatMessageHistory  # noqa: F401

location = pathlib.Path(redis_chat_history.__file__).resolve()
assert pathlib.Path(sys.argv[1]) not in location.parents, f"imported from the source: {location}"
assert (importlib.resources.files("redis_chat_history") / "py.typed").is_file(), "py.typed"
for name in redis_chat_history.__all__:
    getattr(redis_chat_history, name)
print(f"   import ok ({len(redis_chat_history.__all__)} public names) from {location.parent}")
PY
redis-chat-history --help >/dev/null
python -m redis_chat_history --help >/dev/null
first=$(redis-chat-history demo)
second=$(redis-chat-history demo)
echo "$first" | tail -3 | sed 's/^/   demo: /'
if [ "$first" = "$second" ]; then
  echo "the second demo run shows nothing persisted from the first" >&2
  exit 1
fi
if redis-chat-history embedded --help >/dev/null 2>&1; then
  redis-chat-history embedded stop >/dev/null
fi
echo "   wheel smoke test passed"
