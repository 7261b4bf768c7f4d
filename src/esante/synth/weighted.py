"""Weighted random choice over a fixed table: cumulative weights + bisect, O(log n) per draw.

``random.choices`` rebuilds its cumulative table on every call unless given one; the generator draws tens of
millions of times for 1.2 M identities, so each table is built once.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


class Weighted(Generic[T]):
    """Items with non-negative weights (not all zero); :meth:`pick` draws one in proportion to its weight."""

    __slots__ = ("_cumulative", "_items", "_total")

    def __init__(self, pairs: Iterable[tuple[T, float]]) -> None:
        kept = [(item, float(weight)) for item, weight in pairs if weight > 0]
        if not kept:
            raise ValueError("a weighted table needs at least one item with a positive weight")
        self._items: Sequence[T] = [item for item, _ in kept]
        self._cumulative = list(accumulate(weight for _, weight in kept))
        self._total = self._cumulative[-1]
        self._cumulative[-1] = math.inf  # a draw rounding up to the total still lands on the last item

    @classmethod
    def of(cls, mapping: dict[T, float]) -> Weighted[T]:
        return cls(mapping.items())

    def pick(self, rng: random.Random) -> T:
        return self._items[bisect(self._cumulative, rng.random() * self._total)]

    def share(self, item: T) -> float:
        """The probability of ``item`` (for tests and docs)."""
        previous = 0.0
        total = 0.0
        for candidate, cumulative in zip(self._items, [*self._cumulative[:-1], self._total], strict=True):
            if candidate == item:
                total += cumulative - previous
            previous = cumulative
        return total / self._total

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> Sequence[T]:
        return self._items
