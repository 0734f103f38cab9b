"""The deployments the behaviour suite runs against (``pytest --topology NAME``).

Each is started once per test run from :mod:`topologies` and described by a
:class:`Deployment`: the URL the stores connect with (exercising our URL handling), a
full-rights client for inspecting data, and how to empty it between tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import topologies
from redis_chat_history.embedded import EmbeddedRedis

TOPOLOGIES = ("standalone", "tls", "mtls", "cluster", "sentinel", "acl", "renamed")

#: What an application user needs, and nothing dangerous (no KEYS, FLUSHALL, CONFIG, DEBUG).
APP_USER_RULES = (
    "~*", "&*", "-@all", "+@read", "+@write", "+@connection", "+@scripting", "+@keyspace",
    "-@dangerous", "+info", "+time",
)  # fmt: skip


@dataclass(frozen=True)
class Deployment:
    name: str
    #: What stores connect with.
    url: str
    #: A new full-rights client (the caller closes it).
    admin: Callable[[], Any]
    #: Empty every database the tests use.
    flush: Callable[[], None]


def _flush_with(admin: Callable[[], Any]) -> Callable[[], None]:
    def flush() -> None:
        client = admin()
        try:
            client.flushall()
        finally:
            client.close()

    return flush


def _tls_url(server: topologies.TlsServer) -> str:
    query = f"ssl_ca_certs={quote(str(server.ca_file))}"
    if server.client_cert_file is not None:
        query += f"&ssl_certfile={quote(str(server.client_cert_file))}"
        query += f"&ssl_keyfile={quote(str(server.client_key_file))}"
    return f"{server.url}?{query}"


@contextmanager
def deployment(name: str, tmp_dir: Path, standalone: EmbeddedRedis | None) -> Iterator[Deployment]:
    """Start (or reuse, for standalone) the named deployment for the whole run."""
    with ExitStack() as stack:
        if name == "standalone":
            assert standalone is not None
            found = Deployment(
                name, standalone.url, standalone.client, _flush_with(standalone.client)
            )
        elif name in ("tls", "mtls"):
            server = stack.enter_context(
                topologies.tls_server(tmp_dir / name, client_auth=name == "mtls")
            )
            found = Deployment(name, _tls_url(server), server.client, _flush_with(server.client))
        elif name == "cluster":
            cluster = stack.enter_context(topologies.cluster(tmp_dir / name))
            url = f"redis://127.0.0.1:{cluster.ports[0]}/0"
            found = Deployment(name, url, cluster.client, _flush_with(cluster.client))
        elif name == "sentinel":
            group = stack.enter_context(topologies.sentinel_group(tmp_dir / name))

            def master() -> Any:
                return group.sentinel().master_for(group.service)

            found = Deployment(name, group.url, master, _flush_with(master))
        elif name == "acl":
            user = ("app", "app-secret", APP_USER_RULES)
            server = stack.enter_context(topologies.acl_server(tmp_dir / name, users=[user]))
            url = f"redis://app:app-secret@127.0.0.1:{server.port}/0"
            found = Deployment(name, url, server.client, _flush_with(server.client))
        elif name == "renamed":
            server = stack.enter_context(topologies.restricted_server(tmp_dir / name))
            found = Deployment(name, server.url, server.client, server.flush)
        else:
            raise ValueError(f"unknown topology {name!r}; choose from {TOPOLOGIES}")
        yield found
