"""Token credential providers: caching, renewal under concurrency, and rotation on a real server.

The cloud is out of reach here, so the token *sources* are stand-ins (a counter, a fake
google-auth credentials object); everything else is real, including the Redis server whose
ACL password rotates and botocore's SigV4 signer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_chat_history import ChatHistoryStore
from redis_chat_history.credentials import (
    TokenCredentialProvider,
    elasticache_iam_provider,
    memorystore_iam_provider,
)
from redis_chat_history.embedded import EmbeddedRedis


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingSource:
    """Issues token-1, token-2, ... valid for ``lifetime`` seconds, slowly, and counts calls."""

    def __init__(self, clock: Clock, lifetime: float = 3600.0, delay: float = 0.0) -> None:
        self.clock, self.lifetime, self.delay = clock, lifetime, delay
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, float]:
        time.sleep(self.delay)
        with self._lock:
            self.calls += 1
            return f"token-{self.calls}", self.clock() + self.lifetime


def test_token_is_cached_until_the_refresh_margin() -> None:
    """The token is fetched once, reused, and renewed ``refresh_margin`` before expiry."""
    clock = Clock()
    source = CountingSource(clock)
    provider = TokenCredentialProvider(source, refresh_margin=300, clock=clock)
    assert provider.get_credentials() == ("token-1",)
    clock.now += 3299
    assert provider.get_credentials() == ("token-1",) and source.calls == 1
    clock.now += 2
    assert provider.get_credentials() == ("token-2",) and source.calls == 2
    assert "token" not in repr(provider).replace("token=<hidden>", "")


def test_username_makes_acl_credentials() -> None:
    """With a username the provider returns ``(username, token)``."""
    provider = TokenCredentialProvider(CountingSource(Clock()), username="app")
    assert provider.get_credentials() == ("app", "token-1")


def test_one_fetch_for_many_threads_at_expiry() -> None:
    """Sixteen threads asking at once after expiry cause exactly one renewal."""
    clock = Clock()
    source = CountingSource(clock, delay=0.05)
    provider = TokenCredentialProvider(source, clock=clock)
    provider.get_credentials()
    clock.now += 3600
    results: list[tuple[str, ...]] = []
    threads = [
        threading.Thread(target=lambda: results.append(provider.get_credentials()))
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.calls == 2 and set(results) == {("token-2",)}


async def test_one_fetch_for_many_tasks_and_loop_stays_free() -> None:
    """Fifty tasks share one renewal, which runs off the event loop."""
    clock = Clock()
    source = CountingSource(clock, delay=0.1)
    provider = TokenCredentialProvider(source, clock=clock)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1

    results, _ = await asyncio.gather(
        asyncio.gather(*(provider.get_credentials_async() for _ in range(50))), ticker()
    )
    assert source.calls == 1 and set(results) == {("token-1",)}
    assert ticks == 5  # the loop kept running while the token was fetched


def test_a_failed_fetch_is_retried_next_time() -> None:
    """If fetching fails the error surfaces and the next call tries again."""
    attempts = iter([RuntimeError("metadata server down"), ("token-ok", 2e9)])

    def flaky() -> tuple[str, float]:
        outcome = next(attempts)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    provider = TokenCredentialProvider(flaky)
    with pytest.raises(RuntimeError, match="metadata server down"):
        provider.get_credentials()
    assert provider.get_credentials() == ("token-ok",)


@pytest.fixture
def acl_server() -> Iterator[EmbeddedRedis]:
    """A server with an ACL user ``app`` whose password the test rotates."""
    with EmbeddedRedis() as server, server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "app", "on", ">secret-1", "~*", "+@all")
        yield server


def test_rotated_password_reaches_new_connections(acl_server: EmbeddedRedis) -> None:
    """After rotation, open connections keep working and new ones use the new secret."""
    clock = Clock()
    secrets = iter(["secret-1", "secret-2"])
    provider = TokenCredentialProvider(
        lambda: (next(secrets), clock() + 900), username="app", refresh_margin=60, clock=clock
    )
    client = redis.Redis(
        port=acl_server.port, credential_provider=provider, retry=Retry(NoBackoff(), 0)
    )
    store = ChatHistoryStore(client)
    store.append("s", [{"type": "human", "data": {"content": "before"}}])
    held = client.connection_pool.get_connection()  # an open, authenticated connection
    with acl_server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "app", "resetpass", ">secret-2")
    clock.now += 900  # the provider's token is now due for renewal
    held.send_command("PING")
    assert held.read_response() in (b"PONG", "PONG", True)
    client.connection_pool.release(held)
    client.connection_pool.disconnect()  # force new connections
    store.append("s", [{"type": "human", "data": {"content": "after"}}])
    assert [r["data"]["content"] for r in store.messages("s")] == ["before", "after"]
    client.close()


class FakeGoogleCredentials:
    """Stands in for google-auth credentials: refresh() mints a token valid for an hour."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.token: str | None = None
        self.expiry: datetime | None = None

    def refresh(self, request: object) -> None:
        self.refreshes += 1
        self.token = f"ya29.token-{self.refreshes}"
        now = datetime.now(timezone.utc).replace(tzinfo=None)  # google-auth: naive UTC
        self.expiry = now + timedelta(hours=1)


def test_memorystore_provider_uses_google_credentials() -> None:
    """The Memorystore provider sends the OAuth2 access token and caches it for the hour."""
    credentials = FakeGoogleCredentials()
    provider = memorystore_iam_provider(credentials)
    assert provider.get_credentials() == ("ya29.token-1",)
    assert provider.get_credentials() == ("ya29.token-1",)
    assert credentials.refreshes == 1


def test_elasticache_token_is_a_sigv4_presigned_connect_url() -> None:
    """The ElastiCache token is botocore's SigV4 presigned ``connect`` request, 15 min."""
    import botocore.session

    session = botocore.session.get_session()
    session.set_credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    clock = Clock()
    provider = elasticache_iam_provider(
        "chat-app", "my-cache", region="eu-west-1", session=session, clock=clock
    )
    user, token = provider.get_credentials()
    assert user == "chat-app" and token.startswith("my-cache/?")
    query = parse_qs(urlsplit("https://" + token).query)
    assert query["Action"] == ["connect"] and query["User"] == ["chat-app"]
    assert query["X-Amz-Expires"] == ["900"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert "eu-west-1/elasticache/aws4_request" in query["X-Amz-Credential"][0]
    assert len(query["X-Amz-Signature"][0]) == 64
    assert provider.expires_at == clock.now + 900
    clock.now += 900 - 119  # inside the 120 s margin: a new token is signed
    provider.get_credentials()
    assert provider.expires_at == clock.now + 900
    serverless = elasticache_iam_provider(
        "chat-app", "my-cache", region="eu-west-1", session=session, serverless=True
    )
    assert "ResourceType=ServerlessCache" in serverless.get_credentials()[1]
