"""Directory searches over HTTP against the national directory: the public search and IHE mCSD ITI-90/ITI-91.

Usage: ``python -m bench.hpd_search [--admin postgresql://postgres@127.0.0.1:5432/postgres] [--count 25005]
[--queries 300] [--skip-import]``.

Steps: (1) a fresh database ``bench_hpd_search`` (kept with ``--skip-import``); (2) ``esante hpd synth`` writes a
synthetic national directory of ``--count`` professionals and ``esante hpd import`` loads it (as an operator would);
(3) start ``esante serve`` (one worker, audit on, as in production; the public search's brake off so the load
generator is not braked); (4) draw real values from the data (family names, cities, specialties, organisations
with sub-organisations) and run ``--queries`` requests of each kind one at a time — latency as a client sees it
(HTTP, token check or anonymous brake, policy, SQL, includes, audit). Writes bench/results/hpd_search.json.
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
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.machine import describe
from bench.run import recreate_database, start_server
from esante.config import Settings
from esante.db.engine import create_database
from esante.demo import register_system_client
from esante.security.keys import KeyRing
from esante.security.tokens import mint_for, principal

RESULTS = Path(__file__).resolve().parent / "results" / "hpd_search.json"
DATABASE = "bench_hpd_search"
CLIENT = "bench-hpd-search"
SCOPES = "system/*.rs"
console = Console()


def _esante(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "esante.cli", *args], check=True)
    return time.perf_counter() - started


async def _prepare(url: str, data_dir: Path, port: int) -> tuple[str, dict[str, list[str]]]:
    """Register the bench's client, mint its token, and draw search values from the directory."""
    settings = Settings(database_url=url, var_dir=data_dir, port=port)
    database = create_database(url, pool_size=1)
    await database.connect()
    try:
        async with database.transaction() as conn:
            await conn.execute("DELETE FROM oauth_client WHERE client_id = ?", (CLIENT,))
        await register_system_client(database, CLIENT, "HPD search benchmark", SCOPES)
        async with database.read() as conn:
            values = {
                "family": await _column(conn, "idx_string", "Practitioner", "family", "value_exact"),
                "city": await _column(conn, "idx_string", "Location", "address-city", "value_exact"),
                "specialty": await _column(conn, "idx_token", "PractitionerRole", "specialty", "code"),
                "parent": await _parents(conn),
                "organization": await _column(conn, "idx_string", "Organization", "name", "value_norm"),
            }
    finally:
        await database.close()
    ring = KeyRing.load_or_create(settings)
    return mint_for(settings, ring, principal(f"system:{CLIENT}"), scope=SCOPES, ttl=7200), values


async def _column(conn: Any, table: str, res_type: str, param: str, column: str) -> list[str]:
    rows = await conn.fetch(
        f"SELECT DISTINCT {column} FROM {table} WHERE res_type = ? AND param = ? AND {column} IS NOT NULL",
        [res_type, param],
    )
    return sorted(str(row[0]) for row in rows)


async def _parents(conn: Any) -> list[str]:
    """Organisations with sub-organisations, else (the synthetic directory has no hierarchy) those managing sites:
    the recursive walk then runs one step and finds nothing below."""
    for param, source in (("partof", "Organization"), ("organization", "Location")):
        rows = await conn.fetch(
            "SELECT DISTINCT target_id FROM idx_reference WHERE res_type = ? AND param = ?", [source, param]
        )
        if rows:
            return sorted(str(row[0]) for row in rows)
    return []


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"mean": round(statistics.fmean(ordered), 2), "p50": at(0.5), "p95": at(0.95), "p99": at(0.99)}


def _fragment(rng: random.Random, names: list[str]) -> str:
    """Five letters from inside a real organisation name."""
    name = rng.choice(names)
    start = rng.randrange(0, max(1, len(name) - 5))
    return quote(name[start : start + 5].strip() or name)


