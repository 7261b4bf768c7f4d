"""REST benchmark on PostgreSQL: CRUD mix, searches, transaction-bundle ingest, and pgbench as the yardstick.

Usage: ``python -m bench.run [--patients 5000] [--duration 20] [--connections 16] [--workers 2] [--audit on|off]``

Steps: (1) fresh database ``esante_bench``, migrated; (2) seed patients + observations through the store's
transaction path (progress bar); (3) register the benchmark's system client and mint its token, and a token for
each of 1,000 patients; (4) start ``esante serve`` with N uvicorn workers (audit trail on, as in production, unless
``--audit off``); (5) drive it with wrk (C, so the load generator takes as little of the 2 cores as possible) for
each workload, every request carrying a bearer token through the gate and the policy; (6) run pgbench with the SQL
a read and a token search issue, to express our throughput as a fraction of what PostgreSQL alone does on the same
box; (7) write bench/results/rest.json (``rest_audit_off.json`` without the trail) and print a table. Everything
runs on this machine, load generator included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.machine import describe
from esante.app import build_platform
from esante.config import Settings
from esante.db.migrate import upgrade
from esante.demo import register_system_client
from esante.fhir.context import RequestContext
from esante.security.keys import KeyRing
from esante.security.policy import Caller
from esante.security.tokens import mint_for, principal

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CODES = ["29463-7", "8480-6", "8462-4", "8310-5", "2339-0"]
LOADER = Caller(kind="system", subject="bench-loader", scopes=("system/*.cruds",))
BENCH_CLIENT = "bench-integrator"
console = Console()


def recreate_database(admin_url: str, name: str) -> str:
    subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {name}"], check=True)
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {name}"], check=True)
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    return url


def patient_resource(rng: random.Random, ident: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "active": True,
        "identifier": [{"system": "urn:oid:1.3.182.2.4.2", "value": ident}],
        "name": [{"family": rng.choice(["Schmit", "Muller", "Weber", "Wagner", "Da Silva"]), "given": ["Bench"]}],
        "gender": rng.choice(["female", "male"]),
        "birthDate": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    }


def observation_resource(rng: random.Random, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": rng.choice(CODES)}]},
        "subject": {"reference": subject},
        "effectiveDateTime": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:00:00Z",
        "valueQuantity": {
            "value": rng.randint(40, 200),
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }


def document_resource(rng: random.Random, subject: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": rng.choice(["11488-4", "18842-5", "11502-2"])}]},
        "subject": {"reference": subject},
        "date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T09:00:00Z",
        "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/bench-document", "size": 1024}}],
    }


def make_bundle(rng: random.Random, first_ident: int, patients: int = 10, per_patient: int = 8) -> dict[str, Any]:
    """A transaction of ``patients`` x (1 patient + ``per_patient`` observations + 1 document), urn:uuid-linked."""
    entries = []
    for i in range(patients):
        full_url = f"urn:uuid:{rng.getrandbits(128):032x}"
        entries.append(
            {
                "fullUrl": full_url,
                "resource": patient_resource(rng, str(first_ident + i)),
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        for _ in range(per_patient):
            entries.append(
                {
                    "resource": observation_resource(rng, full_url),
                    "request": {"method": "POST", "url": "Observation"},
                }
            )
        entries.append(
            {"resource": document_resource(rng, full_url), "request": {"method": "POST", "url": "DocumentReference"}}
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def seed(url: str, patients: int, data_dir: Path) -> dict[str, Any]:
    """Load ``patients`` patients with 9 observations each, in 100-resource transactions."""
    platform = build_platform(Settings(database_url=url))
    await platform.database.connect()
    rng = random.Random(42)
    patient_ids: list[str] = []
    idents: list[str] = []
    observation_ids: list[str] = []
    document_ids: list[str] = []
    started = time.perf_counter()
    with Progress(console=console) as progress:
        task = progress.add_task("seeding", total=patients)
        for start in range(0, patients, 10):
            bundle = make_bundle(rng, 2_000_000_000 + start)
            ctx = RequestContext(caller=LOADER, prefer_return="minimal")
            outcome = await platform.router.bundles.process(ctx, bundle)
            assert isinstance(outcome.body, dict)
            for entry in outcome.body["entry"]:
                location = entry["response"]["location"].split("/_history")[0]
                res_type, res_id = location.split("/")[-2:]
                {"Patient": patient_ids, "Observation": observation_ids, "DocumentReference": document_ids}[
                    res_type
                ].append(res_id)
            idents.extend(str(2_000_000_000 + start + i) for i in range(10))
            progress.update(task, advance=10)
    elapsed = time.perf_counter() - started
    await platform.database.close()
    (data_dir / "patients.txt").write_text("\n".join(patient_ids) + "\n")
    (data_dir / "identifiers.txt").write_text("\n".join(idents) + "\n")
    (data_dir / "observations.txt").write_text("\n".join(observation_ids) + "\n")
    (data_dir / "documents.txt").write_text("\n".join(document_ids) + "\n")
    (data_dir / "bundle.json").write_text(json.dumps(make_bundle(rng, 3_000_000_000)))
    total = len(patient_ids) + len(observation_ids) + len(document_ids)
    return {"resources": total, "seconds": round(elapsed, 2), "resources_per_s": round(total / elapsed, 1)}


async def credentials(url: str, data_dir: Path, port: int) -> str:
    """Register the benchmark's all-rights system client; write 1,000 patients' tokens; return the client's token.

    Tokens are minted as the operator's CLI does, with the server's key folder (``data_dir``) and its issuer and
    audience (the port), so the server verifies them like any other.
    """
    settings = Settings(database_url=url, var_dir=data_dir, port=port)
    platform = build_platform(settings)
    await platform.database.connect()
    try:
        await register_system_client(platform.database, BENCH_CLIENT, "benchmark", "system/*.cruds")
    finally:
        await platform.database.close()
    ring = KeyRing.load_or_create(settings)
    ttl = settings.token_max_ttl
    patients = (data_dir / "patients.txt").read_text().split()[:1000]
    lines = [f"{pid}\t{mint_for(settings, ring, principal(f'patient:{pid}'), ttl=ttl)}" for pid in patients]
    (data_dir / "patient_tokens.txt").write_text("\n".join(lines) + "\n")
    return mint_for(settings, ring, principal(f"system:{BENCH_CLIENT}"), scope="system/*.cruds", ttl=ttl)


def start_server(url: str, port: int, workers: int, data_dir: Path, audit: bool) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        ESANTE_LOG_LEVEL="warning",
        ESANTE_DB_POOL_SIZE="8",
        ESANTE_VAR_DIR=str(data_dir),
        ESANTE_AUDIT_ENABLED="true" if audit else "false",
    )
    cmd = [
        sys.executable,
        "-m",
        "esante.cli",
        "serve",
        "--db",
        url,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))


def run_wrk(script: str, port: int, duration: int, connections: int, data_dir: Path, token: str) -> dict[str, Any]:
    env = dict(os.environ, BENCH_DIR=str(HERE), BENCH_DATA=str(data_dir), BENCH_TOKEN=token)
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "wrk" / script),
        f"http://127.0.0.1:{port}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    return json.loads(line.removeprefix("WRK_JSON "))


PGBENCH_SETUP = """
DROP TABLE IF EXISTS bench_ids;
CREATE TABLE bench_ids (n int PRIMARY KEY, res_id text NOT NULL, ident text NOT NULL);
"""

# pgbench would read ":oid" inside a literal as a variable, hence chr(58) (folded to a constant by the planner).
PGBENCH_READ = """\\set n random(1, {n})
SELECT content FROM resource WHERE res_type = 'Patient' AND is_current
  AND res_id = (SELECT res_id FROM bench_ids WHERE n = :n);
