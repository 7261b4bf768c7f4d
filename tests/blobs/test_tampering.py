"""Tampering with the disk is detected on read with a clear error, and no unauthenticated byte is handed out."""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esante.blobs import BlobError, BlobIntegrityError, BlobStore, VerifyStatus
from esante.blobs.cipher import BlobCipher, seal, unseal
from esante.blobs.format import HEADER_SIZE, KeyRecord, Manifest
from esante.blobs.store import _manifest_aad, _wrap_aad
from tests.blobs.conftest import SMALL_SEGMENT, blob_path

SEALED = SMALL_SEGMENT + 16  # bytes of a full segment on disk


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def _data(store: BlobStore, address: str) -> Path:
    return blob_path(store, address) / "data"


def _expect_damage(store: BlobStore, address: str, reason: str) -> None:
    with pytest.raises(BlobIntegrityError, match=reason):
        store.read_bytes(address)
    result = store.verify(address)
    assert result.status is VerifyStatus.DAMAGED, result


@pytest.fixture
def blob(small_store: BlobStore) -> tuple[str, bytes]:
    data = os.urandom(10 * SMALL_SEGMENT + 123)  # 11 segments
    return small_store.put(data).address, data


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (3, "header is damaged"),  # magic
        (10, "does not match its manifest"),  # segment size
        (14, "segment 0 of 11 does not authenticate"),  # nonce prefix: every segment fails
        (HEADER_SIZE + 5, "segment 0 of 11"),
        (HEADER_SIZE + 5 * SEALED + 100, "segment 5 of 11"),
        (HEADER_SIZE + 10 * SEALED + 2, "segment 10 of 11"),
        (-1, "segment 10 of 11"),  # the last tag
    ],
    ids=["magic", "segment-size", "nonce-prefix", "first", "middle", "last", "last-tag"],
)
def test_a_flipped_bit_anywhere_is_detected(
    small_store: BlobStore, blob: tuple[str, bytes], offset: int, reason: str
) -> None:
    address, _ = blob
    path = _data(small_store, address)
    _flip(path, offset if offset >= 0 else path.stat().st_size + offset)
    _expect_damage(small_store, address, reason)


def test_streaming_stops_before_the_first_altered_segment(small_store: BlobStore, blob: tuple[str, bytes]) -> None:
    address, data = blob
    _flip(_data(small_store, address), HEADER_SIZE + 5 * SEALED + 7)
    received = b""
    with small_store.open(address) as reader, pytest.raises(BlobIntegrityError, match="segment 5 of 11"):
        for piece in reader:
            received += piece
    assert received == data[: 5 * SMALL_SEGMENT]  # the authentic prefix, never a wrong byte


@pytest.mark.parametrize(
    "cut",
    [1, 16, SEALED, 5 * SEALED, 10 * SEALED + 139 - 1],
    ids=["1B", "tag", "segment", "5-segments", "all-but-header"],
)
def test_truncation_is_detected_before_any_byte(small_store: BlobStore, blob: tuple[str, bytes], cut: int) -> None:
    address, _ = blob
    path = _data(small_store, address)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - cut)
    with pytest.raises(BlobIntegrityError, match="truncated or extended"):
        small_store.open(address)
    assert small_store.verify(address).status is VerifyStatus.DAMAGED


def test_an_empty_data_object_is_detected(small_store: BlobStore, blob: tuple[str, bytes]) -> None:
    address, _ = blob
    _data(small_store, address).write_bytes(b"")
    _expect_damage(small_store, address, "header is damaged")


def test_appended_bytes_are_detected(small_store: BlobStore, blob: tuple[str, bytes]) -> None:
    address, _ = blob
    with _data(small_store, address).open("ab") as handle:
        handle.write(b"\0" * 16)
    _expect_damage(small_store, address, "truncated or extended")


def test_reordered_segments_are_detected(small_store: BlobStore, blob: tuple[str, bytes]) -> None:
    address, _ = blob
    path = _data(small_store, address)
    raw = path.read_bytes()
    first, second = raw[HEADER_SIZE : HEADER_SIZE + SEALED], raw[HEADER_SIZE + SEALED : HEADER_SIZE + 2 * SEALED]
    path.write_bytes(raw[:HEADER_SIZE] + second + first + raw[HEADER_SIZE + 2 * SEALED :])
    _expect_damage(small_store, address, "segment 0 of 11")


