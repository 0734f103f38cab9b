"""Exact cosine scores of stored vectors against a query, redis-free.

An item's vectors are packed little-endian float32 unit vectors, one per indexed field,
one after another; its score is the best cosine (a dot product, both sides being unit
vectors) over them, as InMemoryStore scores an item with several indexed fields. Products
are summed in double precision either way. With numpy installed (the ``vectors`` extra)
every match of a search is scored in one matrix product; without it, in pure Python, some
ten times slower (``benchmarks/store_search.py`` measures both).
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Sequence
from typing import Any

numpy: Any
try:
    import numpy
except ImportError:  # the vectors extra is optional
    numpy = None

__all__ = ["best_scores"]

_LITTLE = array("H", [1]).tobytes() == b"\x01\x00"
#: Rows converted to float64 at a time (bounds the memory numpy needs beside the reply).
_CHUNK_ROWS = 4096


def best_scores(
    packed: Sequence[bytes | None], query: Sequence[float], dims: int
) -> list[float | None]:
    """Each item's best cosine with the unit ``query``; None for an item without vectors
    (or whose vectors are not ``dims`` long)."""
    usable = [index for index, blob in enumerate(packed) if blob and len(blob) % (4 * dims) == 0]
    scores: list[float | None] = [None] * len(packed)
    if not usable:
        return scores
    if numpy is None:
        for index in usable:
            scores[index] = _best_in_python(packed[index] or b"", query, dims)
        return scores
    found = _best_with_numpy([packed[index] or b"" for index in usable], query, dims)
    for index, score in zip(usable, found, strict=True):
        scores[index] = score
    return scores


def _best_in_python(blob: bytes, query: Sequence[float], dims: int) -> float:
    floats = array("f")
    floats.frombytes(blob)
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        floats.byteswap()
    view = memoryview(floats)
    mul = operator.mul
    best: float = max(
        sum(map(mul, query, view[start : start + dims])) for start in range(0, len(floats), dims)
    )
    return best


def _best_with_numpy(blobs: list[bytes], query: Sequence[float], dims: int) -> list[float]:
    assert numpy is not None
    rows: Any = numpy.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, dims)
    wanted = numpy.asarray(query, dtype=numpy.float64)
    similarity = numpy.empty(len(rows), dtype=numpy.float64)
    for start in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS].astype(numpy.float64)
        similarity[start : start + len(chunk)] = chunk @ wanted
    counts = [len(blob) // (4 * dims) for blob in blobs]
    starts = numpy.cumsum([0, *counts[:-1]])
    return [float(score) for score in numpy.maximum.reduceat(similarity, starts)]
