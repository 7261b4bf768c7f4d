"""The document blob store's throughput and memory: put and read of a large stream, small-document puts,
rotation and verification rates.

Usage: ``python -m bench.blob_store [--size-mb 256] [--small 2000] [--folder DIR]``

Each phase runs in its own child process so that its peak RSS (``ru_maxrss`` minus the RSS after imports) is its
own; the large stream is produced from a 1 MiB random pool (never held whole in memory). Before the cold read the
data object's pages are dropped from the page cache with ``posix_fadvise(DONTNEED)`` (this file only: other
processes' caches are left alone). The "disk floor" rows write and read the same number of bytes to a plain file
with the same fsync, for comparison. Writes bench/results/blob_store.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from bench.machine import describe

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "blob_store.json"
CHUNK = 64 * 1024
MB = 1024 * 1024


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stream(total: int, seed: int) -> Iterator[bytes]:
    """``total`` bytes in 64 KiB chunks, unique per seed, from a 1 MiB random pool."""
    pool = os.urandom(MB)
    sent = 0
    index = 0
    while sent < total:
        offset = (index * CHUNK) % MB
        chunk = seed.to_bytes(8, "big") + index.to_bytes(8, "big") + pool[offset + 16 : offset + CHUNK]
        chunk = chunk[: total - sent]
        sent += len(chunk)
        index += 1
        yield chunk


def _store(folder: Path) -> Any:
    from esante.blobs import BlobStore, MasterKey, MasterKeyRing
    from esante.blobs.local import LocalDiskBackend

    material = bytes.fromhex((folder / "key.hex").read_text())
    keys = [MasterKey("bench1", material)]
    if (folder / "key2.hex").exists():
        keys.append(MasterKey("bench2", bytes.fromhex((folder / "key2.hex").read_text())))
    active = "bench2" if len(keys) == 2 else "bench1"
    return BlobStore(LocalDiskBackend(folder / "blobs"), MasterKeyRing.of(*keys, active=active))


def _drop_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# --- phases (each in a child process) ----------------------------------------------------------------------------


def phase_put(folder: Path, size: int) -> dict[str, Any]:
    store = _store(folder)
    store.address_key()
    base = _rss_mb()
    started = time.perf_counter()
    info = store.put(_stream(size, seed=1))
    seconds = time.perf_counter() - started
    (folder / "address").write_text(info.address)
    return {"seconds": seconds, "mb_per_s": size / MB / seconds, "peak_rss_over_base_mb": _peak_mb() - base}


def phase_read(folder: Path, size: int, cold: bool) -> dict[str, Any]:
    store = _store(folder)
    address = (folder / "address").read_text()
    if cold:
        _drop_cache(store.backend.path_of(address) / "data")
    base = _rss_mb()
    started = time.perf_counter()
    read = 0
    with store.open(address) as reader:
        while segments := reader.read_segments():
            read += sum(len(segment) for segment in segments)
    seconds = time.perf_counter() - started
    assert read == size
    return {"seconds": seconds, "mb_per_s": size / MB / seconds, "peak_rss_over_base_mb": _peak_mb() - base}


def phase_async(folder: Path, size: int) -> dict[str, Any]:
    """The ASGI path: AsyncBlobStore.put from an async stream of 64 KiB chunks, then open() streamed out."""
    from esante.blobs import AsyncBlobStore

    blobs = AsyncBlobStore(_store(folder))

    async def body() -> AsyncIterator[bytes]:
        for chunk in _stream(size, seed=2):
            yield chunk

    async def run() -> dict[str, Any]:
        await asyncio.to_thread(blobs.store.address_key)
        base = _rss_mb()
        started = time.perf_counter()
        info = await blobs.put(body())
        put_seconds = time.perf_counter() - started
        _drop_cache(blobs.store.backend.path_of(info.address) / "data")
        started = time.perf_counter()
        read = 0
        async for chunk in await blobs.open(info.address):
            read += len(chunk)
        read_seconds = time.perf_counter() - started
        assert read == size
        return {
            "put_mb_per_s": size / MB / put_seconds,
            "read_cold_mb_per_s": size / MB / read_seconds,
            "peak_rss_over_base_mb": _peak_mb() - base,
        }

    return asyncio.run(run())


def phase_verify(folder: Path, size: int) -> dict[str, Any]:
    store = _store(folder)
    address = (folder / "address").read_text()
    _drop_cache(store.backend.path_of(address) / "data")
    started = time.perf_counter()
    result = store.verify(address, full=True)
    seconds = time.perf_counter() - started
    assert result.status.value == "ok", result
    return {"seconds": seconds, "mb_per_s": size / MB / seconds}


def phase_floor(folder: Path, size: int) -> dict[str, Any]:
    """The disk alone: the same bytes written (fsync) and read back cold through a plain file."""
    path = folder / "floor.bin"
    started = time.perf_counter()
    with path.open("wb", buffering=0) as handle:
        for chunk in _stream(size, seed=3):
            handle.write(chunk)
        os.fsync(handle.fileno())
    write = time.perf_counter() - started
    _drop_cache(path)
    started = time.perf_counter()
    with path.open("rb", buffering=0) as handle:
        while handle.read(MB):
            pass
    read = time.perf_counter() - started
    path.unlink()
    return {"write_mb_per_s": size / MB / write, "read_cold_mb_per_s": size / MB / read}


def phase_small(folder: Path, count: int, threads: int) -> dict[str, Any]:
    """DSP-sized documents (50 KB, the issue's ITI-65 PDF): puts/s, each durable (4 fsyncs: data, key record,
    its directory, the shard directory), from 1 thread and from several (requests in parallel share the file
    system's journal commits)."""
    from concurrent.futures import ThreadPoolExecutor

    store = _store(folder)
    store.address_key()
    pool = os.urandom(50_000)
    seed = threads * 10_000_000

    def put(i: int) -> None:
        store.put((seed + i).to_bytes(8, "big") + pool[8:])

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        list(executor.map(put, range(count)))
    seconds = time.perf_counter() - started
    return {
        "count": count,
        "threads": threads,
        "puts_per_s": count / seconds,
        "mb_per_s": count * 50_000 / MB / seconds,
    }


def phase_rotate(folder: Path, workers: int) -> dict[str, Any]:
    from esante.blobs.maintenance import rotate_all, verify_all

    (folder / "key2.hex").write_text(os.urandom(32).hex())
    store = _store(folder)
    report = rotate_all(store, workers=workers)
    assert report.complete, report.problems
    quick = verify_all(store, full=False, workers=workers)
    assert quick.ok
    return {
        "blobs": report.total,
        "workers": workers,
        "rotate_blobs_per_s": report.total / report.seconds,
        "verify_quick_blobs_per_s": quick.total / quick.seconds,
    }


PHASES = {
    "put": lambda f, a: phase_put(f, a.size_mb * MB),
    "read_warm": lambda f, a: phase_read(f, a.size_mb * MB, cold=False),
    "read_cold": lambda f, a: phase_read(f, a.size_mb * MB, cold=True),
    "verify_full": lambda f, a: phase_verify(f, a.size_mb * MB),
    "async": lambda f, a: phase_async(f, a.size_mb * MB),
    "disk_floor": lambda f, a: phase_floor(f, a.size_mb * MB),
    "small_puts": lambda f, a: phase_small(f, a.small, 1),
    "small_puts_8_threads": lambda f, a: phase_small(f, a.small, 8),
    "rotate": lambda f, a: phase_rotate(f, a.workers),
}


def _child(phase: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.blob_store", "--phase", phase, "--folder", str(folder)]
    command += ["--size-mb", str(args.size_mb), "--small", str(args.small), "--workers", str(args.workers)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--small", type=int, default=2000, help="50 KB documents for the small-put and rotation rates")
    parser.add_argument("--workers", type=int, default=4, help="threads of the rotation and quick verification")
    parser.add_argument("--folder", type=Path, default=None, help="where to build the store (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.folder, args)))
        return
    folder = Path(tempfile.mkdtemp(prefix="blob-bench-", dir=args.folder))
    load_before = os.getloadavg()
    try:
        (folder / "key.hex").write_text(os.urandom(32).hex())
        results: dict[str, Any] = {}
        phases = ("disk_floor", "put", "read_warm", "read_cold", "verify_full", "async", "small_puts")
        for phase in (*phases, "small_puts_8_threads", "rotate"):
            results[phase] = _rounded(_child(phase, folder, args))
            print(phase, json.dumps(results[phase]), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    output = {
        "benchmark": "blob_store",
        "size_mb": args.size_mb,
        "segment_size": 64 * 1024,
        "results": results,
        # the machine is shared: the 1-minute load average before and after says how quiet it was
        "load_average_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "machine": describe(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
