"""The blob store's on-disk formats, as pure encode/decode functions (no I/O, no keys).

A blob is two objects under its address (see docs/blob-store.md):

- the **data object**: a 20-byte header followed by the AES-256-GCM segments of the plaintext;
- the **key record**: a small JSON document holding the master key id, the wrapped data key and the encrypted
  manifest (plaintext size, SHA-1, SHA-256). Rotation rewrites only this record; the data object is written once.

Header (authenticated as the associated data of every segment, so changing any field fails every segment)::

    offset size  field
    0      6     magic b"ESBLOB"
    6      1     format version (1)
    7      1     suite (1 = AES-256-GCM, HKDF-SHA256 subkeys, nonce = prefix ‖ counter ‖ final flag)
    8      4     plaintext bytes per segment, unsigned big-endian
    12     7     nonce prefix (random per blob)
    19     1     reserved (0)

Segment ``i`` (0-based) holds plaintext bytes ``[i*S, (i+1)*S)``; every segment but the last is full. An empty
blob has one empty segment. Each is ``ciphertext ‖ 16-byte tag`` encrypted with the nonce
``prefix(7) ‖ i (4 bytes, big-endian) ‖ final (1 byte: 1 for the last segment, else 0)`` — the STREAM construction
of Hoang, Reyhanitabar, Rogaway and Vizár (as in Tink's streaming AEAD): reordering changes the counter,
truncation at a segment boundary leaves a last segment whose final flag is 0, appending leaves a final segment that
is not last; all three fail authentication.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from typing import Any

import orjson

MAGIC = b"ESBLOB"
FORMAT_VERSION = 1
SUITE_AES256GCM_STREAM = 1
HEADER_SIZE = 20
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
MAX_SEGMENTS = 2**32  # the counter is 4 bytes
MIN_SEGMENT_SIZE = 4096
MAX_SEGMENT_SIZE = 16 * 1024 * 1024
DEFAULT_SEGMENT_SIZE = 64 * 1024
SHA1_SIZE = 20
SHA256_SIZE = 32

_HEADER = struct.Struct(">6sBBI7sB")
_MANIFEST = struct.Struct(">BQ20s32sIQ")  # version, size, sha1, sha256, segment size, stored at (epoch s)
_ADDRESS = re.compile(r"\A[0-9a-f]{64}\Z")
_KID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")

RECORD_FORMAT = 1


class FormatError(ValueError):
    """Bytes that are not a well-formed header, manifest or record (the caller says which blob)."""


def is_address(text: str) -> bool:
    """A blob address: 64 lowercase hexadecimal digits (an HMAC-SHA256)."""
    return bool(_ADDRESS.match(text))


def is_kid(text: str) -> bool:
    """A master key id: 1-64 characters among letters, digits, ``.``, ``_`` and ``-``."""
    return bool(_KID.match(text))


def check_segment_size(size: int) -> int:
    if not MIN_SEGMENT_SIZE <= size <= MAX_SEGMENT_SIZE:
        raise ValueError(f"segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes, not {size}")
    return size


# --- data object header ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    segment_size: int
    nonce_prefix: bytes

    def encode(self) -> bytes:
        return _HEADER.pack(MAGIC, FORMAT_VERSION, SUITE_AES256GCM_STREAM, self.segment_size, self.nonce_prefix, 0)

    @classmethod
    def decode(cls, raw: bytes) -> Header:
        if len(raw) < HEADER_SIZE:
            raise FormatError(f"data object shorter than its {HEADER_SIZE}-byte header ({len(raw)} bytes)")
        magic, version, suite, segment_size, prefix, reserved = _HEADER.unpack(raw[:HEADER_SIZE])
        if magic != MAGIC:
            raise FormatError("not a blob data object (bad magic)")
        if version != FORMAT_VERSION or suite != SUITE_AES256GCM_STREAM or reserved != 0:
            raise FormatError(f"unsupported data object format (version {version}, suite {suite})")
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise FormatError(f"segment size {segment_size} out of range")
        return cls(segment_size, prefix)


def segment_nonce(prefix: bytes, index: int, final: bool) -> bytes:
    """The 12-byte GCM nonce of segment ``index``: prefix ‖ counter ‖ final flag."""
    if not 0 <= index < MAX_SEGMENTS:
        raise ValueError("a blob holds at most 2**32 segments")
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def segment_count(size: int, segment_size: int) -> int:
    """Segments of a ``size``-byte plaintext (an empty blob has one empty segment)."""
    return max(1, -(-size // segment_size))


def data_object_size(size: int, segment_size: int) -> int:
    """Bytes of the data object for a ``size``-byte plaintext: header + plaintext + one tag per segment."""
    return HEADER_SIZE + size + TAG_SIZE * segment_count(size, segment_size)


# --- manifest (encrypted inside the key record) ---------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """What the store knows of the plaintext; encrypted under the blob's data key, so the disk does not show it."""

    size: int
    sha1: bytes
    sha256: bytes
    segment_size: int
    stored_at: int  # epoch seconds of the first store

    def encode(self) -> bytes:
        return _MANIFEST.pack(1, self.size, self.sha1, self.sha256, self.segment_size, self.stored_at)

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        if len(raw) != _MANIFEST.size:
            raise FormatError("manifest of the wrong length")
        version, size, sha1, sha256, segment_size, stored_at = _MANIFEST.unpack(raw)
        if version != 1:
            raise FormatError(f"unsupported manifest version {version}")
        return cls(size, sha1, sha256, segment_size, stored_at)


