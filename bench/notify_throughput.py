"""What notifications cost: creating them inside services' transactions, and e-mailing them through SMTP.

Usage: ``python -m bench.notify_throughput [--db postgresql://...] [--count 52096] [--batch 500] [--single 2000]``

On PostgreSQL, on a freshly migrated database (``notify_bench`` by default) with ``--count`` patient accounts that
have an e-mail address (the national count of CVE records by default, as if every one had a dose due):

- ``reminders``: ``notify()`` for every patient in transactions of ``--batch`` (a reminders job's shape: one
  transaction per batch of patients), each creating the outbox row and the Communication;
- ``reminders again``: the same run a second time — every key exists, nothing is created (the job re-run daily);
- ``single``: ``--single`` notifications each in its own transaction (the DSP's shape: one per stored document);
- ``delivery``: the delivery worker e-mails them all to a real SMTP server on loopback (aiosmtpd in its own
  process, accepting and discarding everything), with the rate cap lifted (SMTP on loopback, no TLS; logs at
  warning level, as one line per e-mail at info level is the operator's choice).

Writes bench/results/notify_throughput.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.databases import reset
from bench.machine import describe
from esante.db.engine import Database, create_database
from esante.fhir.store import ResourceStore
from esante.notify import make_key, notify
from esante.notify.delivery import DeliveryConfig, DeliveryWorker
from esante.notify.email import EmailSettings
from esante.notify.kinds import catalogue
from esante.notify.smtp import SmtpConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "notify_throughput.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/notify_bench")
console = Console()


async def seed(database: Database, count: int) -> None:
    now = int(time.time())
    rows = [
        (f"acct-{i}", "patient", f"user{i}", "active", f"p{i}", f"p{i}@example.lu", True, 0, 0, now, now)
        for i in range(count)
    ]
    async with database.transaction() as conn:
        await conn.executemany(
            "INSERT INTO account (id, kind, username, status, patient_id, email, totp_enabled, failed_logins, "
            "tokens_valid_after, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def reminders(database: Database, store: ResourceStore, count: int, batch: int) -> tuple[float, int]:
    created = 0
    started = time.perf_counter()
    for start in range(0, count, batch):
        async with database.transaction() as conn:
            session = store.session(conn)
            for i in range(start, min(count, start + batch)):
                result = await notify(
                    session,
                    recipient=f"Patient/p{i}",
                    kind="cve-reminder",
                    text="MMR dose 2 is due",
                    key=make_key("cve-reminder", f"Patient/p{i}", "MMR", 2),
                )
                created += result.created
            await session.flush()
    return time.perf_counter() - started, created


async def single(database: Database, store: ResourceStore, count: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        async with database.transaction() as conn:
            session = store.session(conn)
            await notify(
                session,
                recipient=f"Patient/p{i}",
                kind="dsp-new-document",
                text="New document",
                key=make_key("dsp-new-document", f"DocumentReference/d{i}"),
            )
            await session.flush()
        latencies.append((time.perf_counter() - t0) * 1000)
    return time.perf_counter() - started, latencies


async def deliver(database: Database, count: int) -> tuple[float, int]:
    """The worker against aiosmtpd in a process of its own (its Sink handler accepts and discards)."""
    import subprocess
    import sys

    from tests.live_server import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(1.0)
        config = DeliveryConfig(
            smtp=SmtpConfig("127.0.0.1", port, security="none", timeout=30),
            email=EmailSettings("eSante <no-reply@esante.lu>", "https://www.esante.lu", ("fr", "de", "en")),
            rate=count,
        )
        worker = DeliveryWorker(database, config, catalogue())
        started = time.perf_counter()
        sent = 0
        while True:
            report = await worker.run_once()
            sent += report.sent
            if report.handled == 0 or report.unreachable:
                break
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    return elapsed, sent


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(url: str, count: int, batch: int, single_count: int) -> dict[str, Any]:
    reset(url)
    database = create_database(url, pool_size=2)
    await database.connect()
    try:
        await seed(database, count)
        store = ResourceStore(database)
        first, created = await reminders(database, store, count, batch)
        again, created_again = await reminders(database, store, count, batch)
        one, latencies = await single(database, store, single_count)
        sending, sent = await deliver(database, count + single_count)
    finally:
        await database.close()
    return {
        "count": count,
        "batch": batch,
        "reminders": {"seconds": round(first, 2), "created": created, "per_second": round(created / first)},
        "reminders_again": {
            "seconds": round(again, 2),
            "created": created_again,
            "per_second": round(count / again),
        },
        "single": {
            "count": single_count,
            "per_second": round(single_count / one),
            "p50_ms": round(_pct(latencies, 0.5), 2),
            "p99_ms": round(_pct(latencies, 0.99), 2),
        },
        "delivery": {"seconds": round(sending, 2), "sent": sent, "per_second": round(sent / sending)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=DEFAULT_URL)
    parser.add_argument("--count", type=int, default=52_096)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--single", type=int, default=2_000)
    args = parser.parse_args()
    from esante import logs

    logs.configure("warning")
    figures = asyncio.run(main(args.db, args.count, args.batch, args.single))
    result = {"benchmark": "notify_throughput", "machine": describe(args.db), "results": figures}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    table = Table("phase", "figure")
    table.add_row("reminders (batch transactions)", f"{figures['reminders']['per_second']:,}/s")
    table.add_row("reminders again (all keys exist)", f"{figures['reminders_again']['per_second']:,}/s")
    single_figures = figures["single"]
    table.add_row(
        "single (own transaction)",
        f"{single_figures['per_second']:,}/s, p50 {single_figures['p50_ms']} ms, p99 {single_figures['p99_ms']} ms",
    )
    table.add_row("delivery (SMTP on loopback)", f"{figures['delivery']['per_second']:,} e-mails/s")
    console.print(table)
