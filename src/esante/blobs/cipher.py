"""The cryptography of the blob store: subkeys, segment sealing, key wrapping, addresses. Pure functions of keys.

Every primitive comes from ``cryptography`` (OpenSSL): AES-256-GCM, HKDF-SHA256, HMAC-SHA256. Nothing here
touches the disk; :mod:`esante.blobs.store` decides what is written where.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from esante.blobs.format import NONCE_PREFIX_SIZE, Header, segment_nonce

KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12

_SEGMENTS_INFO = b"esante-blob segments v1"
_MANIFEST_INFO = b"esante-blob manifest v1"
_KCV_LABEL = b"esante-blob key check value v1"
_ADDRESS_LABEL = b"esante-blob address v1\x00"

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "BlobCipher",
    "InvalidTag",
    "SegmentCipher",
    "address_of",
    "key_check_value",
    "seal",
    "unseal",
]


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(key)


def key_check_value(material: bytes) -> str:
    """A 64-bit fingerprint of a master key, stored beside what it wraps.

    It lets the store say "the configured key ``k1`` is not the key that wrapped this blob" (a configuration
    error) instead of the vaguer "authentication failed" (which then really means tampering). An HMAC, so it
    reveals nothing usable about the key.
    """
    return hmac.new(material, _KCV_LABEL, hashlib.sha256).digest()[:8].hex()


def address_of(address_key: bytes, sha256_digest: bytes) -> str:
    """The blob's address: HMAC-SHA256 under the store's addressing key of the plaintext's SHA-256.

    Keyed, so that someone reading the disk (or a backup) cannot tell whether a known document is stored by
    hashing it. HMAC over the digest rather than over the bytes: the same keyed, collision-resistant name for
    one hash pass fewer over a large file.
    """
    return hmac.new(address_key, _ADDRESS_LABEL + sha256_digest, hashlib.sha256).hexdigest()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM with a fresh random nonce: (nonce, ciphertext ‖ tag). Used to wrap keys and manifests.

    Random 96-bit nonces are safe for up to 2**32 messages per key (NIST SP 800-38D); one master key wraps one
    data key per blob, far below that (14.6 M documents nationally).
    """
    nonce = os.urandom(NONCE_SIZE)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`; raises :class:`InvalidTag` when anything differs (key, nonce, bytes, aad)."""
    return AESGCM(key).decrypt(nonce, sealed, aad)


class BlobCipher:
    """The per-blob keys derived from its random data key: one for the segments, one for the manifest.

    Two HKDF subkeys rather than one key, so that the segment nonces (prefix ‖ counter ‖ flag) and the manifest's
    random nonce never share a key.
    """

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != KEY_SIZE:
            raise ValueError("a data key is 32 bytes")
        self._data_key = data_key
        self.manifest_key = _hkdf(data_key, _MANIFEST_INFO)

    def segments(self, header: Header) -> SegmentCipher:
        return SegmentCipher(_hkdf(self._data_key, _SEGMENTS_INFO), header)


class SegmentCipher:
    """Seals and opens the segments of one data object (the header is their associated data)."""

    def __init__(self, key: bytes, header: Header) -> None:
        self.header = header
        self._aad = header.encode()
        self._aead = AESGCM(key)

    @staticmethod
    def new_header(segment_size: int) -> Header:
        return Header(segment_size, os.urandom(NONCE_PREFIX_SIZE))

    def seal(self, index: int, final: bool, plaintext: bytes | bytearray | memoryview) -> bytes:
        return self._aead.encrypt(segment_nonce(self.header.nonce_prefix, index, final), plaintext, self._aad)

    def open(self, index: int, final: bool, sealed: bytes | memoryview) -> bytes:
        """The plaintext of segment ``index``; :class:`InvalidTag` unless it is exactly what was sealed there."""
        return self._aead.decrypt(segment_nonce(self.header.nonce_prefix, index, final), sealed, self._aad)
