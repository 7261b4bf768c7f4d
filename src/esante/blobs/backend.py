"""Where the store keeps its objects: the seam between the store's cryptography and a storage medium.

The store (:mod:`esante.blobs.store`) only ever hands a backend opaque bytes — encrypted data objects and key
records — so a backend never sees a plaintext or a key. :class:`esante.blobs.local.LocalDiskBackend` is the
default (a folder of sharded directories). An S3-compatible backend fits the same protocol (data object and key
record as two objects under the address, ``If-None-Match: *`` for the create-if-absent commit, ``If-Match`` on the
record's ETag for the compare-and-swap of a rotation, a multipart upload for the pending data); it is not built.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import BinaryIO, Protocol


class DeleteOutcome(enum.Enum):
    DELETED = "deleted"
    ABSENT = "absent"
    RECENTLY_USED = "recently-used"  # a put relied on it recently (min_idle) or after the caller's (last_use)


class PendingBlob(Protocol):
    """A data object being written (not visible to readers until :meth:`commit`)."""

    stamp: int  # its use stamp once committed (nanoseconds; see BlobBackend.touch)

    def write(self, data: bytes) -> None:
        """Append ciphertext bytes to the data object."""

    def commit(self, address: str, key_record: bytes, *, replace: bool = False) -> bool:
        """Make data object and key record visible together at ``address``, durably.

        Returns False (and keeps the pending blob, for :meth:`abort` or a ``replace=True`` retry) when a blob
        already exists there; ``replace=True`` swaps an existing blob out for this one (healing a damaged blob).
        """

    def abort(self) -> None:
        """Discard the pending data (idempotent; also after a successful commit, where it does nothing)."""


class BlobBackend(Protocol):
    def begin(self) -> PendingBlob:
        """Start writing a new data object."""

    def exists(self, address: str) -> bool: ...

    def read_key(self, address: str) -> bytes:
        """The key record; :class:`esante.blobs.errors.BlobNotFound` when there is no blob."""

    def open_blob(self, address: str) -> tuple[bytes, BinaryIO]:
        """Key record and data object (open for reading from its start) of one and the same stored instance;
        BlobNotFound when there is no blob, BlobIntegrityError when one of the two is missing."""

    def replace_key(self, address: str, expected: bytes, record: bytes) -> bool:
        """Compare-and-swap the key record (rotation); False if it changed meanwhile or the blob is gone.

        Does not need to be durable at once: callers of many replacements end with :meth:`sync`.
        """

    def touch(self, address: str) -> int | None:
        """Record that a put just relied on this blob (dedup): its use stamp becomes a new, strictly greater
        value (nanoseconds since the epoch), returned; None if the blob no longer exists."""

    def delete(self, address: str, min_idle: float = 0.0, last_use: int | None = None) -> DeleteOutcome:
        """Remove key record then data object — unless its use stamp is less than ``min_idle`` seconds old, or
        differs from ``last_use`` (a put relied on it after the one that returned that stamp). Atomic with
        respect to :meth:`touch`."""

    def addresses(self) -> Iterator[str]:
        """Every stored address, in a stable order (sharded listing; no global state loaded)."""

    def read_meta(self) -> bytes | None:
        """The store record (addressing key), or None before the first put."""

    def create_meta(self, record: bytes) -> bytes:
        """Store the store record unless one exists; returns the record that is stored (ours or the winner's)."""

    def replace_meta(self, expected: bytes, record: bytes) -> bool: ...

    def is_empty(self) -> bool:
        """No blob stored (used to refuse recreating a lost store record over existing blobs)."""

    def stale_pending(self, older_than: float) -> list[str]:
        """Leftovers of interrupted writes older than ``older_than`` seconds (names, for a report)."""

    def remove_stale_pending(self, older_than: float) -> int: ...

    def sync(self) -> None:
        """Make every earlier change durable."""