def test_swapped_data_objects_are_detected(small_store: BlobStore) -> None:
    one = small_store.put(os.urandom(3000)).address
    two = small_store.put(os.urandom(3000)).address  # same length: only the keys tell them apart
    a, b = _data(small_store, one), _data(small_store, two)
    raw_a, raw_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(raw_b)
    b.write_bytes(raw_a)
    _expect_damage(small_store, one, "segment 0 of 1 does not authenticate")
    _expect_damage(small_store, two, "segment 0 of 1 does not authenticate")


def test_swapped_blob_directories_are_detected(small_store: BlobStore) -> None:
    one = small_store.put(b"first document").address
    two = small_store.put(b"other document").address
    path_one, path_two = blob_path(small_store, one), blob_path(small_store, two)
    parking = path_one.with_name("parking")
    path_one.rename(parking)
    path_two.rename(path_one)
    parking.rename(path_two)
    for address in (one, two):
        _expect_damage(small_store, address, "moved from another address")


def test_a_copied_directory_is_detected(small_store: BlobStore) -> None:
    one = small_store.put(b"first document").address
    two = small_store.put(b"other document").address
    shutil.rmtree(blob_path(small_store, two))
    shutil.copytree(blob_path(small_store, one), blob_path(small_store, two))
    _expect_damage(small_store, two, "moved from another address")
    assert small_store.read_bytes(one) == b"first document"


def test_swapped_key_records_are_detected(small_store: BlobStore) -> None:
    one = small_store.put(b"first document").address
    two = small_store.put(b"other document").address
    k1, k2 = blob_path(small_store, one) / "key", blob_path(small_store, two) / "key"
    raw1, raw2 = k1.read_bytes(), k2.read_bytes()
    k1.write_bytes(raw2)
    k2.write_bytes(raw1)
    _expect_damage(small_store, one, "moved from another address")


@pytest.mark.parametrize("field", ["wrapped_key", "wrap_nonce", "manifest", "manifest_nonce"])
def test_an_altered_key_record_is_detected(small_store: BlobStore, blob: tuple[str, bytes], field: str) -> None:
    address, _ = blob
    path = blob_path(small_store, address) / "key"
    record = orjson.loads(path.read_bytes())
    value = bytearray(__import__("base64").b64decode(record[field]))
    value[0] ^= 0x80
    record[field] = __import__("base64").b64encode(bytes(value)).decode()
    path.write_bytes(orjson.dumps(record))
    reason = "manifest does not authenticate" if field.startswith("manifest") else "does not authenticate"
    _expect_damage(small_store, address, reason)


def test_garbage_in_the_key_record_is_detected(small_store: BlobStore, blob: tuple[str, bytes]) -> None:
    address, _ = blob
    (blob_path(small_store, address) / "key").write_bytes(b"{not json")
    _expect_damage(small_store, address, "key record is damaged")


def test_missing_halves_are_reported_as_damage_not_absence(small_store: BlobStore) -> None:
    one = small_store.put(b"one").address
    two = small_store.put(b"two").address
    (blob_path(small_store, one) / "key").unlink()
    (blob_path(small_store, two) / "data").unlink()
    _expect_damage(small_store, one, "key record is missing")
    _expect_damage(small_store, two, "data object is missing")


def _forge_manifest(store: BlobStore, address: str, size: int) -> None:
    """What only a holder of the master key could do: rewrite the (authenticated) manifest with another size."""
    path = blob_path(store, address) / "key"
    record = KeyRecord.decode(path.read_bytes())
    master = store.keys.get(record.kid)
    assert master is not None
    data_key = unseal(master.material, record.wrap_nonce, record.wrapped_key, _wrap_aad(address, record.kid))
    cipher = BlobCipher(data_key)
    manifest = Manifest.decode(
        unseal(cipher.manifest_key, record.manifest_nonce, record.manifest, _manifest_aad(address))
    )
    nonce, sealed = seal(cipher.manifest_key, replace(manifest, size=size).encode(), _manifest_aad(address))
    path.write_bytes(replace(record, manifest_nonce=nonce, manifest=sealed).encode())


