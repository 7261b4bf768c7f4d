"""What the security seam costs per request: the bearer gate, the policy decision and its SQL filter, the audit.

Usage: ``python -m bench.security_overhead [--db postgresql://...] [--requests 1000] [--clients 1 8]``

Runs the real ASGI app in process (httpx ASGITransport, no network) on PostgreSQL, so the figures are server-side
costs. Variants, each on a freshly migrated database (``security_bench`` by default) holding 200 patients with 5
Observations each:

- ``no-gate``: the platform core as it was (no token check, no policy restriction, no audit) — the baseline;
- ``system``: a registered system client's token with ``system/*.cruds`` (gate + live check, unrestricted policy);
- ``patient``: a patient's own token (gate + live check + compartment restriction: in memory on reads, in the
  SQL of searches);
- ``system+audit`` / ``patient+audit``: the same with the audit trail on (the production configuration).

Workloads per variant: a read of a Patient by id (the patient's own Patient for ``patient``) and a search of one
patient's Observations by code. Writes bench/results/security_overhead.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.databases import reset
from bench.machine import describe
from esante.app import Platform, build_platform, create_app
from esante.config import Settings
from esante.demo import register_system_client
from esante.fhir.context import RequestContext
from esante.security.keys import KeyRing
from esante.security.policy import Caller
from esante.security.tokens import mint_for, principal

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "security_overhead.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/security_bench")
LOADER = Caller(kind="system", subject="bench-loader", scopes=("system/*.cruds",))
CODES = ("29463-7", "8480-6", "8462-4", "8310-5", "2339-0")
console = Console()


async def seed(platform: Platform, patients: int) -> list[str]:
    entries: list[dict[str, Any]] = []
    for i in range(patients):
        url = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        entries.append(
            {
                "fullUrl": url,
                "resource": {"resourceType": "Patient", "name": [{"family": f"Bench{i}"}]},
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        for code in CODES:
            observation = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": url},
            }
            entries.append({"resource": observation, "request": {"method": "POST", "url": "Observation"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    outcome = await platform.router.bundles.process(RequestContext(caller=LOADER, prefer_return="minimal"), bundle)
    assert isinstance(outcome.body, dict)
    locations = [e["response"]["location"] for e in outcome.body["entry"]]
    await register_system_client(platform.database, "bench", "benchmark", "system/*.cruds")
    async with platform.database.transaction() as conn:
        await conn.execute("ANALYZE")
    return [loc.split("/")[-3] for loc in locations if "/Patient/" in loc]


class TrustEveryone:
    """The baseline's gate: every request is the all-rights system client, without a token or a database check."""

    settings = None

    async def authenticate(self, headers: dict[str, str], conn: Any = None) -> Caller:
        return LOADER


@dataclass
class Tokens:
    patients: list[str]
    system: str
    by_patient: dict[str, str]
    variant: str
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def request(self, workload: str) -> tuple[str, dict[str, str]]:
        pid = self.rng.choice(self.patients)
        as_patient = self.variant.startswith("patient")
        if as_patient:
            headers = {"Authorization": f"Bearer {self.by_patient[pid]}"}
        elif self.variant == "no-gate":
            headers = {}
        else:
            headers = {"Authorization": f"Bearer {self.system}"}
        if workload == "read":
            return f"/fhir/Patient/{pid}", headers
        code = self.rng.choice(CODES)
        if as_patient:  # the compartment restriction does the subject parameter's job
            return f"/fhir/Observation?code=http://loinc.org|{code}", headers
        return f"/fhir/Observation?code=http://loinc.org|{code}&subject=Patient/{pid}", headers


async def measure(
    http: httpx.AsyncClient, tokens: Tokens, workload: str, requests: int, clients: int
) -> dict[str, Any]:
    for _ in range(100):  # warm-up: statement caches, pools
        path, headers = tokens.request(workload)
        response = await http.get(path, headers=headers)
        assert response.status_code == 200, response.text
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            path, headers = tokens.request(workload)
            start = time.perf_counter()
            response = await http.get(path, headers=headers)
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
            if workload == "search":
                assert response.json()["total"] == 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(requests // clients) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "variant": tokens.variant,
        "workload": workload,
        "clients": clients,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


async def run(url: str, variant: str, requests: int, clients: int, folder: Path) -> list[dict[str, Any]]:
    audit = variant.endswith("+audit")
    settings = Settings(var_dir=folder, database_url=url, audit_enabled=audit, warm_up=False)
    platform = build_platform(settings)
    if variant == "no-gate":
        platform.router.authenticator = TrustEveryone()  # type: ignore[assignment]
    await platform.database.connect()
    try:
        patients = await seed(platform, 200)
        ring = KeyRing.load_or_create(settings)
        system_token = mint_for(settings, ring, principal("system:bench"), scope="system/*.cruds")
        patient_tokens = {pid: mint_for(settings, ring, principal(f"patient:{pid}")) for pid in patients}
        app = create_app(settings, platform)
        tokens = Tokens(patients, system_token, patient_tokens, variant)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
            results = [await measure(http, tokens, workload, requests, clients) for workload in ("read", "search")]
    finally:
        await platform.database.close()
    return results


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    variants = ("no-gate", "system", "patient", "system+audit", "patient+audit")
    runs: list[dict[str, Any]] = []
    for clients in args.clients:
        for variant in variants:
            reset(args.db)
            with tempfile.TemporaryDirectory() as folder:
                for result in asyncio.run(run(args.db, variant, args.requests, clients, Path(folder))):
                    runs.append(result)
                    console.print(result)
    baseline = {(r["workload"], r["clients"]): r for r in runs if r["variant"] == "no-gate"}
    for result in runs:
        base = baseline[(result["workload"], result["clients"])]
        result["extra_ms_vs_no_gate"] = round(result["mean_ms"] - base["mean_ms"], 3)
    output = {"benchmark": "security_overhead", "runs": runs, "machine": describe(args.db)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    table = Table(title="security seam cost per request (in process, PostgreSQL)")
    for column in ("variant", "workload", "clients", "req/s", "mean ms", "p99 ms", "+ms vs no-gate"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            r["variant"],
            r["workload"],
            str(r["clients"]),
            f"{r['requests_per_second']:.0f}",
            f"{r['mean_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['extra_ms_vs_no_gate']:+.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
