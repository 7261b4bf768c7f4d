"""The blob store: content-addressed, envelope-encrypted document binaries (synchronous core).

The ASGI app uses :class:`esante.blobs.aio.AsyncBlobStore`, which runs these methods in worker threads; the
CLI and the benchmarks call them directly. Decisions and formats: docs/blob-store.md.

Key hierarchy::

    master key (configuration, kid)  ──wraps──▶  data key (random, one per blob)  ──HKDF──▶  segment key, manifest key
    master key                       ──wraps──▶  addressing key (one per store, in store.json)

A blob's address is ``HMAC-SHA256(addressing key, SHA-256(plaintext))``: the same bytes always land at the same
address (stored once), yet the address says nothing to someone who reads the disk without the keys.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import BinaryIO

import structlog

from esante.blobs.backend import BlobBackend, DeleteOutcome, PendingBlob
from esante.blobs.cipher import KEY_SIZE, BlobCipher, InvalidTag, SegmentCipher, address_of, seal, unseal
from esante.blobs.errors import (
    BlobConfigError,
    BlobError,
    BlobIntegrityError,
    BlobKeyError,
    BlobMismatchError,
    BlobNotFound,
    BlobTooLargeError,
)
from esante.blobs.format import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_SIZE,
    TAG_SIZE,
    FormatError,
    Header,
    KeyRecord,
    Manifest,
    StoreRecord,
    check_segment_size,
    data_object_size,
    is_address,
    segment_count,
)
from esante.blobs.master_keys import MasterKey, MasterKeyRing
from esante.config import Settings

log = structlog.get_logger(__name__)

READ_BATCH_SEGMENTS = 16  # segments decrypted per read call (1 MiB at the default segment size)


@dataclass(frozen=True)
class BlobInfo:
    """What a caller needs of a stored blob: where it is and what its bytes are (hashes in hexadecimal).

    A put also says whether it ``created`` the blob (False: the bytes were already stored, or it replaced a
    damaged copy other documents may point at) and gives its ``use_stamp``: a failed submission that created a
    blob undoes it race-free with ``delete(address, last_use=info.use_stamp)``, which keeps the blob if any other
    put relied on it since. Neither takes part in equality (two puts of the same bytes give equal infos).
    """

    address: str
    size: int
    sha1: str
    sha256: str
    created: bool = field(default=False, compare=False)
    use_stamp: int = field(default=0, compare=False)

    @property
    def sha1_base64(self) -> str:
        """The SHA-1 as FHIR ``Attachment.hash`` carries it (base64Binary), for the MHD check."""
        return base64.b64encode(bytes.fromhex(self.sha1)).decode("ascii")


class RotateOutcome(enum.Enum):
    ROTATED = "rotated"  # re-wrapped with the active master key
    CURRENT = "current"  # already wrapped by the active key: nothing to do
    UNKNOWN_KEY = "unknown-key"  # wrapped by a key id that is not configured: left untouched, reported
    WRONG_KEY = "wrong-key"  # the configured key of that id is not the one that wrapped it: left untouched
    DAMAGED = "damaged"  # the key record does not authenticate: left untouched, reported
    GONE = "gone"  # destroyed while the rotation ran


class VerifyStatus(enum.Enum):
    OK = "ok"
    UNKNOWN_KEY = "unknown-key"
    WRONG_KEY = "wrong-key"
    DAMAGED = "damaged"
    GONE = "gone"


@dataclass(frozen=True)
class VerifyResult:
    address: str
    status: VerifyStatus
    detail: str = ""
    kid: str = ""


def _wrap_aad(address: str, kid: str) -> bytes:
    return b"esante-blob data key\x00" + address.encode() + b"\x00" + kid.encode()


def _manifest_aad(address: str) -> bytes:
    return b"esante-blob manifest\x00" + address.encode()


def _store_aad(kid: str) -> bytes:
    return b"esante-blob addressing key\x00" + kid.encode()


class BlobStore:
    """Put, read, check, rotate and destroy blobs on a :class:`BlobBackend` with a :class:`MasterKeyRing`.

    Thread-safe: the ASGI app calls it from several worker threads at once.
    """

    def __init__(self, backend: BlobBackend, keys: MasterKeyRing, *, segment_size: int = DEFAULT_SEGMENT_SIZE) -> None:
        self.backend = backend
        self.keys = keys
        self.segment_size = check_segment_size(segment_size)
        self._address_key: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        """The platform's store: local disk under ``blob_dir``, master keys from the configuration."""
        from esante.blobs.local import LocalDiskBackend

        try:
            segment_size = check_segment_size(settings.blob_segment_size)
        except ValueError as error:
            raise BlobConfigError(f"blob_segment_size: {error}") from error
        keys = MasterKeyRing.from_settings(settings)
        return cls(LocalDiskBackend(settings.effective_blob_dir), keys, segment_size=segment_size)

    # --- the addressing key ---------------------------------------------------------------------------------------

    def address_key(self) -> bytes:
        """The store's addressing key, created with the store (first put) and wrapped like a data key."""
        if self._address_key is not None:
            return self._address_key
        with self._lock:
            if self._address_key is None:
                raw = self.backend.read_meta()
                if raw is None:
                    if not self.backend.is_empty():
                        raise BlobConfigError(
                            "the store record (store.json) is missing but blobs are stored: restore it from a "
                            "backup (a new addressing key would store every known document a second time)"
                        )
                    raw = self.backend.create_meta(self._new_store_record().encode())
                self._address_key = self._open_store_record(raw)
        return self._address_key

    def _new_store_record(self) -> StoreRecord:
        active = self.keys.active
        nonce, wrapped = seal(active.material, os.urandom(KEY_SIZE), _store_aad(active.kid))
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return StoreRecord(active.kid, active.kcv, nonce, wrapped, created)

    def _open_store_record(self, raw: bytes) -> bytes:
        try:
            record = StoreRecord.decode(raw)
        except FormatError as error:
            raise BlobConfigError(f"the store record (store.json) is damaged: {error}") from error
        master = self._master_for("store.json", record.kid, record.kcv)
        try:
            return unseal(master.material, record.nonce, record.wrapped_address_key, _store_aad(record.kid))
        except InvalidTag as error:
            raise BlobConfigError("the store record (store.json) does not authenticate: it was altered") from error

    def _master_for(self, address: str, kid: str, kcv: str) -> MasterKey:
        master = self.keys.get(kid)
        if master is None:
            raise BlobKeyError(address, kid, f"wrapped by master key {kid!r}, which is not configured")
        if master.kcv != kcv:
            raise BlobKeyError(
                address, kid, f"the configured master key {kid!r} is not the key that wrapped it (key check value)"
            )
        return master

    # --- writing --------------------------------------------------------------------------------------------------

    def writer(self, *, max_bytes: int | None = None) -> BlobWriter:
        """A streaming writer: ``write()`` chunks, then ``finish()`` → :class:`BlobInfo` (or ``abort()``)."""
        return BlobWriter(self, self.backend.begin(), max_bytes)

    def put(
        self,
        chunks: Iterable[bytes] | bytes,
        *,
        max_bytes: int | None = None,
        expected_size: int | None = None,
        expected_sha1: str | None = None,
    ) -> BlobInfo:
        """Store a stream of bytes; the same bytes are stored once. See :meth:`BlobWriter.finish` for checks."""
        if isinstance(chunks, bytes | bytearray | memoryview):
            chunks = [bytes(chunks)]
        writer = self.writer(max_bytes=max_bytes)
        with writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.finish(expected_size=expected_size, expected_sha1=expected_sha1)

    # --- reading --------------------------------------------------------------------------------------------------

    def exists(self, address: str) -> bool:
        return is_address(address) and self.backend.exists(address)

    def _check_address(self, address: str) -> None:
        if not is_address(address):
            raise BlobNotFound(address)

    def _key_record(self, address: str) -> tuple[bytes, KeyRecord]:
        self._check_address(address)
        raw = self.backend.read_key(address)
        return raw, self._decode_record(address, raw)

    @staticmethod
    def _decode_record(address: str, raw: bytes) -> KeyRecord:
        try:
            return KeyRecord.decode(raw)
        except FormatError as error:
            raise BlobIntegrityError(address, f"its key record is damaged ({error})") from error

    def _data_key(self, address: str, record: KeyRecord) -> bytes:
        master = self._master_for(address, record.kid, record.kcv)
        try:
            return unseal(master.material, record.wrap_nonce, record.wrapped_key, _wrap_aad(address, record.kid))
        except InvalidTag as error:
            raise BlobIntegrityError(
                address, "its key record does not authenticate (altered, or moved from another address)"
            ) from error

    def _open_manifest(self, address: str, record: KeyRecord, cipher: BlobCipher) -> Manifest:
        try:
            raw = unseal(cipher.manifest_key, record.manifest_nonce, record.manifest, _manifest_aad(address))
            return Manifest.decode(raw)
        except (InvalidTag, FormatError) as error:
            raise BlobIntegrityError(address, "its manifest does not authenticate") from error

    def _unlock(self, address: str, record: KeyRecord) -> tuple[BlobCipher, Manifest]:
        cipher = BlobCipher(self._data_key(address, record))
        return cipher, self._open_manifest(address, record, cipher)

    def stat(self, address: str) -> BlobInfo:
        """Size and hashes of a stored blob, from its encrypted manifest (the data object is not read)."""
        _, manifest = self._unlock(address, self._key_record(address)[1])
        return BlobInfo(address, manifest.size, manifest.sha1.hex(), manifest.sha256.hex())

    def open(self, address: str, *, check_digests: bool = False) -> BlobReader:
        """A reader of the plaintext. Everything that can be checked before streaming is checked here (key record,
        manifest, header, exact length of the data object), so a caller can still answer with an error status;
        each segment is authenticated before its bytes are handed out."""
        self._check_address(address)
        raw, data = self.backend.open_blob(address)
        try:
            cipher, manifest = self._unlock(address, self._decode_record(address, raw))
            try:
                header = Header.decode(data.read(HEADER_SIZE))
            except FormatError as error:
                raise BlobIntegrityError(address, f"its data object header is damaged ({error})") from error
            if header.segment_size != manifest.segment_size:
                raise BlobIntegrityError(address, "its data object header does not match its manifest")
            expected = data_object_size(manifest.size, header.segment_size)
            actual = data.seek(0, io.SEEK_END)
            if actual != expected:
                raise BlobIntegrityError(
                    address, f"its data object is {actual} bytes, {expected} expected (truncated or extended)"
                )
            data.seek(HEADER_SIZE)
        except BaseException:
            data.close()
            raise
        info = BlobInfo(address, manifest.size, manifest.sha1.hex(), manifest.sha256.hex())
        return BlobReader(info, data, cipher.segments(header), manifest, check_digests)

    def read_bytes(self, address: str) -> bytes:
        """The whole plaintext in memory (small blobs and tests; stream large ones with :meth:`open`)."""
        with self.open(address) as reader:
            return b"".join(reader)

    # --- destruction ----------------------------------------------------------------------------------------------

    def delete(self, address: str, *, min_idle: float = 0.0, last_use: int | None = None) -> DeleteOutcome:
        """Destroy a blob (crypto-shredding: its wrapped data key, then its data object).

        The store does not count references: the caller (the DSP) deletes a blob only when no document refers to
        its address any more. Two guards close the race with a put of the same bytes for a document that is not
        committed yet (:attr:`DeleteOutcome.RECENTLY_USED` when they keep it):

        - ``min_idle`` (destruction after retention): keep a blob a put relied on less than this many seconds ago;
        - ``last_use`` (undoing a failed submission): keep it unless its use stamp is still the one the caller's
          own put returned (``BlobInfo.use_stamp``) — i.e. no other put relied on it since.
        """
        if not is_address(address):
            return DeleteOutcome.ABSENT
        return self.backend.delete(address, min_idle, last_use)

    # --- maintenance ----------------------------------------------------------------------------------------------

    def rotate(self, address: str) -> tuple[RotateOutcome, str]:
        """Re-wrap this blob's data key with the active master key (the data object is not touched)."""
        active = self.keys.active
        for _ in range(3):
            try:
                raw, record = self._key_record(address)
                if record.kid == active.kid and record.kcv == active.kcv:
                    return RotateOutcome.CURRENT, ""
                data_key = self._data_key(address, record)
            except BlobNotFound:
                return RotateOutcome.GONE, ""
            except BlobKeyError as error:
                unknown = self.keys.get(error.kid) is None
                return (RotateOutcome.UNKNOWN_KEY if unknown else RotateOutcome.WRONG_KEY), error.reason
            except BlobIntegrityError as error:
                return RotateOutcome.DAMAGED, error.reason
            nonce, wrapped = seal(active.material, data_key, _wrap_aad(address, active.kid))
            rotated = replace(record, kid=active.kid, kcv=active.kcv, wrap_nonce=nonce, wrapped_key=wrapped)
            if self.backend.replace_key(address, raw, rotated.encode()):
                return RotateOutcome.ROTATED, ""
            # changed under us (a concurrent rotation, a heal, a destruction): look again
        return RotateOutcome.DAMAGED, "its key record kept changing during the rotation"

    def rotate_store_record(self) -> tuple[RotateOutcome, str]:
        """Re-wrap the addressing key with the active master key (part of every rotation)."""
        raw = self.backend.read_meta()
        if raw is None:
            return RotateOutcome.GONE, "no store record yet (nothing stored)"
        try:
            record = StoreRecord.decode(raw)
        except FormatError as error:
            return RotateOutcome.DAMAGED, str(error)
        active = self.keys.active
        if record.kid == active.kid and record.kcv == active.kcv:
            return RotateOutcome.CURRENT, ""
        try:
            address_key = self._open_store_record(raw)
        except BlobKeyError as error:
            unknown = self.keys.get(error.kid) is None
            return (RotateOutcome.UNKNOWN_KEY if unknown else RotateOutcome.WRONG_KEY), error.reason
        except BlobConfigError as error:
            return RotateOutcome.DAMAGED, str(error)
        nonce, wrapped = seal(active.material, address_key, _store_aad(active.kid))
        rotated = replace(record, kid=active.kid, kcv=active.kcv, nonce=nonce, wrapped_address_key=wrapped)
        if self.backend.replace_meta(raw, rotated.encode()):
            return RotateOutcome.ROTATED, ""
        return self.rotate_store_record()

    def verify(self, address: str, *, full: bool = True) -> VerifyResult:
        """Check one blob. Quick: key record, manifest, header and length. Full: also decrypt every segment and
        recompute size, SHA-1, SHA-256 and the address itself (which proves the blob sits where it belongs)."""
        kid = ""
        try:
            _, record = self._key_record(address)
            kid = record.kid
            with self.open(address, check_digests=full) as reader:
                if full:
                    for _ in reader:
                        pass
            if full:
                try:
                    address_key = self.address_key()
                except BlobError as error:
                    return VerifyResult(
                        address, VerifyStatus.OK, f"content intact; address not rechecked: {error}", kid
                    )
                if address_of(address_key, bytes.fromhex(reader.info.sha256)) != address:
                    raise BlobIntegrityError(address, "its content belongs at another address")
        except BlobNotFound:
            return VerifyResult(address, VerifyStatus.GONE, "destroyed while verifying", kid)
        except BlobKeyError as error:
            status = VerifyStatus.UNKNOWN_KEY if self.keys.get(error.kid) is None else VerifyStatus.WRONG_KEY
            return VerifyResult(address, status, error.reason, kid)
        except BlobIntegrityError as error:
            return VerifyResult(address, VerifyStatus.DAMAGED, error.reason, kid)
        return VerifyResult(address, VerifyStatus.OK, "", kid)

    def key_id_of(self, address: str) -> str:
        """The id of the master key wrapping this blob (for reports)."""
        return self._key_record(address)[1].kid