# --- key record (JSON) ----------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(record: dict[str, Any], name: str) -> bytes:
    value = record.get(name)
    if not isinstance(value, str):
        raise FormatError(f"record field {name!r} missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise FormatError(f"record field {name!r} is not base64") from error


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise FormatError(f"record field {name!r} missing")
    return value


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise FormatError(f"{what} is not JSON") from error
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise FormatError(f"{what} of an unsupported format")
    return record


@dataclass(frozen=True)
class KeyRecord:
    """The key record of one blob: which master key wrapped its data key, the wrapped key, the encrypted manifest."""

    kid: str
    kcv: str  # key check value of the master key (tells "wrong key material" from "tampered record")
    wrap_nonce: bytes
    wrapped_key: bytes
    manifest_nonce: bytes
    manifest: bytes  # Manifest.encode(), AES-GCM encrypted with the manifest subkey

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "format": RECORD_FORMAT,
                "kid": self.kid,
                "kcv": self.kcv,
                "wrap_nonce": _b64(self.wrap_nonce),
                "wrapped_key": _b64(self.wrapped_key),
                "manifest_nonce": _b64(self.manifest_nonce),
                "manifest": _b64(self.manifest),
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> KeyRecord:
        record = _load(raw, "key record")
        return cls(
            kid=_text(record, "kid"),
            kcv=_text(record, "kcv"),
            wrap_nonce=_unb64(record, "wrap_nonce"),
            wrapped_key=_unb64(record, "wrapped_key"),
            manifest_nonce=_unb64(record, "manifest_nonce"),
            manifest=_unb64(record, "manifest"),
        )


@dataclass(frozen=True)
class StoreRecord:
    """The store's own record (``store.json``): the addressing key, wrapped by a master key like a data key."""

    kid: str
    kcv: str
    nonce: bytes
    wrapped_address_key: bytes
    created: str

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "format": RECORD_FORMAT,
                "created": self.created,
                "kid": self.kid,
                "kcv": self.kcv,
                "nonce": _b64(self.nonce),
                "wrapped_address_key": _b64(self.wrapped_address_key),
            },
            option=orjson.OPT_INDENT_2,
        )

    @classmethod
    def decode(cls, raw: bytes) -> StoreRecord:
        record = _load(raw, "store record")
        return cls(
            kid=_text(record, "kid"),
            kcv=_text(record, "kcv"),
            nonce=_unb64(record, "nonce"),
            wrapped_address_key=_unb64(record, "wrapped_address_key"),
            created=_text(record, "created"),
        )
