"""Document binaries: a content-addressed, envelope-encrypted blob store (docs/blob-store.md).

The DSP calls :class:`AsyncBlobStore` (``put``, ``open``, ``stat``, ``exists``, ``delete``); operators use
``esante blobs`` (``status``, ``new-key``, ``rotate-key``, ``verify``, ``destroy``).
"""

from esante.blobs.aio import AsyncBlobStore, BlobStream
from esante.blobs.backend import BlobBackend, DeleteOutcome, PendingBlob
from esante.blobs.errors import (
    BlobConfigError,
    BlobError,
    BlobIntegrityError,
    BlobKeyError,
    BlobMismatchError,
    BlobNotFound,
    BlobTooLargeError,
)
from esante.blobs.master_keys import MasterKey, MasterKeyRing
from esante.blobs.store import BlobInfo, BlobReader, BlobStore, BlobWriter, RotateOutcome, VerifyResult, VerifyStatus

__all__ = [
    "AsyncBlobStore",
    "BlobBackend",
    "BlobConfigError",
    "BlobError",
    "BlobInfo",
    "BlobIntegrityError",
    "BlobKeyError",
    "BlobMismatchError",
    "BlobNotFound",
    "BlobReader",
    "BlobStore",
    "BlobStream",
    "BlobTooLargeError",
    "BlobWriter",
    "DeleteOutcome",
    "MasterKey",
    "MasterKeyRing",
    "PendingBlob",
    "RotateOutcome",
    "VerifyResult",
    "VerifyStatus",
]
