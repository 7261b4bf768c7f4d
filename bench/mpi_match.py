"""PDQm ``$match`` over HTTP against a national-scale register: latency, engine load time and memory, link quality.

Usage: ``python -m bench.mpi_match [--db postgresql://postgres@127.0.0.1:5432/bench_mpi] [--count 1200000]
[--seed 1] [--queries 5000]``. The database must hold the synthetic certified population of ``--count`` and
``--seed`` (``python -m bench.mpi_scale`` leaves it in ``bench_mpi``): the queries are establishment feed records
of that same population (``esante.synth.iter_feed_records``: typing errors, married names, swapped given names,
missing traits, persons absent from the register), so the truth of each query is known.

Steps: (1) start ``esante serve`` (one worker, audit on, as in production) on loopback and register the bench's
system client; (2) the first ``$match`` waits for the engine to index the register: its time is the load time, the
server's resident memory after it is the engine's footprint; (3) ``--queries`` look-ups one at a time (latency
p50/p95/p99/max, as a client sees it: HTTP, bearer token check, policy, engine, Patient reads, audit) and then with
8 concurrent clients (throughput); (4) quality: the certain candidate (the one the MPI would link automatically)
against the truth. Writes bench/results/mpi_match.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.machine import describe
from bench.run import start_server
from esante.app import build_platform
from esante.config import Settings
from esante.demo import register_system_client
from esante.mpi.model import MATRICULE_SYSTEM
from esante.security.keys import KeyRing
from esante.security.tokens import mint_for, principal
from esante.synth import FeedConfig, PopulationConfig, iter_feed_records, iter_persons

RESULTS = Path(__file__).resolve().parent / "results" / "mpi_match.json"
CLIENT = "bench-mpi-match"
console = Console()


def _rss_mb(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = round(int(rest.split()[0]) / 1024, 1)
    return values


async def _token(url: str, data_dir: Path, port: int) -> str:
    settings = Settings(database_url=url, var_dir=data_dir, port=port)
    platform = build_platform(settings)
    await platform.database.connect()
    try:
        async with platform.database.transaction() as conn:
            await conn.execute("DELETE FROM oauth_client WHERE client_id = ?", (CLIENT,))
        await register_system_client(platform.database, CLIENT, "MPI match benchmark", "system/Patient.rs")
    finally:
        await platform.database.close()
    ring = KeyRing.load_or_create(settings)
    return mint_for(settings, ring, principal(f"system:{CLIENT}"), scope="system/Patient.rs", ttl=3600)


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": resource}]}


def _matricule(patient: dict[str, Any]) -> str | None:
    return next((i["value"] for i in patient.get("identifier", []) if i.get("system") == MATRICULE_SYSTEM), None)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "mean": round(statistics.fmean(ordered), 2),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1], 2),
    }


async def _concurrent(base: str, headers: dict[str, str], bodies: list[dict[str, Any]], clients: int) -> float:
    queue = list(bodies)

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            while queue:
                response = await client.post("/fhir/Patient/$match", json=queue.pop())
                response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(bodies) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/bench_mpi")
    parser.add_argument("--count", type=int, default=1_200_000, help="size of the imported synthetic population")
    parser.add_argument("--seed", type=int, default=1, help="seed of the imported synthetic population")
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="esante-bench-match-"))
    token = asyncio.run(_token(args.db, data_dir, args.port))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    base = f"http://127.0.0.1:{args.port}"

    population = PopulationConfig(count=args.count, seed=args.seed)
    with console.status("generating feed queries"):
        records = list(
            iter_feed_records(iter_persons(population), population, FeedConfig(records=args.queries, seed=args.seed))
        )
    server = start_server(args.db, args.port, 1, data_dir, audit=True)  # as bench.run starts it
    try:
        rss_before = _rss_mb(server.pid)
        with console.status("first $match: the engine indexes the register"):
            started = time.perf_counter()
            first = httpx.post(
                f"{base}/fhir/Patient/$match", json=_body(records[0].resource), headers=headers, timeout=3600
            )
            load_seconds = time.perf_counter() - started
        first.raise_for_status()
        rss_loaded = _rss_mb(server.pid)
        latencies: list[float] = []
        outcome = {"linked_right": 0, "linked_wrong": 0, "not_linked": 0, "unregistered_linked": 0, "unregistered": 0}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client, Progress(console=console) as bar:
            task = bar.add_task("$match one at a time", total=len(records))
            for record in records:
                t0 = time.perf_counter()
                response = client.post("/fhir/Patient/$match", json=_body(record.resource))
                latencies.append((time.perf_counter() - t0) * 1000)
                response.raise_for_status()
                certain = [
                    e["resource"]
                    for e in response.json().get("entry", [])
                    if e["search"].get("extension", [{}])[0].get("valueCode") == "certain"
                ]
                linked = _matricule(certain[0]) if len(certain) == 1 else None
                if record.matricule is None:
                    outcome["unregistered"] += 1
                    outcome["unregistered_linked"] += linked is not None
                elif linked is None:
                    outcome["not_linked"] += 1
                elif linked == record.matricule:
                    outcome["linked_right"] += 1
                else:
                    outcome["linked_wrong"] += 1
                bar.advance(task)
        with console.status("$match with 8 concurrent clients"):
            throughput = asyncio.run(_concurrent(base, headers, [_body(r.resource) for r in records[:2000]], 8))
        rss_after = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    registered = len(records) - outcome["unregistered"]
    linked = outcome["linked_right"] + outcome["linked_wrong"] + outcome["unregistered_linked"]
    precision = outcome["linked_right"] / linked if linked else 1.0
    recall = outcome["linked_right"] / registered if registered else 1.0
    result = {
        "benchmark": "mpi_match",
        "database": args.db.rsplit("/", 1)[-1],
        "population": {"count": args.count, "seed": args.seed},
        "queries": len(records),
        "engine_load_seconds": round(load_seconds, 1),
        "server_rss_mb": {"before_load": rss_before, "after_load": rss_loaded, "after_queries": rss_after},
        "latency_ms_sequential": _percentiles(latencies),
        "throughput_req_s_8_clients": round(throughput, 1),
        "auto_link": {
            **outcome,
            "precision": round(precision, 5),
            "recall": round(recall, 5),
            "f1": round(2 * precision * recall / (precision + recall), 5) if precision + recall else 0.0,
        },
        "conditions": "one server worker, audit on, bearer token on every request; 2-core machine shared with "
        "other sessions' test runs unless stated",
        "machine": describe(args.db),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("measure", "value", title=f"$match against {args.count:,} certified identities")
    table.add_row("engine load (first $match)", f"{load_seconds:.1f} s")
    table.add_row("server RSS after load", f"{rss_loaded.get('VmRSS', 0):,.0f} MB")
    for key, value in result["latency_ms_sequential"].items():  # type: ignore[attr-defined]
        table.add_row(f"latency {key}", f"{value} ms")
    table.add_row("throughput, 8 clients", f"{throughput:,.0f} req/s")
    table.add_row("auto-link precision / recall", f"{precision:.4f} / {recall:.4f}")
    console.print(table)


if __name__ == "__main__":
    main()
