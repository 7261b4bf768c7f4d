"""Key rotation: every data key re-wrapped with the active master key, the data objects untouched; resumable,
idempotent; the old key can then be removed; blobs under an unknown key are reported, never destroyed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from esante.blobs import BlobStore, MasterKey, RotateOutcome, VerifyStatus
from esante.blobs.format import KeyRecord, StoreRecord
from esante.blobs.maintenance import census, rotate_all, verify_all
from tests.blobs.conftest import blob_path, new_key, open_store


def _fill(store: BlobStore, count: int) -> dict[str, bytes]:
    blobs = {}
    for i in range(count):
        data = os.urandom(1000 + i * 37)
        blobs[store.put(data).address] = data
    return blobs


def _kid(store: BlobStore, address: str) -> str:
    return KeyRecord.decode((blob_path(store, address) / "key").read_bytes()).kid


def test_rotation_rewraps_keys_and_leaves_the_data_alone(root: Path, key1: MasterKey) -> None:
    blobs = _fill(open_store(root, key1), 12)
    data_before = {a: (blob_path(open_store(root, key1), a) / "data").stat() for a in blobs}
    key2 = new_key("k2")
    both = open_store(root, key1, key2, active="k2")
    progress: list[int] = []
    report = rotate_all(both, workers=3, progress=progress.append)
    assert report.counts[RotateOutcome.ROTATED] == 12 and report.complete and report.problems == []
    assert report.store_record[0] is RotateOutcome.ROTATED
    assert progress[-1] == 12
    for address in blobs:
        assert _kid(both, address) == "k2"
        after = (blob_path(both, address) / "data").stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
            data_before[address].st_ino,
            data_before[address].st_mtime_ns,
            data_before[address].st_size,
        )
    assert StoreRecord.decode((root / "store.json").read_bytes()).kid == "k2"

    # the old key retired: everything still reads, dedup still finds the same addresses
    only_new = open_store(root, key2)
    for address, data in blobs.items():
        assert only_new.read_bytes(address) == data
    some_address, some_data = next(iter(blobs.items()))
    assert only_new.put(some_data).address == some_address
    assert verify_all(only_new).ok


def test_rotation_is_idempotent_and_resumable(root: Path, key1: MasterKey) -> None:
    blobs = _fill(open_store(root, key1), 10)
    both = open_store(root, key1, new_key("k2"), active="k2")
    first_half = sorted(blobs)[:4]
    interrupted = rotate_all(both, addresses=first_half)  # as if the run stopped after four blobs
    assert interrupted.counts[RotateOutcome.ROTATED] == 4
    resumed = rotate_all(both)
    assert resumed.counts[RotateOutcome.CURRENT] == 4 and resumed.counts[RotateOutcome.ROTATED] == 6
    again = rotate_all(both)
    assert again.counts[RotateOutcome.CURRENT] == 10 and again.store_record[0] is RotateOutcome.CURRENT
    assert census(both) == {"k2": 10}


def test_blobs_under_an_unknown_key_are_reported_and_kept(root: Path, tmp_path: Path, key1: MasterKey) -> None:
    blobs = _fill(open_store(root, key1), 3)
    lost = new_key("k0")  # e.g. a blob restored from an old backup whose key was never configured here
    foreign = open_store(tmp_path / "old", lost)
    orphan = foreign.put(b"wrapped by a key nobody configured").address
    target = blob_path(open_store(root, key1), orphan)
    target.parent.mkdir(parents=True, exist_ok=True)
    blob_path(foreign, orphan).rename(target)
    key_before = (target / "key").read_bytes()

    report = rotate_all(open_store(root, key1, new_key("k2"), active="k2"))
    assert report.counts[RotateOutcome.ROTATED] == 3 and not report.complete
    assert [(a, o) for a, o, _ in report.problems] == [(orphan, RotateOutcome.UNKNOWN_KEY)]
    assert "'k0', which is not configured" in report.problems[0][2]
    assert (target / "key").read_bytes() == key_before and (target / "data").exists()
    assert open_store(root, lost).read_bytes(orphan) == b"wrapped by a key nobody configured"
    assert all(_kid(open_store(root, key1), address) == "k2" for address in blobs)


def test_a_damaged_key_record_is_reported_and_kept(root: Path, key1: MasterKey) -> None:
    store = open_store(root, key1)
    good = store.put(b"fine").address
    bad = store.put(b"damaged").address
    (blob_path(store, bad) / "key").write_bytes(b"{garbage")
    report = rotate_all(open_store(root, key1, new_key("k2"), active="k2"))
    assert [(a, o) for a, o, _ in report.problems] == [(bad, RotateOutcome.DAMAGED)]
    assert (blob_path(store, bad) / "key").read_bytes() == b"{garbage"
    assert _kid(store, good) == "k2"


def test_wrong_material_for_a_configured_kid_is_reported(root: Path, key1: MasterKey) -> None:
    address = open_store(root, key1).put(b"doc").address
    impostor = open_store(root, new_key("k1"), new_key("k2"), active="k2")
    report = rotate_all(impostor)
    assert [(a, o) for a, o, _ in report.problems] == [(address, RotateOutcome.WRONG_KEY)]
    assert report.store_record[0] is RotateOutcome.WRONG_KEY


def test_rotation_while_documents_are_being_filed(root: Path, key1: MasterKey) -> None:
    key2 = new_key("k2")
    _fill(open_store(root, key1), 20)
    server = open_store(root, key1, key2, active="k2")  # the server restarted with k2 active
    filed: dict[str, bytes] = {}

    def file_documents() -> None:
        for _ in range(20):
            data = os.urandom(3000)
            filed[server.put(data).address] = data

    writer = threading.Thread(target=file_documents)
    writer.start()
    report = rotate_all(open_store(root, key1, key2, active="k2"), workers=4)
    writer.join()
    assert report.complete
    assert rotate_all(server).counts[RotateOutcome.ROTATED] == 0
    result = verify_all(open_store(root, key2))
    assert result.ok and result.counts[VerifyStatus.OK] == 40
