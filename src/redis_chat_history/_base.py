"""What both stores are made of: settings, a client or a URL, and the facts about its server."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from ._clients import redact_url
from ._core import SERVERS, ServerFacts
from .codec import DEFAULT_MAX_MESSAGE_BYTES
from .durability import Durability
from .errors import InvalidOptionError
from .layouts import Layout
from .settings import StoreSettings

__all__ = ["StoreBase"]

ClientT = TypeVar("ClientT")
StoreT = TypeVar("StoreT", bound="StoreBase[Any]")


class StoreBase(Generic[ClientT]):
    """The constructor and settings both stores share (one signature for both)."""

    config: StoreSettings

    def __init__(
        self,
        client: ClientT | None = None,
        *,
        url: str | None = None,
        layout: Layout | str = "native",
        ttl: Any = None,
        max_messages: int | None = None,
        start_on: str = "human",
        keep_system: bool = False,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        strict: bool = True,
        retry_deadline: float = 15.0,
        durability: Durability | str | None = None,
    ) -> None:
        settings = StoreSettings.build(
            layout=layout,
            ttl=ttl,
            max_messages=max_messages,
            start_on=start_on,
            keep_system=keep_system,
            max_message_bytes=max_message_bytes,
            strict=strict,
            retry_deadline=retry_deadline,
            durability=durability,
        )
        self._setup(client, url, settings)

    @classmethod
    def with_settings(
        cls: type[StoreT],
        settings: StoreSettings,
        *,
        client: Any = None,
        url: str | None = None,
    ) -> StoreT:
        """A store with settings checked already (StoreSettings.build), over ``client`` or
        ``url``: how the LangChain classes make theirs."""
        if not isinstance(settings, StoreSettings):
            raise InvalidOptionError(
                f"settings must be a StoreSettings, not {type(settings).__name__}"
            )
        store = cls.__new__(cls)
        store._setup(client, url, settings)
        return store

    def _setup(self, client: ClientT | None, url: str | None, settings: StoreSettings) -> None:
        if (client is None) == (url is None):
            raise InvalidOptionError("pass either a redis client or url=, not both or neither")
        self.config = settings
        self._client = client
        self._url = url
        #: A connection to a cluster node failed: refresh the slot map before the next
        #: same-connection send (see the drivers' _send_to_slot_owner).
        self._stale_slots = False

    @property
    def settings(self) -> StoreSettings:
        """The store's settings (layout, ttl, max_messages, ...)."""
        return self.config

    def _server(self) -> ServerFacts:
        """What is known about the server (shared per URL, or per client)."""
        return SERVERS.facts(self._url, self._client)

    def __repr__(self) -> str:
        where = redact_url(self._url) if self._url else repr(self._client)
        return f"{type(self).__name__}({where}, layout={self.config.layout!r})"
