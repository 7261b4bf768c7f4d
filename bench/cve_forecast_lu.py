"""Forecast latency per patient with the packaged Luxembourg schedule, over realistic synthetic histories, on
PostgreSQL (``bench/cve_forecast.py`` measures the same with the CDC 4.64 schedule over the CDC's 608 test-case
histories).

Usage: ``python -m bench.cve_forecast_lu [--db postgresql://...] [--patients 5000] [--sample 1000] [--http 300]
[--skip-seed]``

The population is ``bench/cve_population.py``'s (Luxembourg-calendar histories, ~9.6 Immunizations per patient,
ages 0-94), seeded in bulk through the resource store into ``cve_forecast_lu_bench`` (or reused with ``--skip-seed``,
e.g. the reminders benchmark's database). Three levels, each over the same random sample of patients, sequential:

1. **engine**: ``assess()`` alone on inputs read beforehand (the CDSi logic: evaluation, forecast, series
   selection, vaccine groups for the 15 groups of the schedule);
2. **patient_forecast()**: what the platform's jobs call — the Patient, Immunizations, Conditions and Observations
   read in four indexed statements, the engine, the ImmDS ``Parameters`` built;
3. **HTTP** ``GET Patient/{id}/$immds-forecast`` as the patient (a real server process: bearer gate, the records
   read through the policy, the engine, the FHIR answer, the audit trail), sequential, then 4 concurrent clients.

Writes bench/results/cve_forecast_lu.json (with the machine and its load average) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.cve_population import seed
from bench.databases import reset
from bench.machine import describe
from esante.config import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "cve_forecast_lu.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/cve_forecast_lu_bench")
console = Console()


def _stats(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)

    return {
        "count": len(ordered),
        "p50_ms": at(0.5),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


async def _in_process(settings: Settings, args: argparse.Namespace, results: dict[str, Any]) -> list[str]:
    from esante.app import build_platform
    from esante.cve.context import cve_context
    from esante.cve.engine import assess
    from esante.cve.forecast import patient_forecast, patient_records
    from esante.cve.immds_input import forecast_input
    from esante.fhir.hooks import HookRegistry
    from esante.fhir.store import ResourceStore

    platform = build_platform(settings)
    await platform.database.connect()
    today = datetime.now(UTC).date()
    try:
        if not args.skip_seed:
            store = ResourceStore(platform.database, HookRegistry())
            with _progress() as progress:
                bar = progress.add_task("seeding patients", total=args.patients)
                results["seed"] = await seed(store, args.patients, today, progress=lambda n: progress.advance(bar, n))
            import asyncpg

            conn = await asyncpg.connect(args.db)
            try:
                await conn.execute("VACUUM ANALYZE")
            finally:
                await conn.close()
        async with platform.database.read() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT target_id FROM idx_reference WHERE res_type = 'Immunization' AND param = 'patient'"
                " AND target_type = 'Patient'"
            )
        patients = sorted(str(r[0]) for r in rows)
        results["patients_with_a_cve"] = len(patients)
        sample = random.Random(7).sample(patients, min(args.sample, len(patients)))
        context = cve_context(platform)
        data = await context.schedule.aget()
        inputs = []
        doses = []
        async with platform.database.read() as conn:
            session = platform.store.session(conn)
            for pid in sample:
                records = await patient_records(session, pid)
                assert records is not None
                patient, immunizations, conditions, observations = records
                doses.append(len(immunizations))
                inputs.append(
                    forecast_input(patient, immunizations, data, conditions=conditions, observations=observations)
                )
        results["sample_doses_per_patient"] = {
            "mean": round(statistics.fmean(doses), 2),
            "max": max(doses),
            "p50": sorted(doses)[len(doses) // 2],
        }
        load = _load()
        engine: list[float] = []
        for fi in inputs:
            started = time.perf_counter()
            assess(data, fi.patient, today)
            engine.append((time.perf_counter() - started) * 1000)
        results["engine"] = {**_stats(engine), "load_average_before": load, "load_average_after": _load()}
        load = _load()
        full: list[float] = []
        async with platform.database.read() as conn:
            session = platform.store.session(conn)
            for pid in sample:
                started = time.perf_counter()
                await patient_forecast(context, session, pid, today)
                full.append((time.perf_counter() - started) * 1000)
        results["patient_forecast"] = {**_stats(full), "load_average_before": load, "load_average_after": _load()}
    finally:
        if platform.auditor is not None:
            await platform.auditor.close()
        await platform.database.close()
    return sample


def _server(args: argparse.Namespace, port: int, var: Path) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "ESANTE_LOG_LEVEL": "warning",
        "ESANTE_DB_POOL_SIZE": "4",
        "ESANTE_VAR_DIR": str(var),
        "ESANTE_AUDIT_ENABLED": "true",
        "ESANTE_CVE_SCHEDULE": "lu",
        "ESANTE_CVE_DSP_SYNC_INTERVAL": "0",
    }
    cmd = [sys.executable, "-m", "esante.cli", "serve", "--db", args.db, "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))


async def _http(args: argparse.Namespace, settings: Settings, sample: list[str], results: dict[str, Any]) -> None:
    from esante.security.keys import KeyRing
    from esante.security.tokens import mint_for, principal
    from tests.live_server import free_port

    port = free_port()
    served = Settings(**{**settings.__dict__, "port": port, "host": "127.0.0.1"})
    ring = KeyRing.load_or_create(served)
    targets = sample[: args.http]
    tokens = {pid: mint_for(served, ring, principal(f"patient:{pid}"), ttl=7200) for pid in targets}
    proc = _server(args, port, settings.var_dir)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            for pid in targets[:20]:  # warm-up: the schedule is loaded on first use
                await http.get(
                    f"{base}/Patient/{pid}/$immds-forecast", headers={"Authorization": f"Bearer {tokens[pid]}"}
                )
            load = _load()
            latencies: list[float] = []
            for pid in targets:
                started = time.perf_counter()
                response = await http.get(
                    f"{base}/Patient/{pid}/$immds-forecast", headers={"Authorization": f"Bearer {tokens[pid]}"}
                )
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
            results["http_sequential"] = {
                **_stats(latencies),
                "load_average_before": load,
                "load_average_after": _load(),
            }
            queue = list(targets)
            done = 0

            async def client() -> None:
                nonlocal done
                while queue:
                    pid = queue.pop()
                    response = await http.get(
                        f"{base}/Patient/{pid}/$immds-forecast", headers={"Authorization": f"Bearer {tokens[pid]}"}
                    )
                    assert response.status_code == 200
                    done += 1

            load = _load()
            started = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(4)))
            elapsed = time.perf_counter() - started
            results["http_4_clients"] = {
                "requests": done,
                "requests_per_second": round(done / elapsed, 1),
                "load_average_before": load,
                "load_average_after": _load(),
            }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--http", type=int, default=300, help="Patients asked over HTTP (0: skip).")
    parser.add_argument("--skip-seed", action="store_true", help="Reuse the database as it is.")
    args = parser.parse_args()
    if not args.db.startswith("postgresql"):
        parser.error("the benchmark runs on PostgreSQL")
    if not args.skip_seed:
        os.system(f"./scripts/ensure-postgres.sh {args.db} >/dev/null")
        reset(args.db)
    var = Path(os.environ.get("ESANTE_BENCH_VAR", "/tmp/esante-bench-cve-forecast"))
    settings = Settings(var_dir=var, database_url=args.db, db_pool_size=2, cve_schedule="lu", cve_dsp_sync_interval=0)
    results: dict[str, Any] = {"date": datetime.now(UTC).date().isoformat(), "schedule": "lu"}
    sample = asyncio.run(_in_process(settings, args, results))
    if args.http:
        asyncio.run(_http(args, settings, sample, results))
    results["machine"] = describe(args.db)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title=f"CVE forecast latency per patient ({results['patients_with_a_cve']} records, schedule lu)")
    for column in ("level", "p50 ms", "p90 ms", "p99 ms", "mean ms", "load before → after"):
        table.add_column(column)
    for level in ("engine", "patient_forecast", "http_sequential"):
        if level in results:
            r = results[level]
            table.add_row(
                level,
                str(r["p50_ms"]),
                str(r["p90_ms"]),
                str(r["p99_ms"]),
                str(r["mean_ms"]),
                f"{r['load_average_before'][0]} → {r['load_average_after'][0]}",
            )
    console.print(table)
    if "http_4_clients" in results:
        console.print(f"4 concurrent clients: {results['http_4_clients']['requests_per_second']} req/s")


if __name__ == "__main__":
    main()
