"""Fixtures of the blob store's tests: a store on a temporary folder with a master key made in the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from esante.blobs import BlobStore, MasterKey, MasterKeyRing
from esante.blobs.local import LocalDiskBackend

SMALL_SEGMENT = 4096  # the smallest segment size: many segments from a few kilobytes


def new_key(kid: str) -> MasterKey:
    return MasterKey(kid, os.urandom(32))


def open_store(root: Path, *keys: MasterKey, active: str | None = None, segment_size: int = 64 * 1024) -> BlobStore:
    return BlobStore(LocalDiskBackend(root), MasterKeyRing.of(*keys, active=active), segment_size=segment_size)


def blob_path(store: BlobStore, address: str) -> Path:
    backend = store.backend
    assert isinstance(backend, LocalDiskBackend)
    return backend.path_of(address)


def stored_addresses(root: Path) -> list[str]:
    return sorted(path.name for path in (root / "objects").glob("*/*/*"))


def pending_entries(root: Path) -> list[str]:
    return sorted(path.name for path in (root / "tmp").iterdir())


@pytest.fixture
def key1() -> MasterKey:
    return new_key("k1")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def store(root: Path, key1: MasterKey) -> BlobStore:
    return open_store(root, key1)


@pytest.fixture
def small_store(root: Path, key1: MasterKey) -> BlobStore:
    """Segments of 4 KiB: a 40 KB blob has ten of them."""
    return open_store(root, key1, segment_size=SMALL_SEGMENT)
