"""Where a session's messages live in Redis: key names and list direction.

Three layouts are known. All of them keep a session's messages in one Redis LIST whose
elements are ``json.dumps(message_to_dict(message))`` byte for byte, and a small sorted
set of recent retry tokens (see :mod:`redis_chat_history._core`) in the same cluster hash
slot as the list:

=========== ========================== ================================== ============
layout      list key                   retry-token key                    order
=========== ========================== ================================== ============
community   ``message_store:<id>``     ``{<tag>}\x1frch:tokens:<list>``   newest first
memorystore ``<id>``                   ``{<tag>}\x1frch:tokens:<list>``   oldest first
native      ``chat:{<id>}:messages``   ``chat:{<id>}:tokens``             oldest first
=========== ========================== ================================== ============

In the native layout ``%``, ``{`` and ``}`` in the id are percent-encoded, so the braces
always form a non-empty hash tag: every key of a session shares one slot whatever the id.
In the legacy layouts a side key is ``{<tag>}\x1frch:<part>:<list key>``: ``<tag>`` is the
list key's own hash tag, or the whole list key, or (for a key with a stray ``}``) a short
number hashing to the same slot, so the side key lives in the list's slot; and the whole
list key follows the first ``}``, so two sessions never share a side key. Side keys contain
U+001F, which no valid id may contain, so they are never a session's list key.

Sessions with metadata (see :mod:`redis_chat_history._sessions_core`) also have a hash in
the list's slot, and each owner has a sorted set indexing their sessions:

=========== ================================ =========================================
layout      metadata hash                    owner index (sorted set)
=========== ================================ =========================================
community   ``{<tag>}\x1frch:meta:<list>``   ``message_store:\x1frch:owner:{<owner>}``
memorystore ``{<tag>}\x1frch:meta:<list>``   ``\x1frch:owner:{<owner>}``
native      ``chat:{<id>}:meta``             ``chat:owner:{<owner>}:sessions``
=========== ================================ =========================================

``<list>`` is the session's list key.

Version 0.1.0 named the legacy side keys ``<list key>\x1frch:<part>`` (or
``{<list key>}\x1frch:<part>``), which let ``{x}`` and ``x`` share them. A metadata hash
under the old name is adopted (renamed) by the first script that touches its session, if
its ``session`` field names that session; an old token set is still consulted by appends
and deleted with its session (it expires by itself: 0.1.0 always gave it a ttl).

Owners are percent-encoded like native ids, so each owner's index has its own hash tag.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

from ._validate import check_session_id
from .codec import holds_record
from .errors import InvalidOptionError, InvalidSessionIdError

__all__ = [
    "CommunityLayout",
    "Layout",
    "MemorystoreLayout",
    "NativeLayout",
    "Window",
    "decode_tag",
    "encode_tag",
    "glob_escape",
    "hash_slot",
    "legacy_side_key",
    "naming_layout",
    "resolve_layout",
    "same_slot_key",
]

#: LRANGE bounds as Redis takes them: start and stop, both inclusive, negative counting
#: from the tail (-1 is the last element).
Window = tuple[int, int]
_EMPTY_WINDOW: Window = (1, 0)
_Items = TypeVar("_Items", bound=Sequence[Any])

_SLOTS = 16384
# The unit separator (U+001F) is a control character, which no valid session id contains,
# so a side key can never also be some session's list key.
_SIDE = "\x1frch:"
_OWNER_INFIX = "\x1frch:owner:"


def hash_slot(key: str) -> int:
    """The Redis Cluster hash slot of ``key`` (CRC16 of its hash tag or of the whole key)."""
    raw = key.encode()
    start = raw.find(b"{")
    if start > -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return binascii.crc_hqx(raw, 0) % _SLOTS


def _hash_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes when it has a hash tag, else None."""
    start = key.find("{")
    if start > -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return None


@functools.lru_cache(maxsize=1024)
def _tag_for_slot(slot: int) -> str:
    """A short string whose CRC16 falls in ``slot`` (found by counting up; ~16k tries)."""
    number = 0
    while binascii.crc_hqx(str(number).encode(), 0) % _SLOTS != slot:
        number += 1
    return str(number)


def same_slot_key(key: str, part: str) -> str:
    """``{<tag>}\\x1frch:<part>:<key>``: a side key in the same cluster slot as ``key``.

    ``<tag>`` is what Redis hashes for ``key`` (its hash tag, else the whole key) or, when
    that cannot stand between braces, a short string hashing to the same slot. Since the
    tag holds no ``}``, the whole of ``key`` can be read back after it: distinct keys never
    share a side key.
    """
    tag = _hash_tag(key)
    if tag is None:
        tag = key if "}" not in key else _tag_for_slot(hash_slot(key))
    return "{" + tag + "}" + _SIDE + part + ":" + key


