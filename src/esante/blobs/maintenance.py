"""Whole-store jobs: rotate every key record, verify every blob. Streaming over the listing (no address list is
held in memory: 14.6 M addresses would be ~1.6 GB), in batches over a thread pool (the work is file I/O and
OpenSSL, both outside the GIL)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from esante.blobs.store import BlobStore, RotateOutcome, VerifyResult, VerifyStatus

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int], None]
BATCH = 512


@dataclass
class RotationReport:
    active_kid: str
    store_record: tuple[RotateOutcome, str]
    counts: Counter[RotateOutcome] = field(default_factory=Counter)
    problems: list[tuple[str, RotateOutcome, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Every blob (and the store record) is now wrapped by the active key: the old keys may be removed."""
        bad = (RotateOutcome.UNKNOWN_KEY, RotateOutcome.WRONG_KEY, RotateOutcome.DAMAGED)
        return not self.problems and self.store_record[0] not in bad

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class VerifyReport:
    full: bool
    counts: Counter[VerifyStatus] = field(default_factory=Counter)
    by_key: Counter[str] = field(default_factory=Counter)
    problems: list[VerifyResult] = field(default_factory=list)
    stale_pending: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def count_blobs(store: BlobStore) -> int:
    return sum(1 for _ in store.backend.addresses())


def _pooled(items: Iterable[T], work: Callable[[T], R], workers: int, progress: Progress | None) -> Iterator[R]:
    done = 0
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while batch := list(itertools.islice(iterator, BATCH)):
            yield from pool.map(work, batch)
            done += len(batch)
            if progress is not None:
                progress(done)


def rotate_all(
    store: BlobStore,
    *,
    workers: int = 4,
    progress: Progress | None = None,
    addresses: Iterable[str] | None = None,
) -> RotationReport:
    """Re-wrap every data key (and the addressing key) with the active master key.

    Idempotent and resumable: a blob already on the active key costs one small read; an interrupted run is simply
    run again. Key records are replaced without a directory fsync each; one ``sync`` at the end makes the whole run
    durable (a crash before it leaves some blobs on their old key, which still unwraps them — run it again).
    """
    started = time.perf_counter()
    report = RotationReport(store.keys.active_kid, store.rotate_store_record())

    def one(address: str) -> tuple[str, RotateOutcome, str]:
        outcome, detail = store.rotate(address)
        return address, outcome, detail

    source = store.backend.addresses() if addresses is None else addresses
    for address, outcome, detail in _pooled(source, one, workers, progress):
        report.counts[outcome] += 1
        if outcome in (RotateOutcome.UNKNOWN_KEY, RotateOutcome.WRONG_KEY, RotateOutcome.DAMAGED):
            report.problems.append((address, outcome, detail))
    store.backend.sync()
    report.seconds = time.perf_counter() - started
    return report


def verify_all(
    store: BlobStore,
    *,
    full: bool = True,
    workers: int = 2,
    progress: Progress | None = None,
    addresses: Iterable[str] | None = None,
    stale_after: float = 86400.0,
) -> VerifyReport:
    """Check every blob (see :meth:`BlobStore.verify`) and list interrupted writes older than ``stale_after``."""
    started = time.perf_counter()
    report = VerifyReport(full)
    source = store.backend.addresses() if addresses is None else addresses
    for result in _pooled(source, lambda address: store.verify(address, full=full), workers, progress):
        report.counts[result.status] += 1
        if result.kid:
            report.by_key[result.kid] += 1
        if result.status not in (VerifyStatus.OK, VerifyStatus.GONE):
            report.problems.append(result)
    report.stale_pending = store.backend.stale_pending(stale_after)
    report.seconds = time.perf_counter() - started
    return report


def census(store: BlobStore, progress: Progress | None = None) -> Counter[str]:
    """Blobs per master key id (read from the key records; nothing is decrypted)."""
    counts: Counter[str] = Counter()

    def kid(address: str) -> str:
        try:
            return store.key_id_of(address)
        except Exception:  # a damaged or vanished record is counted, not fatal
            return "(unreadable)"

    for name in _pooled(store.backend.addresses(), kid, 4, progress):
        counts[name] += 1
    return counts
