"""Checks on caller input, run before anything is sent to Redis."""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Any

from .errors import ChatHistoryError, InvalidOptionError, InvalidSessionIdError

__all__ = [
    "MAX_SESSION_ID_LENGTH",
    "MAX_TTL_SECONDS",
    "check_max_messages",
    "check_positive_int",
    "check_session_id",
    "check_text",
    "check_ttl",
]

#: The longest ttl accepted, in seconds (100 years): Redis refuses expiry times whose
#: milliseconds overflow, and would do so only after the batch was written.
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600

#: The longest session id accepted, in characters: room for ids that embed a document
#: hash or a JWT subject (10 KB ids are tested on a cluster), while keeping keys small.
MAX_SESSION_ID_LENGTH = 16 * 1024

# Control characters, lone surrogates and line/paragraph separators: they break logs,
# terminals and key listings, and lone surrogates cannot even be encoded as UTF-8.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def check_text(
    what: str,
    value: Any,
    limit: int,
    *,
    allow_empty: bool = False,
    error: type[ChatHistoryError] = InvalidOptionError,
) -> str:
    """Return ``value`` if it is a str of at most ``limit`` characters (non-empty unless
    ``allow_empty``) without control characters, line separators or lone surrogates;
    else raise ``error`` naming ``what`` and the problem."""
    if not isinstance(value, str):
        raise error(f"{what} must be a str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise error(f"{what} must not be empty")
    if len(value) > limit:
        raise error(f"{what} is {len(value)} characters long; the limit is {limit}")
    if not value.isprintable():
        for position, char in enumerate(value):
            if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
                raise error(
                    f"{what} contains the control character U+{ord(char):04X} at position "
                    f"{position}"
                )
    return value


def check_session_id(session_id: Any) -> str:
    """Return ``session_id`` if it can name a session, else raise InvalidSessionIdError."""
    return check_text("session id", session_id, MAX_SESSION_ID_LENGTH, error=InvalidSessionIdError)


def check_ttl(ttl: Any) -> int | None:
    """Normalise a ttl to whole seconds; ``None`` and ``0`` mean "no expiry" (as upstream)."""
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
        if seconds != int(seconds):
            raise InvalidOptionError(f"ttl must be whole seconds, got {ttl!r}")
        ttl = int(seconds)
    elif isinstance(ttl, bool) or not isinstance(ttl, int):
        raise InvalidOptionError(
            f"ttl must be an int number of seconds or a timedelta, not {type(ttl).__name__}"
        )
    if ttl < 0:
        raise InvalidOptionError(f"ttl must not be negative (got {ttl}); use None for no expiry")
    if ttl > MAX_TTL_SECONDS:
        raise InvalidOptionError(
            f"ttl must be at most {MAX_TTL_SECONDS} seconds (100 years), got {ttl}; "
            "use None for no expiry"
        )
    return ttl or None


def check_ttl_minutes(name: str, minutes: Any) -> int:
    """A ttl in minutes (LangGraph's unit) as whole milliseconds, at least 1: more than 0
    and at most MAX_TTL_SECONDS (100 years, far inside what PEXPIRE and the scripts' number
    formatting take exactly), else InvalidOptionError naming ``name``."""
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, (int, float))
        or not 0 < minutes <= MAX_TTL_SECONDS / 60
    ):
        raise InvalidOptionError(
            f"{name} must be minutes > 0 and at most {MAX_TTL_SECONDS // 60} (100 years), "
            f"got {minutes!r}"
        )
    return max(1, round(minutes * 60_000))


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an int >= 1, else raise InvalidOptionError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise InvalidOptionError(f"{name} must be at least 1, got {value}")
    return value


def check_max_messages(value: Any) -> int | None:
    """``None`` (keep everything) or a positive int."""
    return None if value is None else check_positive_int("max_messages", value)
