"""Which statements make a DSP document search slow, and their plans: the tool behind the ITI-67 figures.

Usage (after ``python -m bench.dsp_mhd search --documents N`` has loaded its database)::

    python -m bench.dsp_explain [--queries 600] [--slowest 5] [--caller physician|system]

Runs the ``bench.dsp_mhd`` query mix through the FHIR service in process (no HTTP, token check or audit), as the
trusted-circle physician (the DSP rule in the SQL) or the establishment client, records every statement each
search sends to PostgreSQL with its time, then prints the per-statement-shape times (p50/p99 per query kind) and
``EXPLAIN (ANALYZE, BUFFERS)`` of the slowest executions, with their parameter values — what to read before
changing the rule's SQL or the indexes. The per-shape times go to bench/results/dsp_explain.json, one section per
caller (a run keeps the other caller's section).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.dsp_mhd import _queries
from bench.machine import current_commit, describe
from esante.db import engine as db_engine
from esante.db.engine import to_dollar_params
from esante.fhir.search.plan_choice import plan_depends_on_values

console = Console()
URL = "postgresql://postgres@127.0.0.1:5432/bench_dsp_mhd_search"
RESULTS = Path(__file__).resolve().parent / "results" / "dsp_explain.json"


def _shape(query: str) -> str:
    names = sorted({re.sub(r"[=].*", "", part) for part in query.split("&")})
    return "&".join(names)


async def run(args: argparse.Namespace) -> None:
    from bench.dsp_mhd import CLIENT
    from esante.app import build_platform
    from esante.config import Settings
    from esante.dsp.access_caller import professional_attributes
    from esante.dsp.context import dsp_context
    from esante.fhir.context import RequestContext
    from esante.security.pdp.rules.professional import RIGHT_TO_PRACTISE
    from esante.security.policy import Caller

    settings = Settings(database_url=args.url, audit_enabled=False, warm_up=False, dsp_establishment_reads=True)
    platform = build_platform(settings)
    await platform.database.connect()
    recorded: list[tuple[str, tuple[Any, ...], float]] = []
    original = db_engine._PgConnection.fetch

    async def fetch(self: Any, sql: str, params: Any = ()) -> Any:
        started = time.perf_counter()
        try:
            return await original(self, sql, params)
        finally:
            recorded.append((sql, tuple(params), (time.perf_counter() - started) * 1000))

    db_engine._PgConnection.fetch = fetch  # type: ignore[method-assign]
    try:
        practitioner = "gp"  # the bench's trusted-circle physician (Practitioner/gp)
        async with platform.database.read() as conn:
            attributes = await professional_attributes(conn, dsp_context(platform), practitioner, None)
        attributes[RIGHT_TO_PRACTISE] = "active"
        if args.caller == "physician":
            caller = Caller("professional", practitioner, ("user/*.rs",), attributes=attributes)
        else:
            caller = Caller("system", CLIENT, ("system/*.rs",), attributes={"client_id": CLIENT})
        patients = await _patient_count(platform.database)
        queries = _queries(random.Random(67), patients)[: args.queries]
        by_shape: dict[str, list[float]] = defaultdict(list)
        slow: list[tuple[float, str, tuple[Any, ...], str]] = []
        for i, query in enumerate(queries):
            pairs = [(k, v) for k, _, v in (item.partition("=") for item in query.split("&"))]
            recorded.clear()
            started = time.perf_counter()
            # the pool the FHIR router would take for this search (cached plans when scoped to one patient)
            per_execution = plan_depends_on_values(["DocumentReference"], pairs)
            async with platform.database.read(search=per_execution) as conn:
                session = platform.store.session(conn, caller)
                await platform.service.search(session, RequestContext(caller=caller), "DocumentReference", pairs)
            total = (time.perf_counter() - started) * 1000
            if i < 50:
                continue  # warm-up
            by_shape[_shape(query)].append(total)
            for sql, params, ms in recorded:
                slow.append((ms, sql, params, query))
        console.print(f"[bold]{args.caller}[/bold]: {len(queries) - 50} searches")
        shapes: dict[str, dict[str, float]] = {}
        for shape, times in sorted(by_shape.items()):
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            console.print(f"  {shape:60} n={len(times):4} p50={statistics.median(times):6.2f} ms p99={p99:6.2f} ms")
            shapes[shape] = {"n": len(times), "p50_ms": round(statistics.median(times), 2), "p99_ms": round(p99, 2)}
        _save(args.caller, len(queries) - 50, shapes)
        slow.sort(key=lambda item: -item[0])
        async with platform.database.read(search=True) as conn:
            for ms, sql, params, query in slow[: args.slowest]:
                console.rule(f"{ms:.1f} ms — {query}")
                console.print(sql, markup=False)
                console.print(repr(params), markup=False)
                raw = conn._raw  # type: ignore[attr-defined]
                plan = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + to_dollar_params(sql), *params)
                console.print("\n".join(row[0] for row in plan), markup=False)
    finally:
        db_engine._PgConnection.fetch = original  # type: ignore[method-assign]
        await platform.database.close()


def _save(caller: str, searches: int, shapes: dict[str, dict[str, float]]) -> None:
    """One caller's per-shape times, with when, which commit and on what machine (the other caller's are kept)."""
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": "dsp_explain"}
    commit = current_commit()
    current[caller] = {
        "time_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "commit": commit,
        "machine": describe(),
        "conditions": "in process, no HTTP, token check or audit; bench_dsp_mhd_search (1.46 M DocumentReferences)",
        "searches": searches,
        "by_query_shape": shapes,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")


async def _patient_count(database: Any) -> int:
    async with database.read() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM dsp_record"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=URL)
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--slowest", type=int, default=5)
    parser.add_argument("--caller", choices=("physician", "system"), default="physician")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
