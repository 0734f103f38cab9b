"""Message records to list elements and back.

A *record* is what LangChain's ``message_to_dict`` returns: ``{"type": str, "data": dict}``.
Elements are written exactly as the upstream packages write them (``json.dumps`` with the
standard library's defaults: ``", "``/``": "`` separators, ``ensure_ascii=True``), so either
side reads what the other wrote. Reading uses orjson when it is installed and falls back to
the standard library for anything orjson refuses or reads differently (NaN, integers beyond
64 bits, lone surrogates), so the result is the same either way.
"""

from __future__ import annotations

import gc
import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

from .errors import CorruptMessageError, InvalidMessageError, MessageTooLargeError

_orjson: ModuleType | None
try:  # optional speed-up for reads; results are identical without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _orjson = None

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_NESTING_DEPTH",
    "Record",
    "decode_elements",
    "decode_one",
    "exceeds_nesting_limit",
    "encode_records",
    "holds_record",
    "is_record",
    "loads",
    "warn_skipped",
]

#: Largest encoded message accepted by default (1 MiB).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
#: The deepest nesting of objects and arrays a message may have (the record itself and
#: its ``data`` count as two levels). Deeper values exhaust Python's recursion limit in
#: json and in the libraries that read messages, so they are refused on write and
#: reported as corrupt on read.
MAX_NESTING_DEPTH = 256

Record = dict[str, Any]
T = TypeVar("T")


