"""The embedded server from the command line: real CLI processes with no URL, killed with
SIGKILL at each step; afterwards exactly one server (or none) works in the data directory.

Each test gets a temporary HOME and XDG_DATA_HOME; every redis-server working under the
test's directory is killed at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redis_chat_history.embedded import find_server_binary
from test_embedded import kill_servers_in, servers_in, wait_until

CLI = [sys.executable, "-m", "redis_chat_history"]


class Env:
    """Runs CLI commands with no URL against the data directory of one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "share" / "redis-chat-history" / "embedded"
        self.vars = {
            **{k: v for k, v in os.environ.items() if "REDIS" not in k},
            "HOME": str(root / "home"),
            "XDG_DATA_HOME": str(root / "share"),
            "COLUMNS": "300",  # notes on one line
        }

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, *args], env={**self.vars, **env}, text=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def run(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*CLI, *args], env={**self.vars, **env}, text=True,
                                capture_output=True, timeout=60)  # fmt: skip
        assert result.returncode == code, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def status(self) -> dict[str, Any]:
        result = subprocess.run([*CLI, "embedded", "status", "--json"], env=self.vars,
                                text=True, capture_output=True, timeout=60)  # fmt: skip
        assert result.returncode in (0, 1), result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def state(self) -> dict[str, Any]:
        try:
            document: dict[str, Any] = json.loads((self.data_dir / "server.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return document

    def follower(self) -> subprocess.Popen[str]:
        """A long-running command (tail) holding the server, once it is following."""
        tail = self.spawn("tail", "nobody", "--layout", "native", "--duration", "30")
        wait_until(lambda: len(servers_in(self.data_dir)) == 1 and self.state().get("run_id"),
                   "tail did not start the server", timeout=20)  # fmt: skip
        return tail


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    made = Env(tmp_path)
    yield made
    kill_servers_in(tmp_path)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    process.send_signal(sig)
    process.communicate(timeout=30)


def test_two_commands_at_once_share_one_server(env: Env) -> None:
    """While tail runs with no URL, another command uses the same server (not exit 3), and
    the server stops when the last of them ends."""
    tail = env.follower()
    pid = servers_in(env.data_dir)[0]
    stats = env.run("stats", "--json")
    assert f"already running as pid {pid}" in stats.stderr
    assert servers_in(env.data_dir) == [pid]  # still tail's
    stop(tail, signal.SIGINT)
    assert tail.returncode == 0
    wait_until(lambda: servers_in(env.data_dir) == [], "the server outlived its last user")


def test_simultaneous_starts_make_one_server(env: Env) -> None:
    """Two commands started at the same moment both succeed on one data directory."""
    commands = [env.spawn("stats", "--json") for _ in range(2)]
    for command in commands:
        out, err = command.communicate(timeout=60)
        assert command.returncode == 0, err
        assert json.loads(out)["server"].startswith("embedded redis-server redis://:***@")
    assert servers_in(env.data_dir) == []


def test_kill_9_of_a_command_using_the_server(env: Env, tmp_path: Path) -> None:
    """kill -9 of the command leaves its server running; the next command reuses it (no
    second server on the data directory), writes through it, and, as the last user, shuts
    it down with its AOF flushed: the import is there afterwards."""
    tail = env.follower()
    orphan = servers_in(env.data_dir)
    stop(tail)
    assert servers_in(env.data_dir) == orphan
    message = json.dumps({"type": "human", "data": {"content": "still here?"}})
    lines = [
        {"format": "redis-chat-history", "version": 1, "layout": "native"},
        {"session": "kept", "ttl": None},
        {"session": "kept", "index": 0, "raw": message},
        {"end": True, "sessions": 1, "messages": 1},
    ]
    export = tmp_path / "one.jsonl"
    export.write_text("".join(json.dumps(line) + "\n" for line in lines))
    imported = env.run("import", str(export))
    assert f"already running as pid {orphan[0]}" in imported.stderr
    assert "imported 1" in imported.stdout + imported.stderr
    assert servers_in(env.data_dir) == []
    shown = env.run("show", "kept", "--json")
    assert "still here?" in shown.stdout


def test_kill_9_of_a_command_while_it_starts_the_server(env: Env, tmp_path: Path) -> None:
    """kill -9 of the command after redis-server was spawned but before it answered: the
    next command finds that server (it holds the data directory) and uses it."""
    real = find_server_binary()
    slow = tmp_path / "slow-redis-server"
    slow.write_text(f'#!/bin/sh\n[ "$1" = --version ] || sleep 2\nexec {real} "$@"\n')
    slow.chmod(0o755)
    starting = env.spawn("stats", "--json", REDIS_SERVER_BIN=str(slow))
    wait_until(lambda: env.state().get("pid"), "the command did not spawn a server")
    spawned = env.state()["pid"]
    stop(starting)
    assert not env.state().get("run_id")  # killed before the server answered
    stats = env.run("stats", "--json")
    assert f"already running as pid {spawned}" in stats.stderr
    assert servers_in(env.data_dir) == []


def test_kill_9_of_the_server(env: Env) -> None:
    """kill -9 of the server itself: the next command starts exactly one new server."""
    tail = env.follower()
    [killed] = servers_in(env.data_dir)
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: servers_in(env.data_dir) == [], "the server did not die")
    stop(tail)
    stats = env.run("stats", "--json")
    assert "already running" not in stats.stderr
    assert servers_in(env.data_dir) == []


def test_embedded_status_and_stop(env: Env) -> None:
    """status (exit 1 when not running) and stop (refused while in use, unless --force),
    with and without --json, never showing the password."""
    assert env.status() == {**env.status(), "running": False}
    env.run("embedded", "status", code=1)
    tail = env.follower()
    try:
        document = env.status()
        [pid] = servers_in(env.data_dir)
        assert document["running"] and document["in_use"] and document["pid"] == pid
        assert document["data_dir"] == str(env.data_dir) and document["version"].count(".") == 2
        shown = env.run("embedded", "status").stdout
        assert f"pid {pid}" in shown and f"127.0.0.1:{document['port']}" in shown
        refused = env.run("embedded", "stop", code=2)
        assert "--force" in refused.stderr and servers_in(env.data_dir) == [pid]
        stopped = env.run("embedded", "stop", "--force", "--json")
        assert json.loads(stopped.stdout)["stopped"] is True
        assert servers_in(env.data_dir) == []
    finally:
        stop(tail)
    password = (env.data_dir / "password").read_text().strip()
    outputs = [refused.stdout, refused.stderr, shown, stopped.stdout, json.dumps(document)]
    assert not any(password in text for text in outputs)
    assert "not running" in env.run("embedded", "stop").stdout


def test_version_mismatch_is_one_clear_line(env: Env) -> None:
    """A command whose redis-server is another major.minor version than the data's exits 3
    with one line saying so, and starts nothing."""
    env.data_dir.mkdir(parents=True)
    (env.data_dir / "redis-version.json").write_text('{"version": "5.0.0", "binary": "/gone"}')
    result = env.run("sessions", code=3)
    assert "written by redis-server 5.0.0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert servers_in(env.data_dir) == []