class BlobWriter:
    """One put in progress: hashes (SHA-1, SHA-256), size and encryption in a single pass over the bytes.

    Memory stays bounded by one segment plus the chunk being written, whatever the blob's size.
    """

    def __init__(self, store: BlobStore, pending: PendingBlob, max_bytes: int | None) -> None:
        self.store = store
        self._pending = pending
        self._max_bytes = max_bytes
        self._data_key = os.urandom(KEY_SIZE)
        self._cipher = BlobCipher(self._data_key)
        self._segments = self._cipher.segments(SegmentCipher.new_header(store.segment_size))
        self._segment_size = store.segment_size
        self._buffer = bytearray()  # at most one segment: the possibly-final one
        self._index = 0
        self._size = 0
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self._closed = False
        pending.write(self._segments.header.encode())

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise RuntimeError("write after finish or abort")
        if not data:
            return
        length = len(data)
        if self._max_bytes is not None and self._size + length > self._max_bytes:
            self.abort()
            raise BlobTooLargeError(self._max_bytes)
        self._size += length
        self._sha1.update(data)
        self._sha256.update(data)
        view = memoryview(data)
        size = self._segment_size
        out: list[bytes] = []
        if self._buffer:
            take = view[: size - len(self._buffer)]
            self._buffer += take
            view = view[len(take) :]
            if not view:
                return  # the buffer may hold the final segment: keep it until more data or finish()
            out.append(self._seal(self._buffer, final=False))
            self._buffer = bytearray()
        while len(view) > size:  # strictly: the last full segment may be the final one
            out.append(self._seal(view[:size], final=False))
            view = view[size:]
        self._buffer = bytearray(view)
        for sealed in out:  # segment by segment: joining them would allocate (and page-fault) a fresh block
            self._pending.write(sealed)

    def write_many(self, chunks: Iterable[bytes]) -> None:
        """Several chunks in one call (one thread hop from the async front for up to a megabyte of them)."""
        for chunk in chunks:
            self.write(chunk)

    def _seal(self, plaintext: bytes | bytearray | memoryview, final: bool) -> bytes:
        sealed = self._segments.seal(self._index, final, plaintext)
        self._index += 1
        return sealed

    def finish(self, *, expected_size: int | None = None, expected_sha1: str | None = None) -> BlobInfo:
        """Check the declared size/SHA-1 (hex or base64), commit, and describe the blob.

        A mismatch raises :class:`BlobMismatchError` and stores nothing. When the same bytes are already
        stored, the existing blob is kept (and marked as just used) and this copy is discarded — unless the
        existing one is damaged, in which case this copy replaces it.
        """
        if self._closed:
            raise RuntimeError("finish after finish or abort")
        try:
            self._pending.write(self._seal(self._buffer, final=True))
            self._buffer = bytearray()
            sha1, sha256 = self._sha1.digest(), self._sha256.digest()
            if expected_size is not None and expected_size != self._size:
                raise BlobMismatchError("size", str(expected_size), str(self._size))
            if expected_sha1 is not None and _digest_of(expected_sha1) != sha1:
                raise BlobMismatchError("SHA-1", expected_sha1, sha1.hex())
            address = address_of(self.store.address_key(), sha256)
            info = BlobInfo(address, self._size, sha1.hex(), sha256.hex())
            record = self._record(address, Manifest(self._size, sha1, sha256, self._segment_size, int(time.time())))
            return self._commit(info, record)
        except BaseException:
            self.abort()
            raise
        finally:
            self._closed = True

    def _record(self, address: str, manifest: Manifest) -> bytes:
        active = self.store.keys.active
        wrap_nonce, wrapped = seal(active.material, self._data_key, _wrap_aad(address, active.kid))
        manifest_nonce, sealed = seal(self._cipher.manifest_key, manifest.encode(), _manifest_aad(address))
        return KeyRecord(active.kid, active.kcv, wrap_nonce, wrapped, manifest_nonce, sealed).encode()

    def _commit(self, info: BlobInfo, record: bytes) -> BlobInfo:
        store, address = self.store, info.address
        for _ in range(5):
            if self._pending.commit(address, record):
                return replace(info, created=True, use_stamp=self._pending.stamp)
            state = _existing_state(store, info)
            if state == "sound":
                stamp = store.backend.touch(address)
                if stamp is not None:
                    self._pending.abort()
                    return replace(info, created=False, use_stamp=stamp)
                continue  # destroyed between the two steps: store ours
            if state == "damaged":
                # committed documents may point at this address: not "created" (a failed submission keeps it)
                self._pending.commit(address, record, replace=True)
                log.warning("blob_healed", address=address)
                return replace(info, created=False, use_stamp=self._pending.stamp)
        raise BlobError(f"blob {address}: could not be stored (kept changing under concurrent writers)")

    def abort(self) -> None:
        """Discard this put (idempotent; a no-op after a successful :meth:`finish`)."""
        self._pending.abort()
        self._closed = True


