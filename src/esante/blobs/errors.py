"""What can go wrong with a blob, as exceptions the callers map to answers.

The DSP maps :class:`BlobNotFound` to 404/410, :class:`BlobMismatchError` and :class:`BlobTooLargeError` to 4xx
OperationOutcomes (nothing stored), and everything else to a 500 that names the blob's address (never its content):
a blob that cannot be proven intact is never served.
"""

from __future__ import annotations


class BlobError(Exception):
    """Base class of the blob store's errors."""


class BlobConfigError(BlobError):
    """The master keys or the store settings are unusable (missing key, bad key material, unsafe key file)."""


class BlobNotFound(BlobError):
    """No blob at this address (never stored, or destroyed)."""

    def __init__(self, address: str) -> None:
        super().__init__(f"no blob at address {address}")
        self.address = address


class BlobKeyError(BlobError):
    """The blob's data key cannot be unwrapped with the configured master keys (unknown key id or wrong material)."""

    def __init__(self, address: str, kid: str, reason: str) -> None:
        super().__init__(f"blob {address}: {reason}")
        self.address = address
        self.kid = kid
        self.reason = reason


class BlobIntegrityError(BlobError):
    """The bytes on disk are not the ones the store wrote (flipped, truncated, extended, swapped, reordered).

    Raised before any byte that could not be authenticated is handed out.
    """

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"blob {address} failed its integrity check: {reason}")
        self.address = address
        self.reason = reason


class BlobMismatchError(BlobError):
    """The stream's size or hash is not what the caller declared (e.g. MHD ``attachment.size``/``hash``).

    Nothing is stored and no existing blob is touched.
    """

    def __init__(self, field: str, expected: str, actual: str) -> None:
        super().__init__(f"{field} declared {expected} but the bytes give {actual}")
        self.field = field
        self.expected = expected
        self.actual = actual


class BlobTooLargeError(BlobError):
    """The stream exceeded the caller's limit; nothing is stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"blob larger than the limit of {limit} bytes")
        self.limit = limit
