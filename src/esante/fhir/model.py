"""Plain data the store hands out: a stored resource version, as bytes, never re-serialised on the hot path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of one resource as kept in the ``resource`` table."""

    rid: int
    res_type: str
    res_id: str
    version_id: int
    last_updated: int  # microseconds since the epoch, UTC
    deleted: bool
    content: bytes | None  # the exact JSON bytes served to clients; None for a delete tombstone

    @property
    def last_updated_iso(self) -> str:
        return micros_to_instant(self.last_updated)

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


def micros_to_instant(micros: int) -> str:
    """FHIR instant text (UTC, microsecond precision: exact, so ``_since``/``_at`` with it are exact too)."""
    stamp = datetime.fromtimestamp(micros // 1_000_000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{micros % 1_000_000:06d}Z"
