"""Concurrent writers: the same bytes put at once by threads and by separate processes end as one blob; puts,
reads and destructions interleaved leave the store consistent with nothing left in tmp/."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from esante.blobs import BlobNotFound, BlobStore, DeleteOutcome, MasterKey, VerifyStatus
from esante.blobs.maintenance import verify_all
from tests.blobs.conftest import open_store, pending_entries, stored_addresses


def test_threads_putting_the_same_bytes(root: Path, key1: MasterKey) -> None:
    data = os.urandom(300_000)
    barrier = threading.Barrier(8)

    def put(_: int) -> str:
        store = open_store(root, key1)  # a store per thread, as separate workers would have
        writer = store.writer()
        writer.write(data)
        barrier.wait()  # every writer has its pending copy before anyone commits
        return writer.finish().address

    open_store(root, key1).address_key()  # the store record exists (its own race is tested below)
    with ThreadPoolExecutor(8) as pool:
        addresses = set(pool.map(put, range(8)))
    assert len(addresses) == 1
    (address,) = addresses
    assert stored_addresses(root) == [address] and pending_entries(root) == []
    assert open_store(root, key1).read_bytes(address) == data


def test_processes_putting_the_same_bytes(root: Path, key1: MasterKey, tmp_path: Path) -> None:
    """Separate processes (server workers and the CLI share the folder), racing on the store record too."""
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(500_000))
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from esante.blobs import BlobStore, MasterKey, MasterKeyRing
        from esante.blobs.local import LocalDiskBackend
        ring = MasterKeyRing.of(MasterKey("k1", bytes.fromhex("{key1.material.hex()}")))
        store = BlobStore(LocalDiskBackend(Path(sys.argv[1])), ring)
        data = Path(sys.argv[2]).read_bytes()
        print(store.put([data[i:i + 7000] for i in range(0, len(data), 7000)]).address)
        """
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(root), str(payload)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = [process.communicate(timeout=60)[0].strip() for process in processes]
    assert all(process.returncode == 0 for process in processes)
    assert len(set(outputs)) == 1
    assert stored_addresses(root) == [outputs[0]] and pending_entries(root) == []
    assert open_store(root, key1).read_bytes(outputs[0]) == payload.read_bytes()


def test_puts_reads_and_destructions_interleaved(root: Path, key1: MasterKey) -> None:
    store = open_store(root, key1)
    documents = [os.urandom(20_000 + i) for i in range(4)]
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        try:
            for round_ in range(30):
                data = documents[(seed + round_) % len(documents)]
                info = store.put(data)
                with contextlib.suppress(BlobNotFound):
                    assert store.read_bytes(info.address) == data  # right bytes, or gone — never wrong
                if round_ % 3 == seed % 3:
                    assert store.delete(info.address) in (DeleteOutcome.DELETED, DeleteOutcome.ABSENT)
        except BaseException as error:  # reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert pending_entries(root) == []
    report = verify_all(store)
    assert report.ok and all(status is VerifyStatus.OK for status in report.counts)


def test_one_store_shared_by_threads(store: BlobStore) -> None:
    """The ASGI app's worker threads share one BlobStore (lazy addressing key included)."""
    documents = [os.urandom(10_000 + i) for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        infos = list(pool.map(store.put, documents))
        contents = list(pool.map(lambda info: store.read_bytes(info.address), infos))
    assert contents == documents


def test_a_key_record_zeroed_by_a_destruction_while_read_is_gone_not_damaged(
    root: Path, key1: MasterKey, monkeypatch: Any
) -> None:
    """The interleaving the churn above hits now and then, made certain: a reader has the blob's directory open and
    reads its key record while a destruction has renamed the directory away and is zeroing the record in place
    (its data object not removed yet). The blob is reported gone, never damaged."""
    from esante.blobs import local

    store = open_store(root, key1)
    original = local._read_file
    address = ""

    def read_during_destruction(name: str, dir_fd: int) -> bytes:
        record = original(name, dir_fd)
        if name != local.KEY:
            return record
        monkeypatch.setattr(local, "_read_file", original)
        backend = store.backend
        os.rename(backend.path_of(address), backend.tmp / "del-under-way")  # the destruction's first step
        return b"\0" * len(record)  # what the reader sees while the record is being zeroed

    for read in (store.stat, store.open):
        address = store.put(os.urandom(30_000)).address
        monkeypatch.setattr(local, "_read_file", read_during_destruction)
        with pytest.raises(BlobNotFound):
            read(address)
        shutil.rmtree(store.backend.tmp / "del-under-way")
