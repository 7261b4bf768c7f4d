"""Destruction (crypto-shredding): the key record and the data object go, nothing is left behind; a blob a put
just relied on is kept when the caller asks for an idle period."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from esante.blobs import BlobNotFound, BlobStore, DeleteOutcome
from tests.blobs.conftest import blob_path, pending_entries, stored_addresses


def test_destroy_removes_everything(store: BlobStore, root: Path) -> None:
    keep = store.put(b"another patient's document").address
    info = store.put(os.urandom(200_000))
    folder = blob_path(store, info.address)
    assert store.delete(info.address) is DeleteOutcome.DELETED
    assert not folder.exists() and not store.exists(info.address)
    assert stored_addresses(root) == [keep] and pending_entries(root) == []
    with pytest.raises(BlobNotFound):
        store.open(info.address)
    with pytest.raises(BlobNotFound):
        store.stat(info.address)
    assert store.delete(info.address) is DeleteOutcome.ABSENT
    assert store.delete("not an address") is DeleteOutcome.ABSENT
    assert store.read_bytes(keep) == b"another patient's document"


def test_the_same_bytes_can_be_stored_again_after_destruction(store: BlobStore) -> None:
    first = store.put(b"re-filed later")
    store.delete(first.address)
    again = store.put(b"re-filed later")
    assert again == first and store.read_bytes(again.address) == b"re-filed later"


def test_a_blob_a_put_just_used_is_kept_for_the_idle_period(store: BlobStore) -> None:
    info = store.put(b"filed for two documents")
    data = blob_path(store, info.address) / "data"
    old = time.time() - 7200
    os.utime(data, (old, old))
    assert store.delete(info.address, min_idle=3600) is DeleteOutcome.DELETED
    info = store.put(b"filed for two documents")
    os.utime(blob_path(store, info.address) / "data", (old, old))
    store.put(b"filed for two documents")  # dedup hit: a new document is about to point at it
    assert store.delete(info.address, min_idle=3600) is DeleteOutcome.RECENTLY_USED
    assert store.read_bytes(info.address) == b"filed for two documents"


def test_a_damaged_blob_can_still_be_destroyed(store: BlobStore, root: Path) -> None:
    info = store.put(b"x" * 1000)
    (blob_path(store, info.address) / "key").write_bytes(b"garbage")
    assert store.delete(info.address) is DeleteOutcome.DELETED
    assert stored_addresses(root) == [] and pending_entries(root) == []


def test_an_interrupted_destruction_is_finished_by_the_cleanup(store: BlobStore, root: Path) -> None:
    info = store.put(b"destruction interrupted by a crash")
    doomed = root / "tmp" / "del-0123456789abcdef"
    blob_path(store, info.address).rename(doomed)  # the crash came after the rename, before the shredding
    old = time.time() - 120
    os.utime(doomed, (old, old))
    os.utime(doomed / "data", (old, old))
    assert store.backend.stale_pending(86400) == ["del-0123456789abcdef"]
    assert store.backend.remove_stale_pending(86400) == 1
    assert pending_entries(root) == [] and not store.exists(info.address)


def test_a_put_says_whether_it_created_the_blob(store: BlobStore) -> None:
    first = store.put(b"new bytes")
    again = store.put(b"new bytes")
    assert first.created and not again.created
    assert again.use_stamp > first.use_stamp > 0
    assert first == again  # the flags do not take part in equality


def test_undoing_a_failed_submission_keeps_a_blob_another_put_relied_on(store: BlobStore) -> None:
    """Submission A creates the blob then fails; submission B put the same bytes meanwhile (not committed yet):
    A's undo must not destroy what B is about to point at."""
    a = store.put(b"the same scanned letter")
    b = store.put(b"the same scanned letter")
    assert a.created and not b.created
    assert store.delete(a.address, last_use=a.use_stamp) is DeleteOutcome.RECENTLY_USED
    assert store.read_bytes(a.address) == b"the same scanned letter"
    # B fails too: its own stamp is still the last one, the blob goes
    assert store.delete(b.address, last_use=b.use_stamp) is DeleteOutcome.DELETED


def test_undoing_the_only_put_deletes_at_once(store: BlobStore) -> None:
    a = store.put(b"filed by a submission that then failed")
    assert store.delete(a.address, last_use=a.use_stamp) is DeleteOutcome.DELETED
    assert not store.exists(a.address)


def test_use_stamps_differ_within_one_clock_tick(store: BlobStore) -> None:
    stamps = [store.put(b"hot document").use_stamp for _ in range(20)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 20
