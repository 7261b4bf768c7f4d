"""The cost of the DSP access rule in a patient's document search (PostgreSQL), measured in process.

Usage: ``python -m bench.dsp_access [--db postgresql://postgres@127.0.0.1:5432/bench_dsp_access] [--patients 20000]
[--docs 10] [--queries 2000]``. The database is emptied and migrated first.

Load: ``--patients`` certified identities (their DSPs opened by the store hook, active), ``--docs`` DocumentReferences
each (the twelve classes in turn, one in ten restricted, one in twenty hidden, authors spread over 200
professionals); a physician in the trusted circle of 2,000 patients, a pharmacist with a therapeutic relationship
with the same 2,000, an emergency access for 200 of them, 200 blocks.

Measure: ``DocumentReference?patient=Patient/x&_count=20`` (page and total, as ITI-67 asks) through the FHIR
service — the very code the HTTP API runs, without HTTP, token check and audit, so the difference between callers
is the rule's SQL — for the same random patients as: an unrestricted system client (no rule), the trusted-circle
physician, the pharmacist (relationship + class matrix), a physician without any grant (sees nothing), the
emergency physician. p50/p99 per caller, the EXPLAIN ANALYZE of the physician's search. Writes
bench/results/dsp_access.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from bench.machine import describe
from esante.app import Platform, build_platform
from esante.config import Settings
from esante.dsp.access_caller import professional_attributes
from esante.dsp.audit import SYSTEM_ACTOR
from esante.dsp.context import dsp_context
from esante.dsp.grants import add_grant, declare_emergency, declare_relationship
from esante.dsp.grants_model import Kind
from esante.dsp.model import CONFIDENTIALITY_SYSTEM, DOCUMENT_CLASS_SYSTEM, DOCUMENT_CLASSES
from esante.fhir.context import RequestContext
from esante.fhir.search.compile import Renderer
from esante.security.pdp.rules.professional import RIGHT_TO_PRACTISE
from esante.security.policy import Action, Caller

RESULTS = Path(__file__).resolve().parent / "results" / "dsp_access.json"
console = Console()
GRANTED = 2000


def _patient(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{i}",
        "meta": {"tag": [{"system": "urn:esante:identity-level", "code": "certified"}]},
        "identifier": [{"system": "urn:oid:1.3.182.4.4", "value": f"{19500101000 + i:013d}"}],
        "name": [{"family": f"F{i}"}],
    }


def _document(i: int, j: int) -> dict[str, Any]:
    n = i * 31 + j
    labels = ["V"] if n % 20 == 0 else (["R"] if n % 10 == 0 else [])
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/p{i}"},
        "category": [{"coding": [{"system": DOCUMENT_CLASS_SYSTEM, "code": DOCUMENT_CLASSES[n % 12]}]}],
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": c}]} for c in labels],
        "author": [{"reference": f"Practitioner/a{n % 200}"}],
        "date": f"20{10 + n % 15}-0{1 + n % 9}-1{n % 9}T10:00:00Z",
        "content": [{"attachment": {"contentType": "application/pdf", "url": f"Binary/b{i}-{j}"}}],
    }


def _practitioner(pid: str, profession: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "qualification": [{"code": {"coding": [{"system": "urn:esante:hpd:profession", "code": profession}]}}],
    }


async def _reset(url: str) -> None:
    from esante.db.engine import create_database

    database = create_database(url, pool_size=1)
    await database.connect()
    try:
        async with database.transaction() as conn:
            await conn.execute("DROP SCHEMA public CASCADE")
            await conn.execute("CREATE SCHEMA public")
    finally:
        await database.close()


async def load(platform: Platform, patients: int, docs: int) -> float:
    started = time.perf_counter()
    store = platform.store
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("loading", total=patients)
        async with store.database.transaction() as conn:
            session = store.session(conn)
            for pid, profession in [(f"a{k}", "medecin") for k in range(200)] + [
                ("gp", "medecin"),
                ("pha", "pharmacien"),
                ("nobody", "medecin"),
                ("em", "medecin"),
            ]:
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
                        await session.create(_document(i, j), client_id=False)
                await session.flush()
            progress.advance(task, min(500, patients - start))
    context = dsp_context(platform)
    async with store.database.transaction() as conn:
        session = store.session(conn)
        for i in range(min(GRANTED, patients)):
            await add_grant(
                session, context, f"p{i}", Kind.TRUSTED_CIRCLE, actor=SYSTEM_ACTOR, server="bench", practitioner_id="gp"
            )
            await declare_relationship(session, context, f"p{i}", "pha", actor=SYSTEM_ACTOR, server="bench")
            if i % 10 == 0:
                await declare_emergency(session, context, f"p{i}", "em", "bench", actor=SYSTEM_ACTOR, server="bench")
                await add_grant(
                    session,
                    context,
                    f"p{i + 1}",
                    Kind.BLOCK,
                    actor=SYSTEM_ACTOR,
                    server="bench",
                    practitioner_id="nobody",
                )
        await session.flush()
    async with store.database.transaction() as conn:
        await conn.execute("ANALYZE")
    return time.perf_counter() - started


async def _caller(platform: Platform, kind: str, practitioner: str | None = None) -> Caller:
    """The caller as the bearer gate leaves it (the DSP's token check run for a professional)."""
    if kind == "system":
        return Caller("system", "bench", ("system/*.cruds",), attributes={"client_id": "bench"})
    async with platform.database.read() as conn:
        attributes = await professional_attributes(conn, dsp_context(platform), practitioner, None)
    attributes[RIGHT_TO_PRACTISE] = "active"
    return Caller("professional", practitioner, ("user/*.cruds",), attributes=attributes)


async def measure(platform: Platform, caller: Caller, patients: list[str]) -> dict[str, Any]:
    times: list[float] = []
    found = 0
    for patient in patients:
        started = time.perf_counter()
        async with platform.database.read(search=True) as conn:
            session = platform.store.session(conn, caller)
            result = await platform.service.search(
                session,
                RequestContext(caller=caller),
                "DocumentReference",
                [("patient", f"Patient/{patient}"), ("_count", "20"), ("_total", "accurate")],
            )
        times.append((time.perf_counter() - started) * 1000)
        assert isinstance(result.body, dict)
        found += int(result.body.get("total") or 0)
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "documents_per_search": round(found / len(patients), 2),
    }