def is_record(value: object) -> bool:
    """True for a ``{"type": str, "data": dict}`` mapping, the shape every reader expects."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and isinstance(value.get("data"), dict)
    )


def encode_records(records: Sequence[Mapping[str, Any]], max_bytes: int) -> list[bytes]:
    """Encode a whole batch up front, so a bad message fails before anything is sent."""
    if type(records) not in (list, tuple) and (
        isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence)
    ):
        raise InvalidMessageError(
            f"expected a sequence of message records, got {type(records).__name__}"
        )
    encoded = []
    for position, record in enumerate(records):
        if not is_record(record):
            raise InvalidMessageError(
                f"message {position} of the batch is not a {{'type': str, 'data': dict}} "
                f"record (got {type(record).__name__}); nothing of the batch was written"
            )
        try:
            element = json.dumps(record).encode("ascii")
        except RecursionError:
            element = b""  # too deep for json: reported just below
        except (TypeError, ValueError) as exc:
            raise InvalidMessageError(
                f"message {position} of the batch cannot be encoded as JSON ({exc}); "
                "nothing of the batch was written"
            ) from exc
        if len(element) > max_bytes:
            raise MessageTooLargeError(len(element), max_bytes, position)
        if not element or exceeds_nesting_limit(element, record):
            raise InvalidMessageError(
                f"message {position} of the batch is nested more than {MAX_NESTING_DEPTH} "
                "levels deep; nothing of the batch was written"
            )
        encoded.append(element)
    return encoded


# orjson reads integers beyond 64 bits as floats, so an element with a run of 19 or more
# digits goes to the standard library. Digits become NUL bytes and we look for a run of
# them: far cheaper than a regex, and valid JSON never holds a raw NUL of its own.
_DIGITS_TO_NUL = bytes.maketrans(b"0123456789", bytes(10))
_LONG_DIGIT_RUN = bytes(19)


def _has_long_digit_run(element: bytes | str) -> bool:
    raw = element if isinstance(element, bytes) else element.encode("utf-8", "surrogatepass")
    return raw.translate(_DIGITS_TO_NUL).find(_LONG_DIGIT_RUN) >= 0


def exceeds_nesting_limit(element: bytes | str, value: Any) -> bool:
    """Whether ``value`` (decoded from ``element``) nests deeper than MAX_NESTING_DEPTH.

    Only an element with that many brackets can (so at least twice that many bytes):
    most elements are not even scanned, and of the rest few are walked."""
    if len(element) < 2 * MAX_NESTING_DEPTH:
        return False
    if isinstance(element, str):
        if element.count("[") + element.count("{") < MAX_NESTING_DEPTH:
            return False
    elif element.count(b"[") + element.count(b"{") < MAX_NESTING_DEPTH:
        return False
    level: list[Any] = [value]
    for _depth in range(MAX_NESTING_DEPTH):
        inner: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                inner.extend(v for v in item.values() if isinstance(v, (dict, list, tuple)))
            elif isinstance(item, (list, tuple)):
                inner.extend(v for v in item if isinstance(v, (dict, list, tuple)))
        if not inner:
            return False
        level = inner
    return True


def loads(element: bytes | str) -> Any:
    """Parse one stored element (or any JSON text) as the standard library would.

    orjson when it is installed; the standard library for what orjson refuses or reads
    differently (NaN, lone surrogates, integers beyond 64 bits), so the value, and the
    error for invalid JSON (a ValueError; UnicodeDecodeError for bytes that are not
    UTF-8), are the same either way. Deeply nested JSON may raise RecursionError.
    """
    if _orjson is not None and not _has_long_digit_run(element):
        try:
            return _orjson.loads(element)
        except _orjson.JSONDecodeError:
            pass  # let the standard library decide (it accepts NaN, lone surrogates)
    return json.loads(element)


def holds_record(element: object) -> bool:
    """Whether a stored list element (bytes or str) parses to a message record."""
    if not isinstance(element, (bytes, str)):
        return False
    try:
        return is_record(loads(element))
    except (ValueError, RecursionError):
        return False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many objects that hold no cycles.

    Decoding thousands of messages otherwise triggers repeated full collections, which
    cost more than the decoding itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def decode_one(
    element: bytes | str, index: int, key: str, convert: Callable[[Record], T] | None = None
) -> tuple[Record, Any] | CorruptMessageError:
    """One stored element as ``(record, converted)`` (``converted`` is the record itself
    without ``convert``), or the CorruptMessageError saying why it cannot be read."""
    try:
        record = loads(element)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = f"not valid JSON ({exc})"
    except RecursionError:
        reason = f"nested more than {MAX_NESTING_DEPTH} levels deep"
    else:
        if exceeds_nesting_limit(element, record):
            reason = f"nested more than {MAX_NESTING_DEPTH} levels deep"
        elif not is_record(record):
            reason = "not a {'type': str, 'data': dict} record"
        elif convert is None:
            return record, record
        else:
            try:
                return record, convert(record)
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                reason = f"not a readable message ({exc})"
    return CorruptMessageError(key, index, reason)


def warn_skipped(skipped: Sequence[CorruptMessageError], stacklevel: int = 3) -> None:
    """Warn about each element a non-strict read skipped."""
    for error in skipped:
        warnings.warn(f"{error}; skipped (strict=False)", RuntimeWarning, stacklevel=stacklevel)


def decode_elements(
    elements: Sequence[bytes | str],
    *,
    key: str,
    indices: Sequence[int],
    strict: bool,
    convert: Callable[[Record], T] | None = None,
) -> list[Any]:
    """Decode list elements (already in chronological order) into records.

    ``indices[i]`` is the list index (as LINDEX counts) of ``elements[i]``; it names the
    element in errors. ``convert`` turns each record into the caller's object (a LangChain
    message, say); if it raises ValueError, TypeError or KeyError the element counts as
    corrupt. With ``strict`` a corrupt element raises CorruptMessageError;
    otherwise it is skipped with a warning (given once the collector runs again: warning
    filters and handlers are the application's code).
    """
    out: list[Any] = []
    skipped: list[CorruptMessageError] = []
    with _collector_paused():
        # decode_one, inlined: whole-history reads run this per element (~9% faster)
        for element, index in zip(elements, indices, strict=True):
            try:
                record = loads(element)
            except (ValueError, UnicodeDecodeError) as exc:
                reason = f"not valid JSON ({exc})"
            except RecursionError:
                reason = f"nested more than {MAX_NESTING_DEPTH} levels deep"
            else:
                if exceeds_nesting_limit(element, record):
                    reason = f"nested more than {MAX_NESTING_DEPTH} levels deep"
                elif not is_record(record):
                    reason = "not a {'type': str, 'data': dict} record"
                elif convert is None:
                    out.append(record)
                    continue
                else:
                    try:
                        out.append(convert(record))
                        continue
                    except (ValueError, TypeError, KeyError, RecursionError) as exc:
                        reason = f"not a readable message ({exc})"
            error = CorruptMessageError(key, index, reason)
            if strict:
                raise error
            skipped.append(error)
    warn_skipped(skipped, stacklevel=4)
    return out
