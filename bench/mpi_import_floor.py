"""The database's own ceiling for a certified import: how many identities/s PostgreSQL absorbs with no preparation.

Usage: ``python -m bench.mpi_import_floor [--count 40000] [--db postgresql://…/mpi_bench]``

Why: the certified import (bench/mpi_import.py) spends CPU in two places — Python preparing each identity (parse,
validation, shaping, search-index extraction, COPY encoding) and PostgreSQL storing it (a resource row, ~24
search-index rows, the eSanté-id ledger, each with its B-tree entries). On a small machine both share the same
cores, so the import can never be faster than the database alone. This benchmark measures that bound: every
identity is prepared *before* the clock starts, exactly as the importer would write it (same rows, same tables,
batches of 1,000 in one transaction each, binary COPY), then only the writes are timed — on one connection (the
importer's writer) and on two in parallel. The time per table tells where the database's work goes.

Writes bench/results/mpi_import_floor.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench.databases import reset
from bench.machine import describe
from bench.mpi_import import write_register
from esante.fhir.store import _COLUMN_NAMES, _INDEX_KINDS, _table
from esante.mpi.certified_import import Prepared, prepare_chunk
from esante.mpi.sources import read_file

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mpi_import_floor.json"
DEFAULT_URL = os.environ.get("ESANTE_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/mpi_bench")
BATCH = 1_000
STAMP_ORIGIN = 1_700_000_000_000_000  # microseconds: any increasing stamps will do

Rows = list[tuple[Any, ...]]
Batch = dict[str, Rows]  # table → rows


def prepare_batches(path: Path) -> list[Batch]:
    """Every identity of the file as the importer stores it, grouped in batches (untimed)."""
    prepared: list[Prepared] = []
    proposed: set[str] = set()
    for entry in prepare_chunk(list(read_file(path))):
        # the importer draws another eSanté id when a random proposal repeats (~1 in 25,000 at this size): here
        # the identity is simply left out
        if isinstance(entry, Prepared) and entry.body["identifier"][1]["value"] not in proposed:
            proposed.add(entry.body["identifier"][1]["value"])
            prepared.append(entry)
    batches: list[Batch] = []
    for start in range(0, len(prepared), BATCH):
        batch: Batch = {"resource": [], **{_table(kind): [] for kind in _INDEX_KINDS}, "mpi_esante_id": []}
        for rid, entry in enumerate(prepared[start : start + BATCH], start=start + 1):
            assert entry.index_rows is not None
            body = {**entry.body, "id": entry.res_id}
            content = orjson.dumps(body)
            batch["resource"].append(
                (rid, "Patient", entry.res_id, 1, STAMP_ORIGIN + rid, True, False, "POST", content)
            )
            for kind in _INDEX_KINDS:
                batch[_table(kind)].extend((rid, "Patient", *row) for row in getattr(entry.index_rows, kind))
            batch["mpi_esante_id"].append((entry.body["identifier"][1]["value"], entry.res_id, 0))
        batches.append(batch)
    return batches


def _columns(table: str) -> list[str]:
    if table == "mpi_esante_id":
        return ["esante_id", "res_id", "assigned_at"]
    kind = "resource" if table == "resource" else table.removeprefix("idx_")
    return list(_COLUMN_NAMES[kind])


async def write(url: str, batches: list[Batch], connections: int) -> dict[str, Any]:
    """Write the batches over ``connections`` connections (batch i on connection i mod n); timed."""
    conns = [await asyncpg.connect(url) for _ in range(connections)]
    per_table: dict[str, float] = {}

    async def writer(conn: asyncpg.Connection, mine: list[Batch]) -> None:
        for batch in mine:
            async with conn.transaction():
                for table, rows in batch.items():
                    if rows:
                        started = time.perf_counter()
                        await conn.copy_records_to_table(table, records=rows, columns=_columns(table))
                        per_table[table] = per_table.get(table, 0.0) + time.perf_counter() - started

    started = time.perf_counter()
    try:
        await asyncio.gather(*(writer(conn, batches[i::connections]) for i, conn in enumerate(conns)))
    finally:
        for conn in conns:
            await conn.close()
    seconds = time.perf_counter() - started
    identities = sum(len(batch["resource"]) for batch in batches)
    rows = {table: sum(len(batch[table]) for batch in batches) / identities for table in batches[0]}
    return {
        "connections": connections,
        "identities": identities,
        "seconds": round(seconds, 2),
        "identities_per_s": round(identities / seconds, 1),
        # one connection only: with two, the per-table times overlap
        **(
            {
                "microseconds_per_identity_by_table": {
                    table: round(spent * 1e6 / identities, 1) for table, spent in per_table.items()
                }
            }
            if connections == 1
            else {}
        ),
        "rows_per_identity": {table: round(count, 2) for table, count in rows.items() if count},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40_000)
    parser.add_argument("--db", default=DEFAULT_URL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "register.ndjson"
        write_register(path, args.count)
        batches = prepare_batches(path)
    runs = []
    for connections in (1, 2):
        reset(args.db)
        runs.append(asyncio.run(write(args.db, batches, connections)))
        print(runs[-1])
    output = {
        "benchmark": "mpi_import_floor",
        "count": args.count,
        "batch": BATCH,
        "runs": runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": describe(args.db),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