async def explain(platform: Platform, caller: Caller, patient: str) -> str:
    from esante.fhir.search.parse import parse_search

    decision = platform.service.policy.pdp.decide(caller, Action("search-type", "DocumentReference"))
    cond = platform.service.policy.cond(decision)
    request = parse_search("DocumentReference", [("patient", f"Patient/{patient}")], platform.service.registry)
    text, params = Renderer().render(cond, "r") if cond is not None else ("1 = 1", [])
    from esante.fhir.search.compile import AllCond

    filters, fparams = Renderer().render(AllCond(tuple(request.filters)), "r")
    sql = (
        "EXPLAIN (ANALYZE, SUMMARY ON, TIMING OFF) SELECT r.rid FROM resource r"
        f" WHERE r.res_type = 'DocumentReference' AND r.is_current AND ({filters}) AND ({text})"
    )
    async with platform.database.read(search=True) as conn:
        rows = await conn.fetch(sql, [*fparams, *params])
    return "\n".join(str(row[0]) for row in rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/bench_dsp_access")
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    from esante.db.migrate import upgrade

    await _reset(args.db)
    upgrade(args.db)
    settings = Settings(
        database_url=args.db,
        var_dir=Path("/tmp/bench-dsp-access"),
        audit_enabled=False,
        warm_up=False,
        dsp_refusal_window_days=0,
        dsp_establishment_reads=True,
    )
    platform = build_platform(settings)
    await platform.database.connect()
    try:
        seconds = await load(platform, args.patients, args.docs)
        console.print(f"loaded {args.patients * args.docs:,} documents in {seconds:.0f} s")
        rng = random.Random(1)
        sample = [f"p{rng.randrange(min(GRANTED, args.patients))}" for _ in range(args.queries)]
        callers = {
            "unrestricted system client (no DSP rule)": await _caller(platform, "system"),
            "trusted-circle physician": await _caller(platform, "professional", "gp"),
            "pharmacist (relationship, class matrix)": await _caller(platform, "professional", "pha"),
            "emergency physician": await _caller(platform, "professional", "em"),
            "physician without a grant (blocked by 200 patients)": await _caller(platform, "professional", "nobody"),
        }
        results: dict[str, Any] = {}
        for name, caller in callers.items():
            await measure(platform, caller, sample[:100])  # warm
            results[name] = await measure(platform, caller, sample)
        plan = await explain(platform, callers["trusted-circle physician"], sample[0])
    finally:
        await platform.database.close()
    table = Table("caller", "p50 ms", "p99 ms", "mean ms", "documents found")
    for name, values in results.items():
        table.add_row(
            name,
            str(values["p50_ms"]),
            str(values["p99_ms"]),
            str(values["mean_ms"]),
            str(values["documents_per_search"]),
        )
    console.print(table)
    console.print(plan)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "dsp_access",
                "patients": args.patients,
                "documents": args.patients * args.docs,
                "queries": args.queries,
                "load_seconds": round(seconds, 1),
                "results": results,
                "plan_trusted_circle": plan.splitlines(),
                "machine": describe(),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
