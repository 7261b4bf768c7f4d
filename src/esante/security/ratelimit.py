"""A fixed-window rate limiter kept in memory (per worker process): the brake on password guessing and token abuse.

Each (bucket, key) pair — e.g. ("login", client address) — may be hit ``limit`` times per ``window`` seconds; the
next hit is refused with the number of seconds until the window ends (the ``Retry-After`` of the 429 answer).
Counts live in this process only, so N workers allow up to N times the limit: a reverse proxy in front of the platform
should limit too (docs/security.md). Account lockout, which is stored in the database, is the shared brake.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
_MAX_KEYS = 100_000  # beyond this many tracked keys, expired windows are swept before adding one


@dataclass
class RateLimiter:
    """Counts hits per (bucket, key) in fixed windows of ``window`` seconds."""

    window: float = 60.0
    clock: Clock = time.monotonic
    _hits: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def hit(self, bucket: str, key: str, limit: int) -> float | None:
        """Count one hit; ``None`` when allowed, else the seconds to wait (the hit is not counted then)."""
        if limit <= 0:
            return None
        now = self.clock()
        slot = (bucket, key)
        start, count = self._hits.get(slot, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= limit:
            return max(1.0, math.ceil(start + self.window - now))
        if slot not in self._hits and len(self._hits) >= _MAX_KEYS:
            self._sweep(now)
        self._hits[slot] = (start, count + 1)
        return None

    def reset(self, bucket: str, key: str) -> None:
        self._hits.pop((bucket, key), None)

    def _sweep(self, now: float) -> None:
        self._hits = {k: v for k, v in self._hits.items() if now - v[0] < self.window}
