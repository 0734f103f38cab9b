"""Search filters of the LangGraph store, compiled for the search script.

A filter is InMemoryStore's: ``{key: value}`` with plain values for equality, dicts of
``$eq $ne $gt $gte $lt $lte``, nested dicts and lists compared as ``_compare_values``
does. It becomes a tree of nodes the script walks (see ``_store_lua``'s ``_FILTER``):
``["eq", value]``, ``["ops", [[op, value], ...]]``, ``["obj", [[key, node, path parts or
false], ...]]`` and ``["arr", [node, ...]]``, sent as JSON. Values must be JSON the
script reads exactly (no NaN, integers within ±2**53): InvalidOptionError otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import InvalidOptionError

__all__ = ["compile_filter"]

#: Integers beyond this lose precision as Lua numbers (doubles): refused in filters.
_EXACT_INT = 2**53
#: The deepest filter accepted (levels of dicts and lists): each level is three levels of
#: the JSON the script decodes, whose decoder stops at 1000.
MAX_FILTER_DEPTH = 64
_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


def _exact(value: Any, where: str, depth: int = 0) -> Any:
    """A filter value as JSON the scripts read exactly, or InvalidOptionError."""
    _check_depth(depth, where)
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        if abs(value) > _EXACT_INT:
            raise InvalidOptionError(f"filter {where}: integers beyond ±2**53 are not exact")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidOptionError(f"filter {where}: {value} is not a JSON number")
        return value
    if isinstance(value, Mapping):
        return {str(k): _exact(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_exact(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise InvalidOptionError(f"filter {where}: {type(value).__name__} is not a JSON value")


def _check_depth(depth: int, where: str) -> None:
    if depth > MAX_FILTER_DEPTH:
        raise InvalidOptionError(f"filter {where}: nested more than {MAX_FILTER_DEPTH} levels deep")


def _node(value: Any, where: str, depth: int = 0) -> list[Any]:
    """One filter value as a script node (see _store_lua's _FILTER), the shape of
    InMemoryStore's ``_compare_values``."""
    _check_depth(depth, where)
    if isinstance(value, Mapping):
        if any(str(name).startswith("$") for name in value):
            pairs = []
            for op, operand in value.items():
                if op not in _OPERATORS:
                    raise InvalidOptionError(f"filter {where}: unsupported operator {op!r}")
                if op in ("$eq", "$ne"):
                    pairs.append([op, _exact(operand, f"{where}.{op}", depth + 1)])
                    continue
                try:
                    number = float(operand)
                except (TypeError, ValueError) as exc:
                    raise InvalidOptionError(
                        f"filter {where}: {op} needs a number, got {operand!r}"
                    ) from exc
                pairs.append([op, _exact(number, f"{where}.{op}")])
            return ["ops", pairs]
        return ["obj", _entries(value, where, depth + 1)]
    if isinstance(value, (list, tuple)):
        return ["arr", [_node(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]]
    return ["eq", _exact(value, where)]


def _entries(filter: Mapping[str, Any], where: str, depth: int = 0) -> list[list[Any]]:
    entries = []
    for name, value in filter.items():
        if not isinstance(name, str):
            raise InvalidOptionError(f"filter {where}: keys must be str, got {name!r}")
        parts = name.split(".") if "." in name else False
        inner = f"{where}.{name}" if where else name
        entries.append([name, _node(value, inner, depth), parts])
    return entries


def compile_filter(filter: Mapping[str, Any] | None) -> str:
    """A search filter as the scripts evaluate it ('' for none). Every key is looked up
    in the value as InMemoryStore does (``value.get(key)``); a dotted key not present as
    such is followed as a path (``"a.b"`` reads ``value["a"]["b"]``)."""
    if not filter:
        return ""
    if not isinstance(filter, Mapping):
        raise InvalidOptionError(f"filter must be a dict, not {type(filter).__name__}")
    return json.dumps(["obj", _entries(filter, "")], ensure_ascii=False)
