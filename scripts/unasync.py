"""Write the sync shell from the asyncio one, so the two cannot drift (as httpcore does).

    python scripts/unasync.py          # rewrite store.py and _sync_driver.py
    python scripts/unasync.py --check  # exit 1 if either differs from what it would write

Only the shell is translated; what really differs between sync and asyncio lives in
``_async_io`` / ``_sync_io``, whose functions have the same names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "redis_chat_history"
FILES = {"async_store.py": "store.py", "_async_driver.py": "_sync_driver.py"}
HEADER = "# Generated from {source} by scripts/unasync.py: edit that file, then run the script.\n"

# Applied in order; whole words unless the pattern says otherwise.
SUBSTITUTIONS = [
    (r"async def ", "def "),
    (r"async for ", "for "),
    (r"async with ", "with "),
    (r"await ", ""),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncChatHistoryStore\b", "ChatHistoryStore"),
    (r"\bAsyncDriver\b", "SyncDriver"),
    (r"\b_async_driver\b", "_sync_driver"),
    (r"\b_async_io\b", "_sync_io"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"the store for asyncio code", "the store for blocking code"),
]


def translate(source: str) -> str:
    """The sync twin of an asyncio module's text."""
    for pattern, replacement in SUBSTITUTIONS:
        source = re.sub(pattern, replacement, source)
    return source


def _ruff() -> str:
    """The ruff beside this Python (the dev venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff") or "ruff"


def tidy(text: str, target: str) -> str:
    """The text as ruff leaves it: imports sorted (and unused ones dropped), formatted."""
    name = str(PACKAGE / target)
    for command in (
        ["check", "--select", "I,F401", "--fix", "--quiet", "--exit-zero"],
        ["format", "--quiet"],
    ):
        text = subprocess.run(
            [_ruff(), *command, "--stdin-filename", name, "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return text


def generated(source: str, target: str) -> str:
    """What ``target`` should hold: ``source`` translated, then tidied by ruff."""
    text = HEADER.format(source=source) + translate((PACKAGE / source).read_text())
    return tidy(text, target)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for source, target in FILES.items():
        text = generated(source, target)
        path = PACKAGE / target
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(target)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run scripts/unasync.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
