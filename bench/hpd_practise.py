"""What the right to practise costs: the bearer gate's check on every professional's request, and one withdrawal
with its cascade.

Usage: ``python -m bench.hpd_practise [--db postgresql://...] [--requests 2000] [--professionals 25005]
[--changes 50]``

In process (httpx ASGITransport, no network) on PostgreSQL, on a freshly migrated database (``practise_bench`` by
default) whose ``hpd_right_to_practise`` holds ``--professionals`` rows (the national count; the worst case, as if
every professional's right had changed once and been restored):

- ``read`` variants: a professional's token reading one Practitioner, with the HPD's token check installed or not
  (the difference is the check: one indexed probe by eHealthID and Practitioner id);
- ``check alone``: the same check called directly (the SQL probe without the HTTP request around it);
- ``cascade``: ``--changes`` professionals, each with 3 PractitionerRoles and an account with 2 refresh tokens, are
  withdrawn then restored through ``change_right_to_practise`` (one transaction each, as the operation runs it).

Writes bench/results/hpd_practise.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.databases import reset
from bench.machine import describe
from esante.app import Platform, build_platform, create_app
from esante.config import Settings
from esante.hpd.model import EHEALTH_ID_SYSTEM
from esante.hpd.practise import Agent, change_right_to_practise, install_practise, practise_standing
from esante.identifiers.ehealth_id import make_ehealth_id
from esante.security.keys import KeyRing
from esante.security.standing import ProfessionalRef
from esante.security.tokens import mint_for, principal

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "hpd_practise.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/practise_bench")
AGENT = Agent("bench", "operator", "bench.hpd_practise")
console = Console()


def ehid(n: int) -> str:
    return make_ehealth_id(f"{100_000_000 + n:09d}")


async def seed(platform: Platform, professionals: int, changes: int) -> None:
    """``professionals`` rows in the right-to-practise table (all active again); ``changes`` + 1 Practitioners with
    roles, accounts and refresh tokens in the store."""
    now = int(time.time())
    rows = [(f"p{i}", ehid(i), "active", "2026-01-01", "restored", now * 1_000_000, now) for i in range(professionals)]
    async with platform.database.transaction() as conn:
        await conn.copy_rows(
            "hpd_right_to_practise",
            ("practitioner_id", "ehealth_id", "status", "effective", "reason", "changed_at", "tokens_valid_after"),
            rows,
        )
        session = platform.store.session(conn)
        for i in range(changes + 1):
            identifier = [{"system": EHEALTH_ID_SYSTEM, "value": ehid(i)}]
            await session.create({"resourceType": "Practitioner", "identifier": identifier}, res_id=f"p{i}")
            for r in range(3):
                role = {"resourceType": "PractitionerRole", "practitioner": {"reference": f"Practitioner/p{i}"}}
                await session.create(role, res_id=f"p{i}-r{r}")
        await session.flush()
        for i in range(changes + 1):
            await conn.execute(
                "INSERT INTO account (id, kind, username, status, practitioner_id, ehealth_id, roles, email, "
                "totp_enabled, failed_logins, tokens_valid_after, created_at, updated_at) "
                "VALUES (?, 'professional', ?, 'active', ?, ?, '', ?, TRUE, 0, 0, ?, ?)",
                (f"acct-{i}", f"doc{i}", f"p{i}", ehid(i), f"doc{i}@example.lu", now, now),
            )
            for t in range(2):
                await conn.execute(
                    "INSERT INTO oauth_refresh_token (token_hash, family, client_id, account_id, scope, "
                    "subject_role, expires_at, revoked, created_at) VALUES (?, ?, 'app', ?, 'user/*.rs', "
                    "'professional', ?, FALSE, ?)",
                    (f"{i:032d}{t:032d}", f"fam-{i}", f"acct-{i}", now + 86400, now),
                )
        await conn.execute("ANALYZE")


async def reads(platform: Platform, settings: Settings, requests: int, variant: str) -> dict[str, Any]:
    ring = KeyRing.load_or_create(settings)
    token = mint_for(settings, ring, principal(f"professional:{ehid(0)}"), scope="user/*.rs")
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, platform)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as http:
        for _ in range(200):
            assert (await http.get("/fhir/Practitioner/p0", headers=headers)).status_code == 200
        latencies = []
        started = time.perf_counter()
        for _ in range(requests):
            begin = time.perf_counter()
            response = await http.get("/fhir/Practitioner/p0", headers=headers)
            latencies.append(time.perf_counter() - begin)
            assert response.status_code == 200, response.text
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "variant": variant,
        "requests": requests,
        "requests_per_second": round(requests / elapsed, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


async def check_alone(platform: Platform, calls: int) -> dict[str, Any]:
    """The standing check by itself (the SQL probe), on one pooled connection."""
    who = ProfessionalRef(ehid(7), "p7")
    latencies = []
    async with platform.database.read() as conn:
        for _ in range(200):
            await practise_standing(conn, who, 0)
        for _ in range(calls):
            begin = time.perf_counter()
            assert await practise_standing(conn, who, int(time.time())) is None
            latencies.append(time.perf_counter() - begin)
    latencies.sort()
    return {
        "variant": "check alone",
        "calls": calls,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


async def cascade(platform: Platform, changes: int) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"withdraw": [], "restore": []}
    for i in range(1, changes + 1):
        for status, name in (("withdrawn", "withdraw"), ("active", "restore")):
            begin = time.perf_counter()
            async with platform.database.transaction() as conn:
                change = await change_right_to_practise(
                    platform.store.session(conn), f"p{i}", status, reason="bench", source="administrator", agent=AGENT
                )
            timings[name].append(time.perf_counter() - begin)
            assert len(change.roles) == 3
    out: dict[str, Any] = {"variant": "cascade", "professionals_changed": changes}
    for name, values in timings.items():
        values.sort()
        out[f"{name}_mean_ms"] = round(statistics.fmean(values) * 1000, 3)
        out[f"{name}_p99_ms"] = round(values[max(0, int(len(values) * 0.99) - 1)] * 1000, 3)
    return out


async def run(url: str, requests: int, professionals: int, changes: int, folder: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for installed in (False, True):
        settings = Settings(var_dir=folder, database_url=url, audit_enabled=False, warm_up=False)
        platform = build_platform(settings)
        if installed:
            install_practise(platform)
        await platform.database.connect()
        try:
            if not installed:
                await seed(platform, professionals, changes)
            variant = "read, token check" if installed else "read, no token check"
            results.append(await reads(platform, settings, requests, variant))
            if installed:
                results.append(await check_alone(platform, requests))
                results.append(await cascade(platform, changes))
        finally:
            await platform.database.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--professionals", type=int, default=25_005)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    reset(args.db)
    with tempfile.TemporaryDirectory() as folder:
        runs = asyncio.run(run(args.db, args.requests, args.professionals, args.changes, Path(folder)))
    base = runs[0]["mean_ms"]
    runs[1]["extra_ms_vs_no_check"] = round(runs[1]["mean_ms"] - base, 3)
    output = {
        "benchmark": "hpd_practise",
        "professionals_in_table": args.professionals,
        "runs": runs,
        "machine": describe(args.db),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    table = Table(title="right to practise: gate check and cascade (in process, PostgreSQL, audit off)")
    table.add_column("variant")
    table.add_column("figures")
    for r in runs:
        table.add_row(r["variant"], ", ".join(f"{k}={v}" for k, v in r.items() if k != "variant"))
    console.print(table)


if __name__ == "__main__":
    main()
