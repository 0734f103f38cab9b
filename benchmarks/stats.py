"""Summaries of repeated measurements: medians and spreads of paired ratios.

Absolute times on a shared 2-core machine drift by up to ~15% between runs, but two
systems measured back to back in the same repetition see the same conditions. So each
comparison is a list of per-repetition ratios (ours / other), summarised by its median,
interquartile range and extremes.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Summary:
    """Median, quartiles and extremes of a sample."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("nothing to summarise")
        if len(values) == 1:
            (only,) = values
            return cls(only, only, only, only, only, 1)
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(statistics.median(values), q1, q3, min(values), max(values), len(values))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Per-repetition ratios of two equally long series of per-operation times."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def format_ratio(summary: Summary) -> str:
    """``1.08x (1.03-1.12)``: the median and the interquartile range."""
    return f"{summary.median:.2f}x ({summary.q1:.2f}-{summary.q3:.2f})"


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits readable."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"
