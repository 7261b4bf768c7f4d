"""WSE eligibility checks against the national affiliation register: ``python -m bench.wse_eligibility``.

(1) A synthetic CCSS register of ``--count`` affiliations (default 1.2 M: one per person, a former affiliation for
one person in six; CNS, CMFEP, CMFEC, EMCFL and foreign funds) written as the CSV the CCSS would send and loaded
with the importer of ``esante wse import-affiliations`` (the store's bulk path: COPY of Coverages, index rows and
``wse_affiliation``; no MPI Patients); then VACUUM ANALYZE and a CHECKPOINT. ``--reuse`` keeps a database already
loaded with that many affiliations. (2) ``esante serve --workers N`` on it. (3) wrk (C, one thread) with 16
connections POSTs CoverageEligibilityRequests (95 % affiliated persons, 5 % unknown, dates of service over the last
year) as a pharmacy's software, through the real gate, policy and audit; variants: GET, and the audit trail off.
Results (with the machine's load average before and after each run) → bench/results/wse_eligibility.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from bench.machine import describe, is_niced, process_tree
from bench.machine import process_cpu_seconds as proc_cpu
from bench.run import recreate_database, run_wrk
from esante.app import build_platform
from esante.config import Settings
from esante.demo import register_system_client
from esante.identifiers.matricule import make_matricule
from esante.security.keys import KeyRing
from esante.security.tokens import mint_for, principal

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CLIENT = "bench-pharmacy"
SCOPE = "system/CoverageEligibilityRequest.c system/Practitioner.r"
MATRICULE = "urn:oid:1.3.182.4.4"
FUNDS = [("CNS", 0.85), ("CMFEP", 0.07), ("CMFEC", 0.04), ("EMCFL", 0.01), ("FOREIGN-FR", 0.02), ("FOREIGN-BE", 0.01)]


def backend_pids(url: str, database: str) -> list[int]:
    sql = f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
    out = subprocess.run(["psql", url, "-tAc", sql], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def start_server(url: str, port: int, workers: int, data_dir: Path, audit: bool) -> subprocess.Popen[bytes]:
    """``esante serve`` as an operator starts it (6 connections per pool: PostgreSQL here is shared)."""
    env = dict(
        os.environ,
        ESANTE_LOG_LEVEL="warning",
        ESANTE_DB_POOL_SIZE="6",
        ESANTE_VAR_DIR=str(data_dir),
        ESANTE_AUDIT_ENABLED="true" if audit else "false",
    )
    cmd = [sys.executable, "-m", "esante.cli", "serve", "--db", url, "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("server did not start: " + (proc.stderr.read().decode() if proc.stderr else ""))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def person_matricules(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct valid matricules (birth dates 1930 to 2024, sequences drawn without repetition)."""
    out: set[str] = set()
    start = date(1930, 1, 1).toordinal()
    span = date(2024, 12, 31).toordinal() - start
    while len(out) < count:
        birth = date.fromordinal(start + rng.randrange(span)).strftime("%Y%m%d")
        out.add(make_matricule(birth, rng.randrange(1000)))
    return sorted(out)


