"""Which server a CLI command talks to, and the options every command shares.

The server is ``--url``, else ``$REDIS_CHAT_HISTORY_URL``, else ``$REDIS_URL``, else the
persistent embedded redis-server the quickstart uses. A password can come from
``--password-stdin`` or ``$REDIS_PASSWORD`` / ``$REDISCLI_AUTH`` (never only from argv), and
URLs are only ever shown with the password redacted.

Each command gets one :class:`Cli` (via :func:`cli_command_options`): ``cli.client`` is a
redis-py client made for this command alone (closed when it ends), ``cli.store(layout)``
a :class:`ChatHistoryStore` over it, ``cli.out`` the printer. A first connection is made
with a short timeout and no retries, so a server that is down or a wrong password fails
in about ``--timeout`` seconds with one clear line instead of after the library's retries.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlunsplit

import click
import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError
from redis.retry import Retry

from .._clients import SyncClient, new_sync_client, redact_url
from ..embedded import EmbeddedRedis
from ..layouts import Layout
from ..store import ChatHistoryStore
from ..urls import parse_url, split_url
from ._output import EXIT_CONNECTION, EXIT_USAGE, CliError, Output

__all__ = [
    "LAYOUT_NAMES",
    "PASSWORD_ENV_VARS",
    "URL_ENV_VARS",
    "Cli",
    "cli_command_options",
    "layout_options",
    "with_password",
]

F = TypeVar("F", bound=Callable[..., Any])

URL_ENV_VARS = ("REDIS_CHAT_HISTORY_URL", "REDIS_URL")
PASSWORD_ENV_VARS = ("REDIS_PASSWORD", "REDISCLI_AUTH")
LAYOUT_NAMES = ("native", "community", "memorystore")
#: Store operations from the CLI are re-sent through connection losses for this long
#: (the library's default is 15 s, meant for applications riding out a failover).
CLI_RETRY_DEADLINE = 2.0


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` set in its userinfo (kept user name, percent-encoded)."""
    parts = split_url(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0] if at else ""
    netloc = f"{user}:{quote(password, safe='')}@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc))


def _with_timeouts(url: str, seconds: float) -> str:
    """``url`` with ``--timeout`` as its connect and read timeouts, unless it sets its own."""
    parts = split_url(url)
    query = [item for item in parts.query.split("&") if item]
    for name in ("socket_timeout", "socket_connect_timeout"):
        if not any(item.split("=", 1)[0] == name for item in query):
            query.append(f"{name}={seconds}")
    return urlunsplit(parts._replace(query="&".join(query)))


def _url_password(url: str) -> str | None:
    userinfo, at, _ = split_url(url).netloc.rpartition("@")
    return userinfo.partition(":")[2] or None if at else None