def legacy_side_key(key: str, part: str) -> str | None:
    """The name version 0.1.0 gave the side key, if it was another: ``key + suffix`` for a
    key with a hash tag, ``{key} + suffix`` for one without (so ``{x}`` and ``x`` shared
    it). A key with a stray ``}`` had the name it has now: None."""
    suffix = _SIDE + part
    if _hash_tag(key) is not None:
        return key + suffix
    if "}" not in key:
        return "{" + key + "}" + suffix
    return None


def _valid_or_none(session_id: str) -> str | None:
    try:
        return check_session_id(session_id)
    except InvalidSessionIdError:
        return None


def glob_escape(text: str) -> str:
    """Escape ``text`` so a SCAN MATCH pattern matches it literally."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


@dataclass(frozen=True)
class Layout:
    """How one family of applications names a session's list and orders its elements."""

    name: ClassVar[str]
    #: True when index 0 of the list is the newest message (LPUSH order).
    newest_first: ClassVar[bool]

    # List order. A session's messages have chronological *positions* (0 = the oldest);
    # the list stores them newest first or oldest first. These methods are the one place
    # that turns positions into list indices and LRANGE windows and back. Windows are
    # anchored at the oldest message (the end appends do not move), so one read while
    # messages are being appended still returns the positions asked for.

    @property
    def push_command(self) -> str:
        """The command that appends in this order: ``LPUSH`` (newest first) or ``RPUSH``.

        Given several elements oldest first, either leaves them in chronological order."""
        return "LPUSH" if self.newest_first else "RPUSH"

    def window(self, start: int, stop: int | None = None) -> Window:
        """The LRANGE bounds of chronological positions ``[start, stop)`` (``stop`` None:
        to the newest). ``start`` and ``stop`` are >= 0; an empty range gives a window that
        LRANGE answers with nothing."""
        if stop is not None and stop <= start:
            return _EMPTY_WINDOW  # with stop 0, "stop - 1" and "-stop" would mean the far end
        if not self.newest_first:
            return start, -1 if stop is None else stop - 1
        # Chronological position i sits at list index -(i + 1).
        return (0 if stop is None else -stop), -(start + 1)

    def last_window(self, count: int) -> Window:
        """The LRANGE bounds of the newest ``count`` (>= 1) messages, however long the list."""
        return (0, count - 1) if self.newest_first else (-count, -1)

    @staticmethod
    def indices(window: Window, count: int) -> range:
        """The list indices (as LINDEX counts) of the ``count`` elements LRANGE returned
        for ``window``, in the order it returned them.

        Exact for the windows :meth:`window` and :meth:`last_window` make. Bounds of mixed
        sign (``-5, 8``) are refused: what such a window returned depends on the length.
        """
        start, stop = window
        if start >= 0:
            return range(start, start + count)
        if stop >= 0:
            raise ValueError(f"indices of LRANGE {start} {stop} depend on the list's length")
        if count == stop - start + 1:
            return range(start, start + count)  # negative, exact: the list was long enough
        return range(count)  # Redis clamped the negative start to 0

    def chronological(self, items: _Items) -> _Items:
        """List-order ``items`` (elements, or their :meth:`indices`) oldest first."""
        return cast("_Items", items[::-1]) if self.newest_first else items

    def in_list_order(self, items: _Items) -> _Items:
        """Chronological ``items`` in the order the list keeps them (the inverse of
        :meth:`chronological`, which is its own inverse)."""
        return self.chronological(items)

    def index_of(self, position: int, length: int) -> int:
        """The list index (>= 0) of chronological ``position`` in a list of ``length``."""
        return length - 1 - position if self.newest_first else position

    def messages_key(self, session_id: str) -> str:
        """The LIST holding the session's messages."""
        raise NotImplementedError

    def token_key(self, session_id: str) -> str:
        """The sorted set of recent append tokens, in the same hash slot as the list."""
        return same_slot_key(self.messages_key(session_id), "tokens")

    def legacy_token_key(self, session_id: str) -> str | None:
        """Where version 0.1.0 kept the token set, if it named it differently (else None)."""
        return legacy_side_key(self.messages_key(session_id), "tokens")

    def scan_pattern(self, id_prefix: str = "") -> str:
        """A SCAN MATCH pattern for the message keys of sessions whose id starts with
        ``id_prefix`` (taken literally)."""
        raise NotImplementedError

    def session_id_of(self, key: str) -> str | None:
        """The session id a message key belongs to, or None if it is not one of ours."""
        raise NotImplementedError

    def is_chat_list(
        self, key: str, first_element: object, other_layouts: Iterable[Layout] = ()
    ) -> bool:
        """Whether the LIST at ``key``, whose first element (LINDEX 0) is
        ``first_element`` (None: it has none), holds a chat session of this layout: the
        layout names the key and the element parses to a message record.

        A layout that names every key (memorystore) also leaves to the others what they
        name: the default native and community layouts and ``other_layouts`` (give the
        ones in use, a community layout with its own key prefix say; see
        :func:`naming_layout`).
        """
        return self.session_id_of(key) is not None and holds_record(first_element)

    def meta_key(self, session_id: str) -> str:
        """The HASH of the session's metadata (owner, title, times), in the list's slot."""
        return same_slot_key(self.messages_key(session_id), "meta")

    def legacy_meta_key(self, session_id: str) -> str | None:
        """Where version 0.1.0 kept the metadata, if it named it differently (else None)."""
        return legacy_side_key(self.messages_key(session_id), "meta")

    def meta_scan_pattern(self) -> str:
        """A SCAN MATCH pattern covering every metadata key of this layout, old names
        included (and possibly others': check a found key against :meth:`meta_key`)."""
        return "*" + _SIDE + "meta*"

    def _owner_namespace(self) -> str:
        """What owner index keys start with (before the U+001F that keeps them apart)."""
        return ""

    def owner_index_key(self, owner: str) -> str:
        """The sorted set of an owner's session ids, scored by last activity (ms)."""
        return f"{self._owner_namespace()}{_OWNER_INFIX}{{{_encode_id(owner)}}}"

    def owner_index_scan_pattern(self) -> str:
        """A SCAN MATCH pattern for every owner index key of this layout."""
        return glob_escape(self._owner_namespace() + _OWNER_INFIX + "{") + "*}"

    def owner_of_index_key(self, key: str) -> str | None:
        """The owner an index key belongs to, or None if it is not an owner index."""
        return _decoded_between(key, self._owner_namespace() + _OWNER_INFIX + "{", "}")


