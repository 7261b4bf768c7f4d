"""Import of the national directory: 25,005 synthetic professionals (the national count) through the HPD importer.

Usage: ``python -m bench.hpd_import [--count 25005] [--db postgresql://…/hpd_bench] [--batch 500] [--workers 2]
[--no-hooks --out bench/results/hpd_import_no_hooks.json]``

The directory comes from ``esante.hpd.synthetic`` (CSV import format, one row per professional x place of practice),
written once, then imported into a freshly migrated PostgreSQL database as ``esante hpd import`` does: a first run
(everything created), an idempotent re-run over the same file (nothing changes) and a delta file (1 % of the rows:
new phone numbers, ended roles, suspensions). Writes bench/results/hpd_import.json (time, rate, peak memory of the
main process).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.databases import reset
from bench.machine import describe
from esante.app import build_platform
from esante.config import Settings
from esante.fhir.hooks import HookRegistry
from esante.hpd.csv_source import COLUMNS, read_csv_rows
from esante.hpd.directory_import import DirectoryImporter
from esante.hpd.prepare_pool import prepared_lines
from esante.hpd.synthetic import DirectoryConfig, write_directory_csv

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "hpd_import.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/hpd_bench")
console = Console()


def write_delta(full: Path, delta: Path, every: int = 100) -> int:
    """The rows of every ``every``-th row's professional, changed: a new phone number, for one row in five hundred an
    ended role, for one professional in ten a suspension (all of a professional's rows are kept and stay consistent:
    the import refuses a row that states a professional differently from another)."""
    with full.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    chosen = {row["authorisation"] for index, row in enumerate(rows) if index % every == 0}
    suspended = {row["authorisation"] for index, row in enumerate(rows) if index % 1000 == 0 and not row["status"]}
    changed = 0
    with delta.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for index, row in enumerate(rows):
            if row["authorisation"] not in chosen:
                continue
            if row["org_id"]:
                row["role_phone"] = f"+352 27 {index % 1000:03d} {index % 997:03d}"
            if index % 500 == 0 and row["org_id"] and not row["role_until"]:
                row["role_until"] = "2025-01-31"
            if row["authorisation"] in suspended:  # on every row of the professional
                row.update(status="suspended", status_date="2025-02-01", status_reason="suspension (benchmark)")
            writer.writerow(row)
            changed += 1
    return changed


async def run_imports(
    url: str, files: dict[str, Path], rows: dict[str, int], batch: int, workers: int, hooks: bool = True
) -> dict[str, Any]:
    platform = build_platform(Settings(database_url=url, warm_up=False, audit_enabled=False))
    if not hooks:  # to measure what the storage hooks (the right to practise's) cost the import
        platform.store.hooks = HookRegistry()
    await platform.database.connect()
    try:
        runs = {}
        for name, path in files.items():
            importer = DirectoryImporter(platform.store, batch_size=batch, operator="bench")
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task(f"import ({name})", total=rows[name])

                def advance(done: int, task: Any = task, progress: Progress = progress) -> None:
                    progress.update(task, completed=done)

                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                lines = prepared_lines(read_csv_rows(path), date.today(), workers)
                result = await importer.run(lines, advance)
            runs[name] = {
                "lines": result.read,
                "professionals": result.professionals,
                "created": dict(result.created),
                "updated": dict(result.updated),
                "unchanged": result.unchanged,
                "status_changes": result.status_changes,
                "rejected": len(result.rejected),
                "seconds": round(result.seconds, 2),
                "lines_per_s": round(result.rate, 1),
                "professionals_per_s": round(result.professionals / result.seconds, 1) if result.seconds else 0,
                "peak_rss_mb_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_rss_mb_before": round(rss_before, 1),
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
            }
            console.print(name, runs[name])
        async with platform.database.read() as conn:
            counts = {
                str(r[0]): int(r[1])
                for r in await conn.fetch(
                    "SELECT res_type, COUNT(*) FROM resource WHERE is_current AND NOT deleted GROUP BY res_type"
                )
            }
            versions = int(await conn.fetchval("SELECT COUNT(*) FROM resource"))
            ledger = int(await conn.fetchval("SELECT COUNT(*) FROM hpd_ehealth_id"))
        return {"runs": runs, "resources": counts, "versions": versions, "ehealth_ids": ledger}
    finally:
        await platform.database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=25_005)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="processes preparing the CSV rows (0: in-process)")
    parser.add_argument("--no-hooks", action="store_true", help="without the storage hooks (to measure their cost)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    reset(args.db)
    with tempfile.TemporaryDirectory() as folder:
        full, delta = Path(folder) / "directory.csv", Path(folder) / "delta.csv"
        started = time.perf_counter()
        summary = write_directory_csv(DirectoryConfig(count=args.count, seed=args.seed), full)
        generated = time.perf_counter() - started
        delta_rows = write_delta(full, delta)
        files = {"first": full, "again": full, "delta": delta}
        rows = {"first": summary.rows, "again": summary.rows, "delta": delta_rows}
        measured = asyncio.run(run_imports(args.db, files, rows, args.batch, args.workers, not args.no_hooks))
        size = full.stat().st_size
    output = {
        "benchmark": "hpd_import",
        "count": args.count,
        "rows": summary.rows,
        "organizations": summary.organizations,
        "sites": summary.sites,
        "file_bytes": size,
        "batch": args.batch,
        "workers": args.workers,
        "storage_hooks": not args.no_hooks,
        "generation_seconds": round(generated, 2),
        **measured,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": describe(args.db),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2) + "\n")
    console.print(output)


if __name__ == "__main__":
    main()