class Cli:
    """One command's connection and output. Nothing connects until ``client`` is used."""

    def __init__(
        self,
        *,
        url: str | None,
        password_stdin: bool,
        timeout: float,
        json_mode: bool,
    ) -> None:
        self.out = Output(json_mode=json_mode)
        self.timeout = timeout
        self._given_url = url
        self._password_stdin = password_stdin
        self._client: SyncClient | None = None
        self._embedded: EmbeddedRedis | None = None
        self._url: str | None = None
        #: The server as shown to people: a redacted URL or the embedded server's address.
        self.server = ""
        #: The URL in use with any password redacted ("" until connected).
        self.shown_url = ""

    @property
    def json_mode(self) -> bool:
        return self.out.json_mode

    @property
    def embedded(self) -> EmbeddedRedis | None:
        """The embedded server when no URL was given (after ``client`` was first used)."""
        return self._embedded

    def _resolve_url(self) -> str | None:
        if self._given_url:
            return self._given_url
        for name in URL_ENV_VARS:
            value = os.environ.get(name)
            if value:
                return value
        return None

    def _password(self, url: str) -> str | None:
        if self._password_stdin:
            line = sys.stdin.readline().rstrip("\r\n")
            if not line:
                raise CliError("--password-stdin was given but stdin had no password", 2)
            return line
        if _url_password(url) is not None:
            return None  # the URL's own password wins over the environment
        for name in PASSWORD_ENV_VARS:
            value = os.environ.get(name)
            if value:
                return value
        return None

    @property
    def client(self) -> SyncClient:
        """A redis-py client for this command (made and checked on first use)."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    def resolve_url(self) -> str | None:
        """The URL to use, with the password from stdin or the environment applied; None
        means the embedded server. Holds the password: show only :attr:`server`."""
        if self._url is None:
            url = self._resolve_url()
            if url is None:
                return None
            password = self._password(url)
            self._url = url if password is None else with_password(url, password)
            self.server = self.shown_url = redact_url(self._url)
        return self._url

    def _connect(self) -> SyncClient:
        url = self.resolve_url()
        if url is None:
            return self._start_embedded()
        parsed = parse_url(url)  # InvalidOptionError (usage) for a malformed URL
        if parsed.sentinel is None:
            self._preflight(parsed.url)
        try:
            return new_sync_client(_with_timeouts(url, self.timeout))
        except AuthenticationError as exc:
            raise CliError(
                f"{self.server}: authentication failed ({exc})", EXIT_CONNECTION
            ) from exc

    def _preflight(self, direct_url: str) -> None:
        """Connect once, fast and without retries, so down or wrong-password fails at once."""
        probe = redis.Redis.from_url(
            direct_url,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            probe.ping()
        except AuthenticationError as exc:
            if _url_password(direct_url) is None:
                raise CliError(
                    f"{self.server}: the server wants a password; give it with "
                    "--password-stdin, $REDIS_PASSWORD or $REDISCLI_AUTH",
                    EXIT_CONNECTION,
                ) from None
            raise CliError(
                f"{self.server}: authentication failed ({_reason(exc)}); check the user name "
                "and the password (--password-stdin, $REDIS_PASSWORD or $REDISCLI_AUTH)",
                EXIT_CONNECTION,
            ) from None
        except ResponseError as exc:
            if "DB index" in str(exc):
                raise CliError(
                    f"{self.server}: the database number in the URL does not exist on this "
                    f"server ({_reason(exc)})",
                    EXIT_USAGE,
                ) from None
            if "NOAUTH" in str(exc) or "NOPERM" in str(exc):
                raise CliError(
                    f"{self.server}: the server wants a password ({_reason(exc)}); give it with "
                    "--password-stdin, $REDIS_PASSWORD or $REDISCLI_AUTH",
                    EXIT_CONNECTION,
                ) from None
            raise
        finally:
            probe.close()

    def _start_embedded(self) -> SyncClient:
        server = EmbeddedRedis(persistent=True)
        try:
            server.start()
        except (RuntimeError, OSError) as exc:
            raise CliError(
                f"no --url, $REDIS_CHAT_HISTORY_URL or $REDIS_URL, and the embedded "
                f"redis-server could not start: {exc}",
                EXIT_CONNECTION,
            ) from None
        self._embedded = server
        self._url = server.url  # holds the server's password
        self.shown_url = redact_url(server.url)
        self.server = f"embedded redis-server {self.shown_url} (data in {server.dir})"
        shared = f", already running as pid {server.pid}" if server.reused else ""
        self.out.note(f"using the {self.server}{shared}; pass --url or set REDIS_URL for another")
        return server.client()

    def store(self, layout: Layout | str = "native") -> ChatHistoryStore:
        """A store in ``layout`` over this command's client (not closed by the store)."""
        return ChatHistoryStore(self.client, layout=layout, retry_deadline=CLI_RETRY_DEADLINE)

    def close(self) -> None:
        """Close the client and leave the embedded server, if any were made (it stops when
        no other process is using it)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        server, self._embedded = self._embedded, None
        if server is not None:
            server.stop()


def _reason(error: Exception) -> str:
    """The server's words, without anything a URL might have put there."""
    return str(error).strip() or type(error).__name__


def cli_command_options(function: F) -> F:
    """Add ``--url``, ``--password-stdin``, ``--timeout`` and ``--json`` to a command and pass
    it a :class:`Cli` as first argument, closed (client, embedded server) when it returns."""

    @click.option(
        "--url",
        metavar="URL",
        help="Redis URL (redis://, rediss://, unix://, redis+sentinel://). Default: "
        "$REDIS_CHAT_HISTORY_URL, then $REDIS_URL, then an embedded redis-server.",
    )
    @click.option(
        "--password-stdin",
        is_flag=True,
        help="Read the password from the first line of stdin "
        "(else $REDIS_PASSWORD or $REDISCLI_AUTH when the URL has none).",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0.1),
        default=5.0,
        show_default=True,
        help="Seconds to wait for the server to connect or answer.",
    )
    @click.option("--json", "json_mode", is_flag=True, help="Print JSON for scripts.")
    @functools.wraps(function)
    def wrapper(
        *args: Any, url: str | None, password_stdin: bool, timeout: float, json_mode: bool,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        cli = Cli(url=url, password_stdin=password_stdin, timeout=timeout, json_mode=json_mode)
        click.get_current_context().call_on_close(cli.close)
        return function(cli, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def layout_options(*, multiple: bool) -> Callable[[F], F]:
    """``--layout`` (repeatable when ``multiple``; by default every layout) and
    ``--key-prefix`` (the community layout's), passed as ``layouts`` (a tuple of names)
    and ``key_prefix``."""
    where = (
        "native (chat:{ID}:messages), community (message_store:ID, langchain-community) or "
        "memorystore (the bare ID). "
    )
    layout = click.option(
        "--layout",
        "layouts",
        type=click.Choice(LAYOUT_NAMES),
        multiple=multiple,
        callback=lambda _ctx, _param, value: tuple(value) if multiple else (value,) * bool(value),
        help="Layout to look in: "
        + where
        + ("Repeatable; default: all three." if multiple else "Default: whichever holds it."),
    )
    key_prefix = click.option(
        "--key-prefix",
        metavar="PREFIX",
        help="Key prefix of the community layout (default: message_store:).",
    )

    def decorate(function: F) -> F:
        return layout(key_prefix(function))

    return decorate
