"""Import speed of the national register: ``N`` synthetic certified identities through the certified importer.

Usage: ``python -m bench.mpi_import [--count 100000] [--db postgresql://…/mpi_bench] [--batch 500]``

The identities come from the synthetic population (``esante.synth``), written once as NDJSON, then imported into a
freshly migrated PostgreSQL database as ``esante mpi import --certified`` does; a second run over the same file
measures the idempotent re-import (nothing changes). Writes bench/results/mpi_import.json (rates, peak memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress

from bench.databases import reset
from bench.machine import describe
from esante.app import build_platform
from esante.config import Settings
from esante.mpi.certified_import import CertifiedImporter
from esante.mpi.sources import read_file
from esante.synth.config import PopulationConfig
from esante.synth.fhir import certified_patient
from esante.synth.population import iter_persons

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mpi_import.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/mpi_bench")
console = Console()


def write_register(path: Path, count: int) -> float:
    started = time.perf_counter()
    with path.open("wb") as handle, Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating the register", total=count)
        for i, person in enumerate(iter_persons(PopulationConfig(count=count, seed=2024))):
            handle.write(orjson.dumps(certified_patient(person)) + b"\n")
            if i % 5000 == 0:
                progress.update(task, completed=i)
    return time.perf_counter() - started


async def run_import(url: str, path: Path, count: int, batch: int, workers: int | None) -> dict[str, Any]:
    platform = build_platform(Settings(database_url=url, warm_up=False, audit_enabled=False))
    await platform.database.connect()
    try:
        importer = CertifiedImporter(platform.store, batch_size=batch, workers=workers)
        runs = {}
        for name in ("first", "again"):
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"import ({name})", total=count)

                def advance(done: int, task: Any = task, progress: Progress = progress) -> None:
                    progress.update(task, completed=done)

                result = await importer.run(read_file(path), advance)
            runs[name] = {
                "read": result.read,
                "created": result.created,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "rejected": len(result.rejected),
                "seconds": round(result.seconds, 2),
                "identities_per_s": round(result.rate, 1),
            }
            console.print(name, runs[name])
        return runs
    finally:
        await platform.database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None, help="preparation processes (default: the importer's)")
    args = parser.parse_args()
    reset(args.db)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "register.ndjson"
        generated = write_register(path, args.count)
        runs = asyncio.run(run_import(args.db, path, args.count, args.batch, args.workers))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    output = {
        "benchmark": "mpi_import",
        "count": args.count,
        "batch": args.batch,
        "generation_seconds": round(generated, 1),
        "runs": runs,
        "peak_rss_mb": round(peak_mb, 1),
        "peak_rss_worker_mb": round(worker_mb, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": describe(args.db),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    console.print(output)


if __name__ == "__main__":
    main()
