"""Where a served ITI-67 search's time goes: CPU per search by process, and the audit chainer's share of the tail.

Usage (after ``python -m bench.dsp_mhd search --documents N`` has loaded its database)::

    python -m bench.dsp_served_cost [--duration 15] [--rounds 2]

On the ``bench.dsp_mhd`` database and query mix, ``esante serve --workers 2`` with audit on, load from wrk (C: a
few % of one core, so the figures are the server's, not a Python client's):

1. **CPU per search by process**: the establishment client and the trusted-circle physician in turn, 8
   connections for ``--duration`` seconds each, ``--rounds`` times: requests/s and CPU milliseconds per search of
   the uvicorn workers, the audit chain process and PostgreSQL (every ``postgres`` process of the machine: the
   bench database is the only one at work). What the physician's DSP rule, token checks, access-log capture and
   decision events cost beyond the establishment's search.
2. **The chainer and the tail**: the physician, one connection (sequential latency p50/p95/p99), with the audit
   chain process running, then stopped (``SIGSTOP``: the events wait in the journal), ``--rounds`` times. The
   chainer runs beside the requests at a lower priority; its PostgreSQL backend (storing the AuditEvents, their
   index rows included) does not. Does it make the tail?

Writes bench/results/dsp_served_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.dsp_mhd import AUTHORS, CLIENT, _queries, _start_server, _stop, _token
from bench.machine import current_commit, describe, process_cpu_seconds, process_tree, server_role
from esante.config import Settings
from esante.identifiers.ehealth_id import make_ehealth_id

console = Console()
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "dsp_served_cost.json"
URL = "postgresql://postgres@127.0.0.1:5432/bench_dsp_mhd_search"
DOCUMENTS = 1_460_000
PER_PATIENT = 22


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip().startswith("postgres"):
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _wrk(port: int, data: Path, token: str, connections: int, seconds: float) -> dict[str, Any]:
    env = dict(os.environ, BENCH_DIR=str(HERE), BENCH_DATA=str(data), BENCH_TOKEN=token)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--timeout", "10s",
           "-s", str(HERE / "wrk" / "dsp_search.lua"), f"http://127.0.0.1:{port}"]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    found: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return found


def _cpu_per_search(server: int, port: int, data: Path, token: str, seconds: float) -> dict[str, Any]:
    processes = process_tree(server)
    roles = {pid: server_role(pid) for pid in processes}
    before = {pid: process_cpu_seconds([pid]) for pid in processes}
    postgres_before = {pid: process_cpu_seconds([pid]) for pid in _postgres_pids()}
    load = _wrk(port, data, token, 8, seconds)
    by_role: dict[str, float] = {}
    for pid in processes:
        by_role[roles[pid]] = by_role.get(roles[pid], 0.0) + process_cpu_seconds([pid]) - before[pid]
    postgres = sum(process_cpu_seconds([pid]) - postgres_before.get(pid, 0.0) for pid in _postgres_pids())
    searches = max(1, int(load["requests"]))
    per_search = {role: round(seconds_used * 1000 / searches, 2) for role, seconds_used in by_role.items()}
    per_search["postgresql"] = round(postgres * 1000 / searches, 2)
    return {"requests_per_second": load["req_per_s"], "errors": load["errors"], "cpu_ms_per_search": per_search}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=30, help="seconds for the workers' start-up work")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bench-dsp-served-"))
    settings = Settings(database_url=URL, var_dir=data, port=args.port, audit_enabled=False, warm_up=False)
    tokens = {
        "establishment": _token(settings, f"system:{CLIENT}", "system/*.rs"),
        "physician": _token(settings, f"professional:{make_ehealth_id(f'{287_000_000 + AUTHORS:09d}')}"),
    }
    queries = _queries(random.Random(67), DOCUMENTS // PER_PATIENT)
    (data / "dsp_queries.txt").write_text("\n".join(queries) + "\n")
    machine = describe(URL)
    server = _start_server(URL, args.port, 2, data, ESANTE_DSP_ESTABLISHMENT_READS="true")
    cpu: list[dict[str, Any]] = []
    chainer: list[dict[str, Any]] = []
    try:
        _wrk(args.port, data, tokens["physician"], 2, 10)  # warm both workers' caches and plans
        time.sleep(args.settle)
        for _ in range(args.rounds):
            for who, token in tokens.items():
                found = {"caller": who, **_cpu_per_search(server.pid, args.port, data, token, args.duration)}
                console.print(found)
                cpu.append(found)
        chain = [pid for pid in process_tree(server.pid) if server_role(pid) == "audit chain process"]
        for _ in range(args.rounds):
            for state in ("running", "stopped"):
                if state == "stopped":
                    for pid in chain:
                        os.kill(pid, signal.SIGSTOP)
                try:
                    load = _wrk(args.port, data, tokens["physician"], 1, args.duration)
                finally:
                    if state == "stopped":
                        for pid in chain:
                            os.kill(pid, signal.SIGCONT)
                found = {"chainer": state, **{k: load[k] for k in ("req_per_s", "p50_ms", "p95_ms", "p99_ms")}}
                console.print(found)
                chainer.append(found)
                if state == "stopped":
                    time.sleep(10)  # the chainer catches up before the next round
    finally:
        _stop(server)
    commit = current_commit()
    result = {
        "benchmark": "dsp_served_cost",
        "time_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "commit": commit,
        "machine": machine,
        "conditions": "bench_dsp_mhd_search (1.46 M DocumentReferences), esante serve --workers 2 with audit on, "
        "wrk on the same 2 cores; PostgreSQL CPU = every postgres process of the machine",
        "cpu_per_search_8_connections": cpu,
        "physician_one_connection_chainer_running_vs_stopped": chainer,
    }
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    console.print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
