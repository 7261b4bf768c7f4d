"""The bearer gate's cost for a WSE check, in process: ``python -m bench.wse_gate``.

A pharmacy's token through ``ResourceServer.authenticate`` on PostgreSQL (the database of bench.wse_eligibility):
(a) the first use of a token (ES256 signature verified, then the live check), (b) a token seen before (signature
verification cached for the token's lifetime, as the resource server does; the live check still runs: revocation
acts on the next request), (c) the live check's statement alone. Results → bench/results/wse_gate.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.machine import describe
from bench.wse_eligibility import CLIENT, SCOPE, load_average
from esante.config import Settings
from esante.db.engine import create_database
from esante.demo import register_system_client
from esante.security.keys import KeyRing
from esante.security.resource_server import ResourceServer
from esante.security.tokens import mint_for, principal

HERE = Path(__file__).resolve().parent


async def measure(url: str, data_dir: Path, n: int) -> dict[str, Any]:
    settings = Settings(database_url=url, var_dir=data_dir, port=8097, db_pool_size=1)
    database = create_database(url, pool_size=1)
    await database.connect()
    try:
        async with database.transaction() as conn:
            await conn.execute("DELETE FROM oauth_client WHERE client_id = ?", (CLIENT,))
        await register_system_client(database, CLIENT, "benchmark pharmacy", SCOPE, kind="pharmacy")
        ring = KeyRing.load_or_create(settings)
        gate = ResourceServer(settings, ring, database)
        tokens = [mint_for(settings, ring, principal(f"system:{CLIENT}"), scope=SCOPE) for _ in range(n)]
        out: dict[str, list[float]] = {"first_use": [], "seen_before": [], "live_check_alone": []}
        async with database.read() as conn:
            for token in tokens:  # each token's first use: signature verified
                started = time.perf_counter()
                await gate.authenticate({"authorization": f"Bearer {token}"}, conn)
                out["first_use"].append(time.perf_counter() - started)
            for _ in range(n):  # the same token again: verification cached, live check
                started = time.perf_counter()
                await gate.authenticate({"authorization": f"Bearer {tokens[0]}"}, conn)
                out["seen_before"].append(time.perf_counter() - started)
            claims = gate._verified(tokens[0])
            caller = claims.to_caller()
            for _ in range(n):
                started = time.perf_counter()
                await gate._check_live(conn, claims, caller)
                out["live_check_alone"].append(time.perf_counter() - started)
    finally:
        await database.close()
    return {
        name: {"mean_ms": round(statistics.mean(v) * 1000, 3), "p50_ms": round(statistics.median(v) * 1000, 3)}
        for name, v in out.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/bench_wse")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--out", default=str(HERE / "results" / "wse_gate.json"))
    args = parser.parse_args()
    data_dir = Path(os.environ.get("BENCH_VAR", "/tmp/esante-bench-wse"))
    before = load_average()
    result = asyncio.run(measure(args.url, data_dir, args.n))
    report = {"machine": describe(args.url), "n": args.n, "load_before": before, "load_after": load_average(), **result}
    print(json.dumps(report, indent=2))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
