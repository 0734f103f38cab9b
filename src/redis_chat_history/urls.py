"""Reading connection URLs: plain, TLS, unix socket, Sentinel and Cluster.

Accepted forms::

    redis://[[user]:password@]host[:port][/db][?option=value&...]
    rediss://...                        TLS, verified unless ssl_cert_reqs=none
    unix://[[user]:password@]/path/to/socket[?db=N]
    redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db][?...]
    rediss+sentinel://...               the same over TLS (sentinels and master)

Two options are ours and removed before redis-py sees the URL: ``cluster=yes|no`` forces
or forbids Redis Cluster (by default a TCP URL is probed once with ``INFO cluster``), and
``sentinel_password`` authenticates to the sentinels themselves. Everything else is passed
to redis-py as its own ``from_url`` would (``ssl_ca_certs``, ``ssl_min_version``, ...).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit

from redis.connection import URL_QUERY_ARGUMENT_PARSERS, to_bool

from .errors import InvalidOptionError

__all__ = ["ParsedUrl", "SentinelTarget", "parse_url", "split_url", "warn_if_unverified"]

logger = logging.getLogger("redis_chat_history")

_TRUE, _FALSE = {"1", "yes", "true", "on"}, {"0", "no", "false", "off"}


@dataclass(frozen=True)
class SentinelTarget:
    """Where a Sentinel-managed master is found."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None = field(repr=False)
    sentinel_password: str | None = field(repr=False)
    ssl: bool
    options: dict[str, Any]


@dataclass(frozen=True)
class ParsedUrl:
    """A URL split into what redis-py takes and what we decide ourselves."""

    kind: Literal["direct", "sentinel"]
    #: For ``direct``: the URL for redis-py's ``from_url`` (our options removed).
    url: str = field(repr=False)
    #: True/False when ``cluster=`` was given, None to probe.
    cluster: bool | None
    sentinel: SentinelTarget | None = None


def _flag(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidOptionError(f"URL option {name}= must be yes or no, got {value!r}")


def _parse_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        parser: Callable[[str], Any] | None = URL_QUERY_ARGUMENT_PARSERS.get(name)  # type: ignore[assignment]
        try:
            options[name] = parser(value) if parser else value
        except (TypeError, ValueError):
            raise InvalidOptionError(f"invalid value for URL option {name}=") from None
    return options


def _sentinel_target(url: str, parts: Any, options: dict[str, Any]) -> SentinelTarget:
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = []
    for host_port in hosts.split(","):
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise InvalidOptionError("a sentinel URL lists sentinels as host:port[,host:port...]")
        sentinels.append((host.strip("[]"), int(port)))
    path = [unquote(piece) for piece in parts.path.split("/") if piece]
    if not path or len(path) > 2:
        raise InvalidOptionError("a sentinel URL needs /service or /service/db after the hosts")
    db = int(options.pop("db", 0))
    if len(path) == 2:
        if not path[1].isdigit():
            raise InvalidOptionError("the database in a sentinel URL must be a number")
        db = int(path[1])
    return SentinelTarget(
        sentinels=tuple(sentinels),
        service=path[0],
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=options.pop("sentinel_password", None),
        ssl=parts.scheme == "rediss+sentinel",
        options=options,
    )


def _check_port(url: str, parts: Any) -> None:
    """Refuse a port that is not a number without quoting it: with an unencoded ``#``, ``?``
    or ``/`` in the password, what urlsplit takes for the port is part of the password."""
    try:
        parts.port  # noqa: B018 - reading it validates it
    except ValueError:  # its message quotes the "port"; raised outside, without context
        bad_port = True
    else:
        return
    if bad_port and "@" in url.partition("://")[2] and "@" not in parts.netloc:
        raise InvalidOptionError(
            "the password in the URL holds an unencoded '#', '?' or '/': percent-encode "
            "it (urllib.parse.quote(password, safe=''))"
        )
    raise InvalidOptionError("the port in the URL is not a number")


def split_url(url: str) -> SplitResult:
    """urlsplit, except that a sentinel URL's list of hosts is taken as it is: Pythons with
    the bracketed-host check (3.12+, and security releases of older ones) refuse a list
    such as ``h1:26379,[::1]:26380`` as an invalid IPv6 address."""
    scheme, found, rest = url.partition("://")
    if not found or scheme.lower() not in ("redis+sentinel", "rediss+sentinel"):
        return urlsplit(url)
    cut = min((at for at in (rest.find(c) for c in "/?#") if at >= 0), default=len(rest))
    return urlsplit(f"{scheme}://sentinels{rest[cut:]}")._replace(netloc=rest[:cut])


def parse_url(url: str) -> ParsedUrl:
    """Split ``url`` into a direct URL (with our options removed) or a sentinel target."""
    if not isinstance(url, str):
        raise InvalidOptionError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = split_url(url)
    except ValueError as exc:
        raise InvalidOptionError(f"cannot parse the Redis URL: {exc}") from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    cluster = _flag("cluster", query.pop("cluster")) if "cluster" in query else None
    if parts.scheme in ("redis+sentinel", "rediss+sentinel"):
        if cluster:
            raise InvalidOptionError("a sentinel URL cannot also ask for cluster=yes")
        options = _parse_options(urlencode(query))
        return ParsedUrl("sentinel", url, False, _sentinel_target(url, parts, options))
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise InvalidOptionError(
            f"unsupported URL scheme {parts.scheme!r}: use redis://, rediss://, unix://, "
            "redis+sentinel:// or rediss+sentinel://"
        )
    if parts.scheme == "unix" and cluster:
        raise InvalidOptionError("Redis Cluster is not reachable over a unix socket")
    _check_port(url, parts)
    _parse_options(urlencode(query))  # reject bad values now, with a clear error
    # Not urlunsplit: it turns unix:///path into unix:/path, which redis-py rejects.
    direct = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if query:
        direct += "?" + urlencode(query)
    return ParsedUrl("direct", direct, False if parts.scheme == "unix" else cluster)


def _turned_off(value: Any) -> bool:
    # As redis-py reads the option: a URL gives a string ("false", "0", "no", ...).
    return to_bool(value) is False if isinstance(value, str) else value is False


def warn_if_unverified(shown_url: str, options: dict[str, Any]) -> None:
    """Log a warning when TLS certificate or host name checks were turned off (values may be
    the URL's strings or parsed options)."""
    cert_reqs = options.get("ssl_cert_reqs")
    unverified = cert_reqs == ssl.CERT_NONE or (
        isinstance(cert_reqs, str) and cert_reqs.lower() in ("none", "cert_none")
    )
    if unverified or _turned_off(options.get("ssl_check_hostname")):
        logger.warning(
            "TLS verification is OFF for %s (ssl_cert_reqs=%s, ssl_check_hostname=%s): the "
            "server's identity is not checked; use only for tests",
            shown_url, cert_reqs, options.get("ssl_check_hostname"),
        )  # fmt: skip