@dataclass(frozen=True)
class CommunityLayout(Layout):
    """langchain-community's ``RedisChatMessageHistory``: ``key_prefix + id``, newest first."""

    name: ClassVar[str] = "community"
    newest_first: ClassVar[bool] = True
    key_prefix: str = "message_store:"

    def __post_init__(self) -> None:
        if not isinstance(self.key_prefix, str):
            raise InvalidOptionError(
                f"key_prefix must be a str, not {type(self.key_prefix).__name__}"
            )
        if "\x1f" in self.key_prefix:
            raise InvalidOptionError("key_prefix must not contain U+001F (it marks side keys)")

    def messages_key(self, session_id: str) -> str:
        return self.key_prefix + session_id

    def _owner_namespace(self) -> str:
        return self.key_prefix

    def scan_pattern(self, id_prefix: str = "") -> str:
        return glob_escape(self.key_prefix + id_prefix) + "*"

    def session_id_of(self, key: str) -> str | None:
        if not key.startswith(self.key_prefix):
            return None
        return _valid_or_none(key[len(self.key_prefix) :])


@dataclass(frozen=True)
class MemorystoreLayout(Layout):
    """langchain-google-memorystore-redis: the bare session id as key, oldest first.

    Its keys have no prefix, so listing sessions finds every LIST in the database.
    """

    name: ClassVar[str] = "memorystore"
    newest_first: ClassVar[bool] = False

    def messages_key(self, session_id: str) -> str:
        return session_id

    def scan_pattern(self, id_prefix: str = "") -> str:
        return glob_escape(id_prefix) + "*"

    def session_id_of(self, key: str) -> str | None:
        return _valid_or_none(key)

    def is_chat_list(
        self, key: str, first_element: object, other_layouts: Iterable[Layout] = ()
    ) -> bool:
        return naming_layout(key, other_layouts) is None and super().is_chat_list(
            key, first_element
        )


def encode_tag(text: str) -> str:
    """``text`` with ``%``, ``{`` and ``}`` percent-encoded, to stand between braces as a
    hash tag (native session ids, owners, LangGraph thread ids)."""
    return _encode_id(text)


def decode_tag(encoded: str) -> str:
    """The inverse of :func:`encode_tag`."""
    return _decode_id(encoded)