def write_register(path: Path, count: int, rng: random.Random) -> list[str]:
    """The CSV the CCSS would send; returns the persons' matricules."""
    persons = person_matricules(-(-count * 6 // 7), rng)  # one person in six has two affiliations
    funds, weights = zip(*FUNDS, strict=True)
    n = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write("affiliation_id,matricule,insurer,type,start,end,status,relationship,subscriber\n")
        for i, person in enumerate(persons):
            fund = rng.choices(funds, weights)[0]
            kind = "s1-registration" if fund.startswith("FOREIGN") else "principal"
            if i % 6 == 0 and n < count - 1:  # a former affiliation, then the current one
                n += 1
                handle.write(f"A{n:09d},{person},CNS,principal,2005-01-01,2019-12-31,active,self,\n")
                n += 1
                handle.write(f"A{n:09d},{person},{fund},{kind},2020-01-01,,active,self,\n")
            else:
                n += 1
                handle.write(f"A{n:09d},{person},{fund},{kind},2010-01-01,,active,self,\n")
            if n >= count:
                break
    return persons


async def load(url: str, path: Path) -> dict[str, Any]:
    from esante.wse.affiliation_import import AffiliationImporter
    from esante.wse.insurers import ensure_insurers
    from esante.wse.sources import read_file

    platform = build_platform(Settings(database_url=url, audit_enabled=False, db_pool_size=2))
    await platform.database.connect()
    try:
        wse = platform.wse  # type: ignore[attr-defined]
        await ensure_insurers(platform.store, wse.insurers)
        importer = AffiliationImporter(platform.store, wse.index, wse.insurers, batch_size=2000)
        shown = [0.0]

        def progress(done: int) -> None:
            if time.monotonic() - shown[0] > 30:
                shown[0] = time.monotonic()
                print(f"  {done:,} lines", flush=True)

        result = await importer.run(read_file(path), progress)
    finally:
        await platform.database.close()
    return {
        "read": result.read,
        "created": result.created,
        "unchanged": result.unchanged,
        "rejected": len(result.rejected),
        "seconds": round(result.seconds, 1),
        "per_s": round(result.rate, 1),
    }


def affiliations(url: str) -> int:
    out = subprocess.run(["psql", url, "-tAc", "SELECT COUNT(*) FROM wse_affiliation"], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) if out.returncode == 0 else -1


def settle(url: str) -> None:
    subprocess.run(["psql", url, "-qc", "VACUUM ANALYZE"], check=True)
    subprocess.run(["psql", url, "-qc", "CHECKPOINT"], check=True)


def requests_file(data_dir: Path, persons: list[str], rng: random.Random, n: int = 20_000) -> None:
    """The bodies wrk sends (POST) and the same checks as queries (GET)."""
    today = date.today()
    bodies, queries = [], []
    for _ in range(n):
        unknown = rng.random() < 0.05  # unknown to the register
        who = make_matricule("19991231", rng.randrange(1000)) if unknown else rng.choice(persons)
        served = (today - timedelta(days=rng.randrange(365))).isoformat()
        body = {
            "resourceType": "CoverageEligibilityRequest",
            "status": "active",
            "purpose": ["validation"],
            "patient": {"identifier": {"system": MATRICULE, "value": who}},
            "created": today.isoformat(),
            "servicedDate": served,
        }
        bodies.append(orjson.dumps(body).decode())
        queries.append(urlencode({"patient": f"{MATRICULE}|{who}", "servicedDate": served}))
    (data_dir / "wse_bodies.ndjson").write_text("\n".join(bodies) + "\n")
    (data_dir / "wse_queries.txt").write_text("\n".join(queries) + "\n")


async def pharmacy_token(url: str, data_dir: Path, port: int) -> str:
    settings = Settings(database_url=url, var_dir=data_dir, port=port, db_pool_size=1)
    platform = build_platform(settings)
    await platform.database.connect()
    try:
        async with platform.database.transaction() as conn:
            await conn.execute("DELETE FROM oauth_client WHERE client_id = ?", (CLIENT,))
        await register_system_client(platform.database, CLIENT, "benchmark pharmacy", SCOPE, kind="pharmacy")
    finally:
        await platform.database.close()
    ring = KeyRing.load_or_create(settings)
    return mint_for(settings, ring, principal(f"system:{CLIENT}"), scope=SCOPE, ttl=settings.token_max_ttl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--admin-url", default=os.environ.get("BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--database", default="bench_wse")
    parser.add_argument("--count", type=int, default=1_200_000)
    parser.add_argument("--reuse", action="store_true", help="keep a database already holding --count affiliations")
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--variants", default="post,post-audit-off,post-c4,post-audit-off-c4,get")
    parser.add_argument("--rounds", type=int, default=1, help="run the variants this many times, in turn")
    parser.add_argument("--out", default=str(RESULTS / "wse_eligibility.json"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is required: apt-get install wrk")
    rng = random.Random(2024)
    data_dir = Path(os.environ.get("BENCH_VAR", "/tmp/esante-bench-wse"))
    data_dir.mkdir(parents=True, exist_ok=True)
    url = args.admin_url.rsplit("/", 1)[0] + f"/{args.database}"
    register = data_dir / f"affiliations-{args.count}.csv"
    report: dict[str, Any] = {"machine": describe(url), "count": args.count, "load_before": load_average()}
    if not register.exists():
        write_register(register, args.count, random.Random(1))
    persons = sorted({line.split(",")[1] for line in register.read_text().splitlines()[1:]})
    found = -1
    for _ in range(10 if args.reuse else 0):  # PostgreSQL is shared: a refused connection is not an empty database
        found = affiliations(url)
        if found >= 0:
            break
        time.sleep(10)
    if args.reuse and found < 0:
        sys.exit(f"cannot read {args.database} (PostgreSQL refuses connections?): not reloading it")
    if args.reuse and found == args.count:
        print(f"reusing {args.database} ({args.count:,} affiliations)")
    else:
        recreate_database(args.admin_url, args.database)
        print(f"loading {args.count:,} affiliations …", flush=True)
        report["load"] = asyncio.run(load(url, register))
        report["load"]["load_average_after"] = load_average()
        print(report["load"], flush=True)
        settle(url)
    requests_file(data_dir, persons, rng)
    token = asyncio.run(pharmacy_token(url, data_dir, args.port))
    runs = []
    for variant in [v for _ in range(args.rounds) for v in args.variants.split(",")]:
        # a variant: post | get, "-audit-off" for the trail off, "-c<N>" for N connections instead of --connections
        audit = "audit-off" not in variant
        connections = int(variant.rsplit("-c", 1)[1]) if "-c" in variant else args.connections
        os.environ["WSE_METHOD"] = "GET" if variant.startswith("get") else "POST"
        os.environ["WSE_WORKLOAD"] = variant
        server = None
        for attempt in range(4):  # PostgreSQL is shared here: its connection slots may be taken for a while
            try:
                server = start_server(url, args.port, args.workers, data_dir, audit)
                break
            except RuntimeError as error:
                print(f"server did not start (attempt {attempt + 1}): {str(error)[-200:]}", flush=True)
                time.sleep(30)
        if server is None:
            continue
        try:
            run_wrk("wse_check.lua", args.port, 5, connections, data_dir, token)  # warm-up, not measured
            time.sleep(2)
            before = load_average()
            pids, backends = process_tree(server.pid), backend_pids(url, args.database)
            chainer = [pid for pid in pids if is_niced(pid)]
            cpu_app, cpu_db, cpu_chain = proc_cpu(pids), proc_cpu(backends), proc_cpu(chainer)
            cpu_gen = resource.getrusage(resource.RUSAGE_CHILDREN)
            try:
                result = run_wrk("wse_check.lua", args.port, args.duration, connections, data_dir, token)
            except subprocess.CalledProcessError as error:  # recorded, and the next variant runs
                runs.append({"variant": variant, "error": (error.stderr or "")[-500:], "load_before": before})
                continue
            gen = resource.getrusage(resource.RUSAGE_CHILDREN)
            app_ms = (proc_cpu(pids) - cpu_app) * 1000 / max(1, result["requests"])
            db_ms = (proc_cpu(backends) - cpu_db) * 1000 / max(1, result["requests"])
            chain_ms = (proc_cpu(chainer) - cpu_chain) * 1000 / max(1, result["requests"])
            gen_ms = (
                (gen.ru_utime + gen.ru_stime - cpu_gen.ru_utime - cpu_gen.ru_stime) * 1000 / max(1, result["requests"])
            )
            result.update(
                variant=variant,
                audit=audit,
                connections=connections,
                load_before=before,
                load_after=load_average(),
                cpu_ms_per_check={
                    "server": round(app_ms, 3),
                    "of_which_audit_chain_process": round(chain_ms, 3),
                    "postgresql": round(db_ms, 3),
                    "wrk": round(gen_ms, 3),
                },
                # what two cores would serve if they did nothing else (no load generator, no other sessions)
                checks_per_s_on_two_free_cores=round(2000 / (app_ms + db_ms), 0) if app_ms + db_ms else None,
            )
            print(json.dumps(result), flush=True)
            runs.append(result)
            Path(args.out).write_text(json.dumps({**report, "runs": runs}, indent=2) + "\n")  # partial results
        finally:
            server.terminate()
            server.wait(timeout=60)
    report.update(
        runs=runs,
        server_workers=args.workers,
        connections=args.connections,
        load_generator="wrk 4.1 (1 thread) on the same 2 cores",
        target="≥ 2,000 checks/s with p99 ≤ 15 ms",
    )
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
