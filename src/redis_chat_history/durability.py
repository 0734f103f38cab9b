"""How durable an append must be before it is acknowledged.

Redis replies as soon as the primary has applied a write; replication and AOF fsync happen
after. A durability level makes the append wait, on the same connection and in the same
round trip, for ``WAIT`` (that many replicas have the write) and/or ``WAITAOF`` (the write
is fsynced to the primary's append-only file; Redis and Valkey 7.2+). If the level is not
reached in time the append is *not* rolled back: :class:`NotDurableError` says it was
written but is not yet as durable as asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import DurabilityUnsupportedError, InvalidOptionError, NotDurableError

__all__ = ["Durability", "DurabilityUnsupportedError", "NotDurableError", "resolve_durability"]


@dataclass(frozen=True)
class Durability:
    """``replicas``: replicas that must acknowledge; ``fsync``: primary AOF fsynced;
    ``timeout_ms``: how long to wait for either before reporting NotDurableError."""

    replicas: int = 0
    fsync: bool = False
    timeout_ms: int = 1000

    def __post_init__(self) -> None:
        for name in ("replicas", "timeout_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidOptionError(f"durability {name} must be an int >= 0, got {value!r}")
        if not isinstance(self.fsync, bool):
            raise InvalidOptionError("durability fsync must be a bool")
        if self.waits and self.timeout_ms == 0:
            # WAIT and WAITAOF take 0 as "block until reached", which can be forever.
            raise InvalidOptionError(
                "durability timeout_ms must be at least 1 (0 would make WAIT block forever)"
            )

    @property
    def waits(self) -> bool:
        """Whether this level needs anything beyond the primary's reply."""
        return self.replicas > 0 or self.fsync

    def command(self) -> tuple[Any, ...]:
        """The WAIT or WAITAOF command that checks this level."""
        if self.fsync:
            return ("WAITAOF", 1, self.replicas, self.timeout_ms)
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, reply: Any, *, idempotency_key: str | None = None) -> None:
        """Raise NotDurableError if the WAIT/WAITAOF reply falls short of this level;
        ``idempotency_key`` is the append's, for the caller to retry with."""
        if self.fsync:
            local, replicas = int(reply[0]), int(reply[1])
        else:
            local, replicas = 1, int(reply)
        if local < 1 or replicas < self.replicas:
            raise NotDurableError(
                self, replicas=replicas, fsynced=bool(local), idempotency_key=idempotency_key
            )

    def __str__(self) -> str:
        parts = (["fsync"] if self.fsync else []) + (
            [f"replicas={self.replicas}"] if self.replicas else []
        )
        return ",".join(parts) or "none"


def resolve_durability(level: Durability | str | None) -> Durability:
    """Accept a Durability, None/"none", or text like "replicas=1", "fsync",
    "fsync,replicas=2", "replicas=1,timeout_ms=500"."""
    if level is None:
        return Durability()
    if isinstance(level, Durability):
        return level
    if not isinstance(level, str):
        raise InvalidOptionError(
            f"durability must be a str or Durability, not {type(level).__name__}"
        )
    options: dict[str, Any] = {}
    for part in filter(None, (piece.strip() for piece in level.split(","))):
        name, _, value = part.partition("=")
        if part == "none":
            continue
        if part == "fsync":
            options["fsync"] = True
        elif name in ("replicas", "timeout_ms") and value.isdigit():
            options[name] = int(value)
        else:
            raise InvalidOptionError(
                f"unknown durability {part!r}: use none, fsync, replicas=N, timeout_ms=N"
            )
    return Durability(**options)