"""

PGBENCH_SEARCH = """\\set n random(1, {n})
SELECT r.rid, r.content FROM resource r WHERE r.res_type = 'Patient' AND r.is_current AND NOT r.deleted
  AND r.rid IN (SELECT t.rid FROM idx_token t WHERE t.res_type = 'Patient' AND t.param = 'identifier'
    AND t.code = (SELECT ident FROM bench_ids WHERE n = :n)
    AND t.system = 'urn' || chr(58) || 'oid' || chr(58) || '1.3.182.2.4.2')
  ORDER BY r.rid LIMIT 21;
"""


def run_pgbench(url: str, data_dir: Path, duration: int, connections: int) -> dict[str, Any]:
    """TPS of the read and search statements executed by PostgreSQL alone (pgbench, prepared mode)."""
    if not shutil.which("pgbench"):
        return {"error": "pgbench not installed"}
    ids = (data_dir / "patients.txt").read_text().split()
    idents = (data_dir / "identifiers.txt").read_text().split()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PGBENCH_SETUP)
        with conn.cursor().copy("COPY bench_ids FROM STDIN") as copy:
            for i, (pid, ident) in enumerate(zip(ids, idents, strict=False)):
                copy.write_row((i + 1, pid, ident))
        conn.execute("ANALYZE bench_ids")
    results: dict[str, Any] = {}
    for name, template in (("read", PGBENCH_READ), ("search_token", PGBENCH_SEARCH)):
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
            handle.write(template.format(n=len(ids)))
        out = subprocess.run(
            [
                "pgbench",
                "-n",
                "-M",
                "prepared",
                f"-c{connections}",
                "-j2",
                f"-T{duration}",
                "-f",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps"))
        results[name] = {"tps": round(tps, 1)}
        os.unlink(handle.name)
    subprocess.run(["psql", url, "-qc", "DROP TABLE bench_ids"], check=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--audit", choices=("on", "off"), default="on")
    args = parser.parse_args()
    audit = args.audit == "on"
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install wrk")
    url = recreate_database(args.admin_url, "esante_bench")
    data_dir = Path(tempfile.mkdtemp(prefix="esante-bench-"))
    seeded = asyncio.run(seed(url, args.patients, data_dir))
    console.print(f"seeded {seeded['resources']} resources in {seeded['seconds']} s (in-process)")
    # fresh statistics, as an operator runs after a bulk import (without them the planner guesses badly)
    subprocess.run(["psql", url, "-qc", "VACUUM ANALYZE"], check=True)
    # start from a clean checkpoint: otherwise the one the bulk load's WAL triggers lands in the first workload
    subprocess.run(["psql", url, "-qc", "CHECKPOINT"], check=True)
    token = asyncio.run(credentials(url, data_dir, args.port))
    server = start_server(url, args.port, args.workers, data_dir, audit)
    # warm-up, not measured: every worker finishes its start-up and every pooled connection prepares its
    # statements (the first worker may answer while the second is still warming up)
    time.sleep(5)
    run_wrk("crud.lua", args.port, 5, args.connections, data_dir, token)
    run_wrk("patient.lua", args.port, 3, args.connections, data_dir, token)
    workloads: dict[str, Any] = {}
    try:
        runs = [("crud.lua", args.connections), ("search.lua", args.connections), ("ingest.lua", args.connections)]
        runs += [("search.lua", c) for c in (8, 4) if c < args.connections]
        runs += [("patient.lua", args.connections)]
        for script, connections in runs:
            result = run_wrk(script, args.port, args.duration, connections, data_dir, token)
            result["connections"] = connections
            if script == "ingest.lua":
                result["resources_per_s"] = round(result["req_per_s"] * 100, 1)
            if result["non_2xx"] > result["requests"] // 100:  # refused requests would look fast: not a result
                raise RuntimeError(f"{script}: {result['non_2xx']} of {result['requests']} answers were not 2xx")
            name = result["workload"] if connections == args.connections else f"{result['workload']}_c{connections}"
            workloads[name] = result
            console.print(name, result)
    finally:
        server.terminate()
        server.wait(timeout=30)
    pgbench = run_pgbench(url, data_dir, min(args.duration, 15), args.connections)
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": describe(url),
        "setup": {
            "server_workers": args.workers,
            "connections": args.connections,
            "duration_s": args.duration,
            "load_generator": "wrk 4.1 (1 thread) on the same machine",
            "database": "PostgreSQL (local)",
            "audit_trail": audit,
            "authentication": "every request carries a bearer token (ES256 JWT) checked by the gate",
            "seed": seeded,
        },
        "workloads": workloads,
        "pgbench": pgbench,
    }
    if "read" in pgbench:
        report["fraction_of_postgres"] = {
            "crud_vs_read": round(workloads["crud"]["req_per_s"] / pgbench["read"]["tps"], 3),
            "search_vs_token_search": round(workloads["search"]["req_per_s"] / pgbench["search_token"]["tps"], 3),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("rest.json" if audit else "rest_audit_off.json")).write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"eSanté REST benchmark (PostgreSQL, audit {'on' if audit else 'off'})")
    for column in ("workload", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        table.add_column(column)
    for name, result in workloads.items():
        table.add_row(
            name,
            str(result["connections"]),
            f"{result['req_per_s']:.0f}",
            f"{result['p50_ms']:.1f}",
            f"{result['p95_ms']:.1f}",
            f"{result['p99_ms']:.1f}",
            str(result["errors"]),
        )
    console.print(table)
    console.print(f"pgbench: {pgbench}")
    shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
