"""The Python half of scripts/langgraph_suite.sh: prepare the scratch copy, list the files, and
compare a run's failures with the known baseline failures.

    suite.py prepare SDIST_TARBALL SCRATCH_DIR [--stand-in]  prints the copy's root directory
    suite.py files ROOT                                       prints the test files to run
    suite.py versions                                         prints the versions that matter
    suite.py baseline OUTCOMES                                rewrites known_failures.txt
    suite.py compare OUTCOMES                                 exit 1 on a failure not known

Test ids are compared without their checkpointer parameter (memory, sqlite, ours, ours_aio,
...), so test_x[ours-sync] matches a known test_x[memory-sync].
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.metadata
import json
import platform
import re
import shutil
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
KNOWN_FAILURES = HERE / "known_failures.txt"
FILES = HERE / "files.txt"

#: The parameter ids the checkpointer fixtures take, upstream's and ours.
CHECKPOINTER_IDS = frozenset(
    {
        "memory",
        "memory_migrate_sends",
        "sqlite",
        "sqlite_aes",
        "sqlite_aio",
        "postgres",
        "postgres_pipe",
        "postgres_pool",
        "postgres_aio",
        "postgres_aio_pipe",
        "postgres_aio_pool",
        "ours",
        "ours_aio",
        "ours_aes",
        "ours_aio_aes",
        "ours_cross",
        "ours_aio_cross",
    }
)
#: Our parameter ids, given copies of upstream's "[memory]" snapshots when InMemorySaver stands in.
OUR_IDS = ("ours", "ours_aio", "ours_aes", "ours_aio_aes", "ours_cross", "ours_aio_cross")
#: What decides which of LangGraph's tests fail here.
VERSIONED = ("langgraph", "langgraph-checkpoint", "langgraph-prebuilt", "langchain-core")
FAILED = ("failed", "setup error", "teardown error", "collection error")


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def versions() -> str:
    found = [f"{name}=={importlib.metadata.version(name)}" for name in VERSIONED]
    return " ".join([*found, f"python=={'.'.join(platform.python_version_tuple()[:2])}"])


def normalize(nodeid: str) -> str:
    """The id without its checkpointer parameter: tests/t.py::f[memory-x] -> tests/t.py::f[*-x]."""
    match = re.fullmatch(r"(.*?)\[(.*)\]", nodeid)
    if match is None:
        return nodeid
    parts = ["*" if part in CHECKPOINTER_IDS else part for part in match.group(2).split("-")]
    return f"{match.group(1)}[{'-'.join(parts)}]"


# --- prepare --------------------------------------------------------------------------------


def prepare(tarball: Path, scratch: Path, stand_in: bool) -> Path:
    """Copy the sdist's tests/ and pyproject.toml (for its pytest options) into scratch: not
    its langgraph/ sources, so the tests run against the installed langgraph."""
    with tarfile.open(tarball) as archive:
        members = [
            member
            for member in archive.getmembers()
            if len(Path(member.name).parts) >= 2
            and Path(member.name).parts[1] in ("tests", "pyproject.toml")
        ]
        archive.extractall(scratch, members=members, filter="data")
    (root,) = {scratch / Path(member.name).parts[0] for member in members}
    shutil.copyfile(HERE / "root_conftest.py", root / "conftest.py")
    with (root / "tests" / "conftest.py").open("a", encoding="utf-8") as conftest:
        conftest.write("\n\n" + (HERE / "fixtures.py").read_text(encoding="utf-8"))
    if stand_in:
        copy_memory_snapshots(root / "tests" / "__snapshots__")
    return root


def copy_memory_snapshots(directory: Path) -> None:
    """Some tests assert snapshots only when the saver is an InMemorySaver, named by the
    checkpointer parameter; give our parameter ids copies of the "[memory]" ones."""
    for path in directory.glob("*.ambr"):
        text = path.read_text(encoding="utf-8")
        blocks = re.findall(r"^# name: ([^\n]*)\n(.*?^# ---\n)", text, flags=re.M | re.S)
        extra = []
        for name, body in blocks:
            match = re.fullmatch(r"(.*?)\[(.*)\](.*)", name)
            if match is None or "memory" not in match.group(2).split("-"):
                continue
            for ours in OUR_IDS:
                parts = [ours if p == "memory" else p for p in match.group(2).split("-")]
                extra.append(f"# name: {match.group(1)}[{'-'.join(parts)}]{match.group(3)}\n{body}")
        if extra:
            path.write_text(text + "".join(extra), encoding="utf-8")


# --- files ----------------------------------------------------------------------------------


def files(root: Path) -> list[str]:
    """files.txt resolved against the copy; missing names and unlisted users of the fixtures
    are reported on stderr."""
    chosen: list[str] = []
    for raw in FILES.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            chosen = [name for name in chosen if not fnmatch.fnmatch(name, line[1:])]
            continue
        found = sorted(str(p.relative_to(root)) for p in root.glob(line))
        if not found:
            sys.stderr.write(f"note: {line} is not in this sdist; left out\n")
        chosen += [name for name in found if name not in chosen]
    for path in sorted((root / "tests").glob("test_*.py")):
        name = str(path.relative_to(root))
        if name not in chosen and uses_checkpointer_fixtures(path):
            sys.stderr.write(f"note: {name} takes the checkpointer fixtures but is not listed\n")
    return chosen


def uses_checkpointer_fixtures(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.arg) and node.arg in ("sync_checkpointer", "async_checkpointer")
        for node in ast.walk(tree)
    )


# --- outcomes -------------------------------------------------------------------------------


def read_outcomes(path: Path) -> dict[str, str]:
    """nodeid -> the worst outcome it had (a test failing at teardown after passing counts)."""
    outcomes: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if outcomes.get(record["nodeid"]) not in FAILED:
            outcomes[record["nodeid"]] = record["outcome"]
    return outcomes


def read_known() -> tuple[str, set[str]]:
    recorded, known = "", set()
    if KNOWN_FAILURES.exists():
        for line in KNOWN_FAILURES.read_text(encoding="utf-8").splitlines():
            if line.startswith("# versions: "):
                recorded = line.removeprefix("# versions: ")
            elif line and not line.startswith("#"):
                known.add(line)
    return recorded, known


def summary(outcomes: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))


def baseline(path: Path) -> int:
    outcomes = read_outcomes(path)
    failed = sorted({normalize(nodeid) for nodeid, o in outcomes.items() if o in FAILED})
    lines = [
        "# LangGraph's own tests that fail here with LangGraph's in-memory fixtures",
        "# (MemorySaverAssertImmutable), so not because of our saver. Written by",
        "# scripts/langgraph_suite.sh --baseline; ids without their checkpointer parameter ([*]).",
        f"# versions: {versions()}",
        f"# baseline run: {summary(outcomes)}",
        *failed,
    ]
    KNOWN_FAILURES.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out(f"baseline: {summary(outcomes)}")
    out(f"{len(failed)} known failures written to {KNOWN_FAILURES}:")
    for name in failed:
        out(f"  {name}")
    return 0


def compare(path: Path) -> int:
    outcomes = read_outcomes(path)
    recorded, known = read_known()
    if not KNOWN_FAILURES.exists():
        out(f"warning: no {KNOWN_FAILURES.name}; every failure counts (run with --baseline)")
    elif recorded != versions():
        out(f"warning: {KNOWN_FAILURES.name} was written with {recorded}")
        out(f"         installed now: {versions()}; consider regenerating it with --baseline")
    failed = {nodeid for nodeid, o in outcomes.items() if o in FAILED}
    new = sorted(nodeid for nodeid in failed if normalize(nodeid) not in known)
    expected = sorted(failed - set(new))
    passed = {normalize(nodeid) for nodeid, o in outcomes.items() if o == "passed"}
    now_passing = sorted((passed & known) - {normalize(nodeid) for nodeid in failed})
    out(f"run: {summary(outcomes)}")
    if expected:
        out(f"{len(expected)} failed as in the baseline:")
        for nodeid in expected:
            out(f"  {nodeid}")
    if now_passing:
        out(f"{len(now_passing)} baseline failures passed this time:")
        for name in now_passing:
            out(f"  {name}")
    if new:
        out(f"FAILED: {len(new)} not in the baseline:")
        for nodeid in new:
            out(f"  {nodeid} ({outcomes[nodeid]})")
        return 1
    if not outcomes:
        out("FAILED: no test ran")
        return 1
    out("OK: no failure outside the baseline")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("prepare")
    command.add_argument("tarball", type=Path)
    command.add_argument("scratch", type=Path)
    command.add_argument("--stand-in", action="store_true")
    commands.add_parser("files").add_argument("root", type=Path)
    commands.add_parser("versions")
    commands.add_parser("baseline").add_argument("outcomes", type=Path)
    commands.add_parser("compare").add_argument("outcomes", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        out(str(prepare(args.tarball, args.scratch, args.stand_in)))
    elif args.command == "files":
        out("\n".join(files(args.root)))
    elif args.command == "versions":
        out(versions())
    elif args.command == "baseline":
        return baseline(args.outcomes)
    else:
        return compare(args.outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
