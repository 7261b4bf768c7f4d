"""Throughput of the CVE reminders job over the national count of CVE records, on PostgreSQL.

Usage: ``python -m bench.cve_reminders [--db postgresql://...] [--patients 52096] [--no-hooks] [--skip-seed]``

1. **seed**: a freshly migrated database (``cve_reminders_bench`` by default) receives ``--patients`` synthetic
   patients with Luxembourg-calendar histories (``bench/cve_population.py``: ~9.6 Immunizations each), written in
   bulk through the resource store with the platform's hooks (the CVE's checks of every Immunization, the
   DSP-consent queue) unless ``--no-hooks``; index rows extracted in worker processes; then ``VACUUM ANALYZE``;
2. **first run**: ``ReminderJob`` with the packaged Luxembourg schedule on today's date — every patient is read,
   forecast, and notified of what is due (a first run over a register: most patients have something due);
3. **daily re-run**: the same day again — every due dose was reminded, nothing is created (the steady state of a
   daily timer);
4. **re-run with 2 forecasting processes** (``--workers 2``): the engine is the CPU cost.

Writes bench/results/cve_reminders.json (with the machine and its load average before and after each phase: the
machine is shared) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.cve_population import seed
from bench.databases import reset
from bench.machine import describe
from esante.config import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cve_reminders.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/cve_reminders_bench")
console = Console()


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


async def _vacuum(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from esante.app import build_platform
    from esante.cve.context import cve_context
    from esante.cve.reminders import ReminderJob, count_patients
    from esante.fhir.hooks import HookRegistry
    from esante.fhir.store import ResourceStore

    var = Path(os.environ.get("ESANTE_BENCH_VAR", "/tmp/esante-bench-cve"))
    settings = Settings(var_dir=var, database_url=args.db, db_pool_size=2, cve_schedule="lu", cve_dsp_sync_interval=0)
    platform = build_platform(settings)
    await platform.database.connect()
    today = datetime.now(UTC).date()
    results: dict[str, Any] = {"date": today.isoformat(), "schedule": "lu", "batch": args.batch}
    try:
        if not args.skip_seed:
            store = platform.store if args.hooks else ResourceStore(platform.database, HookRegistry())
            load = _load()
            with _progress() as progress:
                task = progress.add_task("seeding patients", total=args.patients)
                seeded = await seed(
                    store, args.patients, today, workers=args.seed_workers, progress=lambda n: progress.advance(task, n)
                )
            await _vacuum(args.db)
            seeded["hooks"] = args.hooks
            seeded["immunizations_per_second"] = round(seeded["immunizations"] / seeded["seconds"], 1)
            seeded["load_average_before"], seeded["load_average_after"] = load, _load()
            results["seed"] = seeded
            console.print(f"seeded {seeded}")
        if args.hooks and not args.skip_seed:  # the hooks queued every patient for the DSP-consent worker
            from esante.cve.dsp_consent_sync import DspSync

            load = _load()
            started = time.perf_counter()
            drained = await DspSync(platform, cve_context(platform)).run_once()
            seconds = time.perf_counter() - started
            results["dsp_queue_drain"] = {
                "rows": drained.handled,
                "no_consent": drained.stopped,
                "seconds": round(seconds, 1),
                "rows_per_second": round(drained.handled / seconds, 1) if seconds else None,
                "load_average_before": load,
                "load_average_after": _load(),
            }
            console.print("dsp_queue_drain", results["dsp_queue_drain"])
        total = await count_patients(platform.store)
        results["patients_with_a_cve"] = total
        context = cve_context(platform)
        await context.schedule.aget()
        for phase, workers in (("first_run", 1), ("daily_rerun", 1), ("daily_rerun_2_processes", 2)):
            job = ReminderJob(platform.store, context, batch=args.batch, workers=workers)
            load = _load()
            with _progress() as progress:
                bar = progress.add_task(phase, total=total)
                report = await job.run(today, None, lambda n, bar=bar: progress.advance(bar, n))  # type: ignore[misc]
            results[phase] = {
                "workers": workers,
                "patients": report.patients,
                "seconds": round(report.seconds, 1),
                "patients_per_second": round(report.patients / report.seconds, 1),
                "doses_due": report.due,
                "doses_reminded": report.reminded,
                "doses_reminded_before": report.already,
                "notifications": report.notifications,
                "skipped": report.skipped,
                "load_average_before": load,
                "load_average_after": _load(),
            }
            console.print(phase, results[phase])
        async with platform.database.read() as conn:
            results["stored"] = {
                "communications": int(
                    await conn.fetchval("SELECT COUNT(*) FROM resource WHERE res_type = 'Communication'") or 0
                ),
                "outbox_rows": int(await conn.fetchval("SELECT COUNT(*) FROM notify_outbox") or 0),
                "reminded_doses": int(await conn.fetchval("SELECT COUNT(*) FROM cve_reminder") or 0),
            }
    finally:
        if platform.auditor is not None:
            await platform.auditor.close()
        await platform.database.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--patients", type=int, default=52096)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed-workers", type=int, default=2)
    parser.add_argument("--no-hooks", dest="hooks", action="store_false", help="Seed without the platform's hooks.")
    parser.add_argument("--skip-seed", action="store_true", help="Reuse the database as it is.")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Where to write the JSON results.")
    args = parser.parse_args()
    if not args.db.startswith("postgresql"):
        parser.error("the benchmark runs on PostgreSQL")
    if not args.skip_seed:
        os.system(f"./scripts/ensure-postgres.sh {args.db} >/dev/null")
        reset(args.db)
    started = time.perf_counter()
    results = asyncio.run(run(args))
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"] = describe(args.db)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title=f"CVE reminders over {results['patients_with_a_cve']} records ({date.today()})")
    for column in ("phase", "patients/s", "seconds", "notifications", "doses reminded", "load before → after"):
        table.add_column(column)
    for phase in ("first_run", "daily_rerun", "daily_rerun_2_processes"):
        r = results[phase]
        table.add_row(
            phase,
            str(r["patients_per_second"]),
            str(r["seconds"]),
            str(r["notifications"]),
            str(r["doses_reminded"]),
            f"{r['load_average_before'][0]} → {r['load_average_after'][0]}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
