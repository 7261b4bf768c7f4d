"""The cost of the DSP access log (PostgreSQL), measured in process.

Usage: ``python -m bench.dsp_access_log [--db postgresql://postgres@127.0.0.1:5432/bench_dsp_access_log]
[--patients 5000] [--docs 10] [--events 5000] [--samples 2000]``. The database is emptied and migrated first.

Load: ``--patients`` certified identities with active DSPs and ``--docs`` DocumentReferences each (the twelve classes
in turn, authors spread over 200 professionals), a physician in the trusted circle of 2,000 patients, an emergency
access of another physician to 200 of them.

Measure:

1. the **capture** (the Auditor's annotator, ``access_log_capture.py``): what it adds to the audit of one
   interaction, before the events are journaled — a trusted-circle physician's read of a document (one statement
   over the document, one over their Practitioner), their search of a patient's documents (one over their grants),
   the emergency physician's read, and the patient's own read (only the DSP record's lookup); p50/p99;
2. the **log** (``$dsp-access-log``, the operation's handler with the patient as caller): a patient whose trail holds
   ``--events`` annotated document accesses (written through the Auditor as the REST API writes them), the first
   page of 50 and a page deep in the log through its cursor; p50/p99.

Writes bench/results/dsp_access_log.json.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.dsp_access import _caller, _document, _patient, _practitioner, _reset
from bench.machine import describe
from esante.app import Platform, build_platform
from esante.config import Settings
from esante.dsp.access_log import access_log_operation
from esante.dsp.access_log_capture import AccessLogCapture
from esante.dsp.audit import SYSTEM_ACTOR
from esante.dsp.context import dsp_context
from esante.dsp.grants import add_grant, declare_emergency
from esante.dsp.grants_model import Kind
from esante.fhir.context import RequestContext
from esante.fhir.operations import OperationCall
from esante.security.audit import AuditRecord, Touched, build_events
from esante.security.policy import Caller

RESULTS = Path(__file__).resolve().parent / "results" / "dsp_access_log.json"
console = Console()
GRANTED = 2000


async def load(platform: Platform, patients: int, docs: int) -> list[list[str]]:
    """Patients, documents and grants; returns each patient's document ids."""
    store = platform.store
    ids: list[list[str]] = [[] for _ in range(patients)]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("loading", total=patients)
        async with store.database.transaction() as conn:
            session = store.session(conn)
            people = [(f"a{k}", "medecin") for k in range(200)] + [("gp", "medecin"), ("em", "medecin")]
            for pid, profession in people:
                await session.create(_practitioner(pid, profession), res_id=pid)
            await session.flush()
        for start in range(0, patients, 500):
            async with store.database.transaction() as conn:
                session = store.session(conn)
                for i in range(start, min(start + 500, patients)):
                    await session.create(_patient(i), res_id=f"p{i}")
                await session.flush()
                for i in range(start, min(start + 500, patients)):
                    for j in range(docs):
                        stored = await session.create(_document(i, j), client_id=False)
                        ids[i].append(stored.res_id)
                await session.flush()
            progress.advance(task, min(500, patients - start))
    context = dsp_context(platform)
    async with store.database.transaction() as conn:
        session = store.session(conn)
        for i in range(min(GRANTED, patients)):
            await add_grant(
                session, context, f"p{i}", Kind.TRUSTED_CIRCLE, actor=SYSTEM_ACTOR, server="bench", practitioner_id="gp"
            )
            if i % 10 == 0:
                await declare_emergency(session, context, f"p{i}", "em", "bench", actor=SYSTEM_ACTOR, server="bench")
        await session.flush()
    async with store.database.transaction() as conn:
        await conn.execute("ANALYZE")
    return ids


def _record(
    caller: Caller, interaction: str, path: str, touched: tuple[Touched, ...], recorded: str = "2026-01-01T00:00:00Z"
) -> AuditRecord:
    parts = path.split("?")[0].split("/")
    return AuditRecord(
        interaction=interaction,
        status=200,
        caller=caller,
        request_id="bench",
        recorded=recorded,
        server="bench",
        path=path,
        resource_type=parts[0],
        resource_id=parts[1] if len(parts) > 1 else None,
        touched=touched,
    )


def _instant(n: int) -> str:
    """The n-th access's time: one a second from 2026-01-01."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_767_225_600 + n))


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


async def measure_capture(capture: AccessLogCapture, make: Any, samples: int, rng: random.Random) -> dict[str, float]:
    times: list[float] = []
    for _ in range(samples):
        record = make(rng)
        events = build_events(record)
        started = time.perf_counter()
        await capture(record, copy.deepcopy(events))
        times.append((time.perf_counter() - started) * 1000)
    return _stats(times)


async def fill_log(platform: Platform, patient: int, documents: list[str], events: int, gp: Caller) -> None:
    """``events`` reads of the patient's documents by the trusted-circle physician, through the Auditor."""
    assert platform.auditor is not None
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("writing the trail", total=events)
        for n in range(events):
            doc = documents[n % len(documents)]
            touched = (Touched(f"DocumentReference/{doc}", (f"Patient/p{patient}",)),)
            record = _record(gp, "read", f"DocumentReference/{doc}", touched, _instant(n))
            await platform.auditor.record(record)
            if n % 200 == 199:
                await platform.auditor.flush()
            progress.advance(task)
    await platform.auditor.flush()