def _workloads(values: dict[str, list[str]], since: str) -> dict[str, tuple[bool, Callable[[random.Random], str]]]:
    """name → (anonymous?, a function drawing one request path below /fhir)."""
    family, city, specialty, parent = values["family"], values["city"], values["specialty"], values["parent"]
    organization = values["organization"]

    def pick(rng: random.Random, items: list[str]) -> str:
        return quote(rng.choice(items))

    return {
        "public: name": (True, lambda r: f"PractitionerRole/$hpd-directory?name={pick(r, family)}"),
        "public: profession + locality": (
            True,
            lambda r: f"PractitionerRole/$hpd-directory?profession=medecin&locality={pick(r, city)}",
        ),
        "public: specialty + locality": (
            True,
            lambda r: f"PractitionerRole/$hpd-directory?specialty={pick(r, specialty)}&locality={pick(r, city)}",
        ),
        "public: name prefix (4 letters)": (
            True,
            lambda r: f"PractitionerRole/$hpd-directory?name={quote(r.choice(family)[:4])}",
        ),
        "ITI-90 Practitioner?family": (False, lambda r: f"Practitioner?family={pick(r, family)}"),
        "ITI-90 PractitionerRole?practitioner.family&_include": (
            False,
            lambda r: f"PractitionerRole?practitioner.family={pick(r, family)}&_include=PractitionerRole:practitioner",
        ),
        "ITI-90 PractitionerRole?specialty&location.address-city": (
            False,
            lambda r: f"PractitionerRole?specialty={pick(r, specialty)}&location.address-city={pick(r, city)}",
        ),
        "ITI-90 Location?organization:below": (False, lambda r: f"Location?organization:below={pick(r, parent)}"),
        "ITI-90 Organization?name:contains&_revinclude": (
            False,
            lambda r: f"Organization?name:contains={_fragment(r, organization)}&_revinclude=Location:organization",
        ),
        "ITI-91 Practitioner/_history?_since (100 a page)": (
            False,
            lambda r: f"Practitioner/_history?_since={quote(since)}&_count=100&_offset={r.randrange(0, 2000, 100)}",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--count", type=int, default=25_005)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--skip-import", action="store_true")
    args = parser.parse_args()
    url = args.admin.rsplit("/", 1)[0] + f"/{DATABASE}"
    data_dir = Path(tempfile.mkdtemp(prefix="esante-bench-hpd-"))
    load: dict[str, Any] = {}
    if not args.skip_import:
        recreate_database(args.admin, DATABASE)
        csv = data_dir / "directory.csv"
        load["synth_seconds"] = round(_esante("hpd", "synth", "--out", str(csv), "--count", str(args.count)), 1)
        load["import_seconds"] = round(_esante("hpd", "import", str(csv), "--db", url), 1)
    token, values = asyncio.run(_prepare(url, data_dir, args.port))
    os.environ["ESANTE_RATE_LIMIT_DIRECTORY"] = "0"  # the brake is per address: the load generator is one address
    server = start_server(url, args.port, 1, data_dir, audit=True)
    base = f"http://127.0.0.1:{args.port}/fhir"
    rng = random.Random(args.seed)
    results: dict[str, Any] = {}
    try:
        with httpx.Client(timeout=60) as http:
            authorized = {"Authorization": f"Bearer {token}"}
            since = http.get(f"{base}/Practitioner/_history?_count=1", headers=authorized).json()["meta"]["lastUpdated"]
            since = since[:4] + "-01-01"  # every version of the import
            with Progress(console=console) as bar:
                for name, (anonymous, draw) in _workloads(values, since).items():
                    task = bar.add_task(name, total=args.queries)
                    latencies: list[float] = []
                    matches: list[int] = []
                    for _ in range(args.queries):
                        path = draw(rng)
                        t0 = time.perf_counter()
                        response = http.get(f"{base}/{path}", headers={} if anonymous else authorized)
                        latencies.append((time.perf_counter() - t0) * 1000)
                        if response.status_code != 200:
                            raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")
                        body = response.json()
                        matches.append(
                            sum(1 for e in body.get("entry", []) if e.get("search", {}).get("mode") != "include")
                        )
                        bar.advance(task)
                    results[name] = {
                        "latency_ms": _percentiles(latencies),
                        "entries_per_answer_mean": round(statistics.fmean(matches), 1),
                    }
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {
        "benchmark": "hpd_search",
        "directory": {"professionals": args.count, "seed": args.seed, **load},
        "queries_per_kind": args.queries,
        "searches": results,
        "conditions": "PostgreSQL, one server worker, audit on; public searches without a token (brake off), the "
        "others with a system client's token (system/*.rs); requests one at a time from this machine",
        "machine": describe(url),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("search", "p50 ms", "p95 ms", "p99 ms", "entries", title=f"directory of {args.count:,} professionals")
    for name, figures in results.items():
        latency = figures["latency_ms"]
        table.add_row(
            name, str(latency["p50"]), str(latency["p95"]), str(latency["p99"]), str(figures["entries_per_answer_mean"])
        )
    console.print(table)


if __name__ == "__main__":
    main()