def _existing_state(store: BlobStore, info: BlobInfo) -> str:
    """sound | damaged | gone: may a put of these bytes rely on the blob already at their address?

    Every segment of the existing copy is authenticated (AES-GCM only, no hashing: ~5 GB/s) before a document is
    allowed to point at it — a dedup hit never relies on bytes nobody has checked since they were written.
    """
    try:
        with store.open(info.address) as reader:
            for _ in reader:
                pass
            existing = reader.info
    except BlobNotFound:
        return "gone"
    except BlobError:
        return "damaged"
    return "sound" if existing == info else "damaged"


def _digest_of(text: str) -> bytes:
    """A SHA-1 given as 40 hex digits or as base64 (FHIR ``Attachment.hash``)."""
    cleaned = text.strip()
    if len(cleaned) == 40:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(cleaned)
    try:
        return base64.b64decode(cleaned, validate=True)
    except ValueError:
        return b""


class BlobReader:
    """The authenticated plaintext of one blob, segment by segment (iterate, or :meth:`read_segments`)."""

    def __init__(
        self, info: BlobInfo, data: BinaryIO, segments: SegmentCipher, manifest: Manifest, check_digests: bool
    ) -> None:
        self.info = info
        self._data = data
        self._segments = segments
        self._count = segment_count(manifest.size, manifest.segment_size)
        self._last_size = manifest.size - manifest.segment_size * (self._count - 1)
        self._manifest = manifest
        self._index = 0
        self._digests = (hashlib.sha1(usedforsecurity=False), hashlib.sha256()) if check_digests else None

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._data.close()

    def __iter__(self) -> Iterator[bytes]:
        while (segment := self._next()) is not None:
            yield segment

    def read_segments(self, segments: int = READ_BATCH_SEGMENTS) -> list[bytes]:
        """Up to ``segments`` decrypted segments (not joined: a fresh megabyte per call costs more than the AES);
        ``[]`` at the end. An empty blob gives no segment (its one empty segment is still authenticated)."""
        parts = []
        for _ in range(segments):
            segment = self._next()
            if segment is None:
                break
            if segment:
                parts.append(segment)
        return parts

    def _next(self) -> bytes | None:
        if self._index >= self._count:
            return None
        index = self._index
        final = index == self._count - 1
        expected = (self._last_size if final else self._manifest.segment_size) + TAG_SIZE
        sealed = self._data.read(expected)
        address = self.info.address
        if len(sealed) != expected:
            raise BlobIntegrityError(address, f"its data object ends inside segment {index} (truncated)")
        try:
            plaintext = self._segments.open(index, final, sealed)
        except InvalidTag as error:
            raise BlobIntegrityError(
                address, f"segment {index} of {self._count} does not authenticate (altered, reordered or foreign)"
            ) from error
        self._index += 1
        if final:
            if self._data.read(1):
                raise BlobIntegrityError(address, "bytes follow its final segment")
            if self._digests is not None:
                self._digests[0].update(plaintext)
                self._digests[1].update(plaintext)
                sha1, sha256 = self._digests[0].digest(), self._digests[1].digest()
                if sha1 != self._manifest.sha1 or sha256 != self._manifest.sha256:
                    raise BlobIntegrityError(address, "its content does not match its recorded hashes")
        elif self._digests is not None:
            self._digests[0].update(plaintext)
            self._digests[1].update(plaintext)
        return plaintext
