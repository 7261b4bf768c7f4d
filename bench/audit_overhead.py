"""The cost of the audit trail: 1,000 reads of one Patient with auditing on vs off, on PostgreSQL.

Usage: ``python -m bench.audit_overhead [--db postgresql://...] [--reads 1000] [--clients 1 8]``

Runs the real ASGI app in process (httpx ASGITransport, no network), so the figure is the server-side cost per
request (every read carries a registered system client's token through the bearer gate): with auditing on, each
read also appends its PatientRead AuditEvent (one short write transaction taking the chain's advisory lock). The
database (default ``postgresql://postgres@127.0.0.1:5432/audit_bench``) is dropped
and re-migrated. Writes bench/results/audit_overhead.json and prints the figures.
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

from bench.databases import reset
from bench.machine import describe
from esante.app import Platform, build_platform, create_app
from esante.config import Settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "audit_overhead.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/audit_bench")


async def bench_token(platform: Platform) -> str:
    """A registered all-rights system client's token: every read goes through the bearer gate as in production."""
    from esante.demo import register_system_client
    from esante.security.keys import KeyRing
    from esante.security.tokens import mint_for, principal

    await register_system_client(platform.database, "bench", "benchmark", "system/*.cruds")
    ring = KeyRing.load_or_create(platform.settings)
    return mint_for(platform.settings, ring, principal("system:bench"), scope="system/*.cruds")


async def run(url: str, audit: bool, reads: int, clients: int) -> dict[str, Any]:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    platform = build_platform(Settings(database_url=url, audit_enabled=audit, warm_up=False, var_dir=folder))
    await platform.database.connect()
    try:
        app = create_app(platform.settings, platform)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {await bench_token(platform)}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as http:
            body = {"resourceType": "Patient", "name": [{"family": "Bench", "given": ["Audit"]}]}
            pid = (await http.post("/fhir/Patient", json=body)).json()["id"]
            for _ in range(100):  # warm the statement caches and the pools
                await http.get(f"/fhir/Patient/{pid}")
            latencies: list[float] = []

            async def worker(count: int) -> None:
                for _ in range(count):
                    start = time.perf_counter()
                    response = await http.get(f"/fhir/Patient/{pid}")
                    latencies.append(time.perf_counter() - start)
                    assert response.status_code == 200

            started = time.perf_counter()
            await asyncio.gather(*(worker(reads // clients) for _ in range(clients)))
            elapsed = time.perf_counter() - started
        if audit:
            from esante.security.audit_trail import AuditTrail

            verified = await AuditTrail().verify(platform.database)
            assert verified.ok, verified
    finally:
        await platform.database.close()
    latencies.sort()
    return {
        "audit": audit,
        "clients": clients,
        "reads": len(latencies),
        "seconds": round(elapsed, 3),
        "reads_per_second": round(len(latencies) / elapsed, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for clients in args.clients:
        for audit in (False, True):
            reset(args.db)
            result = asyncio.run(run(args.db, audit, args.reads, clients))
            results.append(result)
            print(json.dumps(result))
    summary = []
    for clients in args.clients:
        off = next(r for r in results if r["clients"] == clients and not r["audit"])
        on = next(r for r in results if r["clients"] == clients and r["audit"])
        summary.append(
            {
                "clients": clients,
                "mean_ms_off": off["mean_ms"],
                "mean_ms_on": on["mean_ms"],
                "overhead_ms_per_read": round(on["mean_ms"] - off["mean_ms"], 3),
                "throughput_ratio_on_vs_off": round(on["reads_per_second"] / off["reads_per_second"], 3),
            }
        )
    output = {"benchmark": "audit_overhead", "runs": results, "summary": summary, "machine": describe(args.db)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    for line in summary:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
