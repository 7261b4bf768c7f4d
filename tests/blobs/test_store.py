"""Put and read: round trips at the segment boundaries, one-pass hashes, dedup, declared size/hash, limits."""

from __future__ import annotations

import hashlib
import itertools
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esante.blobs import BlobMismatchError, BlobNotFound, BlobStore, BlobTooLargeError, MasterKey
from esante.blobs.cipher import address_of
from esante.blobs.format import HEADER_SIZE
from tests.blobs.conftest import SMALL_SEGMENT, blob_path, new_key, open_store, pending_entries, stored_addresses

SEGMENT = 64 * 1024


@pytest.mark.parametrize(
    "size",
    [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17, 3 * 1024 * 1024 + 5],
    ids=lambda n: f"{n}B",
)
def test_round_trip_at_segment_boundaries(store: BlobStore, size: int) -> None:
    data = os.urandom(size)
    info = store.put(data)
    assert info.size == size
    assert info.sha1 == hashlib.sha1(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read_bytes(info.address) == data
    assert store.stat(info.address) == info
    segments = max(1, -(-size // SEGMENT))
    assert (blob_path(store, info.address) / "data").stat().st_size == HEADER_SIZE + size + 16 * segments


def test_many_segments_read_one_by_one(small_store: BlobStore) -> None:
    data = os.urandom(10 * SMALL_SEGMENT + 100)
    info = small_store.put(data)
    with small_store.open(info.address) as reader:
        pieces = list(reader)
    assert [len(p) for p in pieces] == [SMALL_SEGMENT] * 10 + [100]
    assert b"".join(pieces) == data


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=3 * SMALL_SEGMENT + 50), cuts=st.lists(st.integers(0, 3 * SMALL_SEGMENT + 50)))
def test_any_chunking_gives_the_same_blob(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cuts: list[int]
) -> None:
    store = open_store(tmp_path_factory.mktemp("chunks"), new_key("k1"), segment_size=SMALL_SEGMENT)
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    whole = store.put(data)
    chunked = store.put(iter(chunks))
    assert chunked == whole
    assert store.read_bytes(whole.address) == data


def test_sha1_in_the_fhir_form(store: BlobStore) -> None:
    info = store.put(b"%PDF-1.7 report")
    import base64

    assert base64.b64decode(info.sha1_base64) == hashlib.sha1(b"%PDF-1.7 report").digest()


def test_the_same_bytes_are_stored_once(store: BlobStore, root: Path) -> None:
    first = store.put(b"discharge letter")
    again = store.put([b"discharge ", b"letter"])
    other = store.put(b"discharge letter.")
    assert first == again and other.address != first.address
    assert stored_addresses(root) == sorted([first.address, other.address])
    assert pending_entries(root) == []


def test_the_address_does_not_reveal_the_plaintext_hash(store: BlobStore, root: Path, key1: MasterKey) -> None:
    data = b"a document a third party might hash to look for"
    info = store.put(data)
    assert info.address != hashlib.sha256(data).hexdigest()
    assert info.address == address_of(store.address_key(), hashlib.sha256(data).digest())
    another_store = open_store(root.parent / "elsewhere", key1)
    assert another_store.put(data).address != info.address  # its own addressing key


def test_nothing_in_the_store_shows_the_plaintext(store: BlobStore, root: Path) -> None:
    marker = b"MATRICULE-1974091186700-" * 200
    store.put(marker)
    for path in root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"MATRICULE" not in content and hashlib.sha256(marker).hexdigest().encode() not in content


def test_declared_size_and_hash_are_checked_before_anything_is_stored(store: BlobStore, root: Path) -> None:
    data = b"laboratory results"
    with pytest.raises(BlobMismatchError, match="size declared 5"):
        store.put(data, expected_size=5)
    with pytest.raises(BlobMismatchError, match="SHA-1") as caught:
        store.put(data, expected_sha1=hashlib.sha1(b"other").hexdigest())
    assert caught.value.actual == hashlib.sha1(data).hexdigest()
    assert stored_addresses(root) == [] and pending_entries(root) == []
    import base64

    info = store.put(
        data, expected_size=len(data), expected_sha1=base64.b64encode(hashlib.sha1(data).digest()).decode()
    )
    assert info.size == len(data)
    with pytest.raises(BlobMismatchError):
        store.put(data, expected_sha1="not a hash")


def test_a_mismatch_does_not_touch_an_existing_copy(store: BlobStore, root: Path) -> None:
    info = store.put(b"shared bytes")
    data_file = blob_path(store, info.address) / "data"
    os.utime(data_file, (1_000_000, 1_000_000))
    with pytest.raises(BlobMismatchError):
        store.put(b"shared bytes", expected_size=1)
    assert data_file.stat().st_mtime == 1_000_000


def test_a_stream_over_the_limit_is_refused_and_nothing_stays(store: BlobStore, root: Path) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    with pytest.raises(BlobTooLargeError, match="5000"):
        store.put(chunks(), max_bytes=5000)
    assert stored_addresses(root) == [] and pending_entries(root) == []
    assert store.put(chunks(), max_bytes=10_000).size == 10_000


def test_unknown_and_malformed_addresses(store: BlobStore) -> None:
    for address in ("0" * 64, "../../etc/passwd", "ABC"):
        assert not store.exists(address)
        with pytest.raises(BlobNotFound):
            store.open(address)
        with pytest.raises(BlobNotFound):
            store.stat(address)


def test_memory_stays_bounded_by_the_segment_not_the_blob(store: BlobStore) -> None:
    chunk = os.urandom(64 * 1024)
    total = 24 * 1024 * 1024

    def stream() -> Iterator[bytes]:
        for _ in range(total // len(chunk)):
            yield chunk

    tracemalloc.start()
    try:
        info = store.put(stream())
        _, peak_put = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = 0
        with store.open(info.address) as reader:
            for piece in reader:
                read += len(piece)
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == total
    assert peak_put < 2 * 1024 * 1024, peak_put  # a 24 MB blob: a few segments in memory at most
    assert peak_read < 2 * 1024 * 1024, peak_read


def test_files_are_private(store: BlobStore, root: Path) -> None:
    info = store.put(b"x")
    folder = blob_path(store, info.address)
    assert (folder / "data").stat().st_mode & 0o077 == 0
    assert (folder / "key").stat().st_mode & 0o077 == 0
    assert folder.stat().st_mode & 0o077 == 0
    assert (root / "store.json").stat().st_mode & 0o077 == 0
