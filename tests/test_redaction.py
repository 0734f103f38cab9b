"""No secret from a URL shows in redact_url, reprs, errors, logs or CLI output.

The password below holds every character that breaks naive URL parsing; each of its
pieces is distinctive, so a piece showing anywhere means part of the secret leaked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from redis_chat_history import (
    AsyncChatHistoryStore,
    ChatHistoryStore,
    RedisChatMessageHistory,
    close_shared_clients,
    redact_url,
)
from redis_chat_history.cli import main
from redis_chat_history.embedded import EmbeddedRedis

PIECES = ("Zq7v", "Wx9k", "Kp3j", "Mn5h", "Lt8g", "Rb2f")
SECRET = "Zq7v#Wx9k?Kp3j/Mn5h@Lt8g&Rb2f"
OTHER = "Sn4tinel-Zq7v"  # another secret, for the sentinels and a TLS key
ENCODED = quote(SECRET, safe="")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedRedis, Path]]:
    """A server whose default user has SECRET as password, on TCP and on a unix socket."""
    socket = tmp_path_factory.mktemp("sock") / "redis.sock"
    args = ["--requirepass", SECRET, "--unixsocket", str(socket), "--unixsocketperm", "700"]
    with EmbeddedRedis(extra_args=args, client_kwargs={"password": SECRET}) as started:
        yield started, socket


def url_forms(port: int, socket: Path) -> list[tuple[str, bool]]:
    """(url, whether it authenticates) for every way a secret can sit in a URL."""
    at = f"127.0.0.1:{port}"
    return [
        (f"redis://:{ENCODED}@{at}/0", True),
        (f"redis://default:{ENCODED}@{at}/0", True),
        (f"redis://{at}/0?password={ENCODED}", True),
        (f"redis://{at}/0?pass%77ord={ENCODED}", True),
        (f"redis://{at}/0?db=0&password={ENCODED}&socket_timeout=2", True),
        (f"unix://:{ENCODED}@{socket}?db=0", True),
        (f"unix://{socket}?db=0&password={ENCODED}", True),
        (f"redis://:{SECRET}@{at}/0", False),  # unencoded '#', '?', '/', '@', '&'
        (f"redis://default:{SECRET}@{at}/0", False),
        (f"redis://{at}/0?password={SECRET}", False),
        (f"redis://{at}/0?PASSWORD={ENCODED}", False),
        (f"redis://{at}/0?ssl_password={ENCODED}", False),
        (f"rediss://:{ENCODED}@127.0.0.1:1/0?ssl_password={quote(OTHER)}&ssl_cert_reqs=none",
         False),
        (f"unix://:{SECRET}@{socket}", False),
        (f"redis+sentinel://:{ENCODED}@127.0.0.1:1/mymaster?sentinel_password={OTHER}", False),
        (f"redis+sentinel://{at}/mymaster/0?sentinel_password={quote(OTHER)}", False),
        (f"rediss+sentinel://app:{ENCODED}@127.0.0.1:1,[::1]:1/mymaster?sent%69nel_password={OTHER}",
         False),
        (f"redis+sentinel://app:{SECRET}@{at}/mymaster", False),
    ]  # fmt: skip


def leaked(text: str) -> list[str]:
    return [piece for piece in (*PIECES, "Sn4tinel") if piece in text]


def error_text(error: BaseException) -> str:
    """The error, its repr and everything it was raised from or during."""
    shown: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        shown += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(shown)


def test_redact_url_hides_every_form(server: tuple[EmbeddedRedis, Path]) -> None:
    """redact_url shows no piece of any secret, and keeps the host and harmless options."""
    started, socket = server
    for url, _works in url_forms(started.port, socket):
        shown = redact_url(url)
        assert not leaked(shown), (url, shown)
        assert "***" in shown, shown
    assert redact_url("redis://app@h/0?db=2&ssl_certfile=/a@b") == (
        "redis://app@h/0?db=2&ssl_certfile=/a@b"
    )
    assert redact_url("redis://u:pw@h:6379/0?socket_timeout=2") == (
        "redis://u:***@h:6379/0?socket_timeout=2"
    )


async def test_reprs_errors_and_logs_never_show_a_secret(
    server: tuple[EmbeddedRedis, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Every URL form: the stores' and histories' reprs, the error a call raises (or its
    success), and what was logged are free of the secret."""
    started, socket = server
    caplog.set_level(logging.DEBUG)
    try:
        for url, works in url_forms(started.port, socket):
            store = ChatHistoryStore(url=url, retry_deadline=0)
            astore = AsyncChatHistoryStore(url=url, retry_deadline=0)
            history = RedisChatMessageHistory("s", url=url, retry_deadline=0)
            for shown in (repr(store), repr(astore), repr(history)):
                assert not leaked(shown), (url, shown)
            for call in (store.count, astore.count):
                try:
                    result = call("s")
                    if not isinstance(result, int):
                        result = await result
                except Exception as error:
                    assert not works, (url, error_text(error))
                    assert not leaked(error_text(error)), (url, error_text(error))
                else:
                    assert works and result == 0, url
            await astore.aclose()
    finally:
        close_shared_clients()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not leaked(logged), logged


def test_cli_output_never_shows_a_secret(server: tuple[EmbeddedRedis, Path]) -> None:
    """The CLI's --json server field and its errors, for every URL form that fails fast
    (the CLI's own connection retries make an unreachable sentinel slow)."""
    started, socket = server
    for url, works in url_forms(started.port, socket):
        if "sentinel" in url or ":1/" in url:
            continue
        result = CliRunner().invoke(
            main,
            ["sessions", "--url", url, "--json"],
            env={"REDIS_CHAT_HISTORY_URL": None, "REDIS_URL": None, "REDIS_PASSWORD": None},
        )
        output = result.stdout + result.stderr
        assert not leaked(output), (url, output)
        if works:
            assert result.exit_code in (0, 1) and '"server"' in result.stdout, output
