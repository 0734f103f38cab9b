"""Credential providers for managed services whose passwords are short-lived tokens.

redis-py asks a ``CredentialProvider`` for credentials each time it opens a connection;
an open connection stays authenticated after its token expires (Memorystore and
ElastiCache both work this way). So a provider only has to hand every *new* connection a
valid token: :class:`TokenCredentialProvider` caches one and fetches the next shortly
before it expires, once, however many threads or tasks ask at the same time.

The two cloud helpers import their SDK when called, so this module loads without them:
``pip install 'redis-chat-history[memorystore-iam]'`` (google-auth) or
``'redis-chat-history[elasticache-iam]'`` (botocore).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import timezone
from typing import Any
from urllib.parse import urlencode, urlunsplit

from redis.credentials import CredentialProvider

__all__ = [
    "TokenCredentialProvider",
    "elasticache_iam_provider",
    "memorystore_iam_provider",
]

Fetch = Callable[[], tuple[str, float]]


class TokenCredentialProvider(CredentialProvider):
    """Caches the token ``fetch()`` returns and renews it ``refresh_margin`` seconds early.

    ``fetch`` returns ``(token, expires_at)`` with ``expires_at`` in seconds since the epoch
    (as ``clock`` counts). With a ``username`` the credentials are ``(username, token)``
    (ACL users), otherwise ``(token,)``. The token never appears in the repr.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        username: str | None = None,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self.username = username
        self.refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def __repr__(self) -> str:
        return f"TokenCredentialProvider(username={self.username!r}, token=<hidden>)"

    @property
    def expires_at(self) -> float:
        """When the cached token expires (0 before the first fetch)."""
        return self._expires_at

    def _fresh(self) -> str | None:
        if self._token is not None and self._clock() < self._expires_at - self.refresh_margin:
            return self._token
        return None

    def token(self) -> str:
        """The cached token, fetching a new one if it is missing or about to expire."""
        token = self._fresh()
        if token is not None:
            return token
        with self._lock:
            token = self._fresh()  # another thread may have renewed it meanwhile
            if token is None:
                token, self._expires_at = self._fetch()
                self._token = token
        return token

    def _credentials(self, token: str) -> tuple[str] | tuple[str, str]:
        return (token,) if self.username is None else (self.username, token)

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        return self._credentials(self.token())

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        token = self._fresh()
        if token is None:  # fetching may block on HTTP: keep it off the event loop
            token = await asyncio.to_thread(self.token)
        return self._credentials(token)


CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def memorystore_iam_provider(
    credentials: Any = None, *, refresh_margin: float = 300.0
) -> TokenCredentialProvider:
    """Memorystore for Redis Cluster / for Valkey IAM auth: OAuth2 access tokens (1 h).

    ``credentials`` defaults to ``google.auth.default()`` with the cloud-platform scope. The
    principal needs the ``redis.clusters.connect`` / ``memorystore.dbConnectionUser`` role,
    and the instance requires TLS, so use a ``rediss://`` URL with the instance's CA.
    """
    import google.auth
    import google.auth.transport.requests

    if credentials is None:
        credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    request = google.auth.transport.requests.Request()

    def fetch() -> tuple[str, float]:
        credentials.refresh(request)
        expiry = credentials.expiry  # naive UTC datetime in google-auth
        return credentials.token, expiry.replace(tzinfo=timezone.utc).timestamp()

    return TokenCredentialProvider(fetch, refresh_margin=refresh_margin)


ELASTICACHE_TOKEN_SECONDS = 900


def elasticache_iam_provider(
    user_id: str,
    cache_name: str,
    *,
    region: str | None = None,
    serverless: bool = False,
    session: Any = None,
    refresh_margin: float = 120.0,
    clock: Callable[[], float] = time.time,
) -> TokenCredentialProvider:
    """ElastiCache (Valkey 7.2+ / Redis OSS 7+) IAM auth: SigV4-presigned tokens (15 min).

    ``user_id`` is the ElastiCache user (its name must equal its id), ``cache_name`` the
    replication group or serverless cache name. Credentials and region come from
    ``session`` (default: botocore's standard chain). IAM requires TLS; ElastiCache also
    drops IAM connections after 12 h, and redis-py's retry reconnects with a fresh token.
    """
    import botocore.session
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner

    session = session or botocore.session.get_session()
    region = region or session.get_config_variable("region")
    signer = RequestSigner(
        ServiceId("elasticache"), region, "elasticache", "v4",
        session.get_credentials(), session.get_component("event_emitter"),
    )  # fmt: skip
    query = {"Action": "connect", "User": user_id}
    if serverless:
        query["ResourceType"] = "ServerlessCache"
    url = urlunsplit(("https", cache_name, "/", urlencode(query), ""))

    def fetch() -> tuple[str, float]:
        issued = clock()
        signed: str = signer.generate_presigned_url(
            {"method": "GET", "url": url, "body": {}, "headers": {}, "context": {}},
            operation_name="connect",
            expires_in=ELASTICACHE_TOKEN_SECONDS,
            region_name=region,
        )
        return signed.removeprefix("https://"), issued + ELASTICACHE_TOKEN_SECONDS

    return TokenCredentialProvider(
        fetch, username=user_id, refresh_margin=refresh_margin, clock=clock
    )
