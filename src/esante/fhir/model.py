"""Plain data the store hands out: a stored resource version, as bytes, never re-serialised on the hot path."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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


def row_to_stored(row: Sequence[Any]) -> StoredResource:
    """A (rid, res_type, res_id, version_id, last_updated, deleted, content) row; content as bytes on both engines."""
    content = row[6]
    if content is not None and not isinstance(content, bytes):
        content = bytes(content)
    return StoredResource(
        rid=int(row[0]),
        res_type=row[1],
        res_id=row[2],
        version_id=int(row[3]),
        last_updated=int(row[4]),
        deleted=bool(row[5]),
        content=content,
    )
