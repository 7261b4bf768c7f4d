"""What a CVE forecast costs: the engine on a stored record, and ``$immds-forecast`` over HTTP.

Usage: ``python -m bench.cve_forecast [--db postgresql://...] [--rounds 3]``

On PostgreSQL, on a freshly migrated database (``cve_bench`` by default), with the CDC CDSi supporting data 4.64
as the schedule (``cve_schedule``), every patient of the CDC's healthy test cases (608 histories, 0 to 7 doses,
infants to the elderly) is stored as a Patient with its doses as historical Immunizations (through the store, so
the CVE's write checks run). Then, ``--rounds`` times over all patients, sequentially:

- ``patient_forecast``: ``esante.cve.forecast.patient_forecast`` in one read transaction per patient (the
  function a reminders job calls: 4 indexed reads + the engine + the FHIR mapping);
- ``GET Patient/<id>/$immds-forecast``: over HTTP (uvicorn on loopback, audit trail on, the all-rights
  establishment client), the stored record read through the policy;
- ``POST $immds-forecast``: the same histories posted as Parameters (nothing read from the store).

Writes bench/results/cve_forecast.json (median, p90, p99 in ms, per-second rates, the machine) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.databases import reset
from bench.machine import describe
from esante.app import build_platform
from esante.cve.conformance import read_cases
from esante.cve.context import cve_context
from esante.cve.forecast import patient_forecast
from esante.db.engine import create_database

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ESANTE_SHARED", ROOT / ".." / "shared")).resolve()
CDC = SHARED / "data" / "cdsi" / "supporting-data-4.64"
CASES = SHARED / "data" / "cdsi" / "test-cases-healthy-v4.45-dev.csv"
RESULTS = ROOT / "bench" / "results" / "cve_forecast.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/cve_bench")
ORIGIN = "urn:esante:cve:record-origin"
console = Console()


def _records() -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    records = []
    for n, case in enumerate(read_cases(CASES)):
        pid = f"cdc-{n}"
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "gender": {"F": "female", "M": "male"}.get(case.gender, "unknown"),
            "birthDate": case.birth_date.isoformat(),
        }
        doses = [
            {
                "resourceType": "Immunization",
                "extension": [{"url": ORIGIN, "valueCoding": {"system": ORIGIN, "code": "historical"}}],
                "status": "completed",
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": d.cvx}]},
                "patient": {"reference": f"Patient/{pid}"},
                "occurrenceDateTime": d.date_administered.isoformat(),
            }
            for d in case.doses
        ]
        records.append((patient, doses))
    return records


def _summary(samples: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "count": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 2),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "per_second": round(len(samples) / wall, 1),
    }


async def run(url: str, rounds: int) -> dict[str, Any]:
    from tests.auth import ALL_RIGHTS, TEST_CLIENT, register_client, token
    from tests.live_server import loopback_settings, serve

    reset(url)
    folder = Path("/tmp/cve_bench_var")
    folder.mkdir(exist_ok=True)
    settings = loopback_settings(var_dir=folder, database_url=url, cve_schedule=str(CDC), log_level="warning")
    platform = build_platform(settings)
    context = cve_context(platform)
    database = create_database(url, pool_size=4)
    await database.connect()
    await register_client(database)
    records = _records()
    await platform.database.connect()
    try:
        started = time.perf_counter()
        async with platform.database.transaction() as conn:
            session = platform.store.session(conn)
            for patient, doses in records:
                await session.create(dict(patient), res_id=patient["id"])
                for dose in doses:
                    await session.create(dict(dose))
            await session.flush()
        seeded = time.perf_counter() - started
        stored = sum(len(d) for _, d in records)
        console.print(f"stored {len(records)} patients, {stored} doses in {seeded:.1f} s")
        await context.schedule.aget()
        results: dict[str, dict[str, float]] = {}

        samples: list[float] = []
        wall = time.perf_counter()
        for _ in range(rounds):
            for patient, _doses in records:
                t0 = time.perf_counter()
                async with platform.database.read() as conn:
                    forecast = await patient_forecast(context, platform.store.session(conn), patient["id"])
                samples.append(time.perf_counter() - t0)
                assert forecast is not None
        results["patient_forecast (store + engine + FHIR)"] = _summary(samples, time.perf_counter() - wall)
    finally:
        await platform.database.close()

    headers = {
        "Authorization": f"Bearer {token(settings, f'system:{TEST_CLIENT}', ALL_RIGHTS)}",
        "Content-Type": "application/fhir+json",
    }
    with serve(settings, platform) as fhir:
        async with httpx.AsyncClient(timeout=60, headers=headers) as http:
            for name, call in (
                ("GET Patient/<id>/$immds-forecast", "get"),
                ("POST $immds-forecast", "post"),
            ):
                samples = []
                wall = time.perf_counter()
                for _ in range(rounds):
                    for patient, doses in records:
                        t0 = time.perf_counter()
                        if call == "get":
                            response = await http.get(f"{fhir}/Patient/{patient['id']}/$immds-forecast")
                        else:
                            body = {
                                "resourceType": "Parameters",
                                "parameter": [
                                    {"name": "patient", "resource": patient},
                                    *({"name": "immunization", "resource": d} for d in doses),
                                ],
                            }
                            response = await http.post(f"{fhir}/$immds-forecast", json=body)
                        samples.append(time.perf_counter() - t0)
                        assert response.status_code == 200, response.text
                results[name] = _summary(samples, time.perf_counter() - wall)
    await database.close()
    return {
        "machine": describe(url),
        "load_average_after": os.getloadavg(),
        "patients": len(records),
        "doses": stored,
        "rounds": rounds,
        "seed_seconds": round(seeded, 1),
        "results": results,
        "national_records": 52096,
        "national_sequential_minutes_estimate": round(
            52096 / results["patient_forecast (store + engine + FHIR)"]["per_second"] / 60, 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    report = asyncio.run(run(args.db, args.rounds))
    table = Table(title="CVE forecast")
    for column in ("what", "n", "median ms", "p90 ms", "p99 ms", "per second"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for name, row in report["results"].items():
        columns = ("count", "median_ms", "p90_ms", "p99_ms", "per_second")
        table.add_row(name, *(str(row[c]) for c in columns))
    console.print(table)
    console.print(f"52,096 records one after another: ~{report['national_sequential_minutes_estimate']} min")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