async def measure_log(platform: Platform, patient: str, samples: int, query: list[tuple[str, str]]) -> Any:
    operation = access_log_operation(platform)
    caller = Caller("patient", f"patient:{patient}", ("patient/*.rs",), attributes={"person_id": patient})
    ctx = RequestContext(caller=caller, base_url="http://bench/fhir")
    times: list[float] = []
    body: Any = None
    for _ in range(samples):
        started = time.perf_counter()
        async with platform.database.read(search=True) as conn:
            session = platform.store.session(conn, caller)
            call = OperationCall(
                session, ctx, "dsp-access-log", "Patient", patient, {"resourceType": "Parameters"}, "GET", tuple(query)
            )
            outcome = await operation.handler(call)
        times.append((time.perf_counter() - started) * 1000)
        body = outcome.body
    return _stats(times), body


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/bench_dsp_access_log")
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    from esante.db.migrate import upgrade

    await _reset(args.db)
    upgrade(args.db)
    settings = Settings(
        database_url=args.db,
        var_dir=Path("/tmp/bench-dsp-access-log"),
        audit_enabled=True,
        warm_up=False,
        dsp_refusal_window_days=0,
        dsp_opening_notice_interval=0,
    )
    platform = build_platform(settings)
    await platform.database.connect()
    results: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        ids = await load(platform, args.patients, args.docs)
        console.print(f"loaded {args.patients * args.docs:,} documents in {time.perf_counter() - started:.0f} s")
        capture = AccessLogCapture(platform.database, dsp_context(platform))
        gp = await _caller(platform, "professional", "gp")
        em = await _caller(platform, "professional", "em")
        granted = min(GRANTED, args.patients)

        def read(caller: Caller, pick: Any) -> Any:
            def make(rng: random.Random) -> AuditRecord:
                i = pick(rng)
                doc = rng.choice(ids[i])
                touched = (Touched(f"DocumentReference/{doc}", (f"Patient/p{i}",)),)
                return _record(caller, "read", f"DocumentReference/{doc}", touched)

            return make

        def search(rng: random.Random) -> AuditRecord:
            i = rng.randrange(granted)
            touched = (Touched(f"DocumentReference/{ids[i][0]}", (f"Patient/p{i}",)),)
            return _record(gp, "search-type", f"DocumentReference?patient=Patient/p{i}", touched)

        def own(rng: random.Random) -> AuditRecord:
            i = rng.randrange(args.patients)
            caller = Caller("patient", f"patient:p{i}", ("patient/*.rs",), attributes={"person_id": f"p{i}"})
            touched = (Touched(f"DocumentReference/{ids[i][0]}", (f"Patient/p{i}",)),)
            return _record(caller, "read", f"DocumentReference/{ids[i][0]}", touched)

        scenarios = {
            "trusted-circle physician reads a document": read(gp, lambda r: r.randrange(granted)),
            "trusted-circle physician searches a patient's documents": search,
            "emergency physician reads a document": read(em, lambda r: r.randrange(0, granted, 10)),
            "the patient reads their own document": own,
        }
        rng = random.Random(1)
        capture_results: dict[str, Any] = {}
        for name, make in scenarios.items():
            await measure_capture(capture, make, 100, rng)  # warm
            capture_results[name] = await measure_capture(capture, make, args.samples, rng)
        results["capture"] = capture_results

        logs: dict[str, Any] = {}
        for patient, events in ((1, args.events // 10), (0, args.events)):
            await fill_log(platform, patient, ids[patient], events, gp)
            async with platform.database.transaction() as conn:
                await conn.execute("ANALYZE")
            first, body = await measure_log(platform, f"p{patient}", 200, [("_count", "50")])
            assert sum(1 for p in body["parameter"] if p["name"] == "entry") == 50
            middle = f"{_instant(events // 2)}~0"
            deep, body = await measure_log(platform, f"p{patient}", 200, [("_count", "50"), ("_cursor", middle)])
            assert sum(1 for p in body["parameter"] if p["name"] == "entry") == 50
            logs[f"first page of 50, a patient with {events} accesses"] = first
            logs[f"a page in the middle, a patient with {events} accesses"] = deep
        results["log"] = logs
    finally:
        if platform.auditor is not None:
            await platform.auditor.close()
        await platform.database.close()
    table = Table("measure", "p50 ms", "p99 ms", "mean ms")
    for group in results.values():
        for name, values in group.items():
            table.add_row(name, str(values["p50_ms"]), str(values["p99_ms"]), str(values["mean_ms"]))
    console.print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "dsp_access_log",
                "patients": args.patients,
                "documents": args.patients * args.docs,
                "events": args.events,
                "samples": args.samples,
                "results": results,
                "machine": describe(),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
