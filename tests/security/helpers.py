"""Shared helpers for the security tests: a settable clock and a ring in a temporary folder."""

from __future__ import annotations

from pathlib import Path

from esante.config import Settings
from esante.security.keys import KeyRing

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15)


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def settings_in(folder: Path, **overrides: object) -> Settings:
    return Settings(var_dir=folder, **overrides)  # type: ignore[arg-type]


def ring_in(folder: Path, clock: FakeClock | None = None, **overrides: object) -> KeyRing:
    return KeyRing.load_or_create(settings_in(folder, **overrides), clock=clock or FakeClock())
