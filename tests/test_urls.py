"""Reading connection URLs (no server needed)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from redis_chat_history import InvalidOptionError
from redis_chat_history.urls import parse_url, warn_if_unverified


def test_sentinel_url_with_hosts_service_db_and_credentials() -> None:
    """Sentinel URLs list several sentinels, the service and the database."""
    parsed = parse_url(
        "rediss+sentinel://app:p%40ss@10.0.0.1:26379,[::1]:26380/mymaster/2"
        "?socket_timeout=1.5&sentinel_password=sp&ssl_ca_certs=/ca.pem"
    )
    target = parsed.sentinel
    assert parsed.kind == "sentinel" and target is not None
    assert target.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert (target.service, target.db, target.ssl) == ("mymaster", 2, True)
    assert (target.username, target.password, target.sentinel_password) == ("app", "p@ss", "sp")
    assert target.options == {"socket_timeout": 1.5, "ssl_ca_certs": "/ca.pem"}
    assert "p@ss" not in repr(parsed) and "sp" not in repr(target)


def test_sentinel_url_defaults() -> None:
    """Without a database the sentinel URL means db 0; without credentials none are sent."""
    target = parse_url("redis+sentinel://h:26379/svc").sentinel
    assert target is not None
    assert (target.db, target.username, target.password, target.ssl) == (0, None, None, False)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h:26379", "needs /service"),
        ("redis+sentinel://h/svc", "host:port"),
        ("redis+sentinel://h:1/svc/x", "must be a number"),
        ("redis+sentinel://h:1/svc?cluster=yes", "cannot also ask for cluster"),
        ("http://h:6379", "unsupported URL scheme"),
        ("redis://h?cluster=maybe", "yes or no"),
        ("unix:///tmp/r.sock?cluster=yes", "unix socket"),
        ("redis://h?socket_timeout=soon", "socket_timeout"),
    ],
)
def test_bad_urls_are_explained(url: str, message: str) -> None:
    """A URL we cannot use raises InvalidOptionError saying why."""
    with pytest.raises(InvalidOptionError, match=message):
        parse_url(url)


@pytest.mark.parametrize(
    ("url", "cluster"),
    [("redis://h:6379/0", None), ("redis://h?cluster=yes", True), ("rediss://h?cluster=no", False),
     ("unix:///tmp/r.sock", False)],
)  # fmt: skip
def test_cluster_option_is_ours(url: str, cluster: bool | None) -> None:
    """``cluster=`` forces or forbids cluster mode and is removed before redis-py sees it."""
    parsed = parse_url(url)
    assert parsed.kind == "direct" and parsed.cluster is cluster
    assert "cluster=" not in parsed.url


def test_turning_tls_verification_off_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Disabling certificate or host name checks logs a warning that names the URL."""
    with caplog.at_level(logging.WARNING, logger="redis_chat_history"):
        warn_if_unverified("rediss://h:6380", {"ssl_cert_reqs": "none"})
        warn_if_unverified("rediss://h:6381", {"ssl_check_hostname": False})
        warn_if_unverified("rediss://h:6382", {"ssl_ca_certs": "/ca.pem"})
    shown = [record.getMessage() for record in caplog.records]
    assert len(shown) == 2
    assert "TLS verification is OFF for rediss://h:6380" in shown[0]
    assert "rediss://h:6381" in shown[1]


def test_sentinel_lists_with_ipv6_pass_pythons_strict_bracket_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Python 3.12+ (and security releases of 3.11, e.g. Debian's 3.11.2) refuse a netloc
    like ``h1:26379,[::1]:26380`` in urlsplit ("Invalid IPv6 URL"); sentinel URLs with an
    IPv6 sentinel must still parse there, in the library and the CLI."""
    from urllib.parse import urlsplit

    from redis_chat_history import urls
    from redis_chat_history.cli import _connect

    def strict_urlsplit(url: str, *args: Any, **kwargs: Any) -> Any:
        netloc = url.partition("://")[2].split("/", 1)[0]
        if "[" in netloc and "," in netloc:
            raise ValueError("Invalid IPv6 URL")
        return urlsplit(url, *args, **kwargs)

    monkeypatch.setattr(urls, "urlsplit", strict_urlsplit)
    url = "redis+sentinel://:pw@10.0.0.1:26379,[::1]:26380/mymaster/1?socket_timeout=2"
    parsed = parse_url(url)
    assert parsed.sentinel is not None
    assert parsed.sentinel.sentinels == (("10.0.0.1", 26379), ("::1", 26380))
    assert _connect._url_password(url) == "pw"
    assert "pw" not in _connect.with_password(url, "new") and "new" in _connect.with_password(
        url, "new"
    )