def _encode_id(session_id: str) -> str:
    return session_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


_ESCAPES = {"%25": "%", "%7B": "{", "%7D": "}"}
_ESCAPE_RE = re.compile("%25|%7B|%7D")


def _decode_id(encoded: str) -> str:
    return _ESCAPE_RE.sub(lambda match: _ESCAPES[match.group()], encoded)


def _decoded_between(key: str, head: str, tail: str) -> str | None:
    """The valid id percent-encoded between ``head`` and ``tail`` in ``key``, or None."""
    if not (key.startswith(head) and key.endswith(tail)) or len(key) < len(head) + len(tail):
        return None
    encoded = key[len(head) : len(key) - len(tail)]
    if not encoded or "{" in encoded or "}" in encoded:
        return None
    return _valid_or_none(_decode_id(encoded))


@dataclass(frozen=True)
class NativeLayout(Layout):
    """Ours: ``<prefix>:{<id>}:messages`` oldest first, with ``%{}`` percent-encoded in the id.

    Oldest first (RPUSH) keeps appends, "last k" reads (``LRANGE -k -1``) and trimming
    (``LTRIM -n -1``) single commands, and reads chronologically in ``redis-cli``. The hash
    tag keeps every key of a session in one cluster slot, so one Lua script can touch them.
    """

    name: ClassVar[str] = "native"
    newest_first: ClassVar[bool] = False
    prefix: str = "chat"

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not self.prefix:
            raise InvalidOptionError("the native layout's prefix must be a non-empty str")
        if "{" in self.prefix or "}" in self.prefix:
            raise InvalidOptionError(
                f"the native layout's prefix must not contain braces: {self.prefix!r}"
            )

    def _key(self, session_id: str, part: str) -> str:
        return f"{self.prefix}:{{{_encode_id(session_id)}}}:{part}"

    def messages_key(self, session_id: str) -> str:
        return self._key(session_id, "messages")

    def token_key(self, session_id: str) -> str:
        return self._key(session_id, "tokens")

    def meta_key(self, session_id: str) -> str:
        return self._key(session_id, "meta")

    def legacy_token_key(self, session_id: str) -> str | None:
        return None

    def legacy_meta_key(self, session_id: str) -> str | None:
        return None

    def meta_scan_pattern(self) -> str:
        return glob_escape(f"{self.prefix}:{{") + "*}:meta"

    def owner_index_key(self, owner: str) -> str:
        return f"{self.prefix}:owner:{{{_encode_id(owner)}}}:sessions"

    def owner_index_scan_pattern(self) -> str:
        return glob_escape(f"{self.prefix}:owner:{{") + "*}:sessions"

    def owner_of_index_key(self, key: str) -> str | None:
        return _decoded_between(key, f"{self.prefix}:owner:{{", "}:sessions")

    def scan_pattern(self, id_prefix: str = "") -> str:
        return glob_escape(f"{self.prefix}:{{{_encode_id(id_prefix)}") + "*}:messages"

    def session_id_of(self, key: str) -> str | None:
        head, tail = f"{self.prefix}:{{", "}:messages"
        if not (key.startswith(head) and key.endswith(tail)):
            return None
        encoded = key[len(head) : -len(tail)]
        if not encoded or "{" in encoded or "}" in encoded:
            return None
        return _decode_id(encoded)


def naming_layout(key: str, layouts: Iterable[Layout] = ()) -> tuple[Layout, str] | None:
    """The first of ``layouts``, then of the default native and community layouts, that
    names ``key`` as a session's list, with that session's id; None if none does.

    Memorystore layouts are passed over: they name every key, so a key one of the others
    names is that other layout's session (``message_store:x`` is community's ``x``).
    """
    for layout in (*layouts, NativeLayout(), CommunityLayout()):
        if isinstance(layout, MemorystoreLayout):
            continue
        session_id = layout.session_id_of(key)
        if session_id is not None:
            return layout, session_id
    return None


_BY_NAME: dict[str, type[Layout]] = {
    "community": CommunityLayout,
    "langchain-community": CommunityLayout,
    "memorystore": MemorystoreLayout,
    "native": NativeLayout,
}


def resolve_layout(layout: Layout | str) -> Layout:
    """Accept a Layout instance or one of the names ``native``, ``community``, ``memorystore``."""
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, str) and layout in _BY_NAME:
        return _BY_NAME[layout]()
    raise InvalidOptionError(
        f"unknown layout {layout!r}; use 'native', 'community', 'memorystore' or a Layout"
    )
