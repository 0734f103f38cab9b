"""The README's run command: the quickstart, end to end, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_quickstart(env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "redis_chat_history", "demo"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stderr, result.stderr
    return result.stdout


def test_quickstart_against_redis_url(redis_url: str) -> None:
    """With REDIS_URL set, the snippets run against it and the model sees the first turn."""
    output = run_quickstart({"REDIS_URL": redis_url})
    assert "RedisChatMessageHistory('foo'): 2 messages" in output
    assert "human: hi!" in output and "ai: whats up?" in output
    assert "Your name is bob. (I was given 4 messages.)" in output
    assert "after clear(): []" in output


def test_quickstart_embedded_server_persists(tmp_path: Path) -> None:
    """Without REDIS_URL an embedded server keeps the history for the next run."""
    env = {"XDG_DATA_HOME": str(tmp_path), "REDIS_URL": ""}
    first = run_quickstart(env)
    assert "Using an embedded redis-server" in first and "'foo'): 2 messages" in first
    second = run_quickstart(env)
    assert "'foo'): 4 messages" in second
    assert "stored by an earlier run: the history persisted" in second
    assert (tmp_path / "redis-chat-history" / "embedded" / "redis.log").exists()