def test_the_final_flag_catches_truncation_even_with_a_forged_length(
    small_store: BlobStore, blob: tuple[str, bytes]
) -> None:
    """Defence in depth: with the manifest rewritten to claim 5 segments and the file cut after 5, the 5th
    segment was sealed as "not final" and fails — the STREAM construction alone detects the truncation."""
    address, data = blob
    _forge_manifest(small_store, address, 5 * SMALL_SEGMENT)
    path = _data(small_store, address)
    with path.open("r+b") as handle:
        handle.truncate(HEADER_SIZE + 5 * SEALED)
    received = b""
    with small_store.open(address) as reader, pytest.raises(BlobIntegrityError, match="segment 4 of 5"):
        for piece in reader:
            received += piece
    assert received == data[: 4 * SMALL_SEGMENT]


def test_the_final_flag_catches_extension_even_with_a_forged_length(small_store: BlobStore) -> None:
    data = os.urandom(2 * SMALL_SEGMENT)  # two full segments, the second final
    address = small_store.put(data).address
    _forge_manifest(small_store, address, 3 * SMALL_SEGMENT)
    with _data(small_store, address).open("ab") as handle:  # a third segment copied from the first
        handle.write(_data(small_store, address).read_bytes()[HEADER_SIZE : HEADER_SIZE + SEALED])
    with pytest.raises(BlobIntegrityError, match="segment 1 of 3"):
        small_store.read_bytes(address)


def test_the_address_is_rechecked_by_a_full_verify(small_store: BlobStore) -> None:
    """Even a holder of the master key who re-files content under another address is caught by verify."""
    address = small_store.put(b"filed here").address
    other = "f" * 64
    blob_path(small_store, address).parent.mkdir(parents=True, exist_ok=True)
    target = blob_path(small_store, other)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(blob_path(small_store, address), target)
    record = KeyRecord.decode((target / "key").read_bytes())
    master = small_store.keys.get(record.kid)
    assert master is not None
    data_key = unseal(master.material, record.wrap_nonce, record.wrapped_key, _wrap_aad(address, record.kid))
    cipher = BlobCipher(data_key)
    manifest = unseal(cipher.manifest_key, record.manifest_nonce, record.manifest, _manifest_aad(address))
    wrap_nonce, wrapped = seal(master.material, data_key, _wrap_aad(other, record.kid))
    manifest_nonce, sealed = seal(cipher.manifest_key, manifest, _manifest_aad(other))
    forged = replace(record, wrap_nonce=wrap_nonce, wrapped_key=wrapped, manifest_nonce=manifest_nonce, manifest=sealed)
    (target / "key").write_bytes(forged.encode())
    assert small_store.read_bytes(other) == b"filed here"  # authentic bytes, wrong place
    result = small_store.verify(other)
    assert result.status is VerifyStatus.DAMAGED and "another address" in result.detail
    assert small_store.verify(address).status is VerifyStatus.OK


def test_a_put_heals_a_damaged_copy_of_the_same_bytes(small_store: BlobStore, blob: tuple[str, bytes]) -> None:
    address, data = blob
    _flip(_data(small_store, address), -1)
    small_store.verify(address)  # damaged now
    assert small_store.put(data).address == address
    assert small_store.read_bytes(address) == data
    assert small_store.verify(address).status is VerifyStatus.OK


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["data", "key"]), where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_single_bit_flip_is_an_error_or_the_original_bytes(
    small_store: BlobStore, which: str, where: float, bit: int
) -> None:
    """Whatever bit of either file flips, a read raises or gives exactly the stored bytes — never other bytes.
    (A flip in a base64 character's unused bits or in JSON whitespace can leave the record's meaning intact.)"""
    data = b"".join(i.to_bytes(4, "big") for i in range(3 * SMALL_SEGMENT // 4 + 10))  # 4 segments
    address = small_store.put(data).address
    path = blob_path(small_store, address) / which
    raw = bytearray(path.read_bytes())
    original = bytes(raw)
    raw[int(where * len(raw))] ^= 1 << bit
    path.write_bytes(bytes(raw))
    try:
        with contextlib.suppress(BlobError):
            assert small_store.read_bytes(address) == data
        result = small_store.verify(address)
        assert result.status in (
            VerifyStatus.OK,
            VerifyStatus.DAMAGED,
            VerifyStatus.UNKNOWN_KEY,
            VerifyStatus.WRONG_KEY,
        )
    finally:
        path.write_bytes(original)
